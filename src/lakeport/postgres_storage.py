"""Dagster's Postgres storages, holding their connections open between queries.

dagster-postgres opens a new Postgres connection for every statement outside the webserver
(SQLAlchemy's NullPool): a connection per stored event, and a run stores several events per
dbt model and test. Each connection is a TCP handshake, a SCRAM password exchange and a
backend process forked on the server; measured on a 200-model dbt project, half the run
worker's time went to `psycopg2.connect` (bench/orchestration_overhead.py).

These subclasses keep a small pool instead, in every process that uses the instance (run
workers, the daemon, the code server). A connection that has sat idle is tested before it
is handed out, so a Postgres restart costs a reconnect instead of a failed query, in the
webserver too; one in steady use is not (a test per checkout cost a run worker 5%: it
checks out connections thousands of times a run). A pool never crosses a fork: a child
process opens its own.

The event log storage also stores a new run's planned events (one per asset and asset
check the run will materialize or evaluate) in one INSERT instead of an INSERT and a
NOTIFY each: 600 round trips less before a 200-model dbt run starts. It sends no NOTIFY
for any event (nothing in the Dagster lakeport runs LISTENs), and it remembers that a
table or a column of asset_keys exists once it has seen it (Dagster asks before every
asset check event and every read of an asset's record): together about 2,800 round
trips less in a 200-model run with 400 tests.

The instance config names these classes in place of dagster-postgres' own (the chart's
`dagster.yaml` and `lakeport dev`'s); their config is dagster-postgres' config unchanged.
"""

import copy
import os
import time
import weakref
from typing import Any

import sqlalchemy as db
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, DagsterEventType
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
    set_pg_statement_timeout,
)

MODULE = __name__
# Connections kept per storage (three storages per process): two, because the event log
# storage opens a second connection while holding one (asset event tags). The most opened
# at once beyond them (concurrent threads in the daemon or webserver):
POOL_SIZE = 2
MAX_OVERFLOW = 10
# Connections older than this are replaced: a server-side idle timeout or a proxy may
# drop a connection that the idle test would otherwise have to discover.
POOL_RECYCLE_SECONDS = 3600
# A connection idle for longer than this is tested (`SELECT 1`) before it is handed out.
IDLE_PING_SECONDS = 2.0

# Dagster hands a new run's planned events to the storage as one batch only when this
# variable is above 0, and then in batches of at most that many (dagster 1.13.27,
# _core/instance/methods/event_methods.py, handle_new_event; run_domain.py,
# _log_asset_planned_events). It is read from the environment of whichever process creates
# the run (the webserver, the daemon, a run worker), and each of them imports this module
# when its instance is loaded, before any event is stored; a value set already wins.
EVENT_BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"
EVENT_BATCH_SIZE = 1000
os.environ.setdefault(EVENT_BATCH_SIZE_ENV, str(EVENT_BATCH_SIZE))
# The kinds of a run's planned events, which PooledPostgresEventLogStorage stores as one.
PLANNED_EVENTS = frozenset({
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
})


def pooled_engine(
    postgres_url: str,
    token_provider: Any = None,
    *,
    pool_size: int = POOL_SIZE,
    max_overflow: int = MAX_OVERFLOW,
    pool_recycle: int = POOL_RECYCLE_SECONDS,
) -> db.engine.Engine:
    engine = create_pg_engine(
        postgres_url,
        token_provider,
        isolation_level="AUTOCOMMIT",
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=pool_recycle,
    )
    db.event.listen(engine, "checkin", _mark_idle)
    db.event.listen(engine, "checkout", _ping_if_idle)
    # A forked child must not talk over its parent's sockets: it drops the inherited pool
    # (without closing the parent's connections) and connects for itself.
    engine_ref = weakref.ref(engine)
    os.register_at_fork(after_in_child=lambda: _forget_pool(engine_ref))
    return engine


def _mark_idle(_dbapi_connection, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
    except Exception as error:
        # The pool drops this connection and hands out a fresh one (SQLAlchemy's
        # documented contract for a checkout listener).
        raise db.exc.DisconnectionError(f"pooled Postgres connection is gone: {error}") from error


def _forget_pool(engine_ref: "weakref.ref[db.engine.Engine]") -> None:
    engine = engine_ref()
    if engine is not None:
        engine.dispose(close=False)


class _PooledConnections:
    """Swaps a dagster-postgres storage's NullPool engine for `pooled_engine`."""

    postgres_url: str
    _token_provider: Any
    _engine: db.engine.Engine

    def __init__(self, postgres_url, should_autocreate_tables=True, inst_data=None,
                 token_provider=None):
        # dagster-postgres creates its tables (if missing) over its own engine first.
        super().__init__(postgres_url, should_autocreate_tables, inst_data=inst_data,
                         token_provider=token_provider)
        self._use_pool()

    def _use_pool(self, **pool: int) -> None:
        replaced = self._engine
        self._engine = pooled_engine(self.postgres_url, self._token_provider, **pool)
        replaced.dispose()

    def optimize_for_webserver(
        self, statement_timeout: int, pool_recycle: int, max_overflow: int
    ) -> None:
        # Mirrors optimize_for_webserver of dagster-postgres 0.29.27 (event_log/event_log.py,
        # run_storage/run_storage.py, schedule_storage/schedule_storage.py): one kept
        # connection and a statement timeout, with the idle test added; without it the
        # first query after a Postgres restart fails. Upstream's body cannot be reused: it
        # builds its own engine. tests/unit/test_dagster_seams.py pins its signature.
        self._use_pool(pool_size=1, max_overflow=max_overflow, pool_recycle=pool_recycle)
        db.event.listen(
            self._engine,
            "connect",
            lambda connection, _record: set_pg_statement_timeout(connection, statement_timeout),
        )

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )


