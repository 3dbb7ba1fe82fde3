"""`make dev` end to end: the platform started as a user starts it, the demo job launched
through the GraphQL API, its traces checked where they must land (Postgres, the
compute-log bucket, the Iceberg catalog), the UI checked in a real browser, and a restart
that keeps the earlier run. One platform start serves the whole module; the restart test
runs last because it restarts it."""

import os
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from dagster import DagsterEventType, EventLogEntry
from dagster._serdes import deserialize_value
from support.dev_platform import DevPlatformProcess, launch_run, make_data_dir

from lakeport.catalog import load_catalog
from lakeport.config import PLATFORM_FILE_ENV, load_platform
from lakeport.credentials import S3_ACCESS_KEY_ID_ENV, S3_SECRET_ACCESS_KEY_ENV
from lakeport.dev.run_launcher import CGROUP_TAG, WORKER_PID_TAG
from lakeport.dev.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, S3Server
from lakeport.profiles import PROFILE_TAG

JOB = "lakehouse_job"
LOCATION = "demo"
RUN_TIMEOUT = 420

RUN_STATUS = """
query Run($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } } }"""

RUNS = """{ runsOrError { ... on Runs { results { runId status jobName } } } }"""


@pytest.fixture(scope="module")
def platform_process():
    dev = DevPlatformProcess(make_data_dir())
    seconds = dev.start()
    print(f"\nlakeport dev ready in {seconds:.0f}s")
    yield dev
    code = dev.stop()
    assert code == 0, dev.output()
    assert dev.leftovers() == []
    dev.remove_data()


@pytest.fixture(scope="module")
def effective_platform(platform_process):
    """The settings the services run with (the file `lakeport dev` wrote for them)."""
    path = platform_process.data_dir / "platform.yaml"
    previous = {k: os.environ.get(k) for k in (PLATFORM_FILE_ENV, S3_ACCESS_KEY_ID_ENV,
                                                S3_SECRET_ACCESS_KEY_ENV)}
    os.environ[PLATFORM_FILE_ENV] = str(path)
    os.environ[S3_ACCESS_KEY_ID_ENV] = LOCAL_ACCESS_KEY_ID
    os.environ[S3_SECRET_ACCESS_KEY_ENV] = LOCAL_SECRET_ACCESS_KEY
    yield load_platform(path)
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def demo_defs(effective_platform):
    """The demo's definitions, loaded here independently of the platform's code server."""
    from lakeport_demo.build import build_demo_definitions

    return build_demo_definitions(effective_platform)


def _launch_demo_job(platform_process) -> str:
    partition = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    return launch_run(platform_process, LOCATION, JOB, tags={"dagster/partition": partition})


