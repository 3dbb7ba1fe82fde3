"""lakeport's pooled Postgres storages against a real PostgreSQL server: connections are
reused, a Postgres restart costs no failed query, and a forked child never shares its
parent's connection."""

import os
import secrets
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as db
from dagster._core.events import DagsterEventType

from lakeport.dev.ports import free_port
from lakeport.dev.postgres import PostgresServer
from lakeport.postgres_storage import (
    IDLE_PING_SECONDS,
    PooledPostgresEventLogStorage,
    PooledPostgresRunStorage,
    PooledPostgresScheduleStorage,
    instance_storage_config,
    postgres_db_config,
)

EVENTS = 40


def postgres_db(server: PostgresServer, database: str) -> dict:
    return postgres_db_config(username=server.user, password=server.password,
                              hostname=server.host, port=server.port, db_name=database)


@contextmanager
def instance_with(storage_config: dict, home: Path):
    home.mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(overrides=storage_config, temp_dir=str(home)) as instance:
        yield instance


def stock_storage_config(params: dict) -> dict:
    """dagster-postgres' own classes, for comparison."""
    return {"storage": {"postgres": {"postgres_db": params}}}


@contextmanager
def counting_connects():
    """How many new DBAPI connections any SQLAlchemy engine opens inside the block."""
    opened = []

    def on_connect(_dbapi_connection, _record):
        opened.append(1)

    db.event.listen(db.engine.Engine, "connect", on_connect)
    try:
        yield opened
    finally:
        db.event.remove(db.engine.Engine, "connect", on_connect)


def store_engine_events(instance, run_id: str, count: int) -> None:
    for index in range(count):
        instance.report_engine_event(f"event {index}", run_id=run_id, job_name="pool_job")


def stored_messages(instance, run_id: str) -> list[str]:
    return [
        record.event_log_entry.dagster_event.message
        for record in instance.get_records_for_run(
            run_id, of_type=DagsterEventType.ENGINE_EVENT
        ).records
    ]


def test_the_instance_config_names_the_pooled_classes(postgres_server, postgres_database,
                                                       tmp_path):
    config = instance_storage_config(postgres_db(postgres_server, postgres_database))
    with instance_with(config, tmp_path) as instance:
        assert isinstance(instance.run_storage, PooledPostgresRunStorage)
        assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PooledPostgresScheduleStorage)
        # The secret stays where it was put: the three sections are separate copies.
        config["run_storage"]["config"]["postgres_db"]["password"] = "changed"
        assert config["event_log_storage"]["config"]["postgres_db"]["password"] != "changed"


def test_events_are_stored_over_reused_connections(postgres_server, postgres_database,
                                                   tmp_path):
    params = postgres_db(postgres_server, postgres_database)
    with instance_with(instance_storage_config(params), tmp_path / "pooled") as instance:
        store_engine_events(instance, "warm-up", 1)
        with counting_connects() as opened:
            store_engine_events(instance, "pooled-run", EVENTS)
        assert stored_messages(instance, "pooled-run") == [f"event {i}" for i in range(EVENTS)]
    assert len(opened) <= 1, f"{len(opened)} connections opened for {EVENTS} events"

    # What the pool saves: dagster-postgres' own storage connects for every event.
    with instance_with(stock_storage_config(params), tmp_path / "stock") as instance:
        with counting_connects() as stock_opened:
            store_engine_events(instance, "stock-run", EVENTS)
    assert len(stock_opened) >= EVENTS


@pytest.fixture
def restartable_postgres():
    """A server of this test's own: the test stops and starts it."""
    data_dir = Path(tempfile.mkdtemp(prefix="lakeport-pg-restart-"))
    server = PostgresServer(data_dir=data_dir, port=free_port(),
                            password=secrets.token_urlsafe(16), durable=False)
    server.start()
    server.ensure_database("dagster")
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.parametrize("webserver", [False, True], ids=["worker", "webserver"])
def test_a_postgres_restart_costs_no_failed_query(restartable_postgres, tmp_path, webserver):
    params = postgres_db(restartable_postgres, "dagster")
    with instance_with(instance_storage_config(params), tmp_path) as instance:
        if webserver:
            # What dagster-webserver does to its instance on start.
            instance.optimize_for_webserver(
                statement_timeout=5000, pool_recycle=3600, max_overflow=20
            )
        store_engine_events(instance, "before", 1)
        assert instance.get_runs() == []

        restartable_postgres.stop()
        restartable_postgres.start()
        # As after any outage a caller notices: the pooled connections have sat idle.
        time.sleep(IDLE_PING_SECONDS)

        # Every pooled connection died with the server; none of them reaches a caller.
        assert instance.get_runs() == []
        store_engine_events(instance, "after", 1)
        assert stored_messages(instance, "after") == ["event 0"]
        assert instance.schedule_storage.all_instigator_state() == []


def _backend_pid(instance) -> int:
    # The run storage's own pool, through its public connect().
    with instance.run_storage.connect() as conn:
        return conn.execute(db.text("SELECT pg_backend_pid()")).scalar_one()


def test_a_forked_child_opens_its_own_connection(postgres_server, postgres_database, tmp_path):
    params = postgres_db(postgres_server, postgres_database)
    with instance_with(instance_storage_config(params), tmp_path) as instance:
        parent_pid = _backend_pid(instance)
        assert _backend_pid(instance) == parent_pid  # the pool hands the same one back
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                os.close(read_end)
                os.write(write_end, str(_backend_pid(instance)).encode())
                store_engine_events(instance, "from-child", 1)
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end) as reader:
            child_backend = int(reader.read() or 0)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert child_backend not in (0, parent_pid)
        # The parent's connection survived the child (which did not close it) and works.
        assert _backend_pid(instance) == parent_pid
        assert stored_messages(instance, "from-child") == ["event 0"]


