"""The demo lakehouse in tests: a platform pointing at the test's services, a
Postgres-backed DagsterInstance, a prepared copy of the demo dbt project, one run of its job."""

import shutil
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from lakeport.config import parse_platform
from lakeport.dbt_manifest import prepare_manifest
from lakeport.platform import Platform
from lakeport.postgres_storage import instance_storage_config, postgres_db_config
from lakeport_demo.build import DBT_PROJECT_DIR, build_demo_definitions

WAREHOUSE_BUCKET = "lakeport-warehouse"
# The model the failure tests break, and the assets built from it.
INT_ORDERS_ENRICHED = dg.AssetKey(["intermediate", "int_orders_enriched"])
DOWNSTREAM_OF_INT_ORDERS_ENRICHED = {
    dg.AssetKey(["marts", "dim_customers"]),
    dg.AssetKey(["marts", "mart_customer_revenue"]),
    dg.AssetKey(["marts", "fct_orders"]),
}


def demo_platform(data_dir: Path, s3_endpoint: str, extra: str = "") -> Platform:
    return parse_platform(
        f"""
catalog:
  type: sql
  warehouse: s3://{WAREHOUSE_BUCKET}/
objectStorage:
  endpoint: {s3_endpoint}
  region: us-east-1
  pathStyle: true
dev:
  dataDir: {data_dir}
{extra}
"""
    )


@contextmanager
def postgres_instance(postgres_server, database: str, home: Path):
    """A DagsterInstance whose run, event and schedule storage is the real Postgres."""
    home.mkdir(parents=True, exist_ok=True)
    # lakeport's storage classes, as the chart and `lakeport dev` configure them.
    overrides = instance_storage_config(postgres_db_config(
        username=postgres_server.user, password=postgres_server.password,
        hostname=postgres_server.host, port=postgres_server.port, db_name=database,
    ))
    with dg.instance_for_test(overrides=overrides, temp_dir=str(home)) as instance:
        yield instance


def copy_project(target: Path) -> Path:
    """A private copy of the demo dbt project, for tests that break a model or a test."""
    shutil.copytree(
        DBT_PROJECT_DIR, target, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb")
    )
    return target


def prepare(project_dir: Path) -> Path:
    prepare_manifest(project_dir)
    return project_dir


def yesterday_partition() -> str:
    return (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")


def run_demo_job(platform: Platform, project_dir: Path, instance, raise_on_error: bool = False,
                 **options) -> dg.ExecuteInProcessResult:
    """One in-process run of the demo's `lakehouse_job` over `project_dir`, for yesterday's
    partition; a failed run is returned, not raised, unless `raise_on_error`."""
    job = build_demo_definitions(platform, project_dir=project_dir).resolve_job_def(
        "lakehouse_job")
    return job.execute_in_process(instance=instance, partition_key=yesterday_partition(),
                                  raise_on_error=raise_on_error, **options)
