"""OpenLineage events of a demo run, received by a real HTTP endpoint this test owns.

One run of `lakehouse_job` with one mart made to fail: every model dbt built has a START
and a COMPLETE, the failing one a START and a FAIL; the Python bronze assets and each
Iceberg commit are job runs of their own; datasets are named by Iceberg identifier under
the catalog's namespace with schema facets; every event's parent is the Dagster run. A
stopped receiver leaves the run successful, with one warning on it.
"""

import logging
from collections import defaultdict

import dagster as dg
import pytest
from support.demo import copy_project, postgres_instance, prepare, run_demo_job
from support.lineage_receiver import LineageReceiver

from lakeport.credentials import LINEAGE_TOKEN_ENV

TOKEN = "lineage-test-token-5f1c"
NAMESPACE = "iceberg://lakeport"
FAILING = "mart_customer_revenue"
# The demo's models built in the failing mart's op (none of them reads it).
BUILT = {
    "staging.stg_customers": "view",
    "staging.stg_orders": "view",
    "staging.stg_payments": "view",
    "intermediate.int_orders_enriched": "table",
    "marts.dim_customers": "table",
    "marts.fct_payments": "table",
}
# The daily fact table's op reads int_orders_enriched from the failing op: Dagster skips it.
SKIPPED = "marts.fct_orders"
RAW = ["raw.raw_customers", "raw.raw_orders", "raw.raw_payments"]


def _lineage(url: str) -> str:
    return f"""
lineage:
  transport:
    type: http
    url: {url}
    timeoutSeconds: 2
    tokenSecret: {{secretName: lineage, key: token}}
"""


@pytest.fixture
def demo(demo_platform_on_s3, monkeypatch):
    monkeypatch.setenv(LINEAGE_TOKEN_ENV, TOKEN)
    return demo_platform_on_s3


def _by_job(events: list[dict]) -> dict[str, list[dict]]:
    jobs = defaultdict(list)
    for event in events:
        jobs[event["job"]["name"]].append(event)
    return jobs


def _model_job(identifier: str) -> str:
    schema, name = identifier.split(".")
    return f"{schema}.lakeport_demo.{name}.build.run"


def _fields(dataset: dict) -> list[str]:
    return [field["name"] for field in dataset["facets"]["schema"]["fields"]]


def _only(events: list[dict], state: str) -> dict:
    (event,) = [e for e in events if e["eventType"] == state]
    return event


