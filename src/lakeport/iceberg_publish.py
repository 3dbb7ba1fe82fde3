"""Publishing a DuckDB table into the Iceberg catalog.

DuckDB computes; the catalog is the control plane. Rows go DuckDB -> Arrow -> pyiceberg,
which writes the data files and commits a snapshot through the catalog (Polaris or the
SQL catalog), so every materialisation is one new snapshot and nothing is written behind
the catalog's back. A daily partition replaces only its own day.
"""

from dataclasses import dataclass
from datetime import date

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan


@dataclass(frozen=True)
class DayWindow:
    column: str
    start: date  # inclusive
    end: date  # exclusive


@dataclass(frozen=True)
class Published:
    identifier: str
    row_count: int
    snapshot_id: int
    metadata_location: str

    def as_metadata(self) -> dict:
        return {
            "dagster/row_count": self.row_count,
            "iceberg/table": self.identifier,
            "iceberg/snapshot_id": str(self.snapshot_id),
            "iceberg/metadata_location": self.metadata_location,
        }


def read_relation(
    connection: duckdb.DuckDBPyConnection, relation: str, window: DayWindow | None = None
) -> pa.Table:
    """The rows of `schema.table` (only the window's days when given) as Arrow."""
    query = f"select * from {relation}"
    params = []
    if window is not None:
        query += f' where "{window.column}" >= ? and "{window.column}" < ?'
        params = [window.start, window.end]
    return connection.execute(query, params).fetch_arrow_table()


def publish(
    catalog: Catalog,
    namespace: str,
    name: str,
    rows: pa.Table,
    window: DayWindow | None = None,
) -> Published:
    """Replace the table's rows (or the window's days) with `rows`: one new snapshot."""
    identifier = f"{namespace}.{name}"
    catalog.create_namespace_if_not_exists(namespace)
    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        table = catalog.create_table(identifier, schema=rows.schema)
    else:
        # A model that gained or widened a column evolves the table instead of failing.
        with table.update_schema() as update:
            update.union_by_name(rows.schema)
    if window is None:
        table.overwrite(rows)
    else:
        day_filter = And(
            GreaterThanOrEqual(window.column, window.start.isoformat()),
            LessThan(window.column, window.end.isoformat()),
        )
        table.overwrite(rows, overwrite_filter=day_filter)
    snapshot = table.current_snapshot()
    return Published(
        identifier=identifier,
        row_count=rows.num_rows,
        snapshot_id=snapshot.snapshot_id,
        metadata_location=table.metadata_location,
    )
