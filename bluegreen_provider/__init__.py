"""Blue/green deployments of Lambda-backed APIs for Apache Airflow."""

__version__ = "0.1.0"
