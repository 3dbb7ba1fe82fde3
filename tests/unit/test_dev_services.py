"""The local services that `make dev` and the tests start are real and stop cleanly."""

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from lakeport.dev.ports import free_port, port_in_use
from lakeport.dev.postgres import PostgresServer
from lakeport.dev.processes import ServiceError, ServiceProcess, wait_until_ready


def test_postgres_serves_sql_and_databases(postgres_server, postgres_database):
    with postgres_server.connect(postgres_database) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (41), (1)")
        assert conn.execute("SELECT sum(x) FROM t").fetchone()[0] == 42


def test_postgres_keeps_data_across_restart_and_stops_cleanly():
    data_dir = Path(tempfile.mkdtemp(prefix="lakeport-pg-"))
    server = PostgresServer(data_dir, free_port(), secrets.token_urlsafe(8), durable=False)
    server.start()
    server.ensure_database("keep")
    with server.connect("keep", autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
    pid = server.pid
    server.stop()
    assert not server.running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not port_in_use(server.port)
    server.start()
    with server.connect("keep") as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone()[0] == 0
    server.stop()


def test_postgres_on_a_taken_port_says_so(postgres_server):
    data_dir = Path(tempfile.mkdtemp(prefix="lakeport-pg-"))
    clash = PostgresServer(data_dir, postgres_server.port, "pw", durable=False)
    with pytest.raises(ServiceError, match="port taken"):
        clash.start(timeout=10)


def test_postgres_with_another_password_says_so_at_once_and_stops():
    """A cluster left by an earlier run with another password: a clear error, not a timeout."""
    data_dir = Path(tempfile.mkdtemp(prefix="lakeport-pg-"))
    try:
        first = PostgresServer(data_dir, free_port(), secrets.token_urlsafe(8), durable=False)
        first.start()
        first.stop()
        second = PostgresServer(data_dir, first.port, secrets.token_urlsafe(8), durable=False)
        with pytest.raises(ServiceError) as refused:
            second.start(timeout=60)
        message = str(refused.value)
        assert "initialized with another one" in message and str(second.pgdata) in message
        assert second.password not in message and first.password not in message
        assert not second.running()
        assert not port_in_use(second.port)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_service_that_never_becomes_ready_is_stopped():
    service = ServiceProcess("a server that never answers", ["sleep", "600"], None)
    service.start()
    with pytest.raises(ServiceError, match="did not become ready within 1s"):
        wait_until_ready(service, lambda: False, timeout=1, interval=0.1)
    assert not service.running()


def test_s3_endpoint_stores_objects(s3_server):
    s3_server.ensure_buckets("lakeport-test-bucket")
    s3_server.ensure_buckets("lakeport-test-bucket")  # idempotent
    client = s3_server.client()
    client.put_object(Bucket="lakeport-test-bucket", Key="a/b.txt", Body=b"hello")
    body = client.get_object(Bucket="lakeport-test-bucket", Key="a/b.txt")["Body"].read()
    assert body == b"hello"
