"""Tests against the production stack run on this machine (deployments/production/prod_local): PostgreSQL, an S3
server, Redis, MLflow, the user-code server, dagster-webserver, dagster-daemon and Celery workers, booted once per
session by the ``prod_stack`` fixture (conftest.py). Every test using it names ``xdist_group("prod_stack")``."""
