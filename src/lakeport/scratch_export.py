"""Copies of small built tables, taken inside dbt's process as each model finishes, so the
run can write them to Iceberg while dbt goes on building.

dbt holds DuckDB's write lock on the run's scratch file until it exits, so without these
copies nothing it built can be read, let alone written to the catalog, before the whole
build ends: a 200-model run waited 10 s after dbt for its 140 writes, and Dagster stored
every held event after that (bench/orchestration_overhead.py).

The op names the tables it wants copied in LAKEPORT_SCRATCH_EXPORT: tables written whole
(not a day window, not an increment on a base) of its selection. lakeport's dbt-duckdb
plugin (lakeport.dbt_duckdb_plugin) then starts an `Exporter` in dbt's process, which
hears dbt's NodeFinished events (a dbt event callback) and, on a thread of its own, copies
each such table that succeeded into a Parquet file in the export directory with DuckDB's
`COPY` (no Python holds dbt's GIL meanwhile; under the run's memory_limit, as DuckDB's
buffer pool is shared with dbt's own queries). A table over `max_cells` (DuckDB's row
estimate times its columns) is not copied: a copy must be cheap beside the model that
built it.

The op reads a copy back with DuckDB (`read_parquet`), so it writes the same Arrow schema
as from the scratch, provided every column's type survives the trip through Parquet.
Most do; measured with DuckDB 1.5.5, these come back as another type: HUGEINT and
UHUGEINT (DOUBLE), ENUM and BIT and BIGNUM (VARCHAR), TIMESTAMP_MS and TIMESTAMP_S
(TIMESTAMP), UNION (a STRUCT), fixed-size arrays (lists); TIME WITH TIME ZONE keeps its
type but not its values. So the exporter reads the copy's column types back and, if any
differs or is TIME WITH TIME ZONE, drops the copy: that table is written from the scratch.
(A Parquet write and a `read_parquet` of a 1,000-row table took about 1 ms each; a
DuckDB file of its own, attached, written and opened, took 7 ms and 17 ms.)

Each copy appears under its final name only when complete (written under a temporary
name, then renamed), and a table not copied gets a `.skipped` file saying why; the op
writes those, and whatever dbt's process did not get to, from the scratch after dbt exits.

Imports nothing heavy: it runs inside dbt's process.
"""

import contextlib
import json
import os
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXPORT_ENV = "LAKEPORT_SCRATCH_EXPORT"
COPY_SUFFIX = ".parquet"
SKIPPED_SUFFIX = ".skipped"
# Keeps its type through Parquet but not its values (see above).
LOSSY_TYPES = ("TIME WITH TIME ZONE",)
# How often a waiting writer looks for a copy.
POLL_SECONDS = 0.01


@dataclass(frozen=True)
class ExportRequest:
    """What the op asks dbt's process to copy, and where."""

    directory: str
    max_cells: int
    # unique id -> (schema, table) in the scratch database
    tables: dict[str, tuple[str, str]]

    def to_json(self) -> str:
        return json.dumps({"directory": self.directory, "max_cells": self.max_cells,
                           "tables": {k: list(v) for k, v in self.tables.items()}})

    @classmethod
    def from_json(cls, text: str) -> "ExportRequest":
        value = json.loads(text)
        return cls(directory=value["directory"], max_cells=int(value["max_cells"]),
                   tables={k: (v[0], v[1]) for k, v in value["tables"].items()})

    def copy_path(self, unique_id: str) -> Path:
        return Path(self.directory) / (_file_stem(unique_id) + COPY_SUFFIX)

    def skipped_path(self, unique_id: str) -> Path:
        return Path(self.directory) / (_file_stem(unique_id) + SKIPPED_SUFFIX)


def _file_stem(unique_id: str) -> str:
    # unique ids are `model.<package>.<name>`; keep them readable and path-safe.
    return re.sub(r"[^A-Za-z0-9_.-]", "_", unique_id)


