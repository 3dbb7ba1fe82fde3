"""lakeport on a real cluster, end to end: `make e2e` on kind, `make e2e-local` (and
`make test`) on the local single-node cluster of scripts/local-cluster.sh.

Skipped with the reason when there is no cluster (conftest.py). One run of the demo's
`lakehouse_job` is launched through the Dagster GraphQL API (behind the ingress on kind,
http://localhost/; through the webserver's Service on the local cluster, which has no
ingress controller) and then followed everywhere it should leave a trace: its pod (profile
resources, spill volume, platform ConfigMap), its materialization metadata (DuckDB's
memory limit derived in the pod), the compute-log bucket, the Iceberg tables in the
catalog, the UI. The services are the chart's own on kind (LocalStack, Polaris) and
external ones on the local cluster; the platform file says which
(LAKEPORT_E2E_PLATFORM_FILE). Expected values come from that file through lakeport's own
code, never from numbers written here.
"""

import base64
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import e2e_helpers as h
import pytest
import requests
from support.browser import chromium_driver
from support.processes import stop
from support.tools import helm_binary
from support.waiting import NotYet, wait_for

from lakeport.cgroup_limits import ContainerLimits, Limit
from lakeport.config import load_platform
from lakeport.duckdb_settings import derive_duckdb_settings
from lakeport.profiles import PROFILE_TAG, SPILL_MOUNT_PATH, profile_tags
from lakeport.quantities import memory_bytes

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PLATFORM = load_platform(h.PLATFORM_FILE)
PROFILE = "transform"
UI = os.environ.get("LAKEPORT_E2E_URL", "http://localhost")
ARTIFACTS = REPO / "test-artifacts/e2e"
JOB = "lakehouse_job"
DEMO_PROJECT = REPO / "src/lakeport_demo/dbt_project"


def _secret_value(core, namespace: str, name: str, key: str) -> str:
    """One Secret value, decoded; held in memory only, never printed."""
    secret = core.read_namespaced_secret(name, namespace)
    data = secret.data or {}
    if not data.get(key):
        pytest.fail(f"Secret {name} has no key {key!r}")
    return base64.b64decode(data[key]).decode()


