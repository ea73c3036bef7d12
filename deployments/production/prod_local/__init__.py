"""The production stack on one machine: ``python -m prod_local start|stop|status|env`` (``make prod-local``).

Every service a desk runs, each its own process on a free loopback port, configured exactly as production is
(``deployments/production/dagster.yaml``, ``workspace.yaml``, ``celery.yaml`` and environment variables):
PostgreSQL (Dagster's runs and events, MLflow's tracking store and registry, the champion ledger, the alert
outboxes), an S3 server (features, MLflow artefacts, compute logs), Redis (the Celery broker), the MLflow
server, the project's user-code gRPC server, dagster-webserver, dagster-daemon and Celery workers. Each process
gets its own home, working directory and temporary folder, so a test can prove nothing of value stays on any
of them. ``start`` records every process (pid, process group, port, log) in a state file; ``stop`` ends exactly
those and checks no recorded port still listens.
"""
