"""What the kind end-to-end test checks, as plain functions over plain objects.

The e2e test (test_e2e_kind.py) needs a cluster; these functions do not. They read
Kubernetes objects (kubernetes-client models), Dagster GraphQL responses (parsed JSON)
and S3 listings (boto3's list_objects_v2 pages), and are unit-tested offline
(test_e2e_helpers.py) against a Job built by dagster-k8s itself, responses recorded
from a real Dagster instance and a real S3 API, so the e2e code is not first run on a
user's machine.

Checks return a list of problems (empty: fine) so a failing test says everything that
is wrong at once, in words.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.browser import body_text, dismiss_first_visit_modal
from support.waiting import wait_for

from lakeport.config import PLATFORM_FILE_ENV
from lakeport.platform import ResourceProfile
from lakeport.profiles import SPILL_MOUNT_PATH, SPILL_VOLUME
from lakeport.quantities import cpu_cores, memory_bytes

# dagster-k8s names the run worker's container "dagster".
RUN_CONTAINER = "dagster"

# --- the cluster ------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
# The platform file the release under test was installed with: kind's unless
# scripts/e2e-local.sh says otherwise.
PLATFORM_FILE = Path(
    os.environ.get("LAKEPORT_E2E_PLATFORM_FILE", REPO / "platform-config/kind/platform.yaml")
)


def connect_to_cluster(context: str, namespace: str, timeout: float = 10):
    """(kubernetes ApiClient, "") for a kubeconfig context whose cluster answers and has
    `namespace`; (None, why not) otherwise. Reads KUBECONFIG / ~/.kube/config."""
    import os

    from kubernetes import client, config

    # Read KUBECONFIG now: the client library reads it once, when it is imported.
    config_file = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        contexts, _ = config.list_kube_config_contexts(config_file=config_file)
    except (config.ConfigException, OSError) as exc:
        return None, f"no kubeconfig ({type(exc).__name__}): run `make kind-up` or `make e2e`"
    if context not in {c["name"] for c in contexts}:
        return None, f"no kubeconfig context {context!r}: run `make kind-up` or `make e2e`"
    try:
        api_client = config.new_client_from_config(config_file=config_file, context=context)
        client.CoreV1Api(api_client).read_namespace(namespace, _request_timeout=timeout)
    except client.ApiException as exc:
        if exc.status == 404:
            return None, f"namespace {namespace!r} does not exist: run `make deploy`"
        return None, f"the API server of {context!r} answered HTTP {exc.status}"
    except Exception as exc:  # refused, TLS, timeout: there is no cluster to test
        return None, f"the cluster of context {context!r} is not reachable ({type(exc).__name__})"
    return api_client, ""


# --- pod specs ------------------------------------------------------------------------------


def run_container(pod_spec) -> Any:
    """The run worker container of a run pod (or of a run Job's pod template)."""
    containers = list(pod_spec.containers or [])
    for container in containers:
        if container.name == RUN_CONTAINER:
            return container
    if len(containers) == 1:
        return containers[0]
    names = ", ".join(c.name for c in containers) or "none"
    raise LookupError(f"no '{RUN_CONTAINER}' container in the pod (containers: {names})")


def _same_quantity(resource: str, actual: Any, expected: Any) -> bool:
    if actual is None or expected is None:
        return actual is None and expected is None
    to_number = cpu_cores if resource == "cpu" else memory_bytes
    return to_number(actual) == to_number(expected)


def resource_problems(container, profile: ResourceProfile) -> list[str]:
    """Where the container's requests/limits differ from the profile's (compared as
    quantities: the API server may print 0.5 as 500m)."""
    problems = []
    resources = container.resources
    for kind in ("requests", "limits"):
        actual = (getattr(resources, kind, None) or {}) if resources else {}
        expected = {k: v for k, v in getattr(profile, kind).model_dump().items() if v is not None}
        for name in sorted(set(actual) | set(expected)):
            if not _same_quantity(name, actual.get(name), expected.get(name)):
                problems.append(
                    f"{kind}.{name}: pod has {actual.get(name)!r}, profile has "
                    f"{expected.get(name)!r}"
                )
    return problems


def spill_volume_problems(pod_spec, profile: ResourceProfile) -> list[str]:
    """The spill volume: an emptyDir of the profile's size, mounted where DuckDB spills."""
    volume = next((v for v in pod_spec.volumes or [] if v.name == SPILL_VOLUME), None)
    if volume is None:
        return [f"no volume named {SPILL_VOLUME!r}"]
    problems = []
    if volume.empty_dir is None:
        problems.append(f"volume {SPILL_VOLUME!r} is not an emptyDir")
    elif not _same_quantity("memory", volume.empty_dir.size_limit, profile.spill_volume_size):
        problems.append(
            f"volume {SPILL_VOLUME!r} sizeLimit is {volume.empty_dir.size_limit!r}, profile "
            f"spillVolumeSize is {profile.spill_volume_size!r}"
        )
    mounts = [m for m in run_container(pod_spec).volume_mounts or [] if m.name == SPILL_VOLUME]
    if [m.mount_path for m in mounts] != [SPILL_MOUNT_PATH]:
        problems.append(
            f"volume {SPILL_VOLUME!r} is mounted at {[m.mount_path for m in mounts]}, "
            f"expected exactly [{SPILL_MOUNT_PATH!r}]"
        )
    return problems


def container_env_value(
    container, name: str, config_maps: Mapping[str, Mapping[str, str]]
) -> str | None:
    """The value a container sees for `name`: an explicit env entry wins over envFrom,
    a later envFrom source over an earlier one (Kubernetes' rules). `config_maps` holds
    the data of the ConfigMaps the pod's envFrom may name."""
    for var in reversed(container.env or []):
        if var.name == name and var.value is not None:
            return var.value
    value = None
    for source in container.env_from or []:
        ref = source.config_map_ref
        if ref is None:
            continue
        data = config_maps.get(ref.name) or {}
        if name in data:
            value = data[name]
    return value


def platform_config_map(pod_spec, config_maps: Mapping[str, Mapping[str, str]]) -> str:
    """The name of the ConfigMap the pod reads its platform file from.

    Follows what the process does: LAKEPORT_PLATFORM_FILE (from env or envFrom) names a
    path; a volume mount covers that path; the volume is a ConfigMap. Raises LookupError
    saying which link is missing.
    """
    container = run_container(pod_spec)
    path = container_env_value(container, PLATFORM_FILE_ENV, config_maps)
    if not path:
        raise LookupError(f"{PLATFORM_FILE_ENV} is not set in the container (env or envFrom)")
    covering = [
        m
        for m in container.volume_mounts or []
        if path == m.mount_path or path.startswith(m.mount_path.rstrip("/") + "/")
    ]
    if not covering:
        raise LookupError(f"{PLATFORM_FILE_ENV}={path} is on no volume mount")
    mount = max(covering, key=lambda m: len(m.mount_path))
    volume = next((v for v in pod_spec.volumes or [] if v.name == mount.name), None)
    if volume is None or volume.config_map is None:
        raise LookupError(f"the mount at {mount.mount_path} ({mount.name}) is not a ConfigMap")
    relative = mount.sub_path or path[len(mount.mount_path) :].lstrip("/")
    items = volume.config_map.items
    if items and relative not in {i.path for i in items}:
        raise LookupError(f"ConfigMap volume {mount.name} does not project {relative}")
    return volume.config_map.name


# --- rollouts -------------------------------------------------------------------------------


def rollout_problem(workload) -> str | None:
    """None when a Deployment or StatefulSet has rolled out completely, else why not."""
    kind = type(workload).__name__.removeprefix("V1")
    name = f"{kind.lower()}/{workload.metadata.name}"
    wanted = workload.spec.replicas if workload.spec.replicas is not None else 1
    status = workload.status
    generation = workload.metadata.generation
    if status is None or (status.observed_generation or 0) < (generation or 0):
        return f"{name}: the controller has not seen generation {generation} yet"
    updated = status.updated_replicas or 0
    ready = status.ready_replicas or 0
    if updated < wanted:
        return f"{name}: {updated}/{wanted} replicas updated"
    if ready < wanted:
        return f"{name}: {ready}/{wanted} replicas ready"
    if (status.replicas or 0) > wanted:
        return f"{name}: {status.replicas - wanted} old replicas still terminating"
    if (
        kind == "StatefulSet"
        and status.update_revision
        and (status.current_revision != status.update_revision)
    ):
        return f"{name}: revision {status.update_revision} not rolled out"
    return None


def job_outcome(job) -> str:
    """'complete', 'failed' or 'running', from a Job's conditions."""
    conditions = (job.status.conditions or []) if job.status else []
    for condition in conditions:
        if condition.status != "True":
            continue
        if condition.type == "Complete":
            return "complete"
        if condition.type == "Failed":
            return "failed"
    return "running"


def polaris_bootstrap_state(
    job, secret_data: Mapping[str, str] | None, key: str
) -> tuple[str, str]:
    """('done' | 'waiting' | 'failed', why) for the Polaris bootstrap.

    The bootstrap Job is a Helm hook deleted once it succeeds, so "no Job" is success only
    when the principal's credential it writes is in its Secret. Values are never read
    beyond "present and non-empty".
    """
    if job is not None:
        outcome = job_outcome(job)
        if outcome == "failed":
            return "failed", f"job/{job.metadata.name} failed"
        if outcome == "running":
            return "waiting", f"job/{job.metadata.name} has not completed"
    if not secret_data or not secret_data.get(key):
        return "waiting", f"the principal Secret has no {key!r} yet"
    return "done", "bootstrapped"


# --- Dagster GraphQL ------------------------------------------------------------------------

# Dagster's repository name for a code location built with `Definitions`.
DEFAULT_REPOSITORY = "__repository__"

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PipelineNotFoundError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on RunConflict { message }
    ... on UnauthorizedError { message }
    ... on PythonError { message stack }
  }
}
"""


def _run_query(operation: str, field: str, selection: str) -> str:
    """A query of one run by id: `selection` on what it answers when the run is there, and
    the two errors every such query may answer instead."""
    return f"""