@contextlib.contextmanager
def _port_forward(cluster, service: str, port: int):
    """`kubectl port-forward svc/<service> :<port>`; yields the local port."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.fail("kubectl not found on PATH")
    process = subprocess.Popen(
        [
            kubectl,
            "--context",
            cluster.context,
            "-n",
            cluster.namespace,
            "port-forward",
            f"svc/{service}",
            f":{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        local = None
        deadline = time.monotonic() + 30
        while local is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            local = h.forwarded_port(line)
        if local is None:
            process.terminate()
            pytest.fail(f"kubectl port-forward svc/{service}: {process.stderr.read()[-500:]}")
        yield local
    finally:
        stop(process, timeout=10)


@contextlib.contextmanager
def _reach(cluster, url: str, in_chart: bool, service: str, port: int):
    """The base URL of a service from this host: through `kubectl port-forward` when the
    chart runs it (its Service is cluster-internal), as configured when it is external."""
    if not in_chart:
        yield url.rstrip("/")
        return
    with _port_forward(cluster, service, port) as local:
        yield f"http://127.0.0.1:{local}"


def _launch(graphql, location: str, tags: dict | None = None) -> str:
    """Launch `location`'s JOB through GraphQL; its run id. Retried for 5 minutes: right
    after a deploy the code location may still be loading."""
    session, url = graphql
    variables = h.launch_variables(location, JOB, tags=tags)

    def launch():
        try:
            return h.launched_run_id(h.post_graphql(session, url, h.LAUNCH_RUN, variables))
        except h.GraphQLError as exc:
            return NotYet(str(exc))

    return wait_for(launch, what=f"launchRun {location}/{JOB}", timeout=300, interval=5)


# --- the platform is up ------------------------------------------------------------------------


def test_every_rollout_and_the_polaris_bootstrap_complete(cluster, k8s, effective_platform):
    core, apps, batch = k8s
    selector = f"app.kubernetes.io/instance={cluster.release}"

    def rollouts():
        workloads = [
            *apps.list_namespaced_deployment(cluster.namespace, label_selector=selector).items,
            *apps.list_namespaced_stateful_set(cluster.namespace, label_selector=selector).items,
        ]
        names = {w.metadata.name for w in workloads}
        _, platform = effective_platform
        wanted = {f"{cluster.release}-{n}" for n in ("webserver", "daemon")} | {
            f"{cluster.release}-code-{location.name}" for location in platform.code_locations}
        if not wanted <= names:
            return NotYet(f"missing workloads: {sorted(wanted - names)}")
        problems = [p for p in map(h.rollout_problem, workloads) if p]
        return NotYet(problems) if problems else True

    wait_for(rollouts, what="rollouts", timeout=600, interval=3)

    raw, platform = effective_platform
    if not platform.polaris.enabled:
        return  # an external catalog: nothing for the chart to bootstrap
    secret_ref = raw["catalog"]["rest"]["credentialsSecret"]

    def bootstrap():
        from kubernetes.client import ApiException

        try:
            job = batch.read_namespaced_job(
                f"{cluster.release}-polaris-bootstrap", cluster.namespace
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            job = None  # a hook Job deleted after it succeeded
        try:
            data = core.read_namespaced_secret(secret_ref["secretName"], cluster.namespace).data
        except ApiException as exc:
            if exc.status != 404:
                raise
            data = None
        state, why = h.polaris_bootstrap_state(job, data, secret_ref["key"])
        if state == "failed":
            pytest.fail(
                f"Polaris bootstrap: {why} (kubectl -n {cluster.namespace} logs "
                f"job/{cluster.release}-polaris-bootstrap)"
            )
        return state == "done" or NotYet(why)

    wait_for(bootstrap, what="Polaris bootstrap", timeout=600, interval=3)


def test_the_namespace_admits_only_restricted_pods(cluster, k8s):
    """Where the namespace enforces Pod Security `restricted` (the local cluster's does),
    the API server refuses a pod that breaks it, so the platform's pods passed the same
    admission. Server-side dry run: nothing is created."""
    from kubernetes import client
    from kubernetes.client import ApiException

    core, _, _ = k8s
    labels = core.read_namespace(cluster.namespace).metadata.labels or {}
    if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
        pytest.skip(f"namespace {cluster.namespace} does not enforce Pod Security restricted")
    # No security context at all: root allowed, privilege escalation and capabilities not
    # dropped, no seccomp profile. (A privileged container would be refused earlier, by
    # validation, where the API server runs with --allow-privileged=false.)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="lakeport-psa-probe"),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="probe", image=PLATFORM.images.lakeport.repository,
        )]),
    )
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(cluster.namespace, pod, dry_run="All")
    assert refused.value.status == 403 and "violates PodSecurity" in refused.value.body


# --- one run of the demo, launched through the ingress --------------------------------------


@dataclass
class FinishedRun:
    run_id: str
    status: str
    tags: dict
    pod: object


@pytest.fixture(scope="module")
def graphql():
    session = requests.Session()
    # One connection per request: the webserver (uvicorn) closes an idle keep-alive
    # connection after 5 s, and a poll reusing it at that moment got "Connection reset by
    # peer" (seen on the local cluster, where nothing proxies in between).
    session.headers["Connection"] = "close"
    url = f"{UI}/graphql"

    def ingress_up():
        try:
            response = session.get(f"{UI}/server_info", timeout=5)
        except requests.RequestException as exc:
            return NotYet(f"{type(exc).__name__}")
        return response.status_code == 200 or NotYet(f"HTTP {response.status_code}")

    wait_for(ingress_up, what=f"the Dagster webserver at {UI}", timeout=300, interval=3)
    return session, url


@pytest.fixture(scope="module")
def run_id(cluster, graphql, effective_platform) -> str:
    _, platform = effective_platform
    location = platform.code_locations[0].name
    # The job is daily-partitioned: build yesterday (UTC), the schedule's newest partition.
    partition = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    # The tags as the code location builds them: from the platform the chart mounted, which
    # names its ConfigMap (the repository's file alone does not, and a run pod without
    # it has no platform.yaml).
    tags = {**profile_tags(platform, PROFILE), "dagster/partition": partition}
    launched = _launch(graphql, location, tags)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "run_id.txt").write_text(launched + "\n")
    return launched


@pytest.fixture(scope="module")
def finished_run(cluster, k8s, graphql, run_id, effective_platform) -> FinishedRun:
    core, _, _ = k8s
    session, url = graphql
    _, platform = effective_platform
    namespace = platform.dagster.run_launcher.job_namespace or cluster.namespace
    seen = {}

    def finished():
        pods = core.list_namespaced_pod(namespace, label_selector=f"dagster/run-id={run_id}")
        if pods.items:
            seen["pod"] = pods.items[0]
        response = h.post_graphql(session, url, h.RUN_STATUS, {"runId": run_id})
        status = h.run_status(response)
        answer = (status, h.run_tags(response))
        return answer if status in h.TERMINAL_STATUSES else NotYet(answer)

    status, tags = wait_for(finished, what=f"run {run_id}", timeout=1800, interval=5)
    pods = core.list_namespaced_pod(namespace, label_selector=f"dagster/run-id={run_id}")
    pod = pods.items[0] if pods.items else seen.get("pod")
    return FinishedRun(run_id, status, tags, pod)


def test_the_run_succeeds(finished_run):
    assert finished_run.status == "SUCCESS", (
        f"run {finished_run.run_id} ended {finished_run.status}: "
        f"see {UI}/runs/{finished_run.run_id}"
    )


def test_the_run_pod_has_the_transform_profile(finished_run, cluster, k8s, effective_platform):
    core, _, _ = k8s
    assert finished_run.tags.get(PROFILE_TAG) == PROFILE
    assert finished_run.pod is not None, f"no pod labelled dagster/run-id={finished_run.run_id}"
    spec = finished_run.pod.spec
    profile = PLATFORM.profile(PROFILE)
    assert h.resource_problems(h.run_container(spec), profile) == []
    assert h.spill_volume_problems(spec, profile) == []

    config_maps = {
        cm.metadata.name: cm.data or {}
        for cm in core.list_namespaced_config_map(finished_run.pod.metadata.namespace).items
    }
    assert h.platform_config_map(spec, config_maps) == f"{cluster.release}-platform"
    # The file the pod read is this platform file: one source of truth, not a copy.
    _, mounted = effective_platform
    assert mounted.resource_profiles == PLATFORM.resource_profiles


def test_duckdb_ran_with_the_memory_limit_derived_in_the_pod(finished_run, graphql):
    session, url = graphql
    response = h.post_graphql(session, url, h.RUN_MATERIALIZATIONS, {"runId": finished_run.run_id})
    metadata = h.materialization_metadata(response)
    limits = h.metadata_values(metadata, "duckdb/memory_limit")
    assert limits, f"no materialization of run {finished_run.run_id} recorded duckdb/memory_limit"

    profile = PLATFORM.profile(PROFILE)
    sources = h.metadata_values(metadata, "duckdb/memory_limit_source")
    assert sources and all("cgroup" in s for s in sources.values()), sources
    for key, source in sources.items():
        # In the pod, the cgroup memory limit is the profile's limits.memory; what the run
        # worker already held when DuckDB's settings were derived is in the source text.
        in_use = re.search(r"less (\d+)MiB in use", source)
        assert in_use, f"{key}: memory_limit_source does not say what was in use: {source}"
        # ... and, for a dbt model, what the op reserved for the dbt process it started
        # after deriving them (a Python asset starts none).
        beside = re.search(r"and (\d+)MiB for dbt's process", source)
        expected = derive_duckdb_settings(
            profile,
            limits=ContainerLimits(
                memory=Limit(
                    memory_bytes(profile.limits.memory), "memory.max",
                    in_use=int(in_use.group(1)) << 20,
                ),
                cpu=None,
            ),
            spill_dir=SPILL_MOUNT_PATH,
            available_cpus=1,
            beside=int(beside.group(1)) << 20 if beside else 0,
        )
        # The source rounds both down to a MiB: allow that MiB, nothing more.
        got, want = int(limits[key].removesuffix("MiB")), int(
            expected.memory_limit.removesuffix("MiB")
        )
        assert want - 1 <= got <= want + 1, (key, limits[key], expected.memory_limit)
    assert set(h.metadata_values(metadata, "duckdb/temp_directory").values()) == {SPILL_MOUNT_PATH}
    # The dbt models' settings left room for dbt's process.
    assert any("for dbt's process" in s for s in sources.values()), sources


def test_compute_logs_are_in_the_s3_bucket(finished_run, cluster, k8s, effective_platform):
    import boto3
    from botocore.config import Config

    core, _, _ = k8s
    raw, platform = effective_platform
    credentials = raw["objectStorage"]["credentialsSecret"]
    key_id = _secret_value(
        core, cluster.namespace, credentials["secretName"], credentials["accessKeyIdKey"]
    )
    secret = _secret_value(
        core, cluster.namespace, credentials["secretName"], credentials["secretAccessKeyKey"]
    )
    endpoint = _reach(
        cluster, platform.object_storage.endpoint, platform.localstack.enabled,
        f"{cluster.release}-localstack", platform.localstack.port,
    )
    with endpoint as base_url:
        s3 = boto3.client(
            "s3",
            endpoint_url=base_url,
            region_name=platform.object_storage.region,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}),
        )
        bucket, prefix = platform.compute_logs.bucket, platform.compute_logs.prefix

        def uploaded():
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            logs = h.compute_log_keys(h.listed_keys(pages), prefix, finished_run.run_id)
            # Dagster's own log lines go to stderr, so every step leaves an .err.
            return logs if logs["err"] else NotYet(logs)

        logs = wait_for(
            uploaded,
            what=f"compute logs of run {finished_run.run_id} in s3://{bucket}",
            timeout=180,
            interval=10,
        )
    assert logs["err"]


def test_every_table_is_in_the_catalog(finished_run, cluster, k8s, effective_platform):
    from pyiceberg.catalog.rest import RestCatalog

    from lakeport.catalog import ACCESS_DELEGATION_PROPERTY
    from lakeport.dbt_manifest import prepare_manifest
    from lakeport.run_scratch import is_stored, relation_of

    core, _, _ = k8s
    raw, platform = effective_platform
    manifest = json.loads(prepare_manifest(DEMO_PROJECT, if_stale=True).read_text())
    # Every stored dbt node, and the sources (the demo's Python bronze tables).
    nodes = [*manifest["nodes"].values(), *manifest["sources"].values()]
    stored = frozenset(relation_of(n).identifier for n in nodes
                       if n["resource_type"] != "test" and is_stored(n))
    assert stored, "the demo stores no table in Iceberg"
    expected = h.ExpectedTables(stored)

    ref = raw["catalog"]["rest"]["credentialsSecret"]
    credential = _secret_value(core, cluster.namespace, ref["secretName"], ref["key"])
    uri = raw["catalog"]["rest"]["uri"]
    endpoint = _reach(
        cluster, uri, platform.polaris.enabled, f"{cluster.release}-polaris", platform.polaris.port,
    )
    with endpoint as base_url:
        path = urlsplit(uri).path if platform.polaris.enabled else ""
        catalog = RestCatalog(
            platform.catalog.name,
            uri=f"{base_url}{path}",
            warehouse=platform.catalog.name,
            credential=credential,
            scope=platform.catalog.rest.scope,
            **{ACCESS_DELEGATION_PROPERTY: ""},
        )
        listed = [t for ns in expected.namespaces for t in catalog.list_tables(ns)]
    assert expected.missing(listed) == [], f"listed: {sorted('.'.join(t) for t in listed)}"


def test_the_run_pod_sent_lineage_events_with_the_secrets_token(finished_run, effective_platform):
    """The chart passes lineage.transport and the token's Secret to the run pod: the
    endpoint (the host's, which refuses a request without the token) has the run's events."""
    from lakeport.dbt_manifest import prepare_manifest
    from lakeport.run_scratch import is_stored, relation_of

    _, platform = effective_platform
    if platform.lineage.transport.type != "http":
        pytest.skip(f"{h.PLATFORM_FILE} sends no OpenLineage events to an endpoint")
    events_file = os.environ.get("LAKEPORT_E2E_LINEAGE_EVENTS")
    assert events_file, "LAKEPORT_E2E_LINEAGE_EVENTS must name the endpoint's events file"
    events = [json.loads(line) for line in Path(events_file).read_text().splitlines()]
    mine = [e for e in events
            if e["run"]["facets"].get("parent", {}).get("run", {}).get("runId")
            == finished_run.run_id]
    assert mine, f"no event of run {finished_run.run_id} among {len(events)} received"
    complete = [e for e in mine if e["eventType"] == "COMPLETE"]
    manifest = json.loads(prepare_manifest(DEMO_PROJECT, if_stale=True).read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    written = {o["name"]: e for e in complete for o in e["outputs"]
               if e["job"]["facets"]["jobType"]["jobType"] == "MODEL"}
    for model in models:
        assert str(relation_of(model)) in written, f"no COMPLETE of model {model['name']}"
    committed = {o["name"]: o for e in complete for o in e["outputs"]
                 if e["job"]["facets"]["jobType"]["jobType"] == "ICEBERG_COMMIT"}
    for node in [*models, *manifest["sources"].values()]:
        if is_stored(node):
            output = committed.get(str(relation_of(node)))
            assert output, f"no Iceberg commit event of {relation_of(node)}"
            assert output["namespace"] == platform.lineage_dataset_namespace
            assert output["facets"]["version"]["datasetVersion"]
    # A clean run has no failed attempt (a retried step would show here as a FAIL).
    failed = [(e["job"]["name"], e["run"]["facets"].get("errorMessage", {}).get("message"))
              for e in mine if e["eventType"] == "FAIL"]
    assert failed == []


def test_helm_test_passes(finished_run, cluster):
    result = subprocess.run(
        [
            helm_binary(),
            "test",
            cluster.release,
            "--kube-context",
            cluster.context,
            "--namespace",
            cluster.namespace,
            "--timeout",
            "10m",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"helm test failed:\n{result.stdout[-3000:]}{result.stderr}"


def test_the_ui_shows_the_run(finished_run):
    with chromium_driver() as driver:
        target = ARTIFACTS / "dagster-ui-run.png"
        text = h.ui_screenshot(driver, f"{UI}/runs/{finished_run.run_id}", JOB, target)
    assert "Join the Dagster community" not in text
    # The run page names the run by its id's first 8 characters and shows its status.
    assert finished_run.run_id[:8] in text and "Success" in text
    assert target.stat().st_size > 0


# --- who launched it, other profiles, a limit breached, cleanup ---------------------------------


def test_the_run_job_was_created_with_the_daemons_service_account_token(
    finished_run, cluster, k8s
):
    """RBAC as the chart grants it: the launcher in the daemon made the Job with its own
    token. Read from the API server's audit log, which the local cluster keeps."""
    audit_log = os.environ.get("LAKEPORT_E2E_AUDIT_LOG")
    if not audit_log:
        pytest.skip("no API server audit log for this cluster (the local cluster has one)")
    _, apps, _ = k8s
    daemon = apps.read_namespaced_deployment(f"{cluster.release}-daemon", cluster.namespace)
    account = daemon.spec.template.spec.service_account_name
    job = f"dagster-run-{finished_run.run_id}"
    creators = [
        entry["user"]["username"]
        for entry in map(json.loads, Path(audit_log).read_text().splitlines())
        if entry.get("verb") == "create"
        and entry.get("objectRef", {}).get("resource") == "jobs"
        and entry.get("objectRef", {}).get("name") == job
        and entry.get("stage") == "ResponseComplete"
        and entry.get("responseStatus", {}).get("code") == 201
    ]
    assert creators == [f"system:serviceaccount:{cluster.namespace}:{account}"], creators


def _launch_and_follow(cluster, k8s, graphql, platform, tags: dict, days_ago: int):
    """Launch lakehouse_job with `tags`, wait until it ends; its status and the pods seen."""
    session, url = graphql
    location = platform.code_locations[0].name
    partition = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days_ago)).isoformat()
    variables = h.launch_variables(
        location, JOB, tags={**tags, "dagster/partition": partition}
    )
    run_id = h.launched_run_id(h.post_graphql(session, url, h.LAUNCH_RUN, variables))
    status, pods = _follow(cluster, k8s, graphql, platform, run_id)
    return run_id, status, pods


