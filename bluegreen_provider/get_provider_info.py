"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

The AWS connection type is the amazon provider's ``aws``: our hooks reuse it rather than register
a second one, so one ``aws_default`` serves both providers.

No ``plugins`` entry: the Blue/Green view registers through the package's ``airflow.plugins`` entry
point, which Airflow always loads. A provider's ``plugins`` load only with ``[core]
lazy_discover_providers = False``, and would then register the same plugin a second time.
"""

from __future__ import annotations

from bluegreen_provider import __version__


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-provider-bluegreen",
        "name": "Blue/Green Deployments",
        "description": "Blue/green deployments of AWS Lambda-backed APIs: Route53 weighted traffic shifting, "
        "canary analysis on error rate, alarms and health checks, human approval, automatic rollback "
        "and deferred teardown.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Blue/Green Deployments",
                "external-doc-url": "https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/routing-policy-weighted.html",
                "tags": ["aws"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Blue/Green Deployments",
                "python-modules": [
                    "bluegreen_provider.hooks.route53",
                    "bluegreen_provider.hooks.cloudwatch",
                    "bluegreen_provider.hooks.lambda_alias",
                    "bluegreen_provider.hooks.migrations",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": "Blue/Green Deployments",
                "python-modules": [
                    "bluegreen_provider.operators.plan",
                    "bluegreen_provider.operators.deploy",
                    "bluegreen_provider.operators.migrations",
                    "bluegreen_provider.operators.health",
                    "bluegreen_provider.operators.traffic",
                    "bluegreen_provider.operators.rollback",
                    "bluegreen_provider.operators.teardown",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Blue/Green Deployments",
                "python-modules": [
                    "bluegreen_provider.sensors.error_rate",
                    "bluegreen_provider.sensors.approval",
                ],
            }
        ],
        "config": {
            "bluegreen": {
                "description": "Settings of the Blue/Green view in the Airflow UI.",
                "options": {
                    "aws_conn_id": {
                        "description": "AWS connection the Blue/Green status page reads Route53, Lambda and "
                        "CloudWatch with.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": None,
                        "default": "aws_default",
                    }
                },
            }
        },
        "triggers": [
            {
                "integration-name": "Blue/Green Deployments",
                "python-modules": [
                    "bluegreen_provider.triggers.route53",
                    "bluegreen_provider.triggers.error_rate",
                    "bluegreen_provider.triggers.health",
                ],
            }
        ],
    }
