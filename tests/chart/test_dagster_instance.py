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
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
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
    launcher = instance.run_launcher
    assert launcher.job_namespace == platform.dagster.run_launcher.job_namespace == NAMESPACE
    assert launcher.image_pull_policy == platform.images.lakeport.pull_policy
    logs = instance.compute_log_manager
    assert logs._s3_bucket == platform.compute_logs.bucket
    assert logs._s3_prefix == platform.compute_logs.prefix
    assert logs._upload_interval == platform.compute_logs.upload_interval_seconds


def _launch(instance, platform, profile):
    tags = profile_tags(platform, profile)
    image = f"{platform.images.lakeport.repository}:{platform.images.lakeport.tag}"
    code_origin = JobPythonOrigin(
        "tiny_job",
        RepositoryPythonOrigin(
            executable_path=sys.executable,
            code_pointer=FileCodePointer(__file__, "tiny_job"),
            container_image=image,
            entry_point=["dagster"],
            container_context=None,
        ),
    )
    remote_origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(
            GrpcServerCodeLocationOrigin(
                host="lakeport-user-code", port=4000, location_name="demo"
            ),
            "__repository__",
        ),
        "tiny_job",
    )
    run = instance.create_run_for_job(
        tiny_job, tags=tags, remote_job_origin=remote_origin, job_code_origin=code_origin
    )
    launcher = instance.run_launcher
    recorder = JobRecorder()
    launcher._api_client = recorder
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    assert len(recorder.submitted) == 1
    namespace, job_obj = recorder.submitted[0]
    return namespace, kubernetes.client.ApiClient().sanitize_for_serialization(job_obj)


@pytest.mark.parametrize("profile", ["transform", "large"])
def test_run_job_carries_the_profile_and_the_platform(chart, profile):
    env, objects, platform, instance = chart
    namespace, submitted = _launch(instance, platform, profile)
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
    assert container["image"] == (
        f"{platform.images.lakeport.repository}:{platform.images.lakeport.tag}"
    )

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
