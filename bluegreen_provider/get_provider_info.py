"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-provider-bluegreen",
        "name": "Blue/Green Deployments",
        "description": "Blue/green deployments of AWS Lambda-backed APIs with Route53 weighted traffic.",
        "versions": ["0.1.0"],
    }
