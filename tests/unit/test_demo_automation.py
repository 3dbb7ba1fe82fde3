"""The demo's declarative automation, schedule and run profiles, evaluated by Dagster's own
helpers against real instances (no dbt run needed: only the prepared manifest)."""

import datetime as dt
import json

import dagster as dg
import pytest
from support.demo import postgres_instance

from lakeport.config import parse_platform
from lakeport.dbt_manifest import prepare_manifest
from lakeport.profiles import K8S_CONFIG_TAG, PROFILE_TAG
from lakeport_demo.build import DBT_PROJECT_DIR, build_demo_definitions

RAW = [dg.AssetKey(["raw", n]) for n in ("raw_customers", "raw_orders", "raw_payments")]
VIEWS = {dg.AssetKey(["staging", n]) for n in ("stg_customers", "stg_orders", "stg_payments")}
INTERMEDIATE = dg.AssetKey(["intermediate", "int_orders_enriched"])
TABLES = {
    INTERMEDIATE,
    dg.AssetKey(["marts", "dim_customers"]),
    dg.AssetKey(["marts", "mart_customer_revenue"]),
    dg.AssetKey(["marts", "fct_payments"]),
}
FACT = dg.AssetKey(["marts", "fct_orders"])
# The demo's tables run on the default cron, 03:00 UTC.
BEFORE_TICK = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
AFTER_TICK = dt.datetime(2026, 11, 21, 3, 5, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def defs(tmp_path_factory):
    prepare_manifest(DBT_PROJECT_DIR, if_stale=True)
    data_dir = tmp_path_factory.mktemp("data")
    platform = parse_platform(f"dev: {{dataDir: {data_dir}}}\ncatalog: {{type: sql}}\n")
    return build_demo_definitions(platform)


def materialize(instance, keys, partition=None):
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))


ALL = {*RAW, *VIEWS, *TABLES, FACT}


def requested(result) -> set[dg.AssetKey]:
    return {key for key in ALL if result.get_num_requested(key) > 0}


def everything_up_to_date(defs, instance, when):
    materialize(instance, [*RAW, *VIEWS, *TABLES])
    materialize(instance, [FACT], partition=(when - dt.timedelta(days=1)).strftime("%Y-%m-%d"))


def test_views_follow_upstream_updates_and_tables_wait_for_their_cron(defs):
    instance = dg.DagsterInstance.ephemeral()
    everything_up_to_date(defs, instance, BEFORE_TICK)
    first = dg.evaluate_automation_conditions(defs, instance, evaluation_time=BEFORE_TICK)
    assert requested(first) == set()

    materialize(instance, RAW)  # the raw tables were rebuilt
    later = BEFORE_TICK + dt.timedelta(minutes=5)
    after_update = dg.evaluate_automation_conditions(
        defs, instance, evaluation_time=later, cursor=first.cursor
    )
    assert requested(after_update) == VIEWS

    # At the cron tick the tables (and the newest fact partition) are due, once their
    # upstreams have been rebuilt since the tick.
    at_tick = dg.evaluate_automation_conditions(
        defs, instance, evaluation_time=AFTER_TICK, cursor=after_update.cursor
    )
    assert set(RAW) <= requested(at_tick)
    assert not (TABLES | {FACT}) & requested(at_tick)

    materialize(instance, [*RAW, *VIEWS])
    upstream_rebuilt = dg.evaluate_automation_conditions(
        defs,
        instance,
        evaluation_time=AFTER_TICK + dt.timedelta(minutes=5),
        cursor=at_tick.cursor,
    )
    assert INTERMEDIATE in requested(upstream_rebuilt)

    # The partitioned fact is judged per partition: the tick asks for the newest day only.
    materialize(instance, TABLES)
    fact_due = dg.evaluate_automation_conditions(
        defs, instance, evaluation_time=AFTER_TICK + dt.timedelta(minutes=10),
        cursor=upstream_rebuilt.cursor,
    )
    assert fact_due.get_requested_partitions(FACT) == {"2026-11-20"}


def test_a_table_in_progress_is_not_requested_again(defs):
    instance = dg.DagsterInstance.ephemeral()
    everything_up_to_date(defs, instance, BEFORE_TICK)
    base = dg.evaluate_automation_conditions(defs, instance, evaluation_time=BEFORE_TICK)
    materialize(instance, [*RAW, *VIEWS])
    when = AFTER_TICK + dt.timedelta(minutes=5)
    free = dg.evaluate_automation_conditions(
        defs, instance, evaluation_time=when, cursor=base.cursor
    )
    assert INTERMEDIATE in requested(free)

    job = defs.resolve_job_def("lakehouse_job")
    instance.create_run_for_job(
        job_def=job,
        asset_selection=frozenset({INTERMEDIATE}),
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": "2026-11-20"},
    )
    busy = dg.evaluate_automation_conditions(
        defs, instance, evaluation_time=when, cursor=base.cursor
    )
    assert INTERMEDIATE not in requested(busy)


