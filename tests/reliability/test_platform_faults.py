"""Parts of the local platform killed and restarted under a live daemon and live runs.

The tests share one platform and run in file order: the every-minute schedule started by
the first keeps ticking through the later ones, which is what lets the PostgreSQL test see
"the next tick" after its outage.
"""

import signal
import time
import urllib.error

import pytest
from dagster import DagsterEventType
from platform_support import LOCATION, launch, run_status, tiny_config, wait_finished
from support.waiting import wait_for

pytestmark = pytest.mark.slow

SCHEDULE = "every_minute"
SCHEDULE_SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                     "scheduleName": SCHEDULE}
START_SCHEDULE = """
mutation Start($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}"""
STOP_SCHEDULE = """
mutation Stop($id: String!) {
  stopRunningSchedule(id: $id) { __typename }
}"""
TICKS = """
query Ticks($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) {
    ... on Schedule { scheduleState { id ticks(limit: 20) {
      tickId status timestamp skipReason runIds error { message } } } }
    ... on PythonError { message }
  }
}"""
DAEMON_HEALTH = """{ instance { daemonHealth { allDaemonStatuses {
  daemonType required healthy lastHeartbeatTime } } } }"""
LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def _ticks(platform) -> list[dict]:
    state = platform.graphql(TICKS, {"selector": SCHEDULE_SELECTOR})["scheduleOrError"]
    return state["scheduleState"]["ticks"]


