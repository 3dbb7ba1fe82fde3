"""The kind tooling, checked without Docker or a cluster (runs under `make test`):
hadolint over the Dockerfile, shellcheck over every shell script, yamllint over the kind
config and the platform files, the image's contract with the chart, and the Makefile's
kind targets (listed by `make help`, refusing to start without docker/kind/kubectl and
saying which tool is missing)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lakeport.config import load_platform

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOCKERFILE = REPO / "images/lakeport/Dockerfile"
KIND_CONFIG = REPO / "kind/kind-config.yaml"
KIND_SCRIPT = REPO / "scripts/kind.sh"
KIND_TARGETS = ("kind-up", "images", "deploy", "e2e", "down")


def _run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


# --- linters ---------------------------------------------------------------------------------


def test_hadolint_passes_the_dockerfile():
    result = _run(str(BIN / "hadolint"), str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_really_checking(tmp_path):
    # An unpinned base image is DL3007: the linter run above is not a silent no-op.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    result = _run(str(BIN / "hadolint"), str(bad))
    assert result.returncode != 0 and "DL3007" in result.stdout


def _shell_scripts() -> list[Path]:
    """Every shell script of the repository (tracked or new, not ignored): *.sh and files
    whose first line is a sh/bash shebang, wherever they live (.ci/run included)."""
    listed = _run("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    scripts = []
    for name in sorted(set(listed.stdout.split())):
        path = REPO / name
        if not path.is_file():
            continue
        if path.suffix in (".sh", ".bash"):
            scripts.append(path)
            continue
        with path.open("rb") as handle:
            first = handle.readline(200)
        if re.match(rb"#!\s*(/usr/bin/env\s+)?(/bin/|/usr/bin/)?(ba|da)?sh\b", first):
            scripts.append(path)
    return scripts


def test_every_shell_script_is_found():
    found = {p.relative_to(REPO).as_posix() for p in _shell_scripts()}
    assert {"scripts/kind.sh", ".ci/run"} <= found


def test_shellcheck_passes_every_shell_script():
    scripts = _shell_scripts()
    result = _run(str(BIN / "shellcheck"), "--external-sources", *map(str, scripts), cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_passes_the_kind_config_and_platform_files():
    files = [KIND_CONFIG, *sorted((REPO / "platform-config").glob("*/platform.yaml"))]
    assert len(files) >= 4
    result = _run(
        str(BIN / "yamllint"), "--strict", "-c", str(REPO / ".yamllint.yaml"), *map(str, files)
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the kind cluster config ------------------------------------------------------------------


def test_kind_config_publishes_80_and_443_on_the_ingress_node():
    config = yaml.safe_load(KIND_CONFIG.read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["name"] == "lakeport"
    ingress_nodes = [
        n for n in config["nodes"] if n.get("labels", {}).get("ingress-ready") == "true"
    ]
    assert len(ingress_nodes) == 1
    ports = {(m["containerPort"], m["hostPort"]) for m in ingress_nodes[0]["extraPortMappings"]}
    assert ports == {(80, 80), (443, 443)}


def test_ingress_class_and_host_match_what_kind_up_installs():
    platform = load_platform(REPO / "platform-config/kind/platform.yaml")
    script = KIND_SCRIPT.read_text()
    # ingress-nginx's kind manifest creates the IngressClass "nginx", pinned to a release.
    assert re.search(r'INGRESS_NGINX_VERSION="controller-v\d+\.\d+\.\d+"', script)
    assert "deploy/static/provider/kind/deploy.yaml" in script
    assert platform.ingress.enabled and platform.ingress.class_name == "nginx"
    assert platform.ingress.host == "localhost"


# --- the image -----------------------------------------------------------------------------------


def _stages() -> list[list[str]]:
    """Dockerfile instructions (continuations joined), split into build stages."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def _named_stages() -> dict[str, list[str]]:
    """Stages by their `AS` name; the last (unnamed) one is the default target, ""."""
    named = {}
    for stage in _stages():
        words = stage[0].split()
        named[words[3] if len(words) > 3 and words[2].upper() == "AS" else ""] = stage
    return named


def test_base_image_is_an_exact_slim_python_311():
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base, "the base image is one ARG, used by every stage"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base.group(1)), base.group(1)
    # Every stage starts from it or from a stage of this file.
    names = set(_named_stages())
    for stage in _stages():
        parent = stage[0].split()[1]
        assert parent == "${PYTHON_IMAGE}" or parent in names, stage[0]
    assert sum(s[0].split()[1] == "${PYTHON_IMAGE}" for s in _stages()) == 2