query {operation}($runId: ID!) {{
  {field}(runId: $runId) {{
    __typename
{selection}
    ... on RunNotFoundError {{ message }}
    ... on PythonError {{ message }}
  }}
}}
"""


RUN_STATUS = _run_query(
    "RunStatus", "runOrError", "    ... on Run { runId status jobName tags { key value } }"
)

RUN_MATERIALIZATIONS = _run_query("RunMaterializations", "runOrError", """\
    ... on Run {
      runId
      status
      assetMaterializations {
        assetKey { path }
        stepKey
        metadataEntries {
          __typename
          label
          ... on TextMetadataEntry { text }
          ... on IntMetadataEntry { intValue intRepr }
          ... on FloatMetadataEntry { floatValue }
          ... on BoolMetadataEntry { boolValue }
          ... on JsonMetadataEntry { jsonString }
          ... on PathMetadataEntry { path }
        }
      }
    }""")

RUN_EVENTS = _run_query("RunEvents", "logsForRun", """\
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message level }
      }
    }""")

TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


class GraphQLError(RuntimeError):
    """Dagster answered, but not with what was asked for."""


def post_graphql(
    session, url: str, query: str, variables: Mapping | None = None, timeout: float = 30
) -> dict:
    """POST one GraphQL request (a requests.Session) and return the parsed JSON body."""
    response = session.post(
        url, json={"query": query, "variables": dict(variables or {})}, timeout=timeout
    )
    if response.status_code != 200:
        raise GraphQLError(f"POST {url}: HTTP {response.status_code}: {response.text[:300]}")
    return response.json()


def launch_variables(
    location: str,
    job_name: str,
    *,
    repository: str = DEFAULT_REPOSITORY,
    tags: Mapping[str, str] | None = None,
) -> dict:
    params: dict[str, Any] = {
        "selector": {
            "repositoryLocationName": location,
            "repositoryName": repository,
            "jobName": job_name,
        },
        "runConfigData": {},
    }
    if tags:
        params["executionMetadata"] = {
            "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())]
        }
    return {"executionParams": params}


def _data(response: Mapping, field: str) -> Mapping:
    errors = response.get("errors")
    if errors:
        raise GraphQLError("; ".join(e.get("message", str(e)) for e in errors))
    data = (response.get("data") or {}).get(field)
    if data is None:
        raise GraphQLError(f"the response has no data.{field}")
    return data


def launched_run_id(response: Mapping) -> str:
    """The run id of a launchRun response; GraphQLError naming Dagster's reason otherwise."""
    result = _data(response, "launchRun")
    typename = result.get("__typename")
    if typename == "LaunchRunSuccess":
        return result["run"]["runId"]
    if typename == "RunConfigValidationInvalid":
        reason = "; ".join(e["message"] for e in result.get("errors", []))
    else:
        reason = result.get("message") or "no message"
    raise GraphQLError(f"launchRun failed: {typename}: {reason}")


