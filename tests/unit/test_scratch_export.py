"""The copies dbt's process makes of small built tables (lakeport.scratch_export), on a real
DuckDB database: what is copied, what is refused and why, and that a copy read back gives
the op the same Arrow table the scratch would."""

import threading
from types import SimpleNamespace

import duckdb
import pytest

from lakeport.scratch_export import (
    Exporter,
    ExportRequest,
    copy_table,
    read_copy,
    wait_for_copy,
)


@pytest.fixture
def scratch(tmp_path):
    with duckdb.connect(str(tmp_path / "scratch.duckdb")) as connection:
        connection.execute("create schema marts")
        yield connection


def _request(tmp_path, max_cells=1_000_000, **tables) -> ExportRequest:
    return ExportRequest(
        directory=str(tmp_path / "copies"),
        max_cells=max_cells,
        tables={f"model.shop.{name}": ("marts", name) for name in tables},
    )


def test_a_copy_reads_back_as_the_scratch_table_does(scratch, tmp_path):
    scratch.execute("""
        create table marts.orders as select
            range::bigint as id, 'customer ' || range as name, range * 1.25 as amount,
            (date '2026-01-01' + range::int) as ordered_on,
            timestamp '2026-01-01 10:00:00' + to_seconds(range) as placed_at,
            uuid() as token, [range, range + 1] as pair, {'k': range} as nested,
            interval (range) day as waited, (range % 200)::utinyint as small
        from range(1000)
    """)
    request = _request(tmp_path, orders=True)
    (tmp_path / "copies").mkdir()

    assert copy_table(scratch, request, "model.shop.orders") is None

    copy = request.copy_path("model.shop.orders")
    assert copy.is_file() and not list((tmp_path / "copies").glob("*.partial"))
    with duckdb.connect() as reader:
        copied = read_copy(reader, copy)
    expected = scratch.table("marts.orders").to_arrow_table()
    assert copied.schema == expected.schema
    assert copied.equals(expected)


@pytest.mark.parametrize(("column", "kind"), [
    ("123::hugeint", "HUGEINT"),  # comes back as DOUBLE
    ("'a'::mood", "ENUM"),  # comes back as VARCHAR
    ("'12:00:00+01'::timetz", "TIME WITH TIME ZONE"),  # same type, other values
])
def test_a_column_parquet_does_not_keep_refuses_the_copy(scratch, tmp_path, column, kind):
    scratch.execute("create type mood as enum ('a', 'b')")
    scratch.execute(f"create table marts.odd as select range as id, {column} as odd "
                    "from range(10)")
    request = _request(tmp_path, odd=True)
    (tmp_path / "copies").mkdir()

    reason = copy_table(scratch, request, "model.shop.odd")

    assert reason is not None and "odd" in reason and kind in reason
    assert list((tmp_path / "copies").iterdir()) == []


def test_a_table_over_the_cell_limit_is_not_copied(scratch, tmp_path):
    scratch.execute("create table marts.wide as select range as a, range as b from range(600)")
    request = _request(tmp_path, max_cells=1000, wide=True)
    (tmp_path / "copies").mkdir()

    reason = copy_table(scratch, request, "model.shop.wide")

    assert reason is not None and "1200 cells, over 1000" in reason
    assert not request.copy_path("model.shop.wide").exists()


def _node_finished(unique_id: str, status: str) -> SimpleNamespace:
    """The fields of dbt's NodeFinished EventMsg the exporter reads."""
    return SimpleNamespace(
        info=SimpleNamespace(name="NodeFinished"),
        data=SimpleNamespace(node_info=SimpleNamespace(unique_id=unique_id),
                             run_result=SimpleNamespace(status=status)),
    )


def test_the_exporter_copies_requested_tables_that_succeeded_and_marks_the_rest(
    scratch, tmp_path
):
    for name in ("kept", "failed", "unrequested"):
        scratch.execute(f"create table marts.{name} as select range as id from range(5)")
    scratch.execute("create table marts.wide as select range as a from range(50)")
    request = ExportRequest(str(tmp_path / "copies"), max_cells=10, tables={
        "model.shop.kept": ("marts", "kept"), "model.shop.failed": ("marts", "failed"),
        "model.shop.wide": ("marts", "wide"), "model.shop.gone": ("marts", "gone"),
    })
    exporter = Exporter(request)
    exporter.start(scratch)
    started = SimpleNamespace(info=SimpleNamespace(name="NodeStart"))
    exporter.on_dbt_event(started)
    exporter.on_dbt_event(_node_finished("model.shop.kept", "success"))
    exporter.on_dbt_event(_node_finished("model.shop.failed", "error"))
    exporter.on_dbt_event(_node_finished("model.shop.unrequested", "success"))
    exporter.on_dbt_event(_node_finished("model.shop.wide", "success"))
    exporter.on_dbt_event(_node_finished("model.shop.gone", "success"))
    exporter.close()  # finishes what was queued

    names = sorted(p.name for p in (tmp_path / "copies").iterdir())
    assert names == ["model.shop.gone.skipped", "model.shop.kept.parquet",
                     "model.shop.wide.skipped"]
    assert "no table marts.gone" in request.skipped_path("model.shop.gone").read_text()
    assert "50 cells, over 10" in request.skipped_path("model.shop.wide").read_text()


def test_waiting_for_a_copy_ends_with_it_with_its_skip_or_with_dbt(tmp_path):
    request = _request(tmp_path, a=True, b=True, c=True)
    (tmp_path / "copies").mkdir()
    dbt_exited = threading.Event()
    request.copy_path("model.shop.a").write_bytes(b"PAR1")
    request.skipped_path("model.shop.b").write_text("too large\n")

    assert wait_for_copy(request, "model.shop.a", dbt_exited) == request.copy_path(
        "model.shop.a")
    assert wait_for_copy(request, "model.shop.b", dbt_exited) is None

    waited: list = []
    waiter = threading.Thread(
        target=lambda: waited.append(wait_for_copy(request, "model.shop.c", dbt_exited)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive(), "returned before the copy, its skip or dbt's exit"
    dbt_exited.set()
    waiter.join(30)
    assert waited == [None]