class Exporter:
    """Runs in dbt's process: copies each requested table dbt built, as dbt finishes it."""

    def __init__(self, request: ExportRequest):
        self.request = request
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self, connection) -> None:
        """Start copying on a cursor of dbt's own DuckDB connection (the same database
        instance: a second process could not open the file while dbt holds it)."""
        if self._thread is not None:
            return
        Path(self.request.directory).mkdir(parents=True, exist_ok=True)
        cursor = connection.cursor()
        self._thread = threading.Thread(
            target=self._copy_each, args=(cursor,), name="lakeport-scratch-export", daemon=True
        )
        self._thread.start()

    def on_dbt_event(self, message: Any) -> None:
        """A dbt event callback (dbt_common's EventManager calls it with each EventMsg,
        on the thread that fired the event): queue a requested table that succeeded."""
        if message.info.name != "NodeFinished":
            return
        unique_id = message.data.node_info.unique_id
        if unique_id in self.request.tables and message.data.run_result.status == "success":
            self._queue.put(unique_id)

    def close(self) -> None:
        """Finish the copies queued, then stop: called as dbt's process exits."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    def _copy_each(self, cursor) -> None:
        with contextlib.closing(cursor):
            while (unique_id := self._queue.get()) is not None:
                try:
                    reason = copy_table(cursor, self.request, unique_id)
                except Exception as exc:  # a failed copy is written from the scratch later
                    reason = f"copy failed: {type(exc).__name__}: {exc}"
                if reason is not None:
                    self.request.skipped_path(unique_id).write_text(reason + "\n")


def copy_table(cursor, request: ExportRequest, unique_id: str) -> str | None:
    """Copy one table into a Parquet file; the reason it was not copied, or None."""
    schema, table = request.tables[unique_id]
    row = cursor.execute(
        "select estimated_size * column_count from duckdb_tables() "
        "where database_name = current_database() and schema_name = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    if row is None:
        return f"no table {schema}.{table} in the scratch"
    if row[0] > request.max_cells:
        return f"{row[0]} cells, over {request.max_cells}: written from the scratch"
    target = request.copy_path(unique_id)
    partial = target.with_name(target.name + ".partial")
    relation = f'"{_ident(schema)}"."{_ident(table)}"'
    cursor.execute(
        f"COPY (SELECT * FROM {relation}) TO '{_sql_string(str(partial))}' (FORMAT parquet)"
    )
    built = column_types(cursor, f"SELECT * FROM {relation}")
    copied = column_types(cursor, f"SELECT * FROM read_parquet('{_sql_string(str(partial))}')")
    changed = [
        f"{name} {kind}" for (name, kind), (_, back) in zip(built, copied, strict=True)
        if kind != back or any(lossy in kind for lossy in LOSSY_TYPES)
    ]
    if changed:
        partial.unlink()
        return f"columns not kept by a Parquet copy: {', '.join(changed)}"
    os.replace(partial, target)
    return None


def column_types(cursor, query: str) -> list[tuple[str, str]]:
    """(name, DuckDB type) of each column `query` returns."""
    return [(name, kind) for name, kind, *_ in cursor.execute(f"DESCRIBE {query}").fetchall()]


def read_copy(connection, path: Path):
    """A copy's rows as an Arrow table, read by DuckDB so each column gets the Arrow type
    it gets from the scratch."""
    return connection.execute(
        f"SELECT * FROM read_parquet('{_sql_string(str(path))}')"
    ).to_arrow_table()


def wait_for_copy(
    request: ExportRequest, unique_id: str, dbt_exited: threading.Event
) -> Path | None:
    """The copy of `unique_id` once dbt's process has made it; None when it was skipped,
    or when dbt's process has exited without making it."""
    copy, skipped = request.copy_path(unique_id), request.skipped_path(unique_id)
    while True:
        exited = dbt_exited.is_set()
        if copy.exists():
            return copy
        if exited or skipped.exists():
            return None
        time.sleep(POLL_SECONDS)


def _sql_string(value: str) -> str:
    return value.replace("'", "''")


def _ident(value: str) -> str:
    return value.replace('"', '""')
