"""The rendered dagster.yaml in a real DagsterInstance, and the exact Job its launcher submits.

Only the Postgres connection target is changed (the cluster's service name becomes the
test server) and the launcher is pointed at a dummy kubeconfig instead of the in-cluster
config; everything else is the chart's output. The launcher's API client is replaced by a
recorder of `create_namespaced_job_with_retries`, so the V1Job is the one a cluster would
receive.
"""

import json
import sys

import kubernetes
import kubernetes_validate
import pytest
import yaml
from chart_render import (
    ENVIRONMENTS,
    NAMESPACE,
    dagster_yaml,
    effective_platform_text,
    one,
    render_env,
)
from dagster import DagsterInstance, job, op
from dagster._core.code_pointer import FileCodePointer
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_k8s import K8sRunLauncher

from lakeport.config import parse_platform
from lakeport.profiles import SPILL_MOUNT_PATH, SPILL_VOLUME, profile_tags

DUMMY_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
    "users": [{"name": "none", "user": {"token": "not-a-cluster"}}],
    "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
    "current-context": "none",
}


@op
def say_hello():
    return "hello"


@job
def tiny_job():
    say_hello()


class JobRecorder:
    """Stands in for DagsterKubernetesClient where the launcher submits a Job."""

    def __init__(self):
        self.submitted = []

    def create_namespaced_job_with_retries(self, body, namespace):
        self.submitted.append((namespace, body))


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def chart(request, postgres_server, tmp_path_factory):
    """(env, rendered objects, platform, a DagsterInstance loaded from the rendered config)."""
    env = request.param
    objects = render_env(env)
    config = dagster_yaml(objects)
    database = f"chart_{env}"
    postgres_server.ensure_database(database)
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        db = config[storage]["config"]["postgres_db"]
        # The password stays the chart's `env:` reference; only the target changes.
        assert db["password"] == {"env": "LAKEPORT_POSTGRES_PASSWORD"}
        db.update(hostname=postgres_server.host, port=postgres_server.port, db_name=database)
        db["params"]["sslmode"] = "disable"
    home = tmp_path_factory.mktemp(f"dagster-home-{env}")
    kubeconfig = home / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(DUMMY_KUBECONFIG))
    launcher_config = config["run_launcher"]["config"]
    launcher_config.update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    mp = pytest.MonkeyPatch()
    mp.setenv("LAKEPORT_POSTGRES_PASSWORD", postgres_server.password)
    instance = DagsterInstance.from_config(str(home))
    yield env, objects, parse_platform(effective_platform_text(objects)), instance
    instance.dispose()
    mp.undo()


def test_rendered_config_loads_the_real_classes(chart):
    _env, _objects, platform, instance = chart
    assert isinstance(instance.run_launcher, K8sRunLauncher)
    assert type(instance.run_launcher).__name__ == "LakeportK8sRunLauncher"
    assert isinstance(instance.compute_log_manager, S3ComputeLogManager)
    assert type(instance.run_storage).__name__ == "PooledPostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PooledPostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PooledPostgresScheduleStorage"
    # Dagster's queue, which also tags every submitted run with its profile.
    assert type(instance.run_coordinator).__name__ == "LakeportRunCoordinator"
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    queue = platform.dagster.run_queue
    queue_config = instance.run_coordinator.get_run_queue_config()
    assert queue_config.max_concurrent_runs == queue.max_concurrent_runs
    assert [
        {k: v for k, v in limit.items() if v is not None}
        for limit in queue_config.tag_concurrency_limits
    ] == [limit.model_dump(exclude_none=True) for limit in queue.tag_concurrency_limits]
    assert instance.run_monitoring_start_timeout_seconds == (
        platform.dagster.run_monitoring.start_timeout_seconds
    )
    assert instance.run_monitoring_enabled is platform.dagster.run_monitoring.enabled
    assert instance.run_retries_max_retries == platform.dagster.run_retries.max_retries
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import TickStatus

    for kind, instigator in (("schedule", InstigatorType.SCHEDULE),
                             ("sensor", InstigatorType.SENSOR)):
        days = getattr(platform.dagster.retention, kind)
        assert instance.get_tick_retention_settings(instigator) == {
            TickStatus.SKIPPED: days.skipped, TickStatus.SUCCESS: days.success,
            TickStatus.FAILURE: days.failure, TickStatus.STARTED: days.started,
        }
    launcher = instance.run_launcher
    assert launcher.job_namespace == platform.dagster.run_launcher.job_namespace == NAMESPACE
    assert launcher.image_pull_policy == platform.images.lakeport.pull_policy
    logs = instance.compute_log_manager
    assert logs._s3_bucket == platform.compute_logs.bucket
    assert logs._s3_prefix == platform.compute_logs.prefix
    assert logs._upload_interval == platform.compute_logs.upload_interval_seconds


