"""The chart's Helm lifecycle on a real API server: upgrade, rollback, uninstall.

Runs after test_e2e_kind.py (file order) on the release it used, so a lakehouse run has
already gone through it. `helm install --wait --wait-for-jobs` itself is `make deploy` /
`scripts/e2e-local.sh up`; here:

- `helm upgrade` with a changed value succeeds, runs the pre-upgrade migrate hook, and
  rolls the webserver to the new value; `helm rollback` brings the old one back;
- the Secrets the chart generates (Postgres password, Polaris root credentials and token
  key, the principal's Secret) keep their values across an upgrade through `lookup`, and
  `helm uninstall` keeps them (resource-policy keep) while removing everything else. On a
  cluster whose in-chart services cannot run (their images cannot be pulled on the local
  cluster) this uses a second release in its own namespace, installed and upgraded with
  --no-hooks and the third-party images set to pullPolicy Never: the Secrets, `lookup` and
  the keep policy are exercised by the real API server; those services' pods are not.
"""

import base64
import datetime as dt
import subprocess
import time

import e2e_helpers as h
import pytest
import yaml
from support.tools import helm_binary

pytestmark = pytest.mark.e2e

CHART = h.REPO / "charts/lakeport"
CHANGED_LOG_LEVEL = "DEBUG"
KEEP_RELEASE = "lakeport-keep"
KEEP_NAMESPACE = "lakeport-keep"


def _helm(cluster, *args: str, namespace: str | None = None, timeout: float = 1200):
    command = [
        helm_binary(), *args, "--kube-context", cluster.context,
        "--namespace", namespace or cluster.namespace,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def _ok(result, what: str):
    assert result.returncode == 0, f"{what} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


def _revision(cluster) -> int:
    result = _ok(_helm(cluster, "status", cluster.release, "-o", "json"), "helm status")
    status = yaml.safe_load(result.stdout)
    assert status["info"]["status"] == "deployed", status["info"]
    return int(status["version"])


def _webserver_log_level(apps, cluster) -> str:
    deployment = apps.read_namespaced_deployment(f"{cluster.release}-webserver", cluster.namespace)
    command = deployment.spec.template.spec.containers[0].command or []
    # `dagster-webserver ... --dagster-log-level LEVEL` (templates/dagster/webserver.yaml)
    return command[command.index("--dagster-log-level") + 1]


def _job_events(core, namespace: str, job: str, since: dt.datetime) -> list[str]:
    events = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=Job,involvedObject.name={job}"
    ).items
    return [
        e.reason for e in events
        if (e.last_timestamp or e.event_time or e.metadata.creation_timestamp) >= since
    ]