class PooledPostgresRunStorage(_PooledConnections, PostgresRunStorage):
    """dagster-postgres' run storage on a connection pool."""


class PooledPostgresEventLogStorage(_PooledConnections, PostgresEventLogStorage):
    """dagster-postgres' event log storage on a connection pool, storing a run's planned
    events as one batch, with no NOTIFY and no repeated question whether a table or column
    exists."""

    def store_event(self, event) -> None:
        # dagster-postgres 0.29.27's store_event (event_log/event_log.py) less its NOTIFY,
        # which upstream keeps only "to support version skew": no dagster-postgres of this
        # line LISTENs (its event watcher polls, SqlPollingEventWatcher), and every Dagster
        # process of a lakeport platform runs the one pinned version. Each NOTIFY is a
        # round trip per event, about 1,200 in a 200-model run.
        # tests/unit/test_dagster_seams.py fails when upstream's body changes.
        with self._connect() as conn:
            event_id = int(conn.execute(
                self.prepare_insert_event(event).returning(SqlEventLogStorageTable.c.id)
            ).scalar_one())
        self._store_index_rows([event], [event_id])

    def _store_index_rows(self, events, event_ids: list[int]) -> None:
        """Stored events' index rows, as upstream's store_event writes them: the asset
        events' tags and asset rows in one transaction, then each asset check event's
        execution row."""
        stored = list(zip(events, event_ids, strict=True))
        assets = [
            (event, event_id) for event, event_id in stored
            if event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS
            and event.dagster_event.asset_key
        ]
        if assets:
            with self.index_transaction() as conn:
                self._store_asset_event_tags(
                    conn, [event for event, _ in assets], [event_id for _, event_id in assets]
                )
                for event, event_id in assets:
                    self._store_asset_event(conn, event, event_id)
        for event, event_id in stored:
            if event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS:
                self.store_asset_check_event(event, event_id)

    def has_table(self, table_name: str) -> bool:
        # Dagster asks whether the asset check table exists (supports_asset_checks) twice
        # for every asset check event it stores, a catalog query each time upstream.
        upstream = super().has_table
        return self._known_to_exist(("table", table_name), lambda: upstream(table_name))

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        # Dagster reflects the asset_keys table's columns (a catalog query and SQLAlchemy's
        # reflection) three times each time it reads an asset's record: a run does after
        # each materialization, for its checks' target (sql_event_log.py, get_asset_records
        # and _fetch_raw_asset_rows, in dagster 1.13.27).
        upstream = super()._has_asset_key_col_on_connection
        return self._known_to_exist(
            ("asset_keys column", column_name), lambda: upstream(conn, column_name)
        )

    def _known_to_exist(self, thing: tuple[str, str], look_up) -> bool:
        """Whether `thing` exists in the database schema, looked up until it does. A table
        or column once seen stays (upstream caches has_secondary_index the same way); one
        not yet seen is looked up again, so a migration that adds it is noticed."""
        known = self.__dict__.setdefault("_known_to_exist_in_schema", set())
        if thing in known:
            return True
        if look_up():
            known.add(thing)
            return True
        return False

    def store_event_batch(self, events) -> None:
        # dagster-postgres 0.29.27 (event_log/event_log.py, store_event_batch) writes a
        # batch in one statement only when it is all materializations or all
        # observations; a batch of planned events goes to the base class, which calls
        # store_event for each (an INSERT and the event's index rows, one event at a time).
        if not events or not {e.dagster_event_type for e in events} <= PLANNED_EVENTS:
            super().store_event_batch(events)
            return
        # One INSERT for the event rows. PostgreSQL returns the ids of a multi-row INSERT
        # in the order of its rows, as upstream's own batch write relies on.
        with self._connect() as conn:
            result = conn.execute(
                self.prepare_insert_event_batch(events).returning(SqlEventLogStorageTable.c.id)
            )
            event_ids = [int(row[0]) for row in result.fetchall()]
        self._store_index_rows(events, event_ids)


class PooledPostgresScheduleStorage(_PooledConnections, PostgresScheduleStorage):
    """dagster-postgres' schedule storage on a connection pool."""


def postgres_db_config(
    *, username: str, password: str | dict, hostname: str, port: int, db_name: str
) -> dict[str, Any]:
    """dagster-postgres' `postgres_db` block (`password` a value or `{"env": NAME}`)."""
    return {
        "username": username,
        "password": password,
        "hostname": hostname,
        "port": port,
        "db_name": db_name,
        # psycopg2, not psycopg 3 (SQLAlchemy 2.1's default for postgresql://):
        # dagster-postgres sends `NOTIFY run_events, %s`, which psycopg 3's server-side
        # binding rejects. The chart's dagster.yaml names it too.
        "scheme": "postgresql+psycopg2",
    }


def instance_storage_config(postgres_db: dict[str, Any]) -> dict[str, Any]:
    """The three storage sections of a dagster.yaml, given dagster-postgres' `postgres_db`
    (`postgres_db_config`)."""
    return {
        section: {
            "module": MODULE,
            "class": cls.__name__,
            "config": {"postgres_db": copy.deepcopy(postgres_db)},
        }
        for section, cls in (
            ("run_storage", PooledPostgresRunStorage),
            ("event_log_storage", PooledPostgresEventLogStorage),
            ("schedule_storage", PooledPostgresScheduleStorage),
        )
    }
