"""helm lint/template for each environment file; every object valid for Kubernetes 1.29/1.33."""

import kubernetes_validate
import pytest
from chart_render import CHART, ENVIRONMENTS, find, helm, platform_file, render_env, workloads

K8S_VERSIONS = ("1.29", "1.33")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_helm_lint_strict(env):
    result = helm("lint", "--strict", str(CHART), "-f", str(platform_file(env)), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_kubernetes(env, version):
    objects = render_env(env)
    assert len(objects) > 15
    problems = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    assert problems == []


def test_strict_validation_catches_an_unknown_field():
    # The check above must be able to fail: an invented field is rejected in strict mode.
    obj = render_env("kind")[0]
    broken = {**obj, "metadata": {**obj["metadata"], "colour": "blue"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.33", strict=True)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_labels_and_resources_everywhere(env):
    objects = render_env(env)
    for obj in objects:
        labels = obj["metadata"].get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                    "app.kubernetes.io/component", "app.kubernetes.io/managed-by",
                    "helm.sh/chart"):
            assert key in labels, f"{obj['kind']}/{obj['metadata']['name']} lacks label {key}"
    for obj in workloads(objects):
        spec = _pod_spec(obj)
        for c in spec.get("initContainers", []) + spec["containers"]:
            res = c.get("resources", {})
            assert res.get("requests") and res.get("limits"), (
                f"{obj['metadata']['name']}/{c['name']} has no requests/limits"
            )
            assert "memory" in res["limits"], f"{obj['metadata']['name']}/{c['name']}"


def _pod_spec(obj):
    return obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]


def test_kind_runs_everything_in_the_chart_and_cloud_only_polaris():
    kind = {o["metadata"]["name"] for o in find(render_env("kind"), "Deployment")}
    kind |= {o["metadata"]["name"] for o in find(render_env("kind"), "StatefulSet")}
    cloud = {o["metadata"]["name"] for o in find(render_env("cloud"), "Deployment")}
    cloud |= {o["metadata"]["name"] for o in find(render_env("cloud"), "StatefulSet")}
    dagster = {"lakeport-webserver", "lakeport-daemon", "lakeport-user-code"}
    assert kind == dagster | {"lakeport-postgres", "lakeport-polaris", "lakeport-localstack"}
    # Cloud: RDS and real S3 are external; nothing of Postgres or LocalStack is rendered.
    assert cloud == dagster | {"lakeport-polaris"}
    cloud_names = {o["metadata"]["name"] for o in render_env("cloud")}
    assert not [n for n in cloud_names if "postgres" in n or "localstack" in n]
