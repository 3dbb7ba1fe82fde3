"""Which built tables lakeport writes to Iceberg several at a time, and that each write
gets its own table's rows from a real DuckDB database, off DuckDB's thread, handed back in
order as each is written (lakeport.dbt_assets._DbtBuild._small_tables, _write_in_order)."""

import threading

import duckdb
import pytest

from lakeport.dbt_assets import (
    PUBLISH_AHEAD,
    PUBLISH_WORKERS,
    SMALL_TABLE_CELLS,
    _DbtBuild,
    _write_in_order,
)

# Long enough for a thread to start a write on any machine; the tests never wait it out
# when what they check holds.
WAIT_SECONDS = 30


def _node(name: str, schema: str = "marts") -> dict:
    return {"unique_id": f"model.shop.{name}", "name": name, "schema": schema,
            "alias": name, "resource_type": "model", "config": {"materialized": "table"}}


@pytest.fixture
def connection(tmp_path):
    with duckdb.connect(str(tmp_path / "scratch.duckdb")) as con:
        con.execute("create schema marts")
        con.execute("create table marts.small as select range as id, 'x' as v from range(1000)")
        # Over the cell limit: two columns of SMALL_TABLE_CELLS / 2 + 1 rows.
        rows = SMALL_TABLE_CELLS // 2 + 1
        con.execute(f"create table marts.large as select range as id, 1 as v from range({rows})")
        con.execute("create table marts.daily as select range as id from range(10)")
        con.execute("create table marts.grown as select range as id from range(10)")
        yield con


def test_only_small_tables_written_whole_are_written_several_at_a_time(connection):
    build = _DbtBuild(platform=None, manifest={}, partitioned={"daily": "ordered_on"})
    nodes = [_node(n) for n in ("small", "large", "daily", "grown", "not_in_scratch")]
    bases = {"model.shop.grown": object()}  # an incremental model: appends to its base
    day = ("2026-12-01", "2026-12-02")
    small = build._small_tables(connection, nodes, day, bases)
    assert [n["name"] for n in small] == ["small"]
    # Without a day window the daily model's whole table is written: small too.
    assert [n["name"] for n in build._small_tables(connection, nodes, None, bases)] == [
        "small", "daily"]


def test_each_write_gets_its_own_tables_rows_off_the_duckdb_thread(connection):
    for i in range(5):
        connection.execute(f"create table marts.t{i} as select {i} as id from range({i + 1})")
    nodes = [_node(f"t{i}") for i in range(5)]
    threads = set()

    def write(node, rows):
        threads.add(threading.current_thread().name)
        # A fresh reader per call: a commit that lost a race reads the rows again.
        first, again = rows().read_all(), rows().read_all()
        assert first.equals(again)
        return (first.num_rows, min(first.column("id").to_pylist()))

    written = list(_write_in_order(connection, nodes, {n["unique_id"] for n in nodes}, write))
    assert [(node["name"], result) for node, result in written] == [
        (f"t{i}", (i + 1, i)) for i in range(5)]
    assert 1 <= len(threads) <= PUBLISH_WORKERS
    assert all(name.startswith("lakeport-publish") for name in threads)


def test_later_small_tables_are_written_while_the_caller_handles_an_earlier_one(connection):
    names = [f"t{i}" for i in range(PUBLISH_AHEAD + 2)]
    for name in names:
        connection.execute(f"create table marts.{name} as select 1 as id")
    nodes = [_node(name) for name in names]
    started = {name: threading.Event() for name in names}

    def write(node, rows):
        started[node["name"]].set()
        return node["name"]

    written = _write_in_order(connection, nodes, {n["unique_id"] for n in nodes}, write)
    node, result = next(written)
    assert result == "t0"
    # The caller holds t0 (as Dagster stores its events): the writes queued behind it go on.
    assert started["t1"].wait(WAIT_SECONDS), "no write went on while the caller held t0"
    # ... but no more than PUBLISH_AHEAD of them were read and queued at once.
    assert not started[names[PUBLISH_AHEAD]].is_set()
    assert [result for _, result in written] == names[1:]


def test_nothing_is_written_ahead_past_a_large_table(connection):
    for name in ("a", "b", "c"):  # marts.large is the fixture's
        connection.execute(f"create table marts.{name} as select 1 as id")
    nodes = [_node(name) for name in ("a", "b", "large", "c")]
    steps = []  # list.append is atomic: the workers and this thread add to it

    def write(node, rows=None):
        steps.append(f"{node['name']} started")
        if node["name"] == "large":
            assert rows is None  # written on the caller's thread, streamed by `publish`
        steps.append(f"{node['name']} ended")
        return node["name"]

    small = {n["unique_id"] for n in nodes if n["name"] != "large"}
    assert [r for _, r in _write_in_order(connection, nodes, small, write)] == [
        "a", "b", "large", "c"]
    # The large table's write runs alone: what comes before it has ended, what comes after
    # it has not started.
    large = steps.index("large started")
    assert steps[large + 1] == "large ended"
    assert set(steps[:large]) == {"a started", "a ended", "b started", "b ended"}
    assert steps[large + 2:] == ["c started", "c ended"]


def test_a_failed_write_is_raised_in_its_turn_once_the_writes_under_way_end(connection):
    for name in ("t1", "t2", "t3"):
        connection.execute(f"create table marts.{name} as select 1 as id")
    nodes = [_node(n) for n in ("small", "t1", "t2", "t3")]
    t1_running = threading.Event()
    release_t1 = threading.Event()
    ended = []

    def write(node, rows):
        if node["name"] == "t1":
            t1_running.set()
            assert release_t1.wait(WAIT_SECONDS)
        if node["name"] == "t2":
            raise RuntimeError("commit refused")
        ended.append(node["name"])
        return node["name"]

    written = _write_in_order(connection, nodes, {n["unique_id"] for n in nodes}, write)
    assert next(written)[1] == "small"
    assert t1_running.wait(WAIT_SECONDS)
    release_t1.set()
    assert next(written)[1] == "t1"
    with pytest.raises(RuntimeError, match="commit refused"):
        next(written)
    # Raised after every write that had started ended: none is left running.
    assert set(ended) <= {"small", "t1", "t3"}
    assert not any(t.name.startswith("lakeport-publish") for t in threading.enumerate())
