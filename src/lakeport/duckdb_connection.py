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
            f"SET threads = {int(self.threads)}",
            f"SET temp_directory = '{_sql_string(self.temp_directory)}'",
            f"SET max_temp_directory_size = '{self.max_temp_directory_size}'",
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


def _sql_string(value: str) -> str:
    return value.replace("'", "''")
