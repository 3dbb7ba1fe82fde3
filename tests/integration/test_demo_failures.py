"""A broken model and a failing dbt test, in a private copy of the demo dbt project."""

import dagster as dg
import pytest
from support import demo
from support.demo import copy_project, postgres_instance, prepare, run_demo_job

BROKEN_MODEL = demo.INT_ORDERS_ENRICHED
DOWNSTREAM = demo.DOWNSTREAM_OF_INT_ORDERS_ENRICHED
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
    broken_project, tmp_path, demo_platform_on_s3, postgres_server, postgres_database
):
    platform = demo_platform_on_s3()

    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        result = run_demo_job(platform, broken_project, instance)
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
    tmp_path, demo_platform_on_s3, postgres_server, postgres_database
):
    from lakeport.catalog import load_catalog

    platform = demo_platform_on_s3()
    good = prepare(copy_project(tmp_path / "good"))
    broken = copy_project(tmp_path / "broken")
    # The model fails mid-run: its SQL runs (and fails) after its upstream views were built.
    (broken / "models/intermediate/int_orders_enriched.sql").write_text(
        "select order_id, 1 / 0 as oops, no_such_column from {{ ref('stg_orders') }}\n"
    )
    prepare(broken)
    catalog = load_catalog(platform)
    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        first = run_demo_job(platform, good, instance, raise_on_error=True)
        assert first.success

        def state():
            return {
                identifier: catalog.load_table(identifier).metadata_location
                for namespace in catalog.list_namespaces()
                for identifier in catalog.list_tables(namespace)
            }

        before = state()
        assert ("intermediate", "int_orders_enriched") in before
        selection = [BROKEN_MODEL, dg.AssetKey(["marts", "dim_customers"])]
        result = run_demo_job(platform, broken, instance, asset_selection=selection)
        assert not result.success
        # Every table, the failed one and the one downstream of it included, is at the
        # metadata file (so the snapshot) it had before the run.
        assert state() == before
        materialized = {
            e.asset_key for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"
        }
        assert materialized == set()