def _wait_for_status(platform_process, run_id, statuses, timeout=RUN_TIMEOUT) -> str:
    started = time.monotonic()
    status = None
    while time.monotonic() - started < timeout:
        status = platform_process.graphql(RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
        if status in statuses:
            break
        time.sleep(2)
    print(f"\n{JOB} run {run_id}: {status} after {time.monotonic() - started:.0f}s")
    return status


@pytest.fixture(scope="module")
def demo_run(platform_process):
    """One successful run of the demo job, launched through the GraphQL API."""
    run_id = _launch_demo_job(platform_process)
    status = _wait_for_status(platform_process, run_id, ("SUCCESS", "FAILURE", "CANCELED"))
    assert status == "SUCCESS", (
        f"run {run_id} ended {status}; daemon log tail:\n"
        + (platform_process.data_dir / "logs" / "daemon.log").read_text()[-6000:]
    )
    return run_id


def _postgres(platform_process, effective_platform) -> psycopg.Connection:
    password = (platform_process.data_dir / "secrets" / "postgres-password").read_text().strip()
    pg = effective_platform.postgres
    return psycopg.connect(host="127.0.0.1", port=pg.port, user=pg.user, password=password,
                           dbname=pg.dagster_database)


def test_the_run_and_its_events_are_in_postgres(
    platform_process, effective_platform, demo_defs, demo_run
):
    with _postgres(platform_process, effective_platform) as conn:
        status, job = conn.execute(
            "SELECT status, pipeline_name FROM runs WHERE run_id = %s", (demo_run,)
        ).fetchone()
        counts = dict(conn.execute(
            "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s "
            "GROUP BY dagster_event_type", (demo_run,)
        ).fetchall())
        materialized = {row[0] for row in conn.execute(
            "SELECT asset_key FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type = %s",
            (demo_run, DagsterEventType.ASSET_MATERIALIZATION.value),
        )}
    assert (status, job) == ("SUCCESS", JOB)
    # Stored under Dagster's own type names (RUN_START is still "PIPELINE_START" there).
    assert counts.get(DagsterEventType.RUN_START.value) == 1
    assert counts.get(DagsterEventType.RUN_SUCCESS.value) == 1
    assert counts.get(DagsterEventType.STEP_SUCCESS.value, 0) >= 1
    expected = {key.to_string() for key in demo_defs.resolve_asset_graph().get_all_asset_keys()}
    assert materialized == expected


def test_compute_logs_are_in_the_bucket(platform_process, effective_platform, demo_run):
    logs = effective_platform.compute_logs
    client = S3Server(port=platform_process.s3_port).client()
    prefix = f"{logs.prefix}/storage/{demo_run}/compute_logs/"
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=logs.bucket, Prefix=prefix)
            .get("Contents", [])]
    outs = [k for k in keys if k.endswith(".out")]
    errs = [k for k in keys if k.endswith(".err")]
    assert outs and errs, keys

    def body(key):
        return client.get_object(Bucket=logs.bucket, Key=key)["Body"].read().decode()

    # stdout carries dbt's own output, stderr Dagster's step log lines of this run.
    assert any("Running with dbt=" in body(k) for k in outs)
    assert any(demo_run in body(k) and "STEP_START" in body(k) for k in errs)


def test_duckdb_in_the_run_is_held_to_the_run_cgroup(
    platform_process, effective_platform, demo_run
):
    with _postgres(platform_process, effective_platform) as conn:
        events = [deserialize_value(row[0], EventLogEntry) for row in conn.execute(
            "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
            (demo_run, DagsterEventType.ASSET_MATERIALIZATION.value),
        )]
        tags = dict(conn.execute("SELECT key, value FROM run_tags WHERE run_id = %s",
                                 (demo_run,)).fetchall())
    sources = {
        e.asset_materialization.metadata["duckdb/memory_limit_source"].value
        for e in events if "duckdb/memory_limit_source" in e.asset_materialization.metadata
    }
    assert sources, "no materialization recorded its DuckDB settings"
    profile = effective_platform.profile(tags[PROFILE_TAG])
    if CGROUP_TAG in tags:
        # The launcher's cgroup, sized by the run's profile, is what DuckDB was fitted into.
        assert all(f"lakeport-run-{demo_run}/memory." in source for source in sources), sources
        memory_dir = next(d for d in tags[CGROUP_TAG].split(",") if "/memory" in d)
        assert f"memory {profile.limits.memory}" in _launcher_message(platform_process, demo_run)
        assert "lakeport-run-" + demo_run in memory_dir
    else:
        # No cgroup here (not root / not Linux): the profile's limit is used instead.
        assert all("profile limits.memory" in source for source in sources), sources


def _launcher_message(platform_process, run_id) -> str:
    """The engine event LocalRunLauncher wrote when it started the run's worker."""
    query = """query Events($runId: ID!) { logsForRun(runId: $runId) {
      ... on EventConnection { events { ... on EngineEvent { message } } } } }"""
    events = platform_process.graphql(query, {"runId": run_id})["logsForRun"]["events"]
    messages = [e.get("message") or "" for e in events]
    return next(m for m in messages if "Run worker pid" in m)