def _run(response: Mapping) -> Mapping:
    result = _data(response, "runOrError")
    if result.get("__typename") != "Run":
        raise GraphQLError(
            f"runOrError: {result.get('__typename')}: {result.get('message', 'no message')}"
        )
    return result


def run_status(response: Mapping) -> str:
    return _run(response)["status"]


def run_failure_messages(response: Mapping) -> list[str]:
    """The messages of a run's failure events (the run monitor's reason is one of them)."""
    logs = _data(response, "logsForRun")
    if logs.get("__typename") != "EventConnection":
        raise GraphQLError(f"logsForRun: {logs.get('__typename')}: {logs.get('message')}")
    return [e["message"] for e in logs["events"] if e.get("__typename") == "RunFailureEvent"]


def run_tags(response: Mapping) -> dict[str, str]:
    return {t["key"]: t["value"] for t in _run(response).get("tags", [])}


def _entry_value(entry: Mapping) -> Any:
    for field in ("text", "intValue", "floatValue", "boolValue", "jsonString", "path"):
        if field in entry and entry[field] is not None:
            return entry[field]
    # IntMetadataEntry carries values beyond 32 bits only in intRepr.
    if entry.get("intRepr") is not None:
        return int(entry["intRepr"])
    return None


def materialization_metadata(response: Mapping) -> dict[str, dict[str, Any]]:
    """asset key ("a/b") -> metadata label -> value, for every materialization of the run
    (the last one wins for an asset materialized twice)."""
    out: dict[str, dict[str, Any]] = {}
    for event in _run(response).get("assetMaterializations", []):
        key = "/".join(event["assetKey"]["path"])
        out[key] = {e["label"]: _entry_value(e) for e in event.get("metadataEntries", [])}
    return out