def _required_daemons_healthy(platform) -> bool:
    statuses = platform.graphql(DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
    return all(s["healthy"] for s in statuses if s["required"])


RUN_EVENTS = """query Events($runId: ID!) { logsForRun(runId: $runId, limit: 5) {
  __typename ... on EventConnection { events { __typename } }
  ... on PythonError { message } } }"""


def _answers_after_restart(platform, run_id: str) -> list[str]:
    """Ask the webserver something of each of its storages (runs and daemon heartbeats,
    event log, schedule ticks) until each answers; return the errors met on the way."""
    queries = [(DAEMON_HEALTH, None), (RUN_EVENTS, {"runId": run_id}),
               (TICKS, {"selector": SCHEDULE_SELECTOR})]
    errors = []
    for query, variables in queries:
        for _ in range(5):
            try:
                answer = platform.graphql(query, variables)
            except urllib.error.HTTPError as exc:
                errors.append(exc.read().decode(errors="replace")[:2000])
                continue
            failed = _python_errors(answer)
            if not failed:
                break
            errors.append(str(failed)[:2000])
        else:
            raise AssertionError(f"the webserver still fails after the restart: {errors}")
    # Answers stay good from then on.
    for query, variables in queries * 3:
        answer = platform.graphql(query, variables)
        assert _python_errors(answer) == [], answer
    return errors


def _python_errors(answer: dict) -> list:
    """Top-level results that are a PythonError (a union answered with only its message)."""
    return [v for v in answer.values()
            if v.get("__typename") == "PythonError" or list(v) == ["message"]]


def _messages(platform, run_id: str) -> list[tuple[str, str]]:
    with platform.instance() as instance:
        return [(e.dagster_event.event_type_value if e.dagster_event else "", e.message)
                for e in instance.all_logs(run_id)]


@pytest.fixture(scope="module")
def schedule_running(fault_platform):
    result = fault_platform.graphql(START_SCHEDULE, {"selector": SCHEDULE_SELECTOR})
    assert result["startSchedule"]["__typename"] == "ScheduleStateResult", result
    yield
    # The load test shares the platform: no scheduled run may take a slot of its queue.
    state_id = _ticks_state_id(fault_platform)
    fault_platform.graphql(STOP_SCHEDULE, {"id": state_id})


def _ticks_state_id(platform) -> str:
    state = platform.graphql(TICKS, {"selector": SCHEDULE_SELECTOR})["scheduleOrError"]
    return state["scheduleState"]["id"]


def test_a_tick_while_the_scheduled_run_goes_on_is_skipped_with_its_reason(
    fault_platform, schedule_running
):
    def launched_tick():
        return next((t for t in _ticks(fault_platform)
                     if t["status"] == "SUCCESS" and t["runIds"]), None)

    first = wait_for(launched_tick, what="a tick that starts a run", timeout=150, interval=3)
    (run_id,) = first["runIds"]
    wait_for(lambda: run_status(fault_platform, run_id) == "STARTED",
             what=f"scheduled run {run_id} to start", timeout=90)

    def skipped_tick():
        return next((t for t in _ticks(fault_platform)
                     if t["status"] == "SKIPPED" and t["timestamp"] > first["timestamp"]), None)

    skipped = wait_for(skipped_tick, what="the next tick to be skipped", timeout=100, interval=3)
    # The reason is on the tick itself, where the UI's tick history shows it.
    assert skipped["runIds"] == []
    assert skipped["skipReason"] == (
        f"run {run_id} of slow_daily_job is still STARTED; not starting another"
    )
    assert run_status(fault_platform, run_id) == "STARTED"


def test_postgres_stopped_and_restarted_under_a_run_and_the_daemon(
    fault_platform, schedule_running
):
    daemon = fault_platform.service("daemon")
    run_id = launch(fault_platform, "tiny_job", tiny_config(20))
    wait_for(lambda: run_status(fault_platform, run_id) == "STARTED",
             what=f"run {run_id} to start", timeout=120)
    log_offset = len(fault_platform.log("daemon.log"))

    fault_platform.dev.postgres.stop()
    time.sleep(15)  # longer than the daemon's loops and the run monitor's poll interval
    fault_platform.dev.postgres.start(timeout=60)
    back = time.time()

    # The fault reached the daemon (it logged the lost connection) ...
    outage_log = fault_platform.log("daemon.log")[log_offset:]
    assert "OperationalError" in outage_log or "connection" in outage_log.lower(), outage_log
    # The webserver's pooled connections died with the server; lakeport's storages test a
    # connection before handing it out, so not one query fails: no restart of the webserver.
    stale = _answers_after_restart(fault_platform, run_id)
    assert stale == []
    # ... and the daemon kept running: same process, healthy heartbeats again.
    assert daemon.running() and fault_platform.service("daemon").pid == daemon.pid
    wait_for(lambda: _required_daemons_healthy(fault_platform),
             what="every required daemon healthy again", timeout=120, interval=3)

    # The run is not left STARTED: it ends, and if it could not write its end itself, run
    # monitoring ends it with the reason.
    status = wait_finished(fault_platform, run_id, timeout=180)
    messages = _messages(fault_platform, run_id)
    print(f"\nrun {run_id} across the Postgres outage: {status}")
    if status != "SUCCESS":
        assert status == "FAILURE", status
        failure = [m for t, m in messages if t == DagsterEventType.RUN_FAILURE.value]
        assert failure and failure[-1], messages

    # The next scheduled tick after the restart happens (launched or skipped, not failed).
    tick = wait_for(
        lambda: next((t for t in _ticks(fault_platform) if t["timestamp"] > back
                      and t["status"] in ("SUCCESS", "SKIPPED")), None),
        what="a schedule tick after the restart", timeout=150, interval=3,
    )
    print(f"first tick after the restart: {tick['status']} {tick.get('skipReason') or ''}")
    # And a new run goes through the whole platform again.
    after = launch(fault_platform, "tiny_job", tiny_config(0))
    assert wait_finished(fault_platform, after) == "SUCCESS"
    with fault_platform.postgres() as conn:
        stuck = conn.execute("SELECT run_id FROM runs WHERE status IN ('STARTING', 'NOT_STARTED')"
                             ).fetchall()
    assert stuck == []


def test_code_server_killed_mid_run_and_restarted(fault_platform, schedule_running):
    run_id = launch(fault_platform, "tiny_job", tiny_config(20))
    wait_for(lambda: run_status(fault_platform, run_id) == "STARTED",
             what=f"run {run_id} to start", timeout=120)
    fault_platform.kill(f"code server '{LOCATION}'", signal.SIGKILL)

    def location_state():
        entries = fault_platform.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
        (entry,) = [e for e in entries if e["name"] == LOCATION]
        return entry["locationOrLoadError"]["__typename"]

    # The run worker holds its own copy of the code: the run goes on without the server.
    fault_platform.restart_code_server()
    restarted = time.time()
    assert wait_finished(fault_platform, run_id) == "SUCCESS"
    # The webserver reconnects by itself (no reload by hand) ...
    wait_for(lambda: location_state() == "RepositoryLocation",
             what="the webserver to reload the location", timeout=120, interval=2)
    # ... and both it (launch) and the daemon (queue, launcher) run new work.
    after = launch(fault_platform, "tiny_job", tiny_config(0))
    assert wait_finished(fault_platform, after) == "SUCCESS"
    # The daemon's scheduler reaches the new server too: a tick evaluates without error.
    tick = wait_for(
        lambda: next((t for t in _ticks(fault_platform) if t["timestamp"] > restarted
                      and t["status"] in ("SUCCESS", "SKIPPED")), None),
        what="a schedule tick evaluated by the restarted code server", timeout=150, interval=3,
    )
    assert tick["error"] is None


def test_s3_down_during_a_run(fault_platform, schedule_running):
    logs = fault_platform.platform.compute_logs
    run_id = launch(fault_platform, "tiny_job", tiny_config(12))
    wait_for(lambda: run_status(fault_platform, run_id) == "STARTED",
             what=f"run {run_id} to start", timeout=120)
    fault_platform.dev.s3.stop()
    try:
        status = wait_finished(fault_platform, run_id)
    finally:
        fault_platform.restart_s3()
    messages = _messages(fault_platform, run_id)

    # The run's result does not depend on where its logs go.
    assert status == "SUCCESS", messages
    # The failed upload is an engine event of the run, saying what failed.
    engine = [m for t, m in messages if t == DagsterEventType.ENGINE_EVENT.value]
    assert any("compute log" in m.lower() for m in engine), engine
    with fault_platform.instance() as instance:
        errors = [e.dagster_event.event_specific_data.error for e in instance.all_logs(run_id)
                  if e.dagster_event and e.dagster_event.event_type_value == "ENGINE_EVENT"
                  and e.dagster_event.event_specific_data.error]
    assert any("Could not connect to the endpoint URL" in err.message for err in errors), errors

    # Pinned behaviour (README, Reliability): the logs are kept on the run's machine, in
    # computeLogs.localDir, and are NOT uploaded later when the endpoint is back.
    local = list((fault_platform.data_dir / "compute-logs" / run_id).rglob("*.out"))
    assert local and any(f"reliability stdout of {run_id}" in p.read_text() for p in local)
    assert str(fault_platform.data_dir / "compute-logs") == logs.local_dir
    time.sleep(logs.upload_interval_seconds + 5)
    client = fault_platform.dev.s3.client()
    listed = client.list_objects_v2(Bucket=logs.bucket, Prefix=f"{logs.prefix}/storage/{run_id}/")
    assert listed.get("KeyCount", 0) == 0
    # A run after the endpoint is back uploads its logs as usual.
    after = launch(fault_platform, "tiny_job", tiny_config(0))
    assert wait_finished(fault_platform, after) == "SUCCESS"
    listed = client.list_objects_v2(Bucket=logs.bucket, Prefix=f"{logs.prefix}/storage/{after}/")
    assert listed.get("KeyCount", 0) > 0
