"""The example's tests share the platform tests' real Dagster instances and throwaway PostgreSQL server."""

from ml_platform_tests.conftest import dagster_instance, dagster_pg_instance, postgres, postgres_db

__all__ = ["dagster_instance", "dagster_pg_instance", "postgres", "postgres_db"]
