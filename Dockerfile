# Airflow with the bluegreen provider installed, for docker-compose.yaml (CeleryExecutor).
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root pyproject.toml README.md /opt/bluegreen/
COPY --chown=airflow:root bluegreen_provider /opt/bluegreen/bluegreen_provider
# The example DAGs' migrations are dags/migrations, linked into the package and shipped with it.
COPY --chown=airflow:root dags/migrations /opt/bluegreen/dags/migrations
RUN pip install --no-cache-dir "/opt/bluegreen[postgres,sandbox,slack,celery]"