def _follow(cluster, k8s, graphql, platform, run_id: str):
    """Wait until the run ends; its status and every pod seen for it meanwhile."""
    core, _, _ = k8s
    session, url = graphql
    namespace = platform.dagster.run_launcher.job_namespace or cluster.namespace
    pods = {}

    def finished():
        for pod in core.list_namespaced_pod(
            namespace, label_selector=f"dagster/run-id={run_id}"
        ).items:
            pods[pod.metadata.name] = pod
        status = h.run_status(h.post_graphql(session, url, h.RUN_STATUS, {"runId": run_id}))
        return status if status in h.TERMINAL_STATUSES else NotYet(status)

    status = wait_for(finished, what=f"run {run_id}", timeout=900, interval=5)
    return status, list(pods.values())


def test_a_model_asking_for_the_large_profile_runs_in_a_large_pod(
    finished_run, cluster, k8s, graphql, effective_platform
):
    """mart_customer_revenue's meta asks for `large`: the job takes it, with no tag given."""
    _, platform = effective_platform
    run_id, status, pods = _launch_and_follow(cluster, k8s, graphql, platform, {}, days_ago=2)
    assert status == "SUCCESS", f"run {run_id} ended {status}"
    assert pods, f"no pod seen for run {run_id}"
    large = PLATFORM.profile("large")
    assert h.resource_problems(h.run_container(pods[0].spec), large) == []
    assert h.spill_volume_problems(pods[0].spec, large) == []


