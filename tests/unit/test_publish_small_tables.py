"""Which built tables lakeport writes to Iceberg several at a time, and that each write
gets its own table's rows from a real DuckDB database, off DuckDB's thread
(lakeport.dbt_assets._DbtBuild._small_tables, _write_small_tables)."""

import threading

import duckdb
import pytest

from lakeport.dbt_assets import PUBLISH_WORKERS, SMALL_TABLE_CELLS, _DbtBuild, _write_small_tables


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
    build = _DbtBuild(platform=None, manifest={}, translator=None,
                      partitioned={"daily": "ordered_on"})
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

    written = _write_small_tables(connection, nodes, write)
    assert written == {f"model.shop.t{i}": (i + 1, i) for i in range(5)}
    assert 1 <= len(threads) <= PUBLISH_WORKERS
    assert all(name.startswith("lakeport-publish") for name in threads)


def test_a_failed_write_is_raised_after_the_others_end(connection):
    nodes = [_node(n) for n in ("small", "daily")]
    done = []

    def write(node, rows):
        if node["name"] == "small":
            raise RuntimeError("commit refused")
        done.append(node["name"])
        return node["name"]

    with pytest.raises(RuntimeError, match="commit refused"):
        _write_small_tables(connection, nodes, write)
    assert done == ["daily"]
