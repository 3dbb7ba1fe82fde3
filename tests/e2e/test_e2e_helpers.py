"""The e2e helpers against captured objects, no cluster needed (runs under `make test`).

- The run Job: the chart is rendered with `helm template -f platform-config/kind/platform.yaml`,
  its dagster.yaml configures a real K8sRunLauncher, and the V1Job that launcher would
  submit for a run is captured. The e2e pod checks must pass on it, and must fail on it
  once a profile number, the spill volume or the platform ConfigMap is wrong.
- GraphQL: HTTP bodies recorded from a real dagster-webserver + daemon
  (fixtures/record_fixtures.py); the queries are validated against Dagster's schema.
- S3: a listing recorded from a real S3 API after S3ComputeLogManager uploaded a run.
"""

import copy
import json
import subprocess
from pathlib import Path

import e2e_helpers as h
import pytest
import yaml
from kubernetes import client
from support.browser import chromium_driver, dismiss_first_visit_modal
from support.processes import stop
from support.tools import helm_binary

from lakeport.cgroup_limits import ContainerLimits, Limit
from lakeport.config import load_platform
from lakeport.dev.ports import free_port
from lakeport.duckdb_settings import derive_duckdb_settings
from lakeport.profiles import SPILL_MOUNT_PATH, profile_tags
from lakeport.quantities import cpu_cores, memory_bytes

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
KIND_PLATFORM = REPO / "platform-config/kind/platform.yaml"
RELEASE = NAMESPACE = "lakeport"


def _fixture(relative: str) -> dict:
    return json.loads((FIXTURES / relative).read_text())


@pytest.fixture(scope="module")
def platform():
    return load_platform(KIND_PLATFORM)


# --- the run Job the chart's launcher would submit ------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    result = subprocess.run(
        [
            helm_binary(),
            "template",
            RELEASE,
            str(REPO / "charts/lakeport"),
            "-n",
            NAMESPACE,
            "-f",
            str(KIND_PLATFORM),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _object(rendered, kind: str, name: str) -> dict:
    found = [d for d in rendered if d["kind"] == kind and d["metadata"]["name"] == name]
    assert found, f"the chart renders no {kind} {name}"
    return found[0]


@pytest.fixture(scope="module")
def env_config_maps(rendered) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d.get("data", {}) for d in rendered if d["kind"] == "ConfigMap"}


class _Recorder:
    def __init__(self):
        self.jobs = []

    def create_namespaced_job_with_retries(self, body, namespace):
        self.jobs.append((namespace, body))


def _captured_job(rendered, tmp_path, tags=None) -> client.V1Job:
    """The V1Job the chart's K8sRunLauncher submits for a run of lakehouse_job."""
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.launcher import LaunchRunContext
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._core.test_utils import create_run_for_test, instance_for_test

    instance_cm = _object(rendered, "ConfigMap", f"{RELEASE}-dagster-instance")
    dagster_yaml = yaml.safe_load(instance_cm["data"]["dagster.yaml"])
    launcher = copy.deepcopy(dagster_yaml["run_launcher"])
    # Outside a cluster: a kubeconfig that is never used (the API client is replaced).
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "unused"}}],
            }
        )
    )
    launcher["config"]["load_incluster_config"] = False
    launcher["config"]["kubeconfig_file"] = str(kubeconfig)

    with instance_for_test(overrides={"run_launcher": launcher}) as instance:
        origin = JobPythonOrigin(
            job_name="lakehouse_job",
            repository_origin=RepositoryPythonOrigin(
                executable_path="/opt/lakeport/venv/bin/python",
                code_pointer=ModuleCodePointer("lakeport_demo.definitions", "defs", None),
                container_image=launcher["config"]["job_image"],
            ),
        )
        run = create_run_for_test(
            instance, job_name="lakehouse_job", job_code_origin=origin, tags=tags or {}
        )
        recorder = _Recorder()
        instance.run_launcher._api_client = recorder
        instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    assert len(recorder.jobs) == 1
    namespace, job = recorder.jobs[0]
    assert namespace == NAMESPACE
    return job


@pytest.fixture(scope="module")
def default_job(rendered, tmp_path_factory) -> client.V1Job:
    return _captured_job(rendered, tmp_path_factory.mktemp("launcher"))


def test_run_job_has_the_transform_profile(default_job, platform):
    pod_spec = default_job.spec.template.spec
    container = h.run_container(pod_spec)
    assert h.resource_problems(container, platform.profile("transform")) == []
    assert h.spill_volume_problems(pod_spec, platform.profile("transform")) == []


def test_run_job_reads_the_platform_config_map(default_job, env_config_maps):
    pod_spec = default_job.spec.template.spec
    assert h.platform_config_map(pod_spec, env_config_maps) == f"{RELEASE}-platform"


