"""The demo code location end to end on one machine: real Postgres for Dagster's storage,
a real S3 endpoint (moto) for the Iceberg warehouse, DuckDB and dbt for the models.

The catalog is the control plane: one full run fills it, and then any single asset
materialises in an empty scratch, reading its upstream from the catalog."""

import json
import re
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan
from support.demo import WAREHOUSE_BUCKET, demo_platform, postgres_instance, yesterday_partition

from lakeport.catalog import load_catalog
from lakeport.dbt_assets import DUCKDB_PATH_ENV
from lakeport.dbt_manifest import prepare_manifest
from lakeport.duckdb_s3 import configure_s3
from lakeport.profiles import K8S_CONFIG_TAG, PROFILE_TAG
from lakeport_demo.bronze import RAW_ROWS_ENV
from lakeport_demo.build import DBT_PROJECT_DIR, build_demo_definitions

# Every stored table of the demo, by layer: namespace per layer, nothing else.
TABLES = {
    ("raw", "raw_customers"), ("raw", "raw_orders"), ("raw", "raw_payments"),
    ("intermediate", "int_orders_enriched"),
    ("marts", "dim_customers"), ("marts", "mart_customer_revenue"),
    ("marts", "fct_orders"), ("marts", "fct_payments"),
}
FCT_ORDERS = dg.AssetKey(["marts", "fct_orders"])


@pytest.fixture(scope="module")
def demo_manifest():
    prepare_manifest(DBT_PROJECT_DIR, if_stale=True)
    return DBT_PROJECT_DIR


@pytest.fixture
def lakehouse(tmp_path, s3_server, s3_env, demo_manifest, monkeypatch):
    s3_server.ensure_buckets(WAREHOUSE_BUCKET)
    platform = demo_platform(tmp_path / "data", s3_server.endpoint)
    monkeypatch.delenv(DUCKDB_PATH_ENV, raising=False)
    monkeypatch.delenv(RAW_ROWS_ENV, raising=False)
    return platform, build_demo_definitions(platform)


def _scratch(platform) -> Path:
    return Path(platform.dev.data_dir) / "duckdb" / "lakehouse.duckdb"


def _iceberg_count(table, column=None, day=None):
    if column is None:
        return table.scan().to_arrow().num_rows
    day_filter = And(
        GreaterThanOrEqual(column, day.isoformat()),
        LessThan(column, (day + timedelta(days=1)).isoformat()),
    )
    return table.scan(row_filter=day_filter).to_arrow().num_rows


def _all_tables(catalog) -> set[tuple[str, str]]:
    return {ident for ns in catalog.list_namespaces() for ident in catalog.list_tables(ns)}


def _materialized(result) -> set[dg.AssetKey]:
    return {
        event.asset_key
        for event in result.all_events
        if event.event_type_value == "ASSET_MATERIALIZATION"
    }


