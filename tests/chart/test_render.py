"""helm lint/template for each environment file; every object valid for Kubernetes 1.29/1.33."""

import kubernetes_validate
import pytest
from chart_render import (
    CHART,
    CI_VALUES,
    RENDERED_ENVIRONMENTS,
    find,
    helm,
    platform_file,
    render,
    render_env,
    workloads,
)

K8S_VERSIONS = ("1.29", "1.33")
# The environment files, then the chart's ci/ values (each over the chart defaults).
VALUES = [platform_file(env) for env in RENDERED_ENVIRONMENTS] + CI_VALUES
VALUE_IDS = [f"{p.parent.name}/{p.name}" for p in VALUES]


@pytest.mark.parametrize("values", VALUES, ids=VALUE_IDS)
def test_helm_lint_strict(values):
    result = helm("lint", "--strict", str(CHART), "-f", str(values), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", VALUES, ids=VALUE_IDS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_kubernetes(values, version):
    objects = render(str(values))
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


@pytest.mark.parametrize("values", VALUES, ids=VALUE_IDS)
def test_labels_and_resources_everywhere(values):
    objects = render(str(values))
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
    dagster = {"lakeport-webserver", "lakeport-daemon", "lakeport-code-demo"}
    assert kind == dagster | {"lakeport-postgres", "lakeport-polaris", "lakeport-localstack"}
    # Cloud: RDS and real S3 are external; nothing of Postgres or LocalStack is rendered.
    # ... and a second team's code location beside the demo.
    assert cloud == dagster | {"lakeport-polaris", "lakeport-code-finance",
                               "lakeport-webserver-read-only"}
    cloud_names = {o["metadata"]["name"] for o in render_env("cloud")}
    assert not [n for n in cloud_names if "postgres" in n or "localstack" in n]


def test_separate_run_namespace_gets_what_run_pods_read():
    objects = render(str(CHART / "ci/external-services-values.yaml"))
    role = [o for o in find(objects, "Role") if o["metadata"]["name"] == "lakeport-run-launcher"]
    assert [r["metadata"]["namespace"] for r in role] == ["lakeport-runs"]
    for name in ("lakeport-platform", "lakeport-env"):
        namespaces = sorted(o["metadata"]["namespace"] for o in find(objects, "ConfigMap", name))
        assert namespaces == ["lakeport", "lakeport-runs"], name
    # No in-chart Postgres, Polaris or LocalStack, and no bootstrap Job without Polaris.
    names = {o["metadata"]["name"] for o in objects}
    assert not [n for n in names if "postgres" in n or "polaris" in n or "localstack" in n]
