"""The pre-upgrade migrate hook: its own dagster.yaml, loaded by `dagster instance migrate`
in an environment shaped like its pod (the in-cluster service variables set, no API
token mounted: the Job sets automountServiceAccountToken false), migrates a real Postgres.

With the regular instance dagster.yaml (what the hook used to carry) the same command
fails before it migrates: it builds the K8sRunLauncher to print the instance's info,
and that calls load_incluster_config() (dagster 1.13.27 migrate_command)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from chart_render import dagster_yaml, one, pod_spec, render_env

TOKEN_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def _hook_yaml(objects) -> dict:
    return yaml.safe_load(one(objects, "ConfigMap", "lakeport-migrate")["data"]["dagster.yaml"])


def _point_at(config: dict, postgres_server, database: str) -> dict:
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        db = config[storage]["config"]["postgres_db"]
        assert db["password"] == {"env": "LAKEPORT_POSTGRES_PASSWORD"}
        db.update(hostname=postgres_server.host, port=postgres_server.port, db_name=database)
        db["params"]["sslmode"] = "disable"
    return config


def _migrate(config: dict, home: Path, postgres_server, command) -> subprocess.CompletedProcess:
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "DAGSTER_HOME": str(home),
        "LAKEPORT_POSTGRES_PASSWORD": postgres_server.password,
        # What the kubelet puts in every pod's environment.
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
    }
    # The Job's own command, with this venv's dagster.
    dagster = Path(sys.executable).with_name(command[0])
    return subprocess.run([str(dagster), *command[1:]], env=env, capture_output=True,
                          text=True, timeout=300)


def _command(objects) -> list[str]:
    (container,) = pod_spec(one(objects, "Job", "lakeport-migrate"))["containers"]
    assert container["command"] == ["dagster", "instance", "migrate"]
    return container["command"]


@pytest.fixture(scope="module")
def objects():
    if TOKEN_FILE.exists():
        pytest.skip(f"{TOKEN_FILE} exists here: this is not the hook pod's environment")
    return render_env("kind")


def test_the_hook_config_migrates_a_real_postgres(objects, postgres_server, tmp_path):
    config = _hook_yaml(objects)
    assert "run_launcher" not in config
    # Everything else is the instance's own configuration.
    regular = dagster_yaml(objects)
    assert {k: v for k, v in regular.items() if k != "run_launcher"} == config

    database = "migrate_hook"
    postgres_server.ensure_database(database)
    result = _migrate(_point_at(config, postgres_server, database), tmp_path / "home",
                      postgres_server, _command(objects))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Running migration" in result.stdout
    with postgres_server.connect(database) as connection:
        tables = {row[0] for row in connection.execute(
            "select table_name from information_schema.tables where table_schema = 'public'")}
    assert {"runs", "event_logs", "alembic_version"} <= tables


def test_the_instance_config_fails_there_as_the_hook_did_before(
    objects, postgres_server, tmp_path
):
    database = "migrate_regular"
    postgres_server.ensure_database(database)
    config = _point_at(dagster_yaml(objects), postgres_server, database)
    result = _migrate(config, tmp_path / "home", postgres_server, _command(objects))
    assert result.returncode != 0
    assert "Service token file does not exist" in result.stdout + result.stderr
