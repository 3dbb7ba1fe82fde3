"""Secrets stay in Secrets; the launcher's permissions stay in its namespace."""

import base64
import re
import shutil

import pytest
import yaml
from chart_render import (
    CHART,
    ENVIRONMENTS,
    NAMESPACE,
    RELEASE,
    find,
    helm,
    one,
    platform_file,
    pod_spec,
    render_env,
    workloads,
)

SECRET_ENV = {"LAKEPORT_POSTGRES_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
              "LAKEPORT_CATALOG_CREDENTIAL", "POSTGRES_PASSWORD", "QUARKUS_DATASOURCE_PASSWORD",
              "POLARIS_ROOT_CREDENTIAL", "LAKEPORT_LINEAGE_TOKEN"}


def _render_with_notes(env: str, tmp_path) -> tuple[list[dict], str]:
    """Objects and NOTES.txt from one render (generated secrets differ between renders).
    `helm template` never prints NOTES.txt and `helm install --dry-run` wants a cluster, so
    a copy of the chart renders NOTES.txt's text through `tpl` into one more document."""
    chart = tmp_path / "lakeport"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates/NOTES.txt", chart / "notes-under-test.txt")
    (chart / "templates/notes-under-test.yaml").write_text(
        'kind: RenderedNotes\ntext: {{ tpl (.Files.Get "notes-under-test.txt") . | toJson }}\n'
    )
    out = helm("template", RELEASE, str(chart), "--namespace", NAMESPACE,
               "-f", str(platform_file(env))).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    (notes,) = [d["text"] for d in docs if d["kind"] == "RenderedNotes"]
    return [d for d in docs if d["kind"] != "RenderedNotes"], notes


def _secret_values(objects):
    values = []
    for secret in find(objects, "Secret"):
        values += [base64.b64decode(v).decode() for v in (secret.get("data") or {}).values()]
        values += list((secret.get("stringData") or {}).values())
    return values


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_secret_value_in_configmaps_or_notes(env, tmp_path):
    objects, notes = _render_with_notes(env, tmp_path)
    values = _secret_values(objects)
    if env == "kind":
        # Generated Postgres password, generated Polaris root credential, LocalStack keys.
        assert len(values) >= 4
    assert "localhost" in notes or "lakeport.example.com" in notes  # NOTES did render
    configmaps = "\n".join(yaml.safe_dump(cm.get("data", {})) for cm in find(objects, "ConfigMap"))
    for value in values:
        # "test" (LocalStack's dummy key) is too short to search for as a substring; its
        # key names must still not appear with it as a value.
        if len(value) < 8:
            assert not re.search(rf"(?m)^\s*[A-Za-z_]+:\s*{re.escape(value)}\s*$", configmaps)
            continue
        assert value not in configmaps
        assert value not in notes


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_secret_env_only_by_reference(env):
    for obj in workloads(render_env(env)):
        spec = pod_spec(obj)
        for container in spec.get("initContainers", []) + spec["containers"]:
            for var in container.get("env", []):
                if var["name"] in SECRET_ENV:
                    assert "value" not in var, f"{obj['metadata']['name']}: {var['name']}"
                    assert "secretKeyRef" in var["valueFrom"], var["name"]
            names = [v["name"] for v in container.get("env", [])]
            assert len(names) == len(set(names)), f"{obj['metadata']['name']}: {names}"


