"""DuckDB settings as values, and connections opened with them.

Kept free of the platform model (pydantic, the kubernetes client) so the dbt subprocess,
which only applies settings the run derived, imports almost nothing besides DuckDB.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

# Carries the settings the run derived to the dbt subprocess (and anything else it starts).
SETTINGS_ENV = "LAKEPORT_DUCKDB_SETTINGS"
# One machine only: the run's own scratch directory, made by the local run launcher as
# the counterpart of a run pod's spill volume. Concurrent runs must not share a DuckDB
# file (its write lock) or a temp directory.
RUN_SCRATCH_ENV = "LAKEPORT_RUN_SCRATCH_DIR"
# A DuckDB variable on every connection lakeport opens: the memory limit it was given.
MEMORY_LIMIT_VARIABLE = "lakeport_memory_limit"
# DuckDB hands memory its allocator freed back to the OS once a thread's peak since the
# last flush passes allocator_flush_threshold (128 MiB by default), and after a bulk free
# over allocator_bulk_deallocation_flush_threshold (512 MiB), so in a small pod up to
# that much freed memory is kept outside the buffer pool while a query runs
# (Allocator::ThreadFlush, src/common/allocator/allocator_jemalloc.cpp at v1.5.5).
# Measured with bench/memory_discipline.py's catalog query at 8x a 512 MiB pod
# (memory_limit 282 MiB, one thread): the process peaked at 507 MiB with the defaults and
# at 470 MiB with both at 16 MiB.
ALLOCATOR_FLUSH_THRESHOLD = "16MiB"


@dataclass(frozen=True)
class DuckDBSettings:
    memory_limit: str
    threads: int
    temp_directory: str
    max_temp_directory_size: str
    # Why each value is what it is: recorded with every materialization.
    memory_limit_source: str
    threads_source: str

    def statements(self) -> list[str]:
        return [
            f"SET memory_limit = '{self.memory_limit}'",
            # Exact, for release_memory: DuckDB reports the limit rounded ("1.1 GiB").
            f"SET VARIABLE {MEMORY_LIMIT_VARIABLE} = '{self.memory_limit}'",
            f"SET threads = {int(self.threads)}",
            f"SET temp_directory = '{_sql_string(self.temp_directory)}'",
            f"SET max_temp_directory_size = '{self.max_temp_directory_size}'",
            f"SET allocator_flush_threshold = '{ALLOCATOR_FLUSH_THRESHOLD}'",
            f"SET allocator_bulk_deallocation_flush_threshold = '{ALLOCATOR_FLUSH_THRESHOLD}'",
        ]

    def apply(self, connection: "duckdb.DuckDBPyConnection") -> None:
        Path(self.temp_directory).mkdir(parents=True, exist_ok=True)
        for statement in self.statements():
            connection.execute(statement)

    def as_metadata(self) -> dict[str, str | int]:
        return {f"duckdb/{key}": value for key, value in asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DuckDBSettings":
        return cls(**json.loads(text))


def connect(
    settings: DuckDBSettings, database: str | Path = ":memory:", read_only: bool = False
) -> "duckdb.DuckDBPyConnection":
    """A DuckDB connection held to the run's limits."""
    # Imported on first use: a code server building Definitions never opens DuckDB.
    import duckdb

    if str(database) != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect(str(database), read_only=read_only)
    settings.apply(connection)
    return connection


def release_memory(connection: "duckdb.DuckDBPyConnection") -> None:
    """Give back to the OS the memory DuckDB freed but keeps, before other code allocates.

    After a large query DuckDB's allocator (jemalloc) keeps the pages it freed: measured
    with DuckDB 1.5.5, a process stayed at 465 MiB of anonymous memory after a spilling
    aggregate under a 342 MiB memory_limit, while duckdb_memory() showed 2 MiB in use, and
    pyiceberg's writer then took it to 610 MiB. Setting memory_limit, even to its current
    value, evicts down to the limit and purges every allocator arena and trims the system
    heap (BufferPool::SetLimit -> BlockAllocator::FlushAll -> Allocator::FlushAll, in
    src/storage/buffer/buffer_pool.cpp and src/common/allocator/allocator_jemalloc.cpp at
    v1.5.5): the process went back to 104 MiB and the write peaked at 275 MiB.
    """
    (limit,) = connection.execute(
        f"SELECT getvariable('{MEMORY_LIMIT_VARIABLE}')"
    ).fetchone()
    if limit is None:
        return  # not opened by connect(): no exact limit to set again
    connection.execute(f"SET memory_limit = '{_sql_string(limit)}'")


def _sql_string(value: str) -> str:
    return value.replace("'", "''")