def _rolled_out(apps, cluster, name: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while True:
        problem = h.rollout_problem(
            apps.read_namespaced_deployment(name, cluster.namespace)
        )
        if problem is None:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{name}: {problem}")
        time.sleep(3)


@pytest.fixture(scope="module")
def installed_revision(cluster) -> int:
    return _revision(cluster)


def test_upgrade_with_a_changed_value_runs_the_migrate_hook(cluster, k8s, installed_revision):
    core, apps, _ = k8s
    assert _webserver_log_level(apps, cluster) != CHANGED_LOG_LEVEL.lower()
    # Event timestamps have one-second resolution.
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    _ok(
        _helm(
            cluster, "upgrade", cluster.release, str(CHART), "-f", str(h.PLATFORM_FILE),
            "--set", f"dagster.webserver.logLevel={CHANGED_LOG_LEVEL}",
            "--wait", "--wait-for-jobs", "--timeout", "15m",
        ),
        "helm upgrade",
    )
    assert _revision(cluster) == installed_revision + 1
    assert _webserver_log_level(apps, cluster) == CHANGED_LOG_LEVEL.lower()
    # The hook Job is deleted once it succeeded (hook-delete-policy); its events stay.
    reasons = _job_events(core, cluster.namespace, f"{cluster.release}-migrate", started)
    assert "Completed" in reasons, f"no completed migrate Job since {started}: {reasons}"


def test_rollback_brings_the_previous_values_back(cluster, k8s, installed_revision):
    _, apps, _ = k8s
    upgraded = _revision(cluster)
    assert upgraded > installed_revision, "run with the upgrade test before it"
    _ok(
        _helm(cluster, "rollback", cluster.release, str(installed_revision), "--wait",
              "--timeout", "10m"),
        "helm rollback",
    )
    assert _revision(cluster) == upgraded + 1
    assert _webserver_log_level(apps, cluster) != CHANGED_LOG_LEVEL.lower()
    _rolled_out(apps, cluster, f"{cluster.release}-webserver")
    history = yaml.safe_load(
        _ok(_helm(cluster, "history", cluster.release, "-o", "json"), "helm history").stdout
    )
    assert history[-1]["description"] == f"Rollback to {installed_revision}", history[-1]


# --- Secrets the chart generates, across upgrade and uninstall -----------------------------------


def _keep_values_file(tmp_path) -> str:
    """In-chart Postgres, Polaris and LocalStack (kind's platform file), their images
    never pulled; the lakeport image as the release under test has it."""
    under_test = yaml.safe_load(h.PLATFORM_FILE.read_text())
    values = {
        "images": {
            "lakeport": under_test["images"]["lakeport"],
            **{name: {"pullPolicy": "Never"} for name in ("postgres", "polaris", "localstack")},
        },
    }
    path = tmp_path / "keep-values.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def _decoded(secret) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


@pytest.fixture(scope="module")
def keep_release(cluster, k8s, tmp_path_factory):
    from kubernetes import client

    core, _, _ = k8s
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=KEEP_NAMESPACE,
        labels={"pod-security.kubernetes.io/enforce": "restricted"},
    )))
    values = _keep_values_file(tmp_path_factory.mktemp("keep"))
    kind_file = str(h.REPO / "platform-config/kind/platform.yaml")
    args = [str(CHART), "-f", kind_file, "-f", values, "--no-hooks"]
    try:
        yield args
    finally:
        _helm(cluster, "uninstall", KEEP_RELEASE, "--no-hooks", namespace=KEEP_NAMESPACE)
        core.delete_namespace(KEEP_NAMESPACE)


def _chart_secrets(core) -> dict[str, dict[str, str]]:
    return {
        s.metadata.name: _decoded(s)
        for s in core.list_namespaced_secret(KEEP_NAMESPACE).items
        if (s.metadata.annotations or {}).get("helm.sh/resource-policy") == "keep"
    }


def test_generated_secrets_keep_their_values_across_upgrade_and_uninstall(
    cluster, k8s, keep_release
):
    core, apps, _ = k8s
    _ok(_helm(cluster, "install", KEEP_RELEASE, *keep_release, namespace=KEEP_NAMESPACE),
        "helm install (keep release)")
    before = _chart_secrets(core)
    expected = {f"{KEEP_RELEASE}-{n}" for n in
                ("postgres", "polaris-root", "polaris-token-key", "polaris-principal")}
    assert set(before) == expected, sorted(before)
    generated = {n: v for n, v in before.items() if v}
    assert set(generated) == expected - {f"{KEEP_RELEASE}-polaris-principal"}

    _ok(_helm(cluster, "upgrade", KEEP_RELEASE, *keep_release,
              "--set", f"dagster.webserver.logLevel={CHANGED_LOG_LEVEL}",
              namespace=KEEP_NAMESPACE), "helm upgrade (keep release)")
    assert _chart_secrets(core) == before, "an upgrade generated new Secret values"

    _ok(_helm(cluster, "uninstall", KEEP_RELEASE, "--no-hooks", "--wait",
              namespace=KEEP_NAMESPACE), "helm uninstall (keep release)")
    assert _chart_secrets(core) == before, "uninstall removed or changed a kept Secret"
    selector = f"app.kubernetes.io/instance={KEEP_RELEASE}"
    left = [
        *(f"deployment/{d.metadata.name}" for d in
          apps.list_namespaced_deployment(KEEP_NAMESPACE, label_selector=selector).items),
        *(f"statefulset/{s.metadata.name}" for s in
          apps.list_namespaced_stateful_set(KEEP_NAMESPACE, label_selector=selector).items),
        *(f"service/{s.metadata.name}" for s in
          core.list_namespaced_service(KEEP_NAMESPACE, label_selector=selector).items),
        *(f"configmap/{c.metadata.name}" for c in
          core.list_namespaced_config_map(KEEP_NAMESPACE, label_selector=selector).items),
        *(f"serviceaccount/{a.metadata.name}" for a in
          core.list_namespaced_service_account(KEEP_NAMESPACE, label_selector=selector).items),
    ]
    assert left == [], f"helm uninstall left: {left}"
