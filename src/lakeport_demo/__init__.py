"""The demo lakehouse code location: a dbt-duckdb project built with lakeport."""
