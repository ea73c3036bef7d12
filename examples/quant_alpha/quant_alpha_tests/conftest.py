"""The example's tests share the platform tests' real Dagster instances, throwaway PostgreSQL server and
migrated MLflow template."""

from ml_platform_tests.conftest import (
    _no_dead_defs_state_storage,
    dagster_instance,
    dagster_pg_instance,
    mlflow_template,
    postgres,
    postgres_db,
)

__all__ = ["_no_dead_defs_state_storage", "dagster_instance", "dagster_pg_instance", "mlflow_template", "postgres",
           "postgres_db"]
