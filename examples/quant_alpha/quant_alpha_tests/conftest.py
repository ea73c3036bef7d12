"""The example's tests share the platform tests' real Dagster instances, throwaway PostgreSQL server and
migrated MLflow template, and the example's features built once per session (``example_features``)."""

from ml_platform_tests.conftest import (
    _no_dead_defs_state_storage,
    dagster_instance,
    dagster_pg_instance,
    mlflow_template,
    postgres,
    postgres_db,
)
from quant_alpha_tests.example_features import example_features

__all__ = ["_no_dead_defs_state_storage", "dagster_instance", "dagster_pg_instance", "example_features", "mlflow_template",
           "postgres",
           "postgres_db"]
