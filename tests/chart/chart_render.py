"""Render charts/lakeport with the real helm binary; shared by the chart tests."""

import functools
import os
import subprocess
from pathlib import Path

import yaml
from support.tools import helm_binary

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/lakeport"
ENVIRONMENTS = ("kind", "cloud")
# Also rendered, linted, validated and checked by checkov: the local cluster's file (external
# PostgreSQL, S3 and catalog), which the e2e tests install on a real cluster.
RENDERED_ENVIRONMENTS = (*ENVIRONMENTS, "local-cluster")
RELEASE = "lakeport"
NAMESPACE = "lakeport"


# charts/lakeport/ci/*-values.yaml: extra shapes of the chart (defaults only, external services).
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))


def platform_file(env: str) -> Path:
    return ROOT / "platform-config" / env / "platform.yaml"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, check=check,
        env={**os.environ, "HELM_CACHE_HOME": "/tmp/lakeport-helm-cache"},
    )


@functools.cache
def render_text(*values_files: str, sets: tuple[str, ...] = ()) -> str:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for f in values_files:
        args += ["-f", f]
    for s in sets:
        args += ["--set", s]
    return helm(*args).stdout


def render(*values_files: str, sets: tuple[str, ...] = ()) -> list[dict]:
    """Every rendered object (hooks and test pods included)."""
    docs = yaml.safe_load_all(render_text(*values_files, sets=sets))
    return [d for d in docs if d]


def render_env(env: str) -> list[dict]:
    return render(str(platform_file(env)))


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [
        o for o in objects
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def dagster_yaml(objects: list[dict]) -> dict:
    cm = one(objects, "ConfigMap", f"{RELEASE}-dagster-instance")
    return yaml.safe_load(cm["data"]["dagster.yaml"])


def effective_platform_text(objects: list[dict]) -> str:
    return one(objects, "ConfigMap", f"{RELEASE}-platform")["data"]["platform.yaml"]


def pod_spec(obj: dict) -> dict:
    if obj["kind"] == "Pod":
        return obj["spec"]
    return obj["spec"]["template"]["spec"]


def workloads(objects: list[dict]) -> list[dict]:
    kinds = {"Deployment", "StatefulSet", "Job", "Pod", "DaemonSet", "CronJob"}
    return [o for o in objects if o["kind"] in kinds]