def test_the_lineage_token_reaches_every_dagster_pod_by_reference():
    objects = render_env("cloud")
    ref = {"secretKeyRef": {"name": "lakeport-lineage", "key": "token"}}
    names = ["lakeport-webserver", "lakeport-daemon", "lakeport-code-demo", "lakeport-code-finance"]
    for name in names:
        (container,) = pod_spec(one(objects, "Deployment", name))["containers"]
        (token,) = [v for v in container["env"] if v["name"] == "LAKEPORT_LINEAGE_TOKEN"]
        assert token["valueFrom"] == ref, name
    # The kind file sends no lineage: no token variable anywhere.
    for obj in workloads(render_env("kind")):
        for container in pod_spec(obj)["containers"]:
            assert "LAKEPORT_LINEAGE_TOKEN" not in {v["name"] for v in container.get("env", [])}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_catalog_credential_optional_only_in_long_running_pods(env):
    objects = render_env(env)
    for name in ("lakeport-webserver", "lakeport-daemon", "lakeport-code-demo"):
        (container,) = pod_spec(one(objects, "Deployment", name))["containers"]
        ref = next(v for v in container["env"] if v["name"] == "LAKEPORT_CATALOG_CREDENTIAL")
        assert ref["valueFrom"]["secretKeyRef"] == {
            "name": "lakeport-polaris-principal", "key": "credential", "optional": True,
        }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_nothing_cluster_wide(env):
    objects = render_env(env)
    assert find(objects, "ClusterRole") == []
    assert find(objects, "ClusterRoleBinding") == []
    role = one(objects, "Role", "lakeport-run-launcher")
    assert role["metadata"]["namespace"] == NAMESPACE
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}
    assert rules == {
        (("batch",), ("jobs",)): {"create", "get", "list", "watch", "delete"},
        (("batch",), ("jobs/status",)): {"get"},
        (("",), ("pods",)): {"get", "list", "watch", "delete"},
        (("",), ("pods/log",)): {"get"},
        (("",), ("events",)): {"get", "list", "watch"},
    }
    binding = one(objects, "RoleBinding", "lakeport-run-launcher")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "lakeport-run-launcher"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "lakeport-dagster",
                                    "namespace": NAMESPACE}]
    # The bootstrap Job may read and patch one Secret, by name, and nothing else.
    boot = one(objects, "Role", "lakeport-polaris-bootstrap")
    assert boot["rules"] == [{"apiGroups": [""], "resources": ["secrets"],
                              "resourceNames": ["lakeport-polaris-principal"],
                              "verbs": ["get", "patch"]}]
    for role in find(objects, "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], role


def test_generated_secrets_survive_upgrades_and_uninstall():
    objects = render_env("kind")
    for name in ("lakeport-postgres", "lakeport-polaris-root", "lakeport-polaris-principal",
                 "lakeport-polaris-token-key"):
        secret = one(objects, "Secret", name)
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # The templates reuse a live value through lookup rather than generating a new one.
    for template in ("postgres/secret.yaml", "polaris/secrets.yaml"):
        text = (CHART / "templates" / template).read_text()
        assert "lookup" in text and "randAlphaNum" in text
    # Two renders give different generated values (lookup is empty offline): the keep/lookup
    # pair above is what keeps them stable on a cluster.
    root = base64.b64decode(one(objects, "Secret", "lakeport-polaris-root")["data"]["credentials"])
    client_id, _, client_secret = root.decode().partition(":")
    assert client_id == "root" and len(client_secret) == 40


def test_cloud_uses_only_the_secrets_it_names():
    objects = render_env("cloud")
    # External RDS password and Polaris root credentials are the user's; the chart makes
    # only the (empty) Secret the bootstrap Job fills.
    secrets = sorted(s["metadata"]["name"] for s in find(objects, "Secret"))
    assert secrets == ["lakeport-polaris-principal", "lakeport-polaris-token-key"]
    (daemon,) = pod_spec(one(objects, "Deployment", "lakeport-daemon"))["containers"]
    ref = next(v for v in daemon["env"] if v["name"] == "LAKEPORT_POSTGRES_PASSWORD")
    assert ref["valueFrom"]["secretKeyRef"] == {"name": "lakeport-rds", "key": "password"}
    assert not [v for v in daemon["env"] if v["name"].startswith("AWS_")]  # IRSA


def test_notes_tell_how_to_reach_the_ui(tmp_path):
    _objects, kind_notes = _render_with_notes("kind", tmp_path / "kind")
    assert "http://localhost/" in kind_notes
    _objects, cloud_notes = _render_with_notes("cloud", tmp_path / "cloud")
    assert "https://lakeport.example.com/" in cloud_notes
    assert "port-forward" not in kind_notes + cloud_notes