def _code_server_args(objects, location: str) -> dict[str, str]:
    """The `--flag value` pairs of the location's rendered code server command."""
    deployment = one(objects, "Deployment", f"lakeport-code-{location}")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    pairs = zip(command, command[1:], strict=False)
    return {flag: value for flag, value in pairs if flag.startswith("--")}


def _origins(objects, job_name: str, location: str = "demo", code_pointer=None):
    """The run's origins exactly as the location's rendered code server reports them: its
    --container-image and --container-context reach the run through these."""
    args = _code_server_args(objects, location)
    code_origin = JobPythonOrigin(
        job_name,
        RepositoryPythonOrigin(
            executable_path=sys.executable,
            code_pointer=code_pointer or FileCodePointer(__file__, "tiny_job"),
            container_image=args["--container-image"],
            entry_point=["dagster"],
            container_context=json.loads(args["--container-context"]),
        ),
    )
    remote_origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(
            GrpcServerCodeLocationOrigin(
                host=f"lakeport-code-{location}", port=int(args["--port"]),
                location_name=location,
            ),
            "__repository__",
        ),
        job_name,
    )
    return code_origin, remote_origin


def _submitted_job(instance, run) -> tuple[str, dict]:
    """What the chart's launcher sends the API server for `run`."""
    launcher = instance.run_launcher
    recorder = JobRecorder()
    launcher._api_client = recorder
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    assert len(recorder.submitted) == 1
    namespace, job_obj = recorder.submitted[0]
    return namespace, kubernetes.client.ApiClient().sanitize_for_serialization(job_obj)


def _launch(instance, objects, platform, profile, location="demo"):
    code_origin, remote_origin = _origins(objects, "tiny_job", location)
    run = instance.create_run_for_job(
        tiny_job, tags=profile_tags(platform, profile), remote_job_origin=remote_origin,
        job_code_origin=code_origin,
    )
    return _submitted_job(instance, run)


@pytest.mark.parametrize("profile", ["transform", "large"])
def test_run_job_carries_the_profile_and_the_platform(chart, profile):
    env, objects, platform, instance = chart
    namespace, submitted = _launch(instance, objects, platform, profile)
    expected = platform.resource_profiles[profile]
    assert namespace == platform.dagster.run_launcher.job_namespace

    for version in ("1.29", "1.33"):
        kubernetes_validate.validate(submitted, version, strict=True)

    spec = submitted["spec"]
    assert spec["ttlSecondsAfterFinished"] == platform.dagster.run_launcher.finished_job_ttl_seconds
    assert spec["backoffLimit"] == platform.dagster.run_launcher.backoff_limit
    pod = spec["template"]["spec"]
    # The release's NetworkPolicy admits run pods to Postgres/Polaris/S3 by this label.
    assert spec["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == "lakeport"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["serviceAccountName"] == "lakeport-dagster"
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["image"] == platform.code_location("demo").image.reference

    # The profile's numbers, nothing else (a run asking for `large` replaces the default).
    want = {kind: {k: str(v) for k, v in getattr(expected, kind).model_dump().items()
                   if v is not None} for kind in ("requests", "limits")}
    assert container["resources"] == want

    # Exactly one spill volume, size-limited by the profile, mounted where lakeport looks.
    spill = [v for v in pod["volumes"] if v["name"] == SPILL_VOLUME]
    size = str(expected.spill_volume_size)
    assert spill == [{"name": SPILL_VOLUME, "emptyDir": {"sizeLimit": size}}]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert len(mounts) == len(container["volumeMounts"]), "a volume is mounted twice"
    assert mounts[SPILL_VOLUME]["mountPath"] == SPILL_MOUNT_PATH

    # The platform ConfigMap is mounted and named by LAKEPORT_PLATFORM_FILE (via envFrom).
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert len(volumes) == len(pod["volumes"]), "two volumes share a name"
    platform_volume = volumes.get("lakeport-platform")
    assert platform_volume, f"no platform volume in {pod['volumes']}"
    assert platform_volume["configMap"]["name"] == "lakeport-platform"
    assert mounts["lakeport-platform"]["mountPath"] == "/etc/lakeport"
    env_cm = one(objects, "ConfigMap", "lakeport-env")
    assert {"configMapRef": {"name": "lakeport-env"}} in container["envFrom"]
    assert env_cm["data"]["LAKEPORT_PLATFORM_FILE"] == "/etc/lakeport/platform.yaml"

    # Secrets only by reference, each name once.
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), f"duplicated env names: {names}"
    secret_env = {e["name"]: e for e in container["env"] if "valueFrom" in e}
    wanted = {"LAKEPORT_POSTGRES_PASSWORD", "LAKEPORT_CATALOG_CREDENTIAL"}
    if env == "kind":
        wanted |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    if platform.lineage.transport.token_secret is not None:
        wanted |= {"LAKEPORT_LINEAGE_TOKEN"}  # the OpenLineage endpoint's (cloud)
    assert set(secret_env) == wanted
    for name, entry in secret_env.items():
        assert "value" not in entry
        assert set(entry["valueFrom"]) == {"secretKeyRef"}, name
    pg = platform.postgres.password_secret
    assert secret_env["LAKEPORT_POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": pg.secret_name, "key": pg.key,
    }
    # A run waits for the catalog credential rather than starting without it.
    catalog_ref = secret_env["LAKEPORT_CATALOG_CREDENTIAL"]["valueFrom"]["secretKeyRef"]
    assert catalog_ref["optional"] is False
    assert not any("PASSWORD" in e["name"] and "value" in e for e in container["env"])

    # The run tag says which profile it was, and the profile tag survives to the pod labels' run.
    run_tags = json.loads(profile_tags(platform, profile)["dagster-k8s/config"])
    assert run_tags["merge_behavior"] == "SHALLOW"


