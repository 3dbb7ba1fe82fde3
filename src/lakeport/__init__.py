"""lakeport: a Kubernetes-native lakehouse platform (Dagster, dbt-duckdb, Iceberg)."""

__version__ = "0.1.0"