def test_final_stages_run_as_a_numeric_non_root_user_without_build_tools():
    """The platform image (the default target) and the base teams build FROM."""
    stages = _named_stages()
    uid = re.search(r"^ARG UID=(\d+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert uid and int(uid.group(1)) >= 1000
    for name in ("", "base"):
        final = stages[name]
        assert final[0].split()[1] == "runtime", final[0]
        users = [ln.split(None, 1)[1] for ln in final if ln.upper().startswith("USER ")]
        assert users and users[-1] in ("${UID}:${UID}", f"{uid.group(1)}:{uid.group(1)}")
        joined = "\n".join(stages["runtime"] + final)
        for tool in ("uv pip", "apt-get", "gcc", "build-essential", "pip install"):
            assert tool not in joined, f"the {name or 'default'} image runs {tool!r}"
    assert re.search(r"DAGSTER_HOME=/opt/dagster/dagster_home", "\n".join(stages["runtime"]))
    # The base holds the package only: the demo is copied in a later build stage.
    assert not [ln for ln in stages["build-base"] if "lakeport_demo" in ln and "COPY" in ln]
    assert any("COPY --from=build-base" in ln for ln in stages["base"])


def test_image_contract_with_the_chart():
    """The user, DAGSTER_HOME and platform dir the chart assumes are the image's."""
    helpers = (REPO / "charts/lakeport/templates/_helpers.tpl").read_text()
    text = DOCKERFILE.read_text()
    chart_uid = re.search(r'define "lakeport\.uid" -}}(\d+)', helpers)
    chart_home = re.search(r'define "lakeport\.dagsterHome" -}}([^{]+)', helpers)
    assert chart_uid and chart_home
    assert f"ARG UID={chart_uid.group(1)}" in text
    assert f"DAGSTER_HOME={chart_home.group(1)}" in text


def test_build_stages_install_the_pinned_set_and_compile_the_manifest():
    stages = _named_stages()
    assert "-c constraints.txt" in "\n".join(stages["build-base"])
    build = "\n".join(stages["build"])
    # The code location's own prepare step (lakeport.dbt_manifest.prepare_manifest).
    assert "python -m lakeport_demo.prepare" in build
    assert "target/manifest.json" in build


def test_dockerignore_allows_exactly_what_the_dockerfile_copies():
    patterns = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert patterns[0] == "*", "the context is an allow-list: everything else stays out"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for stage in _stages():
        for line in stage:
            if line.upper().startswith("COPY ") and "--from" not in line:
                copied.update(p.rstrip("/") for p in line.split()[1:-1])

    def covers(entry: str, path: str) -> bool:
        return path == entry or path.startswith(entry + "/")

    assert all(any(covers(a, c) for a in allowed) for c in copied), (copied, allowed)
    assert all(any(covers(a, c) for c in copied) for a in allowed), (copied, allowed)
    for artifact in ("src/*/dbt_project/target", "**/__pycache__"):
        assert artifact in patterns


def test_kind_script_image_is_the_platform_files_image():
    image = load_platform(REPO / "platform-config/kind/platform.yaml").images.lakeport
    assert f'IMAGE="{image.repository}:{image.tag}"' in KIND_SCRIPT.read_text()
    # Loaded with `kind load`, never pulled.
    assert image.pull_policy == "Never"


# --- the Makefile's kind targets ---------------------------------------------------------------


def _make(target: str, path: str, tmp_path: Path) -> subprocess.CompletedProcess:
    make = shutil.which("make")
    assert make, "make is not installed"
    return _run(
        make,
        "--no-print-directory",
        "-C",
        str(REPO),
        target,
        # No tools from `make install` either (.tools/bin has kubectl and helm).
        env={"PATH": path, "HOME": str(tmp_path), "LAKEPORT_TOOLS_BIN": str(tmp_path / "none"),
             "TOOLS_BIN": str(tmp_path / "none")},
    )


def _bin_dir(tmp_path: Path, name: str, tools: dict[str, str]) -> Path:
    """A directory for PATH holding bash/dirname (the script needs them) and `tools`:
    name -> shell script body."""
    directory = tmp_path / name
    directory.mkdir()
    for real in ("bash", "dirname", "env", "grep"):
        (directory / real).symlink_to(shutil.which(real))
    for tool, body in tools.items():
        (directory / tool).write_text(f"#!/bin/sh\n{body}\n")
        (directory / tool).chmod(0o755)
    return directory


def test_make_help_lists_the_kind_targets():
    result = _run(shutil.which("make"), "--no-print-directory", "-C", str(REPO), "help")
    assert result.returncode == 0, result.stderr
    listed = {m.group(1): m.group(2) for m in re.finditer(r"make (\S+)\s+(.+)", result.stdout)}
    for target in KIND_TARGETS:
        assert target in listed and listed[target].strip(), f"`make help` does not list {target}"


@pytest.mark.parametrize("target", ["kind-up", "images", "deploy", "e2e", "down"])
def test_kind_targets_name_docker_and_kind_when_both_are_missing(target, tmp_path):
    bare = _bin_dir(tmp_path, "bare", {})
    result = _make(target, str(bare), tmp_path)
    assert result.returncode != 0
    assert "missing tool: docker is not on PATH" in result.stderr
    assert "missing tool: kind is not on PATH" in result.stderr
    # Stopped at the check: nothing was attempted.
    assert "creating kind cluster" not in result.stderr


def test_kind_up_names_only_docker_when_kind_and_kubectl_are_there(tmp_path):
    tools = _bin_dir(tmp_path, "nodocker", {"kind": "exit 0", "kubectl": "exit 0"})
    result = _make("kind-up", str(tools), tmp_path)
    assert result.returncode != 0
    assert "missing tool: docker" in result.stderr
    assert (
        "missing tool: kind" not in result.stderr and "missing tool: kubectl" not in result.stderr
    )


def test_deploy_names_kubectl_when_it_is_missing(tmp_path):
    tools = _bin_dir(tmp_path, "nokubectl", {"kind": "exit 0", "docker": "exit 0"})
    result = _make("deploy", str(tools), tmp_path)
    assert result.returncode != 0
    assert "missing tool: kubectl is not on PATH" in result.stderr


def test_kind_up_refuses_a_docker_client_without_an_engine(tmp_path):
    real_docker = shutil.which("docker")
    tools = {"kind": "exit 0", "kubectl": "exit 0"}
    if real_docker is None or _run(real_docker, "info").returncode == 0:
        # No client here (or one with an engine): a client that cannot reach its engine.
        tools["docker"] = 'echo "Cannot connect to the Docker daemon" >&2; exit 1'
    directory = _bin_dir(tmp_path, "noengine", tools)
    if "docker" not in tools:
        (directory / "docker").symlink_to(real_docker)
    result = _make("kind-up", str(directory), tmp_path)
    assert result.returncode != 0
    assert "docker is installed but its engine is not reachable" in result.stderr
    assert "missing tool" not in result.stderr


def test_kind_script_usage_error(tmp_path):
    result = _run("bash", str(KIND_SCRIPT), "nonsense")
    assert result.returncode != 0 and "usage: scripts/kind.sh" in result.stderr


def test_make_kind_targets_are_phony():
    makefile = (REPO / "Makefile").read_text()
    phony = set()
    for match in re.finditer(r"^\.PHONY:(.*)$", makefile, re.MULTILINE):
        phony.update(match.group(1).split())
    assert set(KIND_TARGETS) <= phony


# --- scripts/kind.sh's flow, with stand-ins for docker/kind/kubectl/helm ------------------------
# No machine here has a Docker engine or a cluster, so the real tools cannot run. These
# stand-ins only record their command lines (and answer the few questions the script
# asks), so every branch of the script runs here: which commands, in which order, with
# which arguments, and what is skipped when the work is already done.

_STANDINS = {
    "docker": """
case "$1" in
  version) echo "linux/amd64" ;;
  exec) [ -n "$FAKE_IMAGE_LOADED" ] || exit 1 ;;
esac""",
    "kind": """
case "$1 $2" in
  "get clusters") [ -z "$FAKE_CLUSTERS" ] || printf '%s\\n' $FAKE_CLUSTERS ;;
  "load docker-image") exit "${FAKE_LOAD_RC:-0}" ;;
esac""",
    "kubectl": """
case "$*" in
  *"get namespace"*) exit "${FAKE_NAMESPACE_RC:-1}" ;;
  *"get deployments"*)
    printf 'lakeport-webserver\\tlakeport:dev\\n'
    printf 'lakeport-polaris\\tapache/polaris:1.2.0-incubating\\n' ;;
esac""",
    "helm": "",
}


def _flow(tmp_path: Path, command: str, **fake_env) -> tuple[subprocess.CompletedProcess, list]:
    log = tmp_path / "commands.log"
    log.write_text("")
    tools = {name: f'echo "{name} $*" >> "$FAKE_LOG"{body}' for name, body in _STANDINS.items()}
    directory = tmp_path / "standins"
    if not directory.exists():
        directory = _bin_dir(tmp_path, "standins", tools)
        for real in ("mktemp", "rm", "tail"):
            (directory / real).symlink_to(shutil.which(real))
    env = {"PATH": str(directory), "HOME": str(tmp_path), "FAKE_LOG": str(log),
           "LAKEPORT_TOOLS_BIN": str(tmp_path / "none"), **fake_env}
    result = _run("bash", str(KIND_SCRIPT), command, env=env)
    return result, log.read_text().splitlines()


def test_kind_up_creates_the_cluster_then_ingress_nginx(tmp_path):
    result, commands = _flow(tmp_path, "up")
    assert result.returncode == 0, result.stderr
    create = f"kind create cluster --name lakeport --config {KIND_CONFIG} --wait 180s"
    manifest = re.search(r'INGRESS_NGINX_VERSION="([^"]+)"', KIND_SCRIPT.read_text()).group(1)
    assert create in commands
    apply = [c for c in commands if " apply -f " in c]
    assert apply == [
        "kubectl --context kind-lakeport apply -f https://raw.githubusercontent.com/kubernetes/"
        f"ingress-nginx/{manifest}/deploy/static/provider/kind/deploy.yaml"
    ]
    assert commands.index(create) < commands.index(apply[0])
    waits = [c for c in commands if "rollout status" in c or " wait pod" in c]
    assert len(waits) == 2 and commands.index(apply[0]) < commands.index(waits[0])


def test_kind_up_keeps_an_existing_cluster(tmp_path):
    result, commands = _flow(tmp_path, "up", FAKE_CLUSTERS="other lakeport")
    assert result.returncode == 0, result.stderr
    assert not [c for c in commands if c.startswith("kind create")]
    assert "kind export kubeconfig --name lakeport" in commands
    assert "exists; keeping it" in result.stderr


def test_images_builds_loads_and_rolls_only_the_lakeport_deployments(tmp_path):
    result, commands = _flow(tmp_path, "images", FAKE_CLUSTERS="lakeport", FAKE_NAMESPACE_RC="0")
    assert result.returncode == 0, result.stderr
    build = f"docker build --quiet --file {DOCKERFILE} --tag lakeport:dev {REPO}"
    load = "kind load docker-image lakeport:dev --name lakeport"
    assert commands.index(build) < commands.index(load)
    restarts = [c for c in commands if "rollout restart" in c]
    assert restarts == [
        "kubectl --context kind-lakeport -n lakeport rollout restart deployment/lakeport-webserver"
    ]


def test_images_falls_back_to_a_single_platform_archive(tmp_path):
    result, commands = _flow(tmp_path, "images", FAKE_CLUSTERS="lakeport", FAKE_LOAD_RC="1")
    assert result.returncode == 0, result.stderr
    save = [c for c in commands if c.startswith("docker image save")]
    assert (
        len(save) == 1 and "--platform linux/amd64" in save[0] and save[0].endswith("lakeport:dev")
    )
    archive = save[0].split("--output ")[1].split()[0]
    assert f"kind load image-archive {archive} --name lakeport" in commands
    assert not Path(archive).exists(), "the archive is removed"
    # No release yet: nothing to restart.
    assert not [c for c in commands if "rollout restart" in c]


def test_images_without_a_cluster_says_run_kind_up(tmp_path):
    result, commands = _flow(tmp_path, "images")
    assert result.returncode != 0
    assert "no kind cluster named 'lakeport': run 'make kind-up' first" in result.stderr
    assert not [c for c in commands if c.startswith("docker build")]


def test_deploy_without_the_image_says_run_images(tmp_path):
    result, commands = _flow(tmp_path, "deploy", FAKE_CLUSTERS="lakeport")
    assert result.returncode != 0
    assert "image lakeport:dev is not in kind cluster 'lakeport'" in result.stderr
    assert "make images" in result.stderr
    assert not [c for c in commands if c.startswith("helm")]


def test_deploy_installs_the_chart_with_the_kind_platform_file(tmp_path):
    result, commands = _flow(tmp_path, "deploy", FAKE_CLUSTERS="lakeport", FAKE_IMAGE_LOADED="1")
    assert result.returncode == 0, result.stderr
    assert [c for c in commands if c.startswith("helm")] == [
        f"helm upgrade --install lakeport {REPO}/charts/lakeport --kube-context kind-lakeport "
        "--namespace lakeport --create-namespace "
        f"--values {REPO}/platform-config/kind/platform.yaml --wait --wait-for-jobs --timeout 15m"
    ]


def test_down_deletes_the_cluster_and_is_fine_without_one(tmp_path):
    result, commands = _flow(tmp_path, "down", FAKE_CLUSTERS="lakeport")
    assert result.returncode == 0 and "kind delete cluster --name lakeport" in commands
    result, commands = _flow(tmp_path, "down")
    assert result.returncode == 0 and not [c for c in commands if c.startswith("kind delete")]
    assert "nothing to delete" in result.stderr