def metadata_values(metadata: Mapping[str, Mapping[str, Any]], label: str) -> dict[str, Any]:
    """asset key -> the value of one label, for the assets that recorded it."""
    return {asset: entries[label] for asset, entries in metadata.items() if label in entries}


# --- S3 -------------------------------------------------------------------------------------


def listed_keys(pages: Iterable[Mapping]) -> list[str]:
    """Keys of boto3 list_objects_v2 pages (a page without Contents lists nothing)."""
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def compute_log_keys(keys: Iterable[str], prefix: str, run_id: str) -> dict[str, list[str]]:
    """The run's finished stdout/stderr uploads by S3ComputeLogManager
    (`<prefix>/storage/<run id>/.../<file>.out|.err`); partial uploads are left out."""
    base = "/".join(p for p in prefix.split("/") if p)
    start = f"{base}/storage/{run_id}/" if base else f"storage/{run_id}/"
    found: dict[str, list[str]] = {"out": [], "err": []}
    for key in keys:
        if not key.startswith(start):
            continue
        for extension in found:
            if key.endswith(f".{extension}"):
                found[extension].append(key)
    return {k: sorted(v) for k, v in found.items()}


# --- kubectl port-forward -------------------------------------------------------------------

_FORWARDING = re.compile(r"^Forwarding from (?:127\.0\.0\.1|\[::1\]|localhost):(\d+) -> (\d+)")


def forwarded_port(line: str) -> int | None:
    """The local port of a `kubectl port-forward` "Forwarding from ..." line."""
    match = _FORWARDING.match(line.strip())
    return int(match.group(1)) if match else None


# --- the UI through a browser -----------------------------------------------------------------


def ui_screenshot(driver, url: str, expect_text: str, target: Path, timeout: float = 60) -> str:
    """Open `url`, dismiss the first-visit dialog, wait until the page shows `expect_text`,
    save a PNG screenshot to `target`; return the page's visible text."""
    from selenium.common.exceptions import WebDriverException

    driver.get(url)
    dismiss_first_visit_modal(driver)
    wait_for(lambda: expect_text in body_text(driver), what=f"{url} to show {expect_text!r}",
             timeout=timeout, interval=0.5, ignore=WebDriverException)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not driver.save_screenshot(str(target)):
        raise RuntimeError(f"chromium could not write {target}")
    return body_text(driver)


@dataclass(frozen=True)
class ExpectedTables:
    tables: frozenset[tuple[str, str]]  # (namespace, name)

    @property
    def namespaces(self) -> list[str]:
        return sorted({namespace for namespace, _ in self.tables})

    def missing(self, listed: Sequence[tuple[str, ...]]) -> list[str]:
        """Tables not listed, as `namespace.name`; `listed` as pyiceberg's list_tables
        returns identifiers."""
        return sorted(".".join(t) for t in self.tables - {tuple(ident) for ident in listed})
