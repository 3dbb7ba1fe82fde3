"""The parts of `lakeport dev` on their own: preflight errors, the generated Dagster
instance, the S3 copy that outlives moto's memory."""

import os
import shutil
import socket
import subprocess
import textwrap

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config as load_instance_config
from support.dev_platform import LAKEPORT, LOCAL_PLATFORM, make_data_dir

from lakeport.config import parse_platform
from lakeport.dev.instance_config import dagster_instance_config, workspace_config, write_yaml
from lakeport.dev.ports import free_port
from lakeport.dev.processes import ServiceError, find_executable
from lakeport.dev.s3 import S3Server
from lakeport.dev.s3_snapshot import S3Snapshot


def test_a_taken_port_stops_the_start_and_names_its_flag():
    data_dir = make_data_dir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(LAKEPORT), "dev", str(LOCAL_PLATFORM), "--data-dir", str(data_dir),
             "--webserver-port", str(port), "--code-server-port", str(free_port()),
             "--postgres-port", str(free_port()), "--s3-port", str(free_port())],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 (for the webserver) is already in use" in result.stderr
    assert "--webserver-port" in result.stderr
    # Checked before anything started.
    assert not (data_dir / "postgres").exists()
    shutil.rmtree(data_dir)


def test_a_missing_program_says_what_to_install():
    with pytest.raises(ServiceError, match="no-such-lakeport-tool not found.*apt-get install x"):
        find_executable("no-such-lakeport-tool", "apt-get install x")


def test_the_instance_config_is_valid_dagster_config_built_from_the_platform(tmp_path):
    platform = parse_platform(textwrap.dedent("""
        dagster:
          runQueue:
            maxConcurrentRuns: 3
            tagConcurrencyLimits: [{key: lakeport/profile, value: large, limit: 1}]
          runRetries: {enabled: true, maxRetries: 2}
          runMonitoring: {startTimeoutSeconds: 120}
        computeLogs: {bucket: logs-bucket, prefix: runs, uploadIntervalSeconds: 7}
        objectStorage: {endpoint: "http://127.0.0.1:4599"}
        postgres:
          enabled: false
          host: 127.0.0.1
          port: 5499
          passwordSecret: {secretName: pg, key: password}
        dev: {cgroupLimits: false}
    """))
    config = dagster_instance_config(platform, tmp_path / "compute-logs")
    write_yaml(tmp_path / "dagster.yaml", config)
    # Dagster's own schema check of the file, as `dagster-daemon` does on start.
    loaded, _ = load_instance_config(str(tmp_path))
    # The chart's storage classes, each pointed at the platform's Postgres.
    for section in ("run_storage", "event_log_storage", "schedule_storage"):
        assert loaded[section]["module"] == "lakeport.postgres_storage"
        db = loaded[section]["config"]["postgres_db"]
        assert db["password"] == {"env": "LAKEPORT_POSTGRES_PASSWORD"}
        assert (db["hostname"], db["port"]) == ("127.0.0.1", 5499)
    logs = loaded["compute_logs"]["config"]
    assert (logs["bucket"], logs["prefix"], logs["upload_interval"], logs["endpoint_url"]) == (
        "logs-bucket", "runs", 7, "http://127.0.0.1:4599"
    )
    assert loaded["run_coordinator"]["class"] == "LakeportRunCoordinator"
    assert loaded["run_coordinator"]["config"] == {
        "max_concurrent_runs": 3,
        "tag_concurrency_limits": [{"key": "lakeport/profile", "value": "large", "limit": 1}],
    }
    assert loaded["run_launcher"]["config"] == {"cgroup_limits": False}
    assert loaded["run_retries"] == {"enabled": True, "max_retries": 2}
    assert loaded["run_monitoring"]["start_timeout_seconds"] == 120
    workspace = workspace_config(platform)
    assert workspace["load_from"][0]["grpc_server"]["port"] == platform.code_locations[0].port


def test_s3_objects_outlive_the_server_through_the_copy(s3_server, tmp_path):
    buckets = ["lakeport-snapshot-a", "lakeport-snapshot-b"]
    s3_server.ensure_buckets(*buckets)
    client = s3_server.client()
    objects = {
        ("lakeport-snapshot-a", "warehouse/metadata/00001.metadata.json"): b'{"v": 1}',
        ("lakeport-snapshot-a", "odd key/with spaces/../and dots"): b"odd",
        ("lakeport-snapshot-b", "data/part-0.parquet"): bytes(range(256)) * 4096,
    }
    for (bucket, key), body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-test")
    client.put_object(Bucket="lakeport-snapshot-a", Key="gone", Body=b"x")
    snapshot = S3Snapshot(tmp_path / "s3", client, buckets)
    assert snapshot.save() == 4
    assert snapshot.save() == 0  # unchanged objects are not fetched again
    client.delete_object(Bucket="lakeport-snapshot-a", Key="gone")
    snapshot.save()
    assert yaml.safe_load((tmp_path / "s3" / "manifest.json").read_text())  # readable JSON

    fresh = S3Server(port=free_port())
    fresh.start()
    try:
        fresh.ensure_buckets(*buckets)
        restored = S3Snapshot(tmp_path / "s3", fresh.client(), buckets)
        assert restored.restore() == 3
        for (bucket, key), body in objects.items():
            got = fresh.client().get_object(Bucket=bucket, Key=key)
            assert got["Body"].read() == body
            assert got["ContentType"] == "application/x-test"
        keys = {o["Key"] for o in fresh.client().list_objects_v2(Bucket=buckets[0])["Contents"]}
        assert "gone" not in keys
    finally:
        fresh.stop()


def test_a_missing_or_stale_dbt_manifest_is_prepared(tmp_path):
    from lakeport.dbt_manifest import manifest_path, prepare_manifest
    from lakeport.dev.dbt_prepare import dbt_projects, is_stale
    from lakeport_demo.build import DBT_PROJECT_DIR

    package = tmp_path / "some_location"
    project = package / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project,
                    ignore=shutil.ignore_patterns("target", "logs", "*.duckdb"))
    assert dbt_projects(package) == [project]
    assert is_stale(project)  # no manifest yet
    prepare_manifest(project)
    assert manifest_path(project).is_file() and not is_stale(project)
    model = next(project.rglob("models/**/*.sql"))
    # An edit after the parse (set explicitly: some filesystems keep whole seconds).
    later = manifest_path(project).stat().st_mtime + 10
    os.utime(model, (later, later))
    assert is_stale(project)
