"""The commands the chart runs, run or parsed by the real programs."""

import os
import subprocess
import sys

import pytest
import yaml
from chart_render import one, pod_spec, render_env

WORKSPACE = "/opt/dagster/workspace/workspace.yaml"


def _with_local_workspace(command, objects, tmp_path):
    """click checks the workspace file exists: point the command at the rendered one."""
    path = tmp_path / "workspace.yaml"
    workspace = one(objects, "ConfigMap", "lakeport-dagster-workspace")["data"]["workspace.yaml"]
    path.write_text(workspace)
    assert WORKSPACE in command
    return [str(path) if arg == WORKSPACE else arg for arg in command], str(path)


def _container(objects, kind, name, container=None, init=False):
    spec = pod_spec(one(objects, kind, name))
    containers = spec["initContainers"] if init else spec["containers"]
    if container is None:
        return containers[0]
    return next(c for c in containers if c["name"] == container)


@pytest.mark.parametrize("env", ["kind", "cloud"])
def test_webserver_command_parses(env, tmp_path):
    from dagster_webserver.cli import create_dagster_webserver_cli

    objects = render_env(env)
    command = _container(objects, "Deployment", "lakeport-webserver")["command"]
    assert command[0] == "dagster-webserver"
    command, workspace = _with_local_workspace(command, objects, tmp_path)
    cli = create_dagster_webserver_cli()
    params = cli.make_context("dagster-webserver", list(command[1:])).params
    assert params["host"] == "0.0.0.0"
    assert params["port"] == 3000
    assert params["workspace"] == (workspace,)
    assert params["dagster_log_level"] == "info"
    # Nothing loads user code in the webserver process.
    assert not params["module_name"] and not params["python_file"]


@pytest.mark.parametrize("env", ["kind", "cloud"])
def test_daemon_command_parses(env, tmp_path):
    from dagster._daemon.cli import cli

    objects = render_env(env)
    command = _container(objects, "Deployment", "lakeport-daemon")["command"]
    assert command[:2] == ["dagster-daemon", "run"]
    command, workspace = _with_local_workspace(command, objects, tmp_path)
    root = cli.make_context("dagster-daemon", list(command[1:]), obj={})
    _name, run, rest = cli.resolve_command(root, root._protected_args + root.args)
    params = run.make_context("run", rest, parent=root).params
    assert params["workspace"] == (workspace,)
    assert params["log_level"] == "info"


def test_wait_for_postgres_returns_once_postgres_listens(postgres_server):
    init = _container(render_env("kind"), "Deployment", "lakeport-daemon", "wait-for-postgres",
                      init=True)
    assert init["command"][:2] == ["python", "-c"]
    script, _host, _port = init["command"][2:]
    result = subprocess.run(
        [sys.executable, "-c", script, postgres_server.host, str(postgres_server.port)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_postgres_init_script_creates_the_polaris_database(postgres_server, tmp_path):
    """The script the postgres image runs on first start, run by bash with psql against a
    real server (the image connects over its socket; here host/port/password say where)."""
    import secrets

    from lakeport.dev.postgres import find_postgres_bin

    name = f"chart_polaris_{secrets.token_hex(4)}"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"postgres": {"polarisDatabase": name}}))
    from chart_render import platform_file, render

    objects = render(str(platform_file("kind")), str(values))
    script = one(objects, "ConfigMap", "lakeport-postgres-init")["data"]["10-databases.sh"]
    sts = one(objects, "StatefulSet", "lakeport-postgres")
    env_vars = {e["name"]: e.get("value") for e in pod_spec(sts)["containers"][0]["env"]}
    env = {
        "PATH": f"{find_postgres_bin()}:{os.environ['PATH']}",
        "POSTGRES_USER": env_vars["POSTGRES_USER"], "POSTGRES_DB": "postgres",
        "PGHOST": postgres_server.host, "PGPORT": str(postgres_server.port),
        "PGPASSWORD": postgres_server.password,
    }
    assert env_vars["POSTGRES_USER"] == postgres_server.user
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    with postgres_server.connect() as conn:
        owner = conn.execute(
            "select pg_get_userbyid(datdba) from pg_database where datname = %s", (name,)
        ).fetchone()
    assert owner == (postgres_server.user,)