# Before the single-asset runs below: after them, the global lineage page rendered blank
# in headless Chromium in two full runs (nodes in the DOM, none drawn in view at any
# zoom); seen only there, not explained yet.
def test_the_ui_in_a_browser(platform_process, demo_defs, demo_run, browser, artifacts):
    from browser_support import asset_lineage_labels, run_page_text
    from support.browser import dismiss_first_visit_modal

    browser.get(platform_process.url + "/asset-groups")
    dismiss_first_visit_modal(browser, timeout=60, required=True)
    expected = {key.path[-1] for key in demo_defs.resolve_asset_graph().get_all_asset_keys()}
    shown = asset_lineage_labels(browser, expected)
    browser.save_screenshot(str(artifacts / "asset-lineage.png"))
    assert expected <= shown, f"not in the lineage graph: {sorted(expected - shown)}"

    text = run_page_text(browser, platform_process.url, demo_run)
    browser.save_screenshot(str(artifacts / "run-page.png"))
    assert demo_run.split("-")[0] in text
    assert JOB in text
    assert "Success" in text
    assert "dbt_models" in text  # the run's step, from the event log shown on the page


def _stored_tables(demo_defs) -> set[tuple[str, ...]]:
    """Assets the definitions store in Iceberg (kind `iceberg`), by table identifier."""
    graph = demo_defs.resolve_asset_graph()
    return {
        tuple(key.path) for key in graph.get_all_asset_keys()
        if "iceberg" in {k.lower() for k in graph.get(key).kinds}
    }


def _catalog_rows(effective_platform) -> dict[tuple[str, ...], int]:
    catalog = load_catalog(effective_platform)
    return {
        identifier: catalog.load_table(identifier).scan().to_arrow().num_rows
        for namespace in catalog.list_namespaces()
        for identifier in catalog.list_tables(namespace)
    }


def test_every_table_is_in_the_catalog(effective_platform, demo_defs, demo_run):
    stored = _stored_tables(demo_defs)
    # Python bronze, the intermediate table and the marts; views are not stored.
    assert {("raw", "raw_orders"), ("intermediate", "int_orders_enriched"),
            ("marts", "dim_customers")} <= stored
    assert not any(identifier[0] == "staging" for identifier in stored)
    rows = _catalog_rows(effective_platform)
    assert stored == set(rows), f"catalog differs: {stored ^ set(rows)}"
    assert all(rows[identifier] > 0 for identifier in stored), rows


ASSET_JOB = "__ASSET_JOB"
RUN_ASSETS = """
query Run($runId: ID!) { runOrError(runId: $runId) { ... on Run {
  status assetSelection { path } } } }"""


def test_each_single_asset_materialises_in_an_empty_run_scratch(platform_process, demo_run):
    """As the UI's "Materialize" on one asset: a run of __ASSET_JOB selecting only it, in
    a run worker whose scratch directory is new; upstream comes from the catalog."""
    partition = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    singles = {
        ("raw", "raw_orders"): {},                                 # a Python bronze asset
        ("staging", "stg_orders"): {},                             # a view
        ("intermediate", "int_orders_enriched"): {},               # a table
        ("marts", "fct_orders"): {"dagster/partition": partition},  # one day of the fact
        ("marts", "dim_customers"): {},                            # a mart
    }
    runs = {
        path: launch_run(platform_process, LOCATION, ASSET_JOB, tags=tags, assets=[list(path)])
        for path, tags in singles.items()
    }
    for path, run_id in runs.items():
        status = _wait_for_status(platform_process, run_id, ("SUCCESS", "FAILURE", "CANCELED"))
        assert status == "SUCCESS", f"{path}: run {run_id} ended {status}"
        run = platform_process.graphql(RUN_ASSETS, {"runId": run_id})["runOrError"]
        assert [a["path"] for a in run["assetSelection"]] == [list(path)]


RUN_TAGS = """
query Run($runId: ID!) { runOrError(runId: $runId) { ... on Run { tags { key value } } } }"""