def test_a_run_tagged_large_gets_large_not_transform(rendered, tmp_path, platform):
    job = _captured_job(rendered, tmp_path, tags=profile_tags(platform, "large"))
    pod_spec = job.spec.template.spec
    container = h.run_container(pod_spec)
    assert h.resource_problems(container, platform.profile("large")) == []
    assert h.spill_volume_problems(pod_spec, platform.profile("large")) == []
    # The check tells the profiles apart: transform's numbers are not large's.
    assert h.resource_problems(container, platform.profile("transform"))
    assert h.spill_volume_problems(pod_spec, platform.profile("transform"))


def test_the_e2e_launch_tags_put_lakehouse_job_on_transform(rendered, tmp_path, platform):
    """The e2e test launches lakehouse_job (whose own tags name its largest profile) with
    transform's tags; Dagster lays launch tags over job tags, so the pod is transform's."""
    tags = {
        **profile_tags(platform, "large"),
        **profile_tags(platform, "transform"),
        "dagster/partition": "2026-01-01",
    }
    pod_spec = _captured_job(rendered, tmp_path, tags=tags).spec.template.spec
    assert h.resource_problems(h.run_container(pod_spec), platform.profile("transform")) == []
    assert h.spill_volume_problems(pod_spec, platform.profile("transform")) == []


def test_pod_checks_name_what_is_wrong(default_job, platform, env_config_maps):
    profile = platform.profile("transform")
    spec = copy.deepcopy(default_job.spec.template.spec)
    container = h.run_container(spec)
    container.resources.limits["memory"] = "3Gi"
    assert h.resource_problems(container, profile) == [
        f"limits.memory: pod has '3Gi', profile has {profile.limits.memory!r}"
    ]
    spec.volumes = [v for v in spec.volumes if v.name != "duckdb-spill"]
    assert h.spill_volume_problems(spec, profile) == ["no volume named 'duckdb-spill'"]

    spec = copy.deepcopy(default_job.spec.template.spec)
    spill = next(v for v in spec.volumes if v.name == "duckdb-spill")
    spill.empty_dir.size_limit = "1Gi"
    h.run_container(spec).volume_mounts = [
        m for m in h.run_container(spec).volume_mounts if m.name != "duckdb-spill"
    ]
    problems = h.spill_volume_problems(spec, profile)
    assert len(problems) == 2 and "sizeLimit is '1Gi'" in problems[0]
    assert "mounted at []" in problems[1]

    spec = copy.deepcopy(default_job.spec.template.spec)
    platform_mount = next(
        m for m in h.run_container(spec).volume_mounts if m.mount_path == "/etc/lakeport"
    )
    h.run_container(spec).volume_mounts.remove(platform_mount)
    with pytest.raises(LookupError, match="is on no volume mount"):
        h.platform_config_map(spec, env_config_maps)
    with pytest.raises(LookupError, match="LAKEPORT_PLATFORM_FILE is not set"):
        h.platform_config_map(default_job.spec.template.spec, {})


def test_quantities_compare_by_value():
    container = client.V1Container(
        name="dagster",
        resources=client.V1ResourceRequirements(
            requests={"cpu": "0.5", "memory": "1073741824"},
            limits={"cpu": "2000m", "memory": "2Gi"},
        ),
    )
    profile = load_platform(KIND_PLATFORM).profile("transform")
    assert h.resource_problems(container, profile) == []


def test_explicit_env_wins_over_env_from():
    container = client.V1Container(
        name="dagster",
        env=[client.V1EnvVar(name="LAKEPORT_PLATFORM_FILE", value="/x/p.yaml")],
        env_from=[client.V1EnvFromSource(config_map_ref=client.V1ConfigMapEnvSource(name="e"))],
    )
    maps = {"e": {"LAKEPORT_PLATFORM_FILE": "/etc/lakeport/platform.yaml"}}
    assert h.container_env_value(container, "LAKEPORT_PLATFORM_FILE", maps) == "/x/p.yaml"


# --- the cluster: why the e2e tests skip --------------------------------------------------------


def _kubeconfig(path: Path, context: str, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": context,
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "unused"}}],
            }
        )
    )
    return path


def test_connect_to_cluster_says_why_not(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    api, reason = h.connect_to_cluster("kind-lakeport", "lakeport")
    assert api is None and reason.startswith("no kubeconfig")

    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "a", "other", "https://x")))
    api, reason = h.connect_to_cluster("kind-lakeport", "lakeport")
    assert api is None and "no kubeconfig context 'kind-lakeport'" in reason

    # A context whose API server is not there (a deleted kind cluster): a closed port.
    dead = f"https://127.0.0.1:{free_port()}"
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "b", "kind-lakeport", dead)))
    api, reason = h.connect_to_cluster("kind-lakeport", "lakeport", timeout=3)
    assert api is None and "is not reachable" in reason