def test_full_run_fills_the_catalog_then_each_asset_materialises_alone(
    lakehouse, postgres_server, postgres_database, tmp_path
):
    platform, defs = lakehouse
    job = defs.resolve_job_def("lakehouse_job")
    partition = yesterday_partition()
    day = date.fromisoformat(partition)
    asset_graph = defs.resolve_asset_graph()
    all_assets = asset_graph.get_all_asset_keys()
    all_checks = asset_graph.asset_check_keys
    catalog = load_catalog(platform)

    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        assert type(instance.run_storage).__name__ == "PooledPostgresRunStorage"
        result = job.execute_in_process(instance=instance, partition_key=partition)
        assert result.success
        assert _materialized(result) == all_assets
        # 3 Python bronze assets + 3 staging views + 1 intermediate table + 4 marts.
        assert len(all_assets) == 11

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

        # Every stored table is in Iceberg, in the namespace of its layer; views are not.
        assert _all_tables(catalog) == TABLES
        for identifier in TABLES:
            table = catalog.load_table(identifier)
            key = dg.AssetKey(list(identifier))
            metadata = instance.get_latest_materialization_event(key).asset_materialization.metadata
            assert metadata["iceberg/table"].value == ".".join(identifier)
            snapshot_id = table.current_snapshot().snapshot_id
            assert metadata["iceberg/snapshot_id"].value == str(snapshot_id)
            assert metadata["duckdb/memory_limit"].value.endswith("MiB")
            if key == FCT_ORDERS:  # the run wrote one day
                expected = _iceberg_count(table, "order_date", day)
            else:
                expected = _iceberg_count(table)
            assert metadata["dagster/row_count"].value == expected > 0, identifier
        orders = catalog.load_table(("raw", "raw_orders"))
        assert _iceberg_count(orders) == 5000
        # Each dbt op says what it wrote in one log message: every table and its snapshot.
        summaries = [e.user_message for e in instance.all_logs(result.run_id)
                     if re.match(r"wrote \d+ of \d+ tables to Iceberg", e.user_message or "")]
        dbt_tables = {i for i in TABLES if i[0] != "raw"}
        assert sum(int(m.split()[1]) for m in summaries) == len(dbt_tables), summaries
        # The tables written whole were written while dbt ran, from copies dbt's process
        # made; the incremental fct_payments (an append) and the daily fct_orders (a day
        # window) after dbt, from the scratch.
        copied = [int(n) for m in summaries for n in re.findall(r"\((\d+) while dbt ran", m)]
        assert copied == [3], summaries
        listed = {line.split(" ")[0]: line for m in summaries for line in m.splitlines()[1:]}
        assert set(listed) == {".".join(i) for i in dbt_tables}, summaries
        for identifier in dbt_tables:
            snapshot_id = catalog.load_table(identifier).current_snapshot().snapshot_id
            assert listed[".".join(identifier)].endswith(f"snapshot {snapshot_id}")

        # Now each kind of asset alone, in an empty scratch (the database file is removed
        # before each run, as a new pod's spill volume is empty): its upstream comes from
        # the catalog, and only the selected asset is written.
        singles = [
            (["raw", "raw_orders"], None),                 # a Python bronze asset
            (["staging", "stg_orders"], None),             # a view (not stored)
            (["intermediate", "int_orders_enriched"], None),  # a table over two views
            (["marts", "fct_orders"], partition),          # one day of the daily fact
            (["marts", "dim_customers"], None),            # a mart
        ]
        for path, partition_key in singles:
            _scratch(platform).unlink(missing_ok=True)
            before = {i: catalog.load_table(i).current_snapshot().snapshot_id for i in TABLES}
            key = dg.AssetKey(path)
            single = job.execute_in_process(
                instance=instance, asset_selection=[key], partition_key=partition_key or partition
            )
            assert single.success, path
            assert _materialized(single) == {key}
            after = {i: catalog.load_table(i).current_snapshot().snapshot_id for i in TABLES}
            changed = {i for i in TABLES if after[i] != before[i]}
            assert changed == ({tuple(path)} if tuple(path) in TABLES else set()), path

        # The day's rows were replaced, not appended: still the same count for that day.
        fct = catalog.load_table(("marts", "fct_orders"))
        day_rows = _iceberg_count(fct, "order_date", day)
        event = instance.get_latest_materialization_event(FCT_ORDERS)
        assert event.asset_materialization.metadata["dagster/row_count"].value == day_rows

        # DuckDB's own iceberg extension (from its wheel) reads every table back from S3.
        with duckdb.connect() as reader:
            configure_s3(reader, platform)
            for identifier in TABLES:
                table = catalog.load_table(identifier)
                count = reader.execute(
                    "select count(*) from iceberg_scan(?)", [table.metadata_location]
                ).fetchone()[0]
                assert count == _iceberg_count(table) > 0, identifier


