"""Two code locations from one platform file under `lakeport dev`: both load, a run in
each succeeds, and each run sees its own location's env and none of the other's."""

from dev_support import launch_run
from platform_support import run_status, wait_finished
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
