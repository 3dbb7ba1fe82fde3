"""How the op writes the copies dbt's process makes (lakeport.dbt_assets._CopiedTableWrites):
each write waits for its copy, gets that copy's rows read back by DuckDB on a worker
thread, and is handed back without waiting once done; a table not copied is left to the
writes after dbt; a failed write is raised when the op asks for it. Real Parquet copies
made by DuckDB; `write` stands in for the Iceberg commit (lakeport.iceberg_publish, tested
against a real catalog elsewhere)."""

import threading
import time

import duckdb
import pytest

from lakeport.dbt_assets import _CopiedTableWrites
from lakeport.iceberg_publish import Published
from lakeport.scratch_export import ExportRequest

WAIT_SECONDS = 30


def _node(name: str) -> dict:
    return {"unique_id": f"model.shop.{name}", "name": name, "schema": "marts",
            "alias": name, "resource_type": "model", "config": {"materialized": "table"}}


def _published(node, rows) -> Published:
    return Published(identifier=f"marts.{node['name']}", row_count=rows().read_all().num_rows,
                     snapshot_id=1, metadata_location="s3://w/m.json", operation="overwrite")


def _copy(request: ExportRequest, name: str, rows: int) -> None:
    path = request.copy_path(f"model.shop.{name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as connection:
        connection.execute(f"copy (select range as id from range({rows})) to '{path}'")


def _until(condition) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "not within the wait"
        time.sleep(0.01)


@pytest.fixture
def request_(tmp_path):
    return ExportRequest(str(tmp_path / "copies"), max_cells=1000, tables={
        f"model.shop.{name}": ("marts", name) for name in ("a", "b", "skipped", "broken")})


def test_a_copy_is_written_off_the_ops_thread_once_it_appears(request_):
    threads = []

    def write(node, rows):
        threads.append(threading.current_thread())
        return _published(node, rows)

    with _CopiedTableWrites(request_, write) as copies, copies.invocation():
        copies.submit(_node("a"))
        copies.submit(_node("not_requested"))
        time.sleep(0.1)
        assert copies.published_now("model.shop.a") is None  # no copy yet
        assert copies.handled("model.shop.a")  # but it is waiting for one
        assert not copies.handled("model.shop.not_requested")

        _copy(request_, "a", 7)
        _until(lambda: copies.published_now("model.shop.a") is not None)
        assert copies.published_now("model.shop.a").row_count == 7
        assert threads and threads[0] is not threading.current_thread()
        assert not request_.copy_path("model.shop.a").exists()  # read, then removed
        assert [p.identifier for p in copies.written()] == ["marts.a"]
    assert not (request_.copy_path("model.shop.a").parent).exists()


def test_a_table_without_a_copy_is_left_to_the_writes_after_dbt(request_):
    with _CopiedTableWrites(request_, _published) as copies:
        with copies.invocation():
            copies.submit(_node("skipped"))
            copies.submit(_node("b"))
            request_.skipped_path("model.shop.skipped").parent.mkdir(parents=True)
            request_.skipped_path("model.shop.skipped").write_text("too large\n")
        # dbt's process has exited without copying b.
        assert copies.published("model.shop.skipped") is None
        assert copies.published("model.shop.b") is None
        assert not copies.handled("model.shop.skipped")
        assert not copies.handled("model.shop.b")
        assert copies.written() == []


def test_a_failed_write_is_raised_when_asked_for_and_never_handed_back_early(request_):
    def write(node, rows):
        raise RuntimeError(f"catalog refused {node['name']}")

    with _CopiedTableWrites(request_, write) as copies, copies.invocation():
        _copy(request_, "broken", 3)
        copies.submit(_node("broken"))
        copies.wait()
        assert copies.published_now("model.shop.broken") is None
        assert copies.handled("model.shop.broken")  # not to be written again after dbt
        with pytest.raises(RuntimeError, match="catalog refused broken"):
            copies.published("model.shop.broken")
        assert copies.written() == []


def test_without_a_request_nothing_is_copied_or_waited_for(tmp_path):
    with _CopiedTableWrites(None, _published) as copies, copies.invocation():
        copies.submit(_node("a"))
        assert copies.published("model.shop.a") is None
        assert not copies.handled("model.shop.a")