# --- rollouts and Jobs ----------------------------------------------------------------------


def _deployment(replicas, ready, updated, total, generation=2, observed=2):
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name="lakeport-webserver", generation=generation),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(),
            template=client.V1PodTemplateSpec(),
        ),
        status=client.V1DeploymentStatus(
            replicas=total,
            ready_replicas=ready,
            updated_replicas=updated,
            observed_generation=observed,
        ),
    )


def test_rollout_problem():
    assert h.rollout_problem(_deployment(1, 1, 1, 1)) is None
    assert h.rollout_problem(_deployment(2, 1, 2, 2)) == (
        "deployment/lakeport-webserver: 1/2 replicas ready"
    )
    assert "0/1 replicas updated" in h.rollout_problem(_deployment(1, 1, 0, 1))
    assert "old replicas" in h.rollout_problem(_deployment(1, 1, 1, 2))
    assert "generation 3" in h.rollout_problem(_deployment(1, 1, 1, 1, generation=3))


def test_job_outcome():
    def job(*conditions):
        return client.V1Job(
            status=client.V1JobStatus(
                conditions=[client.V1JobCondition(type=t, status=s) for t, s in conditions]
            )
        )

    assert h.job_outcome(job(("Complete", "True"))) == "complete"
    assert h.job_outcome(job(("Failed", "True"))) == "failed"
    assert h.job_outcome(job(("Complete", "False"))) == "running"
    assert h.job_outcome(client.V1Job(status=None)) == "running"


def test_polaris_bootstrap_state():
    def job(*conditions):
        return client.V1Job(
            metadata=client.V1ObjectMeta(name="lakeport-polaris-bootstrap"),
            status=client.V1JobStatus(
                conditions=[client.V1JobCondition(type=t, status="True") for t in conditions]
            ),
        )

    filled = {"credential": "aWQ6c2VjcmV0"}
    assert h.polaris_bootstrap_state(job("Failed"), filled, "credential")[0] == "failed"
    assert h.polaris_bootstrap_state(job(), filled, "credential")[0] == "waiting"
    assert h.polaris_bootstrap_state(job("Complete"), filled, "credential") == (
        "done",
        "bootstrapped",
    )
    # The hook Job is deleted after success: then the written credential is the proof.
    assert h.polaris_bootstrap_state(None, filled, "credential")[0] == "done"
    assert h.polaris_bootstrap_state(None, {"credential": ""}, "credential")[0] == "waiting"
    assert h.polaris_bootstrap_state(None, None, "credential")[0] == "waiting"


# --- GraphQL --------------------------------------------------------------------------------


@pytest.mark.parametrize("query", [h.LAUNCH_RUN, h.RUN_STATUS, h.RUN_MATERIALIZATIONS])
def test_queries_are_valid_against_dagsters_schema(query):
    from dagster_graphql.schema import create_schema
    from graphql import parse, validate

    assert validate(create_schema().graphql_schema, parse(query)) == []


def test_launch_variables_shape():
    variables = h.launch_variables("demo", "lakehouse_job", tags={"b": "2", "a": "1"})
    params = variables["executionParams"]
    assert params["selector"] == {
        "repositoryLocationName": "demo",
        "repositoryName": "__repository__",
        "jobName": "lakehouse_job",
    }
    assert params["executionMetadata"]["tags"] == [
        {"key": "a", "value": "1"},
        {"key": "b", "value": "2"},
    ]


def test_recorded_launch_and_status():
    run_id = h.launched_run_id(_fixture("graphql/launch_run_success.json"))
    finished = _fixture("graphql/run_status_finished.json")
    assert h.run_status(finished) == "SUCCESS"
    assert finished["data"]["runOrError"]["runId"] == run_id
    assert h.run_status(_fixture("graphql/run_status_running.json")) not in h.TERMINAL_STATUSES


def test_recorded_errors_are_raised_with_dagsters_reason():
    with pytest.raises(h.GraphQLError, match="PipelineNotFoundError: Could not find.*no_such_job"):
        h.launched_run_id(_fixture("graphql/launch_run_unknown_job.json"))
    with pytest.raises(h.GraphQLError, match="RunNotFoundError"):
        h.run_status(_fixture("graphql/run_not_found.json"))
    with pytest.raises(h.GraphQLError, match="Cannot query field"):
        h.run_status({"errors": [{"message": "Cannot query field 'x' on type 'Run'."}]})