def test_a_ui_launch_of_a_large_model_runs_in_a_large_cgroup(
    platform_process, effective_platform, demo_run
):
    """A run nobody tagged (as the UI's "Materialize" launches it) of a model whose meta
    asks for `large`: the run coordinator gives it the `large` profile, and the local
    launcher's cgroup has the `large` limit."""
    run_id = launch_run(platform_process, LOCATION, ASSET_JOB,
                        assets=[["marts", "mart_customer_revenue"]])
    status = _wait_for_status(platform_process, run_id, ("SUCCESS", "FAILURE", "CANCELED"))
    assert status == "SUCCESS", f"run {run_id} ended {status}"
    run = platform_process.graphql(RUN_TAGS, {"runId": run_id})["runOrError"]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags[PROFILE_TAG] == "large"
    large = effective_platform.profile("large")
    message = _launcher_message(platform_process, run_id)
    assert "profile 'large'" in message, message
    if CGROUP_TAG in tags:
        assert f"memory {large.limits.memory}" in message, message


RUNS_OF_ASSET_JOB = """
{ runsOrError(filter: {pipelineName: "__ASSET_JOB"}) { ... on Runs { results {
  runId status assetSelection { path } } } } }"""


def test_materialize_one_mart_in_the_ui(platform_process, demo_run, browser, artifacts):
    """The user's path: the mart's asset page, its "Materialize" button, a run that succeeds."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from support.browser import body_text, dismiss_first_visit_modal
    from support.waiting import wait_for

    def runs():
        return platform_process.graphql(RUNS_OF_ASSET_JOB)["runsOrError"]["results"]

    before = {run["runId"] for run in runs()}
    browser.get(platform_process.url + "/assets/marts/dim_customers")
    dismiss_first_visit_modal(browser, timeout=10)
    wait_for(lambda: "dim_customers" in body_text(browser), what="the asset page", timeout=60,
             interval=0.5, ignore=WebDriverException)
    button = wait_for(
        lambda: next((b for b in browser.find_elements(By.TAG_NAME, "button")
                      if b.text.strip() == "Materialize" and b.is_enabled()), None),
        what="the Materialize button", timeout=60, interval=0.5, ignore=WebDriverException,
    )
    button.click()
    new = wait_for(lambda: [r for r in runs() if r["runId"] not in before],
                   what="the run the button launched", timeout=60, interval=0.5,
                   ignore=WebDriverException)
    assert len(new) == 1 and [a["path"] for a in new[0]["assetSelection"]] == [
        ["marts", "dim_customers"]]
    browser.save_screenshot(str(artifacts / "materialize-launched.png"))
    status = _wait_for_status(platform_process, new[0]["runId"],
                              ("SUCCESS", "FAILURE", "CANCELED"))
    assert status == "SUCCESS"


SENSOR_SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                   "sensorName": "lakeport_automation_transform"}
START_SENSOR = """
mutation Start($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
  __typename ... on Sensor { sensorState { status } } ... on PythonError { message } } }"""
STOP_SENSOR = """
mutation Stop($id: String!) { stopSensor(id: $id) { __typename } }"""
SENSOR_TICKS = """
query Ticks($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
  ... on Sensor { id sensorState { ticks(limit: 5) { status timestamp } } } } }"""
RUNS_WITH_ASSETS = """
{ runsOrError { ... on Runs { results { runId status creationTime
  assetSelection { path } tags { key value } } } } }"""


def test_automation_requests_the_views_downstream_of_a_new_bronze_table(
    platform_process, demo_run
):
    """Declarative automation under `lakeport dev`: after a bronze asset is materialised,
    the automation sensor requests the views downstream, and their runs succeed."""
    started = platform_process.graphql(START_SENSOR, {"selector": SENSOR_SELECTOR})
    assert started["startSensor"]["__typename"] == "Sensor", started

    def sensor():
        return platform_process.graphql(SENSOR_TICKS, {"selector": SENSOR_SELECTOR})[
            "sensorOrError"]

    def ticks():
        return sensor()["sensorState"]

    sensor_id = sensor()["id"]
    try:
        # A first evaluation sets the baseline; updates after it are what "eager" sees.
        deadline = time.monotonic() + 180
        while not [t for t in ticks()["ticks"] if t["status"] in ("SUCCESS", "SKIPPED")]:
            assert time.monotonic() < deadline, "the automation sensor never ticked"
            time.sleep(3)
        bronze = launch_run(platform_process, LOCATION, ASSET_JOB, assets=[["raw", "raw_orders"]])
        assert _wait_for_status(platform_process, bronze, ("SUCCESS", "FAILURE")) == "SUCCESS"

        def automated_view_run():
            runs = platform_process.graphql(RUNS_WITH_ASSETS)["runsOrError"]["results"]
            return next((r for r in runs
                         if ["staging", "stg_orders"] in [a["path"] for a in
                                                          r["assetSelection"] or []]
                         and any(t["key"] == "dagster/sensor_name" for t in r["tags"])), None)

        deadline = time.monotonic() + 240
        run = automated_view_run()
        while run is None:
            assert time.monotonic() < deadline, "no automated run of staging/stg_orders"
            time.sleep(5)
            run = automated_view_run()
        status = _wait_for_status(platform_process, run["runId"], ("SUCCESS", "FAILURE"))
        assert status == "SUCCESS"
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["dagster/sensor_name"] == "lakeport_automation_transform"
        assert tags[PROFILE_TAG] == "transform"
    finally:
        platform_process.graphql(STOP_SENSOR, {"id": sensor_id})


def test_the_postgres_password_stays_in_its_file(platform_process, demo_run):
    secret_file = platform_process.data_dir / "secrets" / "postgres-password"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    password = secret_file.read_text().strip()
    assert len(password) >= 24
    written = [
        platform_process.data_dir / "platform.yaml",
        platform_process.data_dir / "dagster" / "dagster.yaml",
        platform_process.data_dir / "dagster" / "workspace.yaml",
        *(platform_process.data_dir / "logs").iterdir(),
    ]
    assert [p for p in written if password in p.read_text(errors="replace")] == []
    assert password not in platform_process.output()


def test_restart_keeps_runs_logs_and_tables(
    platform_process, effective_platform, demo_defs, demo_run
):
    rows_before = _catalog_rows(effective_platform)
    with _postgres(platform_process, effective_platform) as conn:
        worker = conn.execute(
            "SELECT value FROM run_tags WHERE run_id = %s AND key = %s",
            (demo_run, WORKER_PID_TAG),
        ).fetchone()[0]
    # The leftover check covers run workers too: the run's worker was seen below the platform.
    assert int(worker) in {pid for pid, _ in platform_process.seen}
    # A second run is still going when the platform stops: it is cancelled, not orphaned.
    interrupted = _launch_demo_job(platform_process)
    assert _wait_for_status(platform_process, interrupted, ("STARTED",)) == "STARTED"
    assert platform_process.stop() == 0, platform_process.output()
    assert platform_process.leftovers() == []
    assert platform_process.ports_in_use() == []

    seconds = platform_process.start()
    print(f"\nlakeport dev restarted in {seconds:.0f}s")
    runs = platform_process.graphql(RUNS)["runsOrError"]["results"]
    assert {"runId": demo_run, "status": "SUCCESS", "jobName": JOB} in runs
    assert {"runId": interrupted, "status": "CANCELED", "jobName": JOB} in runs
    # S3 lives in moto's memory: these came back from the data directory's copy.
    logs = effective_platform.compute_logs
    client = S3Server(port=platform_process.s3_port).client()
    prefix = f"{logs.prefix}/storage/{demo_run}/compute_logs/"
    assert client.list_objects_v2(Bucket=logs.bucket, Prefix=prefix).get("KeyCount", 0) > 0
    assert _catalog_rows(effective_platform) == rows_before
