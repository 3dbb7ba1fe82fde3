"""Shared fixtures: real services started for the session and stopped after it.

Tests that need PostgreSQL or an S3 endpoint get real servers (the system's PostgreSQL
binaries, moto's S3 server), never mocks. Both are started through lakeport.dev, the
same code `make dev` uses.
"""

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from lakeport.dev.ports import free_port
from lakeport.dev.postgres import PostgresServer
from lakeport.dev.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, S3Server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgreSQL server; `.url(db)`, `.connect(db)`, `.ensure_database(db)`."""
    # Not under pytest's tmp dir: that is private to root and the server may run as `postgres`.
    data_dir = Path(tempfile.mkdtemp(prefix="lakeport-pg-"))
    server = PostgresServer(
        data_dir=data_dir, port=free_port(), password=secrets.token_urlsafe(16), durable=False
    )
    server.start()
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server, request):
    """A fresh database per test, named after it."""
    name = "t_" + secrets.token_hex(6)
    postgres_server.ensure_database(name)
    return name


@pytest.fixture(scope="session")
def s3_server():
    """A running S3 HTTP endpoint (moto server); `.endpoint`, `.client()`, `.ensure_buckets()`."""
    server = S3Server(port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Environment for code that finds S3 credentials the standard way (boto3, DuckDB)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    return dict(os.environ)


@pytest.fixture
def demo_platform_on_s3(tmp_path, s3_server, s3_env, monkeypatch):
    """`make(extra="")`: the demo's platform (support.demo.demo_platform, with `extra` YAML
    keys) on the session's S3 endpoint with its warehouse bucket, data under tmp_path/data,
    and no DuckDB file forced on the run from the environment."""
    from support.demo import WAREHOUSE_BUCKET, demo_platform

    from lakeport.dbt_assets import DUCKDB_PATH_ENV

    monkeypatch.delenv(DUCKDB_PATH_ENV, raising=False)
    s3_server.ensure_buckets(WAREHOUSE_BUCKET)
    return lambda extra="": demo_platform(tmp_path / "data", s3_server.endpoint, extra)


@pytest.fixture(scope="session")
def iceberg_rest_server(s3_server):
    """A running Iceberg REST catalog server (Apache Iceberg's own) on the test S3 endpoint."""
    from support.iceberg_rest import IcebergRestServer

    s3_server.ensure_buckets("lakeport-warehouse")
    data_dir = Path(tempfile.mkdtemp(prefix="lakeport-iceberg-rest-"))
    server = IcebergRestServer(
        port=free_port(), s3_endpoint=s3_server.endpoint,
        warehouse="s3://lakeport-warehouse/rest/", data_dir=data_dir,
    )
    server.start()
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)