def test_demo_asset_graph_is_all_of_the_dbt_project(defs):
    assert defs.resolve_asset_graph().get_all_asset_keys() == ALL


# --- the schedule ----------------------------------------------------------------------------


def test_schedule_skips_while_its_job_runs(defs, tmp_path, postgres_server, postgres_database):
    schedule = defs.get_schedule_def("lakehouse_schedule")
    job = defs.resolve_job_def("lakehouse_job")
    tick = dt.datetime(2026, 11, 21, 4, 0, tzinfo=dt.UTC)
    repo = defs.get_repository_def()
    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick, repository_def=repo
        )
        idle = schedule.evaluate_tick(context)
        assert [r.partition_key for r in idle.run_requests] == ["2026-11-20"]
        assert idle.run_requests[0].tags[PROFILE_TAG] == "large"

        run = instance.create_run_for_job(
            job_def=job, status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/partition": "2026-11-19"},
        )
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick, repository_def=repo
        )
        busy = schedule.evaluate_tick(context)
        assert not busy.run_requests
        assert run.run_id in busy.skip_message

        instance.report_run_failed(run)
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick, repository_def=repo
        )
        assert len(schedule.evaluate_tick(context).run_requests) == 1


# --- resource profiles ---------------------------------------------------------------------


def test_model_meta_profile_reaches_the_run_tags(defs):
    revenue = dg.AssetKey(["marts", "mart_customer_revenue"])
    graph = defs.resolve_asset_graph()
    assert graph.get(revenue).tags[PROFILE_TAG] == "large"

    # Declarative automation of that model starts runs on the `large` profile...
    sensors = {s.name: s for s in defs.sensors}
    large = sensors["lakeport_automation_large"]
    assert large.asset_selection.resolve(graph) == {revenue}
    limits = json.loads(large.run_tags[K8S_CONFIG_TAG])["container_config"]["resources"]["limits"]
    assert limits == {"cpu": "4", "memory": "8Gi"}
    # ...and every other model's on the default one.
    default = sensors["lakeport_automation_transform"]
    assert default.asset_selection.resolve(graph) == ALL - {revenue}
    assert default.run_tags[PROFILE_TAG] == "transform"

    # The job that builds everything carries the largest profile any of its models needs.
    job_tags = defs.resolve_job_def("lakehouse_job").tags
    assert job_tags[PROFILE_TAG] == "large"
    assert json.loads(job_tags[K8S_CONFIG_TAG]) == json.loads(large.run_tags[K8S_CONFIG_TAG])


def test_unknown_profile_in_meta_is_an_error_naming_the_model(tmp_path):
    import shutil

    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("logs", "*.duckdb"))
    manifest_file = project / "target/manifest.json"
    manifest = json.loads(manifest_file.read_text())
    node = manifest["nodes"]["model.lakeport_demo.mart_customer_revenue"]
    assert node["config"]["meta"]["lakeport"] == {"profile": "large"}
    node["config"]["meta"]["lakeport"]["profile"] = "hugemem"
    manifest_file.write_text(json.dumps(manifest))
    platform = parse_platform(f"dev: {{dataDir: {tmp_path}}}\ncatalog: {{type: sql}}\n")
    expected = "mart_customer_revenue.*'hugemem'.*have: large, transform"
    with pytest.raises(ValueError, match=expected):
        build_demo_definitions(platform, project_dir=project)


def test_a_view_whose_code_changed_is_requested_and_a_table_is_not(defs, tmp_path):
    import shutil

    instance = dg.DagsterInstance.ephemeral()
    everything_up_to_date(defs, instance, BEFORE_TICK)
    first = dg.evaluate_automation_conditions(defs, instance, evaluation_time=BEFORE_TICK)
    assert requested(first) == set()

    # The same project with new SQL in one view and one table (a new deployment).
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("logs", "*.duckdb"))
    manifest_file = project / "target/manifest.json"
    manifest = json.loads(manifest_file.read_text())
    for name in ("stg_orders", "int_orders_enriched"):
        node = manifest["nodes"][f"model.lakeport_demo.{name}"]
        node["raw_code"] += "\n-- reviewed"
    manifest_file.write_text(json.dumps(manifest))
    platform = parse_platform(f"dev: {{dataDir: {tmp_path}}}\ncatalog: {{type: sql}}\n")
    redeployed = build_demo_definitions(platform, project_dir=project)
    graph = redeployed.resolve_asset_graph()
    assert graph.get(INTERMEDIATE).code_version != defs.resolve_asset_graph().get(
        INTERMEDIATE
    ).code_version

    after = dg.evaluate_automation_conditions(
        redeployed,
        instance,
        evaluation_time=BEFORE_TICK + dt.timedelta(minutes=5),
        cursor=first.cursor,
    )
    assert requested(after) == {dg.AssetKey(["staging", "stg_orders"])}