def test_recorded_materialization_metadata(platform):
    metadata = h.materialization_metadata(_fixture("graphql/run_materializations.json"))
    assert set(metadata) == {"analytics/stg_orders", "analytics/daily_revenue"}
    limits = h.metadata_values(metadata, "duckdb/memory_limit")
    assert set(limits) == set(metadata)
    assert h.metadata_values(metadata, "dagster/row_count") == {
        "analytics/stg_orders": 3,
        "analytics/daily_revenue": 2,
    }
    # What the e2e test expects in a transform pod: lakeport's own derivation from the
    # profile's memory limit seen as the container's cgroup limit.
    profile = platform.profile("transform")
    expected = derive_duckdb_settings(
        profile,
        limits=ContainerLimits(
            memory=Limit(memory_bytes(profile.limits.memory), "memory.max"),
            cpu=Limit(cpu_cores(profile.limits.cpu), "cpu.max"),
        ),
        spill_dir=SPILL_MOUNT_PATH,
        available_cpus=4,
    )
    assert set(limits.values()) == {expected.memory_limit}
    assert h.metadata_values(metadata, "duckdb/threads")["analytics/stg_orders"] == (
        expected.threads
    )


# --- S3 and port-forward --------------------------------------------------------------------


def test_recorded_bucket_listing_has_the_runs_compute_logs():
    recorded = _fixture("s3/listing.json")
    keys = h.listed_keys(recorded["pages"])
    logs = h.compute_log_keys(keys, recorded["prefix"], recorded["run_id"])
    assert len(logs["out"]) == 2 and len(logs["err"]) == 2
    assert all(k.startswith(f"compute-logs/storage/{recorded['run_id']}/") for k in logs["out"])
    # Another run's logs, partial uploads and other prefixes are not this run's.
    other = "11111111-1111-1111-1111-111111111111"
    assert h.compute_log_keys(keys, recorded["prefix"], other) == {"out": [], "err": []}
    assert h.compute_log_keys(keys, "elsewhere", recorded["run_id"]) == {"out": [], "err": []}
    partial = [f"compute-logs/storage/{recorded['run_id']}/compute_logs/x.out.partial"]
    assert h.compute_log_keys(partial, "/compute-logs/", recorded["run_id"]) == {
        "out": [],
        "err": [],
    }
    assert h.listed_keys([{"KeyCount": 0}]) == []


def test_forwarded_port():
    assert h.forwarded_port("Forwarding from 127.0.0.1:41567 -> 4566") == 41567
    assert h.forwarded_port("Forwarding from [::1]:41567 -> 4566") == 41567
    assert h.forwarded_port("Handling connection for 41567") is None


def test_expected_tables_missing():
    expected = h.ExpectedTables(frozenset({("marts", "daily_revenue"), ("raw", "customers")}))
    assert expected.namespaces == ["marts", "raw"]
    assert expected.missing([("marts", "daily_revenue")]) == ["raw.customers"]
    assert expected.missing([("marts", "daily_revenue"), ("raw", "customers")]) == []
    # A table of the same name in another namespace is not the expected one.
    assert expected.missing([("marts", "daily_revenue"), ("marts", "customers")]) == [
        "raw.customers"]


# --- the UI: real dagster-webserver, real headless chromium ---------------------------------


@pytest.fixture
def local_webserver(tmp_path):
    """dagster-webserver over the recording location, on a fresh DAGSTER_HOME (so the
    first-visit dialog is due, as on a fresh kind deployment)."""
    import os
    import sys
    import time

    import requests

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_file": {
                            "relative_path": str(FIXTURES / "recording_location.py"),
                            "attribute": "defs",
                            "location_name": "demo",
                        }
                    }
                ]
            }
        )
    )
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster-webserver")),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(workspace),
        ],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{base}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, "dagster-webserver exited"
            assert time.monotonic() < deadline, "dagster-webserver did not answer in 90 s"
            time.sleep(0.5)
        yield base
    finally:
        stop(process, timeout=20)


def test_ui_dialog_is_dismissed_and_screenshot_taken(local_webserver, tmp_path):
    with chromium_driver() as driver:
        driver.get(f"{local_webserver}/runs")
        # The dialog is due on this fresh instance: the helper must find and close it.
        assert dismiss_first_visit_modal(driver) is True
        target = tmp_path / "ui.png"
        text = h.ui_screenshot(
            driver,
            f"{local_webserver}/locations/demo/jobs/lakehouse_job",
            "lakehouse_job",
            target,
        )
    assert "Join the Dagster community" not in text
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_failure_messages_are_the_failure_events_messages():
    response = {"data": {"logsForRun": {"__typename": "EventConnection", "events": [
        {"__typename": "RunStartEvent", "message": "Started.", "level": "DEBUG"},
        {"__typename": "RunFailureEvent", "message": "OOMKilled ...", "level": "ERROR"},
    ]}}}
    assert h.run_failure_messages(response) == ["OOMKilled ..."]
    missing = {"data": {"logsForRun": {"__typename": "RunNotFoundError", "message": "no run"}}}
    with pytest.raises(h.GraphQLError, match="RunNotFoundError: no run"):
        h.run_failure_messages(missing)
