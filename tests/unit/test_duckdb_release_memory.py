"""release_memory: DuckDB gives back what a finished query freed, and keeps its exact limit."""

import subprocess
import sys
import textwrap

from lakeport.duckdb_connection import DuckDBSettings, connect, release_memory


def _settings(tmp_path, memory_limit: str) -> DuckDBSettings:
    return DuckDBSettings(memory_limit, 1, str(tmp_path / "spill"), "4GiB", "test", "test")


def test_the_limit_connect_set_is_set_again_exactly(tmp_path):
    connection = connect(_settings(tmp_path, "1223MiB"))
    # DuckDB reports it rounded, as "1.1 GiB": setting that back would lose ~100 MiB, so
    # the exact figure travels in a variable.
    assert connection.execute(
        "SELECT getvariable('lakeport_memory_limit')"
    ).fetchone()[0] == "1223MiB"
    connection.execute("SET memory_limit = '100MiB'")
    release_memory(connection)
    assert connection.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "1.1 GiB"


def test_connect_sets_both_allocator_flush_thresholds_to_16_mib(tmp_path):
    connection = connect(_settings(tmp_path, "300MiB"))
    assert dict(connection.execute(
        "SELECT name, value FROM duckdb_settings() WHERE name IN "
        "('allocator_flush_threshold', 'allocator_bulk_deallocation_flush_threshold')"
    ).fetchall()) == {
        "allocator_flush_threshold": "16.0 MiB",
        "allocator_bulk_deallocation_flush_threshold": "16.0 MiB",
    }


def test_a_connection_lakeport_did_not_open_is_left_as_it_is():
    import duckdb

    connection = duckdb.connect()
    connection.execute("SET memory_limit = '123MiB'")
    release_memory(connection)
    assert connection.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "123.0 MiB"


def test_memory_a_finished_query_freed_goes_back_to_the_os(tmp_path):
    # In a child of its own, so nothing else this test process holds moves its memory.
    script = textwrap.dedent(f"""
        from lakeport.duckdb_connection import DuckDBSettings, connect, release_memory

        def anon():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) << 10

        connection = connect(DuckDBSettings("300MiB", 1, {str(tmp_path / "spill")!r}, "4GiB",
                                            "test", "test"))
        # A query slower than 2 s (a loaded machine) would print DuckDB's progress bar on
        # the stdout this test reads.
        connection.execute("SET enable_progress_bar = false")
        # DuckDB's own thresholds, under which it keeps what a query freed.
        connection.execute("SET allocator_flush_threshold = '128MiB'")
        connection.execute("SET allocator_bulk_deallocation_flush_threshold = '512MiB'")
        before = anon()
        connection.execute(
            "SELECT count(*) FROM (SELECT i % 8000000 AS k, count(*) AS n, "
            "max(i::VARCHAR) AS s FROM range(16000000) r(i) GROUP BY ALL)").fetchall()
        after_query = anon()
        release_memory(connection)
        print("anon:", before, after_query, anon())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    (reading,) = [line for line in result.stdout.splitlines() if line.startswith("anon:")]
    before, after_query, released = map(int, reading.split()[1:])
    held = after_query - before
    assert held > 100 << 20, f"the query was meant to leave memory held, held {held >> 20} MiB"
    # At least three quarters of what the query left held is given back.
    assert released - before < held / 4, (before >> 20, after_query >> 20, released >> 20)