def _env(container) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_each_location_runs_in_its_image_with_its_env_and_no_other_secrets(chart):
    """Two locations in different images (platform-config/cloud: demo and finance)."""
    env, objects, platform, instance = chart
    if len(platform.code_locations) < 2:
        pytest.skip(f"platform-config/{env} has one code location")
    jobs = {}
    for location in platform.code_locations:
        _namespace, submitted = _launch(instance, objects, platform, "transform", location.name)
        for version in ("1.29", "1.33"):
            kubernetes_validate.validate(submitted, version, strict=True)
        (container,) = submitted["spec"]["template"]["spec"]["containers"]
        jobs[location.name] = container
        assert container["image"] == location.image.reference
        assert container["imagePullPolicy"] == location.image.pull_policy
        assert {k: v["value"] for k, v in _env(container).items() if k in location.env} == (
            location.env
        )
        for secret in location.secret_env:
            assert _env(container)[secret.name]["valueFrom"] == {
                "secretKeyRef": {"name": secret.secret_name, "key": secret.key}
            }
        # The platform's own secret env survives the location's (the contexts merge DEEP).
        assert {"LAKEPORT_POSTGRES_PASSWORD", "LAKEPORT_CATALOG_CREDENTIAL"} <= set(
            _env(container)
        )
        # The lineage endpoint's token reaches every location's runs, by reference.
        token = platform.lineage.transport.token_secret
        if token is not None:
            assert _env(container)["LAKEPORT_LINEAGE_TOKEN"]["valueFrom"] == {
                "secretKeyRef": {"name": token.secret_name, "key": token.key}
            }
        # The profile's numbers survive the location's container context (#13921).
        assert container["resources"]["limits"]["memory"] == str(
            platform.profile("transform").limits.memory
        )
    assert len({c["image"] for c in jobs.values()}) == len(jobs), "two locations, one image"
    for location in platform.code_locations:
        others = {s.name for o in platform.code_locations if o is not location
                  for s in o.secret_env} | {n for o in platform.code_locations
                                            if o is not location for n in o.env}
        assert not others & set(_env(jobs[location.name])), (location.name, others)


LAUNCH = """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""


@pytest.fixture(scope="module")
def demo_workspace(chart, tmp_path_factory):
    """The demo code location, loaded as the webserver loads it, on the chart's instance."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import ModuleTarget

    from lakeport.config import PLATFORM_FILE_ENV
    from lakeport.dbt_manifest import prepare_manifest
    from lakeport_demo.build import DBT_PROJECT_DIR

    env, objects, _platform, instance = chart
    # A fresh clone has no compiled manifest yet; the image build makes it (Dockerfile).
    prepare_manifest(DBT_PROJECT_DIR, if_stale=True)
    platform_file = tmp_path_factory.mktemp(f"platform-{env}") / "platform.yaml"
    platform_file.write_text(effective_platform_text(objects))
    mp = pytest.MonkeyPatch()
    # The demo's definitions and the run coordinator read it, as in the chart's pods.
    mp.setenv(PLATFORM_FILE_ENV, str(platform_file))
    target = ModuleTarget(module_name="lakeport_demo.definitions", attribute=None,
                          working_directory=None, location_name="demo")
    with WorkspaceProcessContext(instance, target) as context:
        # A location that failed to load would answer every launch with InvalidSubsetError.
        errors = context.create_request_context().get_code_location_error("demo")
        assert errors is None, errors
        yield context
    mp.undo()


