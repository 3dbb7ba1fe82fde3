"""The demo code location end to end on one machine: real Postgres for Dagster's storage,
a real S3 endpoint (moto) for the Iceberg warehouse, DuckDB and dbt for the models."""

import json
from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest
from demo_support import (
    WAREHOUSE_BUCKET,
    demo_platform,
    postgres_instance,
    yesterday_partition,
)
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

from lakeport.catalog import load_catalog
from lakeport.dbt_assets import DUCKDB_PATH_ENV
from lakeport.dbt_manifest import prepare_manifest
from lakeport.duckdb_extensions import load_extension
from lakeport.duckdb_s3 import configure_s3
from lakeport.profiles import K8S_CONFIG_TAG, PROFILE_TAG
from lakeport_demo.build import DBT_PROJECT_DIR, build_demo_definitions

MARTS = {"dim_customers": None, "mart_customer_revenue": None, "fct_orders": "order_date"}


@pytest.fixture(scope="module")
def demo_manifest():
    prepare_manifest(DBT_PROJECT_DIR, if_stale=True)
    return DBT_PROJECT_DIR


@pytest.fixture
def lakehouse(tmp_path, s3_server, s3_env, demo_manifest, monkeypatch):
    s3_server.ensure_buckets(WAREHOUSE_BUCKET)
    platform = demo_platform(tmp_path / "data", s3_server.endpoint)
    monkeypatch.delenv(DUCKDB_PATH_ENV, raising=False)
    return platform, build_demo_definitions(platform)


def _duckdb_count(platform, mart, column, day):
    path = platform.dev.data_dir + "/duckdb/lakehouse.duckdb"
    with duckdb.connect(path, read_only=True) as connection:
        query = f"select count(*) from marts.{mart}"
        if column:
            query += f" where {column} >= '{day}' and {column} < '{day + timedelta(days=1)}'"
        return connection.execute(query).fetchone()[0]


def _iceberg_count(table, column, day):
    if column is None:
        return table.scan().to_arrow().num_rows
    day_filter = And(
        GreaterThanOrEqual(column, day.isoformat()),
        LessThan(column, (day + timedelta(days=1)).isoformat()),
    )
    return table.scan(row_filter=day_filter).to_arrow().num_rows


def test_every_asset_materialises_and_marts_land_in_iceberg(
    lakehouse, postgres_server, postgres_database, tmp_path
):
    platform, defs = lakehouse
    job = defs.resolve_job_def("lakehouse_job")
    partition = yesterday_partition()
    day = date.fromisoformat(partition)
    asset_graph = defs.resolve_asset_graph()
    all_assets = asset_graph.get_all_asset_keys()
    all_checks = asset_graph.asset_check_keys

    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        assert type(instance.run_storage).__name__ == "PooledPostgresRunStorage"
        result = job.execute_in_process(instance=instance, partition_key=partition)
        assert result.success

        materialized = {
            m.asset_key for m in result.asset_materializations_for_node("dbt_models")
        } | {m.asset_key for m in result.asset_materializations_for_node("dbt_daily_models")}
        assert materialized == all_assets
        assert len(all_assets) == 10

        evaluations = result.get_asset_check_evaluations()
        assert {e.asset_check_key for e in evaluations} == set(all_checks)
        assert len(all_checks) >= 20
        assert [e.asset_check_key for e in evaluations if not e.passed] == []

        # The run carries the largest profile its models ask for (`large`, from the meta of
        # mart_customer_revenue), with that profile's pod resources.
        run = instance.get_run_by_id(result.run_id)
        assert run.tags[PROFILE_TAG] == "large"
        k8s = json.loads(run.tags[K8S_CONFIG_TAG])
        assert k8s["container_config"]["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"}

        catalog = load_catalog(platform)
        first_snapshots = {}
        for mart, column in MARTS.items():
            table = catalog.load_table(f"analytics.{mart}")
            expected = _duckdb_count(platform, mart, column, day)
            assert expected > 0, mart
            assert _iceberg_count(table, column, day) == expected, mart
            event = instance.get_latest_materialization_event(dg.AssetKey(["marts", mart]))
            metadata = event.asset_materialization.metadata
            assert metadata["dagster/row_count"].value == expected
            snapshot_id = str(table.current_snapshot().snapshot_id)
            assert metadata["iceberg/snapshot_id"].value == snapshot_id
            # The DuckDB settings the run used are on record with the materialization.
            assert metadata["duckdb/memory_limit"].value.endswith("MiB")
            assert metadata["duckdb/temp_directory"].value.startswith(platform.dev.data_dir)
            first_snapshots[mart] = (len(table.history()), len(table.metadata.metadata_log))

        second = job.execute_in_process(instance=instance, partition_key=partition)
        assert second.success
        for mart, column in MARTS.items():
            table = catalog.load_table(f"analytics.{mart}")
            snapshots, commits = first_snapshots[mart]
            # One catalog commit per materialisation (an overwrite is a delete and an append
            # snapshot in that one commit).
            assert len(table.metadata.metadata_log) == commits + 1, mart
            assert len(table.history()) > snapshots, mart
            event = instance.get_latest_materialization_event(dg.AssetKey(["marts", mart]))
            assert event.run_id == second.run_id
            recorded = event.asset_materialization.metadata["iceberg/snapshot_id"].value
            assert recorded == str(table.current_snapshot().snapshot_id), mart
            # Re-materialising replaced the rows instead of appending a second copy.
            assert _iceberg_count(table, column, day) == _duckdb_count(platform, mart, column, day)

        # DuckDB's own iceberg extension (from its wheel) reads the marts back from S3.
        with duckdb.connect() as reader:
            load_extension(reader, "iceberg")
            configure_s3(reader, platform)
            for mart in MARTS:
                table = catalog.load_table(f"analytics.{mart}")
                count = reader.execute(
                    "select count(*) from iceberg_scan(?)", [table.metadata_location]
                ).fetchone()[0]
                assert count == table.scan().to_arrow().num_rows > 0, mart