def test_a_run_sends_start_and_complete_or_fail_per_model_asset_and_commit(
    tmp_path, demo, postgres_server, postgres_database
):
    project = copy_project(tmp_path / "dbt_project")
    (project / f"models/marts/{FAILING}.sql").write_text(
        "select error('this mart is made to fail') as customer_id\n"
    )
    prepare(project)
    receiver = LineageReceiver(token=TOKEN)
    try:
        platform = demo(_lineage(receiver.url))
        with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
            result = run_demo_job(platform, project, instance)
            materialized = {
                r.asset_key: r.event_log_entry.asset_materialization.metadata
                for r in instance.get_records_for_run(
                    result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                ).records
            }
    finally:
        receiver.stop()
    assert not result.success  # the failing mart
    assert receiver.events
    assert receiver.rejected == 0  # every POST carried the token from the Secret's variable
    jobs = _by_job(receiver.events)

    # Every event belongs to the Dagster run.
    for event in receiver.events:
        parent = event["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == result.run_id
        assert (parent["job"]["namespace"], parent["job"]["name"]) == ("lakeport", "lakehouse_job")
        assert event["job"]["namespace"] == "lakeport"

    # Each built model: one START, one COMPLETE, of one OpenLineage run.
    for identifier in BUILT:
        events = jobs[_model_job(identifier)]
        assert sorted(e["eventType"] for e in events) == ["COMPLETE", "START"], identifier
        assert len({e["run"]["runId"] for e in events}) == 1
        complete = _only(events, "COMPLETE")
        assert complete["job"]["facets"]["jobType"]["jobType"] == "MODEL"
        (output,) = complete["outputs"]
        assert (output["namespace"], output["name"]) == (NAMESPACE, identifier)
        assert output["facets"]["catalog"]["framework"] == "iceberg"
        assert _fields(output)
    # The failing mart: START and FAIL, nothing written.
    failing = jobs[_model_job(f"marts.{FAILING}")]
    assert sorted(e["eventType"] for e in failing) == ["FAIL", "START"]
    error = _only(failing, "FAIL")["run"]["facets"]["errorMessage"]["message"]
    assert "this mart is made to fail" in error
    assert "errorMessage" not in _only(failing, "START")["run"]["facets"]
    assert not jobs[f"marts.{FAILING}.iceberg_commit"]
    assert not jobs[_model_job(SKIPPED)]

    # A model's inputs are its parents, by Iceberg identifier, with their columns.
    stg_orders = _only(jobs[_model_job("staging.stg_orders")], "COMPLETE")
    (source,) = stg_orders["inputs"]
    assert (source["namespace"], source["name"]) == (NAMESPACE, "raw.raw_orders")
    assert _fields(source) == ["id", "customer_id", "ordered_on", "status"]
    assert "order_id" in _fields(stg_orders["outputs"][0])
    enriched = _only(jobs[_model_job("intermediate.int_orders_enriched")], "COMPLETE")
    assert {d["name"] for d in enriched["inputs"]} == {"staging.stg_orders",
                                                        "staging.stg_payments"}

    # Each Iceberg commit is a job run whose output is the table at the snapshot written.
    tables = [i for i, kind in BUILT.items() if kind == "table"] + RAW
    for identifier in tables:
        events = jobs[f"{identifier}.iceberg_commit"]
        assert sorted(e["eventType"] for e in events) == ["COMPLETE", "START"], identifier
        (output,) = _only(events, "COMPLETE")["outputs"]
        assert output["name"] == identifier
        key = dg.AssetKey(identifier.split("."))
        snapshot = materialized[key]["iceberg/snapshot_id"].value
        assert output["facets"]["version"]["datasetVersion"] == snapshot
        rows = materialized[key]["dagster/row_count"].value
        assert output["outputFacets"]["outputStatistics"]["rowCount"] == rows
        assert _fields(output)
    # Views live only in the run's scratch: no commit.
    assert not jobs["staging.stg_orders.iceberg_commit"]

    # The Python bronze assets: one job run each, writing its raw table.
    for identifier in RAW:
        events = jobs[identifier.replace(".", "/")]
        assert sorted(e["eventType"] for e in events) == ["COMPLETE", "START"]
        complete = _only(events, "COMPLETE")
        assert complete["job"]["facets"]["jobType"]["integration"] == "DAGSTER"
        assert [o["name"] for o in complete["outputs"]] == [identifier]


def test_an_unreachable_lineage_endpoint_leaves_the_run_successful_with_a_warning(
    tmp_path, demo, postgres_server, postgres_database
):
    receiver = LineageReceiver(token=TOKEN)
    url = receiver.url
    receiver.stop()  # nothing listens on its port now
    platform = demo(_lineage(url))
    project = prepare(copy_project(tmp_path / "dbt_project"))
    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        result = run_demo_job(platform, project, instance)
        logs = instance.all_logs(result.run_id)
    assert result.success
    warnings = [e.user_message for e in logs if e.level == logging.WARNING
                and "OpenLineage" in (e.user_message or "")]
    assert warnings
    # One warning per step that tried, each naming the endpoint, none the token.
    steps = {e.step_key for e in logs if e.level == logging.WARNING
             and "OpenLineage" in (e.user_message or "")}
    assert len(warnings) == len(steps)
    for warning in warnings:
        assert f"{url}/api/v1/lineage" in warning
        assert "the run goes on without lineage" in warning.lower()
    assert not [e for e in logs if TOKEN in (e.user_message or "")]


def test_a_python_asset_reports_the_tables_it_scans_and_writes(tmp_path, demo):
    """To a file this time: lineage.transport.type file, one JSON event a line."""
    import json

    from lakeport.lakehouse_io import IcebergTables
    from lakeport_demo.bronze import BRONZE_ASSETS

    events_file = tmp_path / "lineage" / "events.jsonl"
    events_file.parent.mkdir()
    platform = demo(f"lineage: {{transport: {{type: file, logFilePath: {events_file}}}}}")

    @dg.asset(key=["marts", "orders_per_status"], deps=[dg.AssetKey(["raw", "raw_orders"])])
    def orders_per_status(context, lakehouse: dg.ResourceParam[IcebergTables]):
        with lakehouse.session(context) as session:
            source = session.scan(("raw", "raw_orders"))
            return session.write(
                ("marts", "orders_per_status"),
                f"select status, count(*) as orders from {source} group by status",
            )

    result = dg.materialize(
        [*BRONZE_ASSETS, orders_per_status],
        resources={"lakehouse": IcebergTables(platform)},
        selection=[dg.AssetKey(["raw", "raw_orders"]), dg.AssetKey(["marts", "orders_per_status"])],
    )
    assert result.success
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    jobs = _by_job(events)
    complete = _only(jobs["marts/orders_per_status"], "COMPLETE")
    (read,) = complete["inputs"]
    assert (read["namespace"], read["name"]) == (NAMESPACE, "raw.raw_orders")
    assert _fields(read) == ["id", "customer_id", "ordered_on", "status"]
    (written,) = complete["outputs"]
    assert written["name"] == "marts.orders_per_status"
    assert _fields(written) == ["status", "orders"]
    snapshot = result.asset_materializations_for_node("marts__orders_per_status")[0].metadata[
        "iceberg/snapshot_id"].value
    assert written["facets"]["version"]["datasetVersion"] == snapshot
    for event in events:
        assert event["run"]["facets"]["parent"]["run"]["runId"] == result.run_id