def test_a_ui_materialize_of_a_large_model_gets_a_large_pod(chart, demo_workspace):
    """The UI's "Materialize" of one model: a GraphQL launch of __ASSET_JOB selecting it,
    with no run tags. Its model asks for `large` (meta.lakeport.profile); the run
    coordinator tags the run, and the launcher's V1Job has the `large` numbers."""
    from dagster_graphql.test.utils import execute_dagster_graphql

    from lakeport.profiles import PROFILE_TAG

    _env, _objects, platform, instance = chart
    selector = {"repositoryLocationName": "demo", "repositoryName": "__repository__",
                "pipelineName": "__ASSET_JOB",
                "assetSelection": [{"path": ["marts", "mart_customer_revenue"]}],
                "assetCheckSelection": []}
    result = execute_dagster_graphql(
        demo_workspace.create_request_context(), LAUNCH,
        {"params": {"selector": selector, "runConfigData": {}}},
    )
    launched = result.data["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run = instance.get_run_by_id(launched["run"]["runId"])
    assert run.tags[PROFILE_TAG] == "large"
    assert run.status.value == "QUEUED"
    _namespace, submitted = _submitted_job(instance, run)
    (container,) = submitted["spec"]["template"]["spec"]["containers"]
    large = platform.profile("large")
    assert container["resources"]["limits"]["memory"] == str(large.limits.memory)
    spill = next(v for v in submitted["spec"]["template"]["spec"]["volumes"]
                 if v["name"] == SPILL_VOLUME)
    assert spill["emptyDir"]["sizeLimit"] == str(large.spill_volume_size)


def test_a_run_of_a_transform_model_and_a_large_one_takes_the_larger(chart, demo_workspace):
    from dagster_graphql.test.utils import execute_dagster_graphql

    from lakeport.profiles import PROFILE_TAG

    _env, _objects, _platform, instance = chart
    selector = {"repositoryLocationName": "demo", "repositoryName": "__repository__",
                "pipelineName": "__ASSET_JOB",
                "assetSelection": [{"path": ["marts", "dim_customers"]},
                                   {"path": ["marts", "mart_customer_revenue"]}],
                "assetCheckSelection": []}
    result = execute_dagster_graphql(
        demo_workspace.create_request_context(), LAUNCH,
        {"params": {"selector": selector, "runConfigData": {}}},
    )
    run = instance.get_run_by_id(result.data["launchRun"]["run"]["runId"])
    assert run.tags[PROFILE_TAG] == "large"
    only_transform = dict(selector, assetSelection=[{"path": ["marts", "dim_customers"]}])
    result = execute_dagster_graphql(
        demo_workspace.create_request_context(), LAUNCH,
        {"params": {"selector": only_transform, "runConfigData": {}}},
    )
    run = instance.get_run_by_id(result.data["launchRun"]["run"]["runId"])
    assert run.tags[PROFILE_TAG] == "transform"


@pytest.mark.parametrize("profile", ["transform", "large"])
def test_a_profiles_scheduling_reaches_its_run_pod_and_the_defaults_survive(chart, profile):
    """platform-config/cloud puts `large` on its own node pool (selector, toleration,
    affinity, priority class, pull secret, annotations, labels) and `transform` on the
    general pool: each run pod has its own profile's keys and none of the other's, and
    still the launcher's security context and the platform volume (SHALLOW merge)."""
    _env, objects, platform, instance = chart
    scheduling = platform.profile(profile).scheduling
    _namespace, submitted = _launch(instance, objects, platform, profile)
    for version in ("1.29", "1.33"):
        kubernetes_validate.validate(submitted, version, strict=True)
    template = submitted["spec"]["template"]
    pod = template["spec"]
    assert pod.get("nodeSelector", {}) == scheduling.node_selector
    assert pod.get("tolerations", []) == [
        kubernetes.client.ApiClient().sanitize_for_serialization(
            kubernetes.client.V1Toleration(**t.model_dump(exclude_none=True))
        ) for t in scheduling.tolerations
    ]
    assert pod.get("affinity", {}) == scheduling.affinity
    assert pod.get("priorityClassName") == scheduling.priority_class_name
    assert [s["name"] for s in pod.get("imagePullSecrets", [])] == scheduling.image_pull_secrets
    annotations = template["metadata"].get("annotations", {})
    assert scheduling.pod_annotations.items() <= annotations.items()
    assert scheduling.pod_labels.items() <= template["metadata"]["labels"].items()
    # What every run pod keeps whatever its profile.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert {v["name"] for v in pod["volumes"]} == {SPILL_VOLUME, "lakeport-platform"}
    assert template["metadata"]["labels"]["app.kubernetes.io/instance"] == "lakeport"
