"""A dbt model that fails for a transient reason is retried by lakeport's retry policy.

The transient cause is a real one on a shared machine: another process holds DuckDB's
write lock on the run's database file (a second run, a notebook left open). The test holds
that lock itself: released after the first attempt, the retry succeeds; never released,
the run fails cleanly once the retries are used up, naming the file and the holder.
Real dbt, DuckDB, moto and PostgreSQL; the run executes in this process.
"""

import threading
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from support.demo import copy_project, postgres_instance, prepare

from lakeport.catalog import load_catalog
from lakeport.dbt_assets import DEFAULT_RETRY_POLICY
from lakeport.lakehouse import build_lakehouse_definitions
from lakeport_demo.bronze import BRONZE_ASSETS
from lakeport_demo.build import PARTITIONS_START_DATE

# A small slice of the demo (one mart and what it needs), so three dbt attempts stay cheap.
SLICE = [dg.AssetKey(["raw", "raw_customers"]), dg.AssetKey(["raw", "raw_orders"]),
         dg.AssetKey(["raw", "raw_payments"]), dg.AssetKey(["staging", "stg_customers"]),
         dg.AssetKey(["staging", "stg_orders"]), dg.AssetKey(["staging", "stg_payments"]),
         dg.AssetKey(["intermediate", "int_orders_enriched"]),
         dg.AssetKey(["marts", "mart_customer_revenue"])]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return prepare(copy_project(tmp_path_factory.mktemp("retry") / "dbt_project"))


@pytest.fixture
def lakehouse(project, demo_platform_on_s3):
    platform = demo_platform_on_s3()
    database = Path(platform.dev.data_dir) / "duckdb" / "lakehouse.duckdb"
    database.parent.mkdir(parents=True)
    return platform, database


def _job(platform, project, retry_policy):
    defs = build_lakehouse_definitions(project, platform,
                                       partitions_start_date=PARTITIONS_START_DATE,
                                       retry_policy=retry_policy,
                                       python_assets=BRONZE_ASSETS)
    return defs.resolve_job_def("lakehouse_job")


def _events(instance, run_id, event_type) -> list:
    return instance.get_records_for_run(run_id, of_type=event_type).records


def test_a_transient_failure_succeeds_on_retry(
    lakehouse, project, postgres_server, postgres_database, tmp_path
):
    platform, database = lakehouse
    job = _job(platform, project, DEFAULT_RETRY_POLICY)
    lock = duckdb.connect(str(database))  # the test-controlled cause: DuckDB's write lock
    released = threading.Event()

    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:

        def release_after_first_attempt():
            # The policy waits 15s before the retry: ample time to see the first failure.
            kind = dg.DagsterEventType.STEP_UP_FOR_RETRY
            while not released.wait(0.5):
                if instance.get_event_records(dg.EventRecordsFilter(event_type=kind), limit=1):
                    lock.close()
                    released.set()

        watcher = threading.Thread(target=release_after_first_attempt, daemon=True)
        watcher.start()
        try:
            result = job.execute_in_process(instance=instance, asset_selection=SLICE,
                                            raise_on_error=False)
        finally:
            released.set()
            lock.close()
        retries = _events(instance, result.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY)
        assert result.success, [e.message for e in instance.all_logs(result.run_id)][-10:]
        assert len(retries) == 1
        error = retries[0].event_log_entry.dagster_event.event_specific_data.error
        reason = error.message + "".join(c.message for c in _causes(error))
        assert "Could not set lock on file" in reason and str(database) in reason, reason
    table = load_catalog(platform).load_table("marts.mart_customer_revenue")
    assert table.scan().to_arrow().num_rows > 0


def test_a_failure_that_stays_fails_cleanly_after_the_retries(
    lakehouse, project, postgres_server, postgres_database, tmp_path
):
    platform, database = lakehouse
    # The default policy's delays (15s, 30s) are pinned above; two quick retries here.
    policy = dg.RetryPolicy(max_retries=2, delay=1)
    job = _job(platform, project, policy)
    catalog = load_catalog(platform)

    def tables():
        return {t for ns in catalog.list_namespaces() for t in catalog.list_tables(ns)}

    before = tables()
    with duckdb.connect(str(database)):  # held for every attempt
        with postgres_instance(postgres_server, postgres_database,
                               tmp_path / "home") as instance:
            result = job.execute_in_process(instance=instance, asset_selection=SLICE,
                                            raise_on_error=False)
            retries = _events(instance, result.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY)
            failures = _events(instance, result.run_id, dg.DagsterEventType.STEP_FAILURE)
            run = instance.get_run_by_id(result.run_id)
    assert not result.success and run.status == dg.DagsterRunStatus.FAILURE
    assert len(retries) == policy.max_retries
    (failure,) = failures
    error = failure.event_log_entry.dagster_event.step_failure_data.error
    text = error.message + "".join(c.message for c in _causes(error))
    assert "dbt build failed" in text and "Could not set lock on file" in text, text
    assert str(database) in text, text
    # No dbt table reached the catalog (the bronze assets, in their own steps, did).
    assert tables() - before == {("raw", "raw_customers"), ("raw", "raw_orders"),
                                 ("raw", "raw_payments")}


def _causes(error):
    while error.cause is not None:
        error = error.cause
        yield error