def test_an_incremental_model_appends_only_its_new_rows(
    lakehouse, postgres_server, postgres_database, tmp_path, monkeypatch
):
    platform, defs = lakehouse
    job = defs.resolve_job_def("lakehouse_job")
    partition = yesterday_partition()
    catalog = load_catalog(platform)
    payments = dg.AssetKey(["raw", "raw_payments"])
    orders = dg.AssetKey(["raw", "raw_orders"])
    fct_payments = dg.AssetKey(["marts", "fct_payments"])

    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        assert job.execute_in_process(instance=instance, partition_key=partition).success
        table = catalog.load_table(("marts", "fct_payments"))
        first_rows = _iceberg_count(table)
        first_snapshot = table.current_snapshot()
        assert first_rows == 6000  # 5000 orders, a second payment for every fifth

        # More orders arrive upstream; only the bronze tables are rewritten.
        monkeypatch.setenv(RAW_ROWS_ENV, "6000")
        bronze = job.execute_in_process(
            instance=instance, asset_selection=[orders, payments], partition_key=partition
        )
        assert bronze.success

        _scratch(platform).unlink(missing_ok=True)
        second = job.execute_in_process(
            instance=instance, asset_selection=[fct_payments], partition_key=partition
        )
        assert second.success
        table = catalog.load_table(("marts", "fct_payments"))
        snapshot = table.current_snapshot()
        # One append on top of the first snapshot, with exactly the 1200 new payments.
        assert snapshot.parent_snapshot_id == first_snapshot.snapshot_id
        assert snapshot.summary.operation.value == "append"
        assert snapshot.summary["added-records"] == "1200"
        assert snapshot.summary["total-records"] == "7200"
        assert _iceberg_count(table) == 7200
        metadata = instance.get_latest_materialization_event(fct_payments).asset_materialization
        assert metadata.metadata["dagster/row_count"].value == 1200
        assert metadata.metadata["iceberg/operation"].value == "append"
        ids = table.scan(selected_fields=("payment_id",)).to_arrow().column(0).to_pylist()
        assert len(ids) == len(set(ids))  # nothing appended twice

        # A third run with nothing new upstream commits nothing.
        third = job.execute_in_process(
            instance=instance, asset_selection=[fct_payments], partition_key=partition
        )
        assert third.success
        table = catalog.load_table(("marts", "fct_payments"))
        assert table.current_snapshot().snapshot_id == snapshot.snapshot_id
        assert _iceberg_count(table) == 7200
        metadata = instance.get_latest_materialization_event(fct_payments).asset_materialization
        assert metadata.metadata["iceberg/operation"].value == "unchanged"
        assert metadata.metadata["dagster/row_count"].value == 0


def test_the_demo_on_an_iceberg_rest_catalog(
    tmp_path, s3_server, s3_env, demo_manifest, iceberg_rest_server, monkeypatch,
    postgres_server, postgres_database,
):
    """The same code path on the protocol Polaris speaks: a real Iceberg REST server."""
    from lakeport.credentials import CATALOG_CREDENTIAL_ENV
    from lakeport.platform import Catalog, RestCatalog

    monkeypatch.delenv(DUCKDB_PATH_ENV, raising=False)
    monkeypatch.delenv(RAW_ROWS_ENV, raising=False)
    # Iceberg's own server issues a token for any client credentials.
    monkeypatch.setenv(CATALOG_CREDENTIAL_ENV, "lakeport:not-checked-by-this-server")
    platform = demo_platform(tmp_path / "data", s3_server.endpoint).model_copy(update={
        "catalog": Catalog(type="rest", warehouse=iceberg_rest_server.warehouse,
                           rest=RestCatalog(uri=iceberg_rest_server.uri)),
    })
    defs = build_demo_definitions(platform)
    job = defs.resolve_job_def("lakehouse_job")
    partition = yesterday_partition()
    catalog = load_catalog(platform)
    mart = dg.AssetKey(["marts", "dim_customers"])
    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        assert job.execute_in_process(instance=instance, partition_key=partition).success
        assert TABLES <= _all_tables(catalog)
        before = catalog.load_table(("marts", "dim_customers")).current_snapshot().snapshot_id
        _scratch(platform).unlink(missing_ok=True)
        single = job.execute_in_process(
            instance=instance, asset_selection=[mart], partition_key=partition
        )
        assert single.success and _materialized(single) == {mart}
        table = catalog.load_table(("marts", "dim_customers"))
        assert table.current_snapshot().snapshot_id != before
        assert table.current_snapshot().parent_snapshot_id is not None
        assert _iceberg_count(table) == 500  # 5000 orders, a customer per ten
