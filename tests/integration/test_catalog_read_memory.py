"""The catalog read path holds to the run's memory: a mart over an Iceberg upstream 4x
the cgroup's memory limit completes, spilling, and is not OOM-killed (cgroup v1 or v2 as
root, the kernel mechanism behind a pod's `limits.memory`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from support.demo import WAREHOUSE_BUCKET, demo_platform

from lakeport.catalog import load_catalog
from lakeport.dev.cgroups import CgroupUnavailable, create_run_cgroup
from lakeport.duckdb_s3 import configure_s3
from lakeport.iceberg_publish import publish, query_rows

MiB = 1 << 20
LIMIT = 384 * MiB
# Decoded bytes per upstream row: three 8-byte numbers and two 32-character strings.
ROW_BYTES = 8 * 3 + 32 * 2
ROWS = 4 * LIMIT // ROW_BYTES + 1_000_000
CUSTOMERS = ROWS // 8
WORKER = Path(__file__).with_name("catalog_mart_worker.py")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a memory cgroup")


@pytest.fixture
def run_cgroup():
    try:
        cgroup = create_run_cgroup(f"lakeport-catalog-{os.getpid()}", LIMIT, None)
    except CgroupUnavailable as exc:
        pytest.skip(f"no memory cgroup here: {exc}")
    yield cgroup
    cgroup.remove()


def test_a_mart_over_an_upstream_4x_the_memory_limit_completes(
    run_cgroup, tmp_path, s3_server, s3_env
):
    s3_server.ensure_buckets(WAREHOUSE_BUCKET)
    platform = demo_platform(tmp_path / "data", s3_server.endpoint)
    platform_file = tmp_path / "platform.yaml"
    platform_file.write_text(
        f"catalog: {{type: sql, warehouse: 's3://{WAREHOUSE_BUCKET}/'}}\n"
        f"objectStorage: {{endpoint: '{s3_server.endpoint}', region: us-east-1, "
        f"pathStyle: true}}\ndev: {{dataDir: '{tmp_path / 'data'}'}}\n"
    )
    catalog = load_catalog(platform)
    with duckdb.connect() as generator:
        generator.execute("set memory_limit = '1GB'")
        query = (
            f"select i as id, i % {CUSTOMERS} as customer_id, (i % 1000)::double as amount, "
            f"md5(i::varchar) as note, md5((i + 1)::varchar) as reference from range({ROWS}) t(i)"
        )
        publish(catalog, ("raw", "big_orders"), query_rows(generator, query))
    upstream = catalog.load_table(("raw", "big_orders"))
    with duckdb.connect() as reader:
        configure_s3(reader, platform)
        decoded = reader.execute(
            "select sum(strlen(note) + strlen(reference)) + 24 * count(*) from iceberg_scan(?)",
            [upstream.metadata_location],
        ).fetchone()[0]
    assert decoded >= 4 * LIMIT

    kills = run_cgroup.oom_kills()
    scratch = tmp_path / "scratch"
    worker = subprocess.run(
        run_cgroup.command([sys.executable, str(WORKER), str(platform_file), str(scratch)]),
        capture_output=True, text=True, timeout=600, env=os.environ.copy(),
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert run_cgroup.oom_kills() == kills
    settings, result = (json.loads(line) for line in worker.stdout.splitlines()
                        if line.startswith("{"))
    memory_limit = int(settings["memory_limit"].removesuffix("MiB")) * MiB
    assert memory_limit < LIMIT and "cgroup" in settings["memory_limit_source"]
    assert result["rows"] == CUSTOMERS
    mart = catalog.load_table(("marts", "big_customer_revenue"))
    assert str(mart.current_snapshot().snapshot_id) == str(result["snapshot_id"])
    assert mart.scan().to_arrow().num_rows == CUSTOMERS
    print(f"\nupstream {decoded // MiB} MiB decoded ({ROWS} rows) under a {LIMIT // MiB} MiB "
          f"limit, DuckDB memory_limit {memory_limit // MiB} MiB: mart of {CUSTOMERS} rows")
