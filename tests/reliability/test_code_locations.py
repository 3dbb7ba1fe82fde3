"""Two code locations from one platform file under `lakeport dev`: both load, a run in
each succeeds, and each run sees its own location's env and none of the other's."""

from platform_support import run_status, wait_finished
from support.dev_platform import launch_run
from support.waiting import wait_for
from team_env import SECOND_ONLY_ENV, TEAM_ENV

LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename } } } } }"""
RUN_MESSAGES = """query Events($runId: ID!) { logsForRun(runId: $runId) {
  ... on EventConnection { events { ... on MessageEvent { message } } } } }"""


def _messages(platform, run_id) -> list[str]:
    events = platform.graphql(RUN_MESSAGES, {"runId": run_id})["logsForRun"]["events"]
    return [e.get("message") or "" for e in events]


def test_two_locations_load_and_each_run_gets_its_own_env(fault_platform):
    entries = fault_platform.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
    loaded = {e["name"]: e["locationOrLoadError"]["__typename"] for e in entries}
    assert loaded == {"reliability": "RepositoryLocation", "second": "RepositoryLocation"}
    platform = fault_platform.platform
    assert TEAM_ENV in platform.code_location("second").env
    assert SECOND_ONLY_ENV not in platform.code_location("reliability").env

    runs = {name: launch_run(fault_platform, name, "team_env_job") for name in loaded}
    for name, run_id in runs.items():
        status = wait_finished(fault_platform, run_id)
        assert status == "SUCCESS", f"{name}: run {run_id} {run_status(fault_platform, run_id)}"
    reports = {name: [m for m in _messages(fault_platform, run_id) if m.startswith("team=")]
               for name, run_id in runs.items()}
    assert reports == {
        "reliability": ["team=reliability second_only=None"],
        "second": ["team=second second_only=yes"],
    }


BACKFILL = """mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
RUNS_TAGGED = """query Runs($filter: RunsFilter) { runsOrError(filter: $filter) { ... on Runs {
  results { runId status assetSelection { path } tags { key value } } } } }"""
LAUNCHER_MESSAGES = """query Events($runId: ID!) { logsForRun(runId: $runId) {
  ... on EventConnection { events { ... on EngineEvent { message } } } } }"""


def _runs(platform, run_filter: dict) -> list[dict]:
    return platform.graphql(RUNS_TAGGED, {"filter": run_filter})["runsOrError"]["results"]


def _assert_large(platform, run: dict) -> None:
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags.get("lakeport/profile") == "large", (run["runId"], tags)
    events = platform.graphql(LAUNCHER_MESSAGES, {"runId": run["runId"]})["logsForRun"]["events"]
    started = [e["message"] for e in events if "Run worker pid" in (e.get("message") or "")]
    assert started and "with profile 'large'" in started[0], started


def test_an_asset_backfill_of_a_large_asset_runs_on_the_large_profile(fault_platform):
    """The backfill daemon submits these runs; nothing tags them but the run coordinator."""
    params = {"assetSelection": [{"path": ["big_daily"]}],
              "partitionNames": ["2026-11-01", "2026-11-02"]}
    launched = fault_platform.graphql(BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_filter = {"tags": [{"key": "dagster/backfill", "value": launched["backfillId"]}]}
    runs = wait_for(lambda: len(r := _runs(fault_platform, backfill_filter)) == 2 and r,
                    what="the backfill's two runs", timeout=180)
    for listed in runs:
        assert wait_finished(fault_platform, listed["runId"]) == "SUCCESS"
        # Read the run again once it has finished: the daemon stores a run before it
        # submits it, so the listing above can predate the coordinator's tags.
        (run,) = _runs(fault_platform, {"runIds": [listed["runId"]]})
        _assert_large(fault_platform, run)


def test_dagsters_own_automation_sensor_runs_a_large_asset_on_the_large_profile(fault_platform):
    def automated_runs():
        runs = _runs(fault_platform, {"tags": [{"key": "dagster/from_automation_condition",
                                                "value": "true"}]})
        return [r for r in runs if [a["path"] for a in r["assetSelection"] or []] == [
            ["big_automated"]]]

    (listed, *_) = wait_for(automated_runs, what="a run of big_automated requested by "
                            "team_automation", timeout=240, interval=3)
    assert wait_finished(fault_platform, listed["runId"]) == "SUCCESS"
    (run,) = _runs(fault_platform, {"runIds": [listed["runId"]]})
    _assert_large(fault_platform, run)
