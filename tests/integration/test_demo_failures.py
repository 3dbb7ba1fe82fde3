"""A broken model and a failing dbt test, in a private copy of the demo dbt project."""

import dagster as dg
import pytest
from demo_support import (
    WAREHOUSE_BUCKET,
    copy_project,
    demo_platform,
    postgres_instance,
    prepare,
    yesterday_partition,
)

from lakeport.dbt_assets import DUCKDB_PATH_ENV
from lakeport_demo.build import build_demo_definitions

BROKEN_MODEL = dg.AssetKey(["intermediate", "int_orders_enriched"])
DOWNSTREAM = {
    dg.AssetKey(["marts", "dim_customers"]),
    dg.AssetKey(["marts", "mart_customer_revenue"]),
    dg.AssetKey(["marts", "fct_orders"]),
}
# What does not depend on the broken model, and so is still built.
UPSTREAM = {
    dg.AssetKey(["marts", "fct_payments"]),
    dg.AssetKey(["raw", "raw_customers"]),
    dg.AssetKey(["raw", "raw_orders"]),
    dg.AssetKey(["raw", "raw_payments"]),
    dg.AssetKey(["staging", "stg_customers"]),
    dg.AssetKey(["staging", "stg_orders"]),
    dg.AssetKey(["staging", "stg_payments"]),
}


@pytest.fixture
def broken_project(tmp_path):
    project = copy_project(tmp_path / "dbt_project")
    model = project / "models/intermediate/int_orders_enriched.sql"
    model.write_text("select no_such_column from {{ ref('stg_orders') }}\n")
    # Every generated country but GB is accepted: the test on stg_customers must fail.
    staging = project / "models/staging/_staging.yml"
    text = staging.read_text()
    assert "values: [DE, FR, NL, US, GB]" in text
    staging.write_text(text.replace("values: [DE, FR, NL, US, GB]", "values: [DE, FR, NL, US]"))
    return prepare(project)


def test_failing_model_skips_downstream_and_failing_test_fails_its_check(
    broken_project, tmp_path, s3_server, s3_env, postgres_server, postgres_database, monkeypatch
):
    monkeypatch.delenv(DUCKDB_PATH_ENV, raising=False)
    s3_server.ensure_buckets(WAREHOUSE_BUCKET)
    platform = demo_platform(tmp_path / "data", s3_server.endpoint)
    defs = build_demo_definitions(platform, project_dir=broken_project)
    job = defs.resolve_job_def("lakehouse_job")

    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        result = job.execute_in_process(
            instance=instance, partition_key=yesterday_partition(), raise_on_error=False
        )
        assert not result.success

        records = instance.get_records_for_run(
            result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        materialized = {r.event_log_entry.dagster_event.asset_key for r in records}
        assert materialized == UPSTREAM
        assert BROKEN_MODEL not in materialized and not (DOWNSTREAM & materialized)

        failed_step = next(e for e in result.all_events if e.is_step_failure)
        assert failed_step.step_key == "dbt_models"
        assert "int_orders_enriched" in str(failed_step.step_failure_data.error)
        # The daily fact's op depends on what failed: Dagster skips it instead of running it.
        started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
        assert started == {"dbt_models", "raw__raw_customers", "raw__raw_orders",
                           "raw__raw_payments"}
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
        assert any("Dependencies for step dbt_daily_models failed" in m for m in messages)
        # A dbt error is not retried (the same SQL fails the same way).
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]

        checks = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}
        country = next(
            name for name in checks if name.startswith("accepted_values_stg_customers_country")
        )
        assert checks[country].passed is False
        assert checks[country].asset_key == dg.AssetKey(["staging", "stg_customers"])
        # The other tests of the models that were built still ran and passed.
        assert checks["unique_stg_orders_order_id"].passed is True


def test_a_model_that_fails_leaves_the_catalog_at_its_earlier_snapshots(
    tmp_path, s3_server, s3_env, postgres_server, postgres_database, monkeypatch
):
    from lakeport.catalog import load_catalog

    monkeypatch.delenv(DUCKDB_PATH_ENV, raising=False)
    s3_server.ensure_buckets(WAREHOUSE_BUCKET)
    platform = demo_platform(tmp_path / "data", s3_server.endpoint)
    good = prepare(copy_project(tmp_path / "good"))
    broken = copy_project(tmp_path / "broken")
    # The model fails mid-run: its SQL runs (and fails) after its upstream views were built.
    (broken / "models/intermediate/int_orders_enriched.sql").write_text(
        "select order_id, 1 / 0 as oops, no_such_column from {{ ref('stg_orders') }}\n"
    )
    prepare(broken)
    catalog = load_catalog(platform)
    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        job = build_demo_definitions(platform, project_dir=good).resolve_job_def("lakehouse_job")
        first = job.execute_in_process(instance=instance, partition_key=yesterday_partition())
        assert first.success

        def state():
            return {
                identifier: catalog.load_table(identifier).metadata_location
                for namespace in catalog.list_namespaces()
                for identifier in catalog.list_tables(namespace)
            }

        before = state()
        assert ("intermediate", "int_orders_enriched") in before
        job = build_demo_definitions(platform, project_dir=broken).resolve_job_def(
            "lakehouse_job")
        selection = [BROKEN_MODEL, dg.AssetKey(["marts", "dim_customers"])]
        result = job.execute_in_process(
            instance=instance, asset_selection=selection, partition_key=yesterday_partition(),
            raise_on_error=False,
        )
        assert not result.success
        # Every table, the failed one and the one downstream of it included, is at the
        # metadata file (so the snapshot) it had before the run.
        assert state() == before
        materialized = {
            e.asset_key for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"
        }
        assert materialized == set()