@contextmanager
def counting_statements(matches):
    """The SQL statements any SQLAlchemy engine runs in the block for which
    `matches(statement, parameters)` holds."""
    seen = []

    def before(_conn, _cursor, statement, parameters, _context, _executemany):
        if matches(statement, parameters):
            seen.append(statement)

    db.event.listen(db.engine.Engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        db.event.remove(db.engine.Engine, "before_cursor_execute", before)


def starting_with(prefix: str):
    return lambda statement, _parameters: statement.lstrip().upper().startswith(prefix)


def reflecting_columns_of(table: str):
    # SQLAlchemy's PostgreSQL dialect reflects a table's columns from pg_attribute, the
    # table's name a parameter.
    return lambda statement, parameters: "pg_attribute" in statement and table in str(parameters)


def checked_assets_job():
    """Three assets with two checks each: nine planned events per run."""
    names = ("orders", "customers", "revenue")

    def make_asset(name):
        @dg.asset(name=name, check_specs=[dg.AssetCheckSpec("not_empty", asset=name),
                                          dg.AssetCheckSpec("fresh", asset=name)])
        def _asset():
            yield dg.MaterializeResult(check_results=[
                dg.AssetCheckResult(check_name="not_empty", passed=True),
                dg.AssetCheckResult(check_name="fresh", passed=False),
            ])
        return _asset

    defs = dg.Definitions(assets=[make_asset(name) for name in names],
                          jobs=[dg.define_asset_job("checked", selection="*")])
    return defs.resolve_job_def("checked"), names


def test_a_runs_planned_events_are_stored_in_one_insert(postgres_server, postgres_database,
                                                        tmp_path):
    job, names = checked_assets_job()
    params = postgres_db(postgres_server, postgres_database)
    assert os.environ.get("DAGSTER_EVENT_BATCH_SIZE") == "1000"  # set by importing the module
    with instance_with(instance_storage_config(params), tmp_path / "pooled") as instance:
        with counting_statements(starting_with("INSERT INTO EVENT_LOGS")) as inserts:
            result = job.execute_in_process(instance=instance, raise_on_error=False)
        run_id = result.run_id
        records = instance.get_records_for_run(run_id).records
        kinds = [r.event_log_entry.dagster_event_type for r in records]
        planned = {DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                   DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED}
        assert sum(kind in planned for kind in kinds) == 9
        # Every other event its own INSERT, the nine planned ones a single one.
        assert len(inserts) == len(records) - 9 + 1, inserts

        # What the planned events are for, as when they are stored one by one: each asset
        # knows the run planned to materialize it, and each check's planned execution row
        # is the one its evaluation completed.
        for name in names:
            key = dg.AssetKey(name)
            info = instance.event_log_storage.get_latest_planned_materialization_info(key)
            assert info is not None and info.run_id == run_id
            assert instance.get_latest_materialization_event(key).run_id == run_id
            for check_name, status in (("not_empty", "SUCCEEDED"), ("fresh", "FAILED")):
                history = instance.event_log_storage.get_asset_check_execution_history(
                    dg.AssetCheckKey(key, check_name), limit=5)
                assert [(h.run_id, h.status.value) for h in history] == [(run_id, status)]


def run_counting(instance, job, matches) -> tuple[str, int]:
    with counting_statements(matches) as seen:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    return result.run_id, len(seen)


# SQLAlchemy's PostgreSQL dialect asks the catalog this way whether a table exists.
TABLE_LOOKUP = starting_with("SELECT PG_CATALOG.PG_CLASS.RELNAME")
ASSET_KEYS_COLUMNS_LOOKUP = reflecting_columns_of("asset_keys")


def test_events_are_stored_without_notify_or_repeated_schema_lookups(
        postgres_server, postgres_database, tmp_path):
    job, names = checked_assets_job()  # 3 assets, 6 checks
    params = postgres_db(postgres_server, postgres_database)
    with instance_with(instance_storage_config(params), tmp_path / "pooled") as instance:
        run_id, notifies = run_counting(instance, job, starting_with("NOTIFY"))
        _, table_lookups = run_counting(instance, job, TABLE_LOOKUP)
        assert notifies == 0
        assert table_lookups == 0  # the first run's lookups are remembered
        assert run_counting(instance, job, ASSET_KEYS_COLUMNS_LOOKUP)[1] == 0
        # Stored as upstream stores them: every event, each asset's materialization and
        # each check's evaluation where the UI reads them.
        assert len(instance.get_records_for_run(run_id).records) > 20
        for name in names:
            key = dg.AssetKey(name)
            assert instance.get_latest_materialization_event(key) is not None
            history = instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(key, "fresh"), limit=5)
            assert [h.status.value for h in history] == ["FAILED"] * 3  # three runs

    # What they save: dagster-postgres' own storage sends a NOTIFY for every event, asks
    # for the check table twice for every check event, and reflects asset_keys' columns
    # three times each time a check looks up its asset's materialization.
    with instance_with(stock_storage_config(params), tmp_path / "stock") as instance:
        run_id, stock_notifies = run_counting(instance, job, starting_with("NOTIFY"))
        _, stock_lookups = run_counting(instance, job, TABLE_LOOKUP)
        assert stock_notifies >= len(instance.get_records_for_run(run_id).records) - 9
        assert stock_lookups >= 2 * 6
        assert run_counting(instance, job, ASSET_KEYS_COLUMNS_LOOKUP)[1] >= 3 * len(names)