TINY = "tiny"


def test_a_run_over_its_memory_limit_is_oomkilled_and_fails_naming_the_profile(
    finished_run, cluster, k8s, graphql, effective_platform
):
    _, platform = effective_platform
    if TINY not in platform.resource_profiles:
        pytest.skip(f"the platform file has no {TINY!r} profile to breach")
    session, url = graphql
    run_id, status, pods = _launch_and_follow(
        cluster, k8s, graphql, platform, profile_tags(platform, TINY), days_ago=3
    )
    assert status == "FAILURE", f"run {run_id} ended {status}"
    reasons = [
        (s.state.terminated or (s.last_state.terminated if s.last_state else None)).reason
        for p in pods for s in (p.status.container_statuses or [])
        if s.state.terminated or (s.last_state and s.last_state.terminated)
    ]
    assert "OOMKilled" in reasons, f"run {run_id}: containers ended {reasons}"
    messages = h.run_failure_messages(
        h.post_graphql(session, url, h.RUN_EVENTS, {"runId": run_id})
    )
    assert any("OOMKilled" in m and f"resource profile '{TINY}'" in m for m in messages), messages


def test_finished_run_jobs_are_removed_by_their_ttl(finished_run, cluster, k8s, effective_platform):
    _, _, batch = k8s
    _, platform = effective_platform
    ttl = platform.dagster.run_launcher.finished_job_ttl_seconds
    if ttl is None or ttl > 600:
        pytest.skip(f"finishedJobTtlSeconds is {ttl}: too long to wait for here")
    namespace = platform.dagster.run_launcher.job_namespace or cluster.namespace
    job = f"dagster-run-{finished_run.run_id}"

    def gone():
        from kubernetes.client import ApiException

        try:
            found = batch.read_namespaced_job(job, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return NotYet(f"still there, finished {found.status.completion_time}")

    # The TTL controller deletes it `ttl` seconds after it finished; the test got here later.
    wait_for(gone, what=f"Job {job} deleted by its TTL ({ttl}s)", timeout=ttl + 120, interval=5)


SHOP = "shop"


def test_a_second_teams_location_runs_in_its_own_image_with_its_own_env(
    finished_run, cluster, k8s, graphql, effective_platform
):
    """platform-config/local-cluster's `shop`: `lakeport new-location` over a dbt project
    the demo did not write, built FROM the base image. Both locations are served side by
    side; shop's run pod has shop's image and env, and its tables go through the catalog."""
    _, platform = effective_platform
    if SHOP not in {location.name for location in platform.code_locations}:
        pytest.skip("this platform file has one code location")
    location = platform.code_location(SHOP)
    session, url = graphql
    run_id = _launch(graphql, SHOP)
    status, pods = _follow(cluster, k8s, graphql, platform, run_id)
    assert status == "SUCCESS", f"run {run_id} of {SHOP} ended {status}"
    assert pods, f"no pod seen for run {run_id}"
    container = h.run_container(pods[0].spec)
    assert container.image == location.image.reference
    env = {e.name: e for e in container.env or []}
    assert env["LAKEPORT_TEST_TEAM"].value == "shop"
    # The platform's own secret env is still there, beside the location's.
    assert env["LAKEPORT_POSTGRES_PASSWORD"].value_from.secret_key_ref is not None
    demo = platform.code_location(platform.code_locations[0].name)
    assert demo.image.reference != location.image.reference

    response = h.post_graphql(session, url, h.RUN_MATERIALIZATIONS, {"runId": run_id})
    tables = h.metadata_values(h.materialization_metadata(response), "iceberg/table")
    assert set(tables.values()) == {"main.shop_products", "main.shop_sales",
                                    "main.category_revenue"}, tables
