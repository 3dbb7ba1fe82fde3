"""Writing rows into an Iceberg table through the catalog: one atomic commit per write.

DuckDB computes; the catalog is the control plane. Rows stream DuckDB -> Arrow record
batches -> pyiceberg, which writes the data files and commits one snapshot update through
the catalog (Polaris / any Iceberg REST server, or the SQL catalog), so nothing is written
behind the catalog's back and a write that fails leaves the table at its previous
snapshot.

A table larger than the run's memory is written one data file at a time, so it is never
whole in Python. pyiceberg 0.12 accepts a `pa.RecordBatchReader` in `append`/`overwrite`
and bins it lazily (`bin_pack_record_batches`), but then hands the bins to
`io.pyarrow.write_file`, whose `ThreadPoolExecutor.map` submits every task before the
first one runs (Python's `Executor.map` collects its iterable eagerly): the whole reader
is pulled into memory before any file is written. Measured under a 384 MiB cgroup, a
2.4M-row mart took the writer from 170 MiB to 398 MiB of anonymous memory and the run
was OOM-killed in CI. So `_stream` below does what `Transaction.append` does, but gives
pyiceberg one bin at a time.

Three kinds of write:
- replace the whole table (tables, seeds, snapshots);
- replace one day window (daily-partitioned models: exactly that day);
- append an increment computed against a known snapshot (incremental models). If the
  table moved past that snapshot meanwhile, the increment may be stale: the write fails
  naming both snapshots instead of appending a possibly duplicated batch.

Two writers committing to the same table at once: the catalog accepts one commit and
answers the other with CommitFailedException (the REST spec's assert-ref-snapshot-id
requirement; the SQL catalog's compare-and-swap on metadata_location). A replacing write
retries on the fresh snapshot (its result does not depend on the old rows); an append
re-checks its base snapshot first, and so fails naming the conflict.

lakeport owns that retry. pyiceberg 0.12 would otherwise retry a failed commit itself,
rebasing an append onto whatever snapshot won (Transaction.commit_transaction ->
_rebuild_snapshot_updates), which for an increment computed against the old snapshot
means rows appended twice or on the wrong base. So every table lakeport writes carries
`commit.retry.num-retries = 0`, and each attempt here starts from a fresh load.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

COMMIT_ATTEMPTS = 4
# Rows per Arrow batch a DuckDB query hands to pyiceberg: bounded memory in the writer.
READ_BATCH_ROWS = 100_000
# Table properties lakeport sets on every table it writes (pyiceberg's TableProperties):
# - COMMIT_NUM_RETRIES 0: no rebasing retries inside pyiceberg (see above);
# - WRITE_TARGET_FILE_SIZE_BYTES: pyiceberg gathers this many bytes of Arrow batches in
#   memory before it writes a data file. Its default, 512 MiB, took a streamed write of a
#   2 GiB table to 1.9 GiB of RSS; at 64 MiB the writer stays near 300 MiB
#   (bench/catalog_read.py), with data files of ~10-20 MiB after compression.
TABLE_PROPERTIES = {
    "commit.retry.num-retries": "0",
    "write.target-file-size-bytes": str(32 * 1024 * 1024),
}


class IncrementConflictError(RuntimeError):
    """Another writer changed the table after this run read it as its incremental base."""


@dataclass(frozen=True)
class DayWindow:
    column: str
    start: date  # inclusive
    end: date  # exclusive


@dataclass(frozen=True)
class Append:
    """Add rows to the table as it was at `base_snapshot_id` (None: the table was empty)."""

    base_snapshot_id: int | None


@dataclass(frozen=True)
class Published:
    identifier: str
    row_count: int
    snapshot_id: int
    metadata_location: str
    operation: str
    # The table's columns after the write: (name, Iceberg type), for lineage schema facets.
    fields: tuple[tuple[str, str], ...] = ()
    # Snapshots the write's commit expired (lakeport.iceberg_transactions).
    snapshots_expired: int = 0

    def as_metadata(self) -> dict:
        return {
            "dagster/row_count": self.row_count,
            "iceberg/table": self.identifier,
            "iceberg/snapshot_id": str(self.snapshot_id),
            "iceberg/metadata_location": self.metadata_location,
            "iceberg/operation": self.operation,
            "iceberg/snapshots_expired": self.snapshots_expired,
        }


# What a write does: replace everything (None), replace a day window, or append.
WriteMode = DayWindow | Append | None


def query_rows(
    connection: "duckdb.DuckDBPyConnection", query: str, params: list | None = None
) -> Callable[[], "pa.RecordBatchReader"]:
    """`publish`'s `rows` for a DuckDB query: a new streaming reader per commit attempt."""

    from lakeport.duckdb_connection import release_memory

    def rows():
        # The writer's Arrow buffers and Parquet pages live outside DuckDB's memory_limit:
        # make room for them with what DuckDB holds from the query that built the rows.
        release_memory(connection)
        return connection.execute(query, params or []).fetch_record_batch(READ_BATCH_ROWS)

    return rows


def publish(
    catalog: "Catalog",
    identifier: tuple[str, str],
    rows: Callable[[], "pa.RecordBatchReader"],
    mode: WriteMode = None,
) -> Published:
    """Write `rows()` into the table `namespace.name` as one commit; create it if missing.

    `rows` is a factory: a commit that lost a race is retried with a fresh reader, since a
    reader is consumed by the attempt that failed.
    """
    from pyiceberg.exceptions import (
        CommitFailedException,
        TableAlreadyExistsError,
        ValidationException,
    )

    from lakeport.catalog import table_defaults

    name = ".".join(identifier)
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        reader = rows()
        table = _load_for_write(catalog, identifier, reader.schema)
        try:
            if table is None:
                table = _create_with_rows(catalog, identifier, name, reader, mode)
                operation, expired = _operation(mode), 0
            else:
                operation, expired = _write(table, name, reader, mode, table_defaults(catalog))
        # A new table another writer created first fails its commit with one of the
        # first two (the REST spec's assert-create; the SQL catalog's insert); the next
        # attempt finds the table and writes into it.
        except (CommitFailedException, TableAlreadyExistsError, ValidationException) as exc:
            if attempt == COMMIT_ATTEMPTS:
                raise RuntimeError(
                    f"Iceberg table {name}: {COMMIT_ATTEMPTS} commits in a row lost to "
                    f"concurrent writers ({exc}); the table keeps its current snapshot"
                ) from exc
            time.sleep(0.2 * attempt)
            continue
        # The committed transaction left `table` at the metadata it wrote (pyiceberg's
        # Table._do_commit takes the catalog's answer), so no second load: its last
        # snapshot is the append, and what that added is what was written.
        return _state(table, name, operation, expired)
    raise AssertionError("unreachable")


def unchanged(catalog: "Catalog", identifier: tuple[str, str]) -> Published:
    """The table as it is, for a write that had nothing to add (no empty snapshot made)."""
    return _state(catalog.load_table(identifier), ".".join(identifier), "unchanged")


def _state(table: "Table", name: str, operation: str, expired: int = 0) -> Published:
    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot else None
    added = summary.get("added-records") if summary and operation != "unchanged" else None
    return Published(
        identifier=name,
        row_count=int(added or 0),
        snapshot_id=snapshot.snapshot_id if snapshot else 0,
        metadata_location=table.metadata_location,
        operation=operation,
        fields=table_fields(table),
        snapshots_expired=expired,
    )


def table_fields(table: "Table") -> tuple[tuple[str, str], ...]:
    """The table's current columns as (name, Iceberg type), for lineage schema facets."""
    return tuple((field.name, str(field.field_type)) for field in table.schema().fields)


def _load_for_write(catalog: "Catalog", identifier: tuple[str, str], schema) -> "Table | None":
    """The table, with lakeport's properties and `schema`'s columns; None if missing."""
    from pyiceberg.exceptions import NoSuchTableError

    from lakeport.catalog import load_table

    try:
        table = load_table(catalog, identifier)
    except NoSuchTableError:
        return None
    if any(table.properties.get(k) != v for k, v in TABLE_PROPERTIES.items()):
        # A table created by something else: lakeport's write rules from now on.
        with table.transaction() as transaction:
            transaction.set_properties(TABLE_PROPERTIES)
    # A model that gained or widened a column evolves the table instead of failing (its own
    # commit, only if the schema changed). Through lakeport's transaction, as
    # `Table.update_schema` does with pyiceberg's: its metadata is computed once, not on
    # each of UpdateSchema's reads.
    from lakeport.iceberg_transactions import WriteTransaction

    with WriteTransaction(table, autocommit=True).update_schema() as update:
        update.union_by_name(schema)
    return table


def _create_with_rows(
    catalog: "Catalog", identifier: tuple[str, str], name: str,
    reader: "pa.RecordBatchReader", mode: WriteMode,
) -> "Table":
    """Create the table with its first rows in one commit: the table appears with its
    data, and the catalog writes one metadata file instead of two (an empty table, then
    its first snapshot)."""
    if isinstance(mode, Append) and mode.base_snapshot_id is not None:
        raise IncrementConflictError(
            f"Iceberg table {name} is gone: this run read it at snapshot "
            f"{mode.base_snapshot_id} as its incremental base, and another writer dropped it "
            "meanwhile. Nothing was written; run the model again to build it anew."
        )
    # The namespace is looked at only for a new table: one catalog call less per write.
    _ensure_namespace(catalog, identifier[0])
    from lakeport.iceberg_transactions import CreateWriteTransaction

    transaction = CreateWriteTransaction.of(catalog.create_table_transaction(
        identifier, schema=reader.schema, properties=TABLE_PROPERTIES
    ))
    # Private in pyiceberg 0.12: the staged table is where the transaction keeps its
    # FileIO (Transaction.append reads self._table.io the same way).
    # tests/unit/test_pyiceberg_seams.py holds it.
    _append_batches(transaction, transaction._table.io, reader)
    return transaction.commit_transaction()


def _operation(mode: WriteMode) -> str:
    if isinstance(mode, Append):
        return "append"
    return "overwrite-window" if isinstance(mode, DayWindow) else "overwrite"


def _ensure_namespace(catalog: "Catalog", namespace: str) -> None:
    """Create the namespace unless it exists, also when another writer creates it at the
    same moment. The loser of that race does not always get NamespaceAlreadyExistsError
    (which pyiceberg's create_namespace_if_not_exists absorbs): Apache Iceberg's REST
    server (JdbcCatalog) answers HTTP 500, a failed INSERT into
    iceberg_namespace_properties (pyiceberg: ServerError), and pyiceberg's SQL catalog
    raises SQLAlchemy's IntegrityError on the same table's unique key. Seen as failed
    attempts of the demo's bronze assets, run in parallel in a run pod. Whatever the
    error, a namespace that exists afterwards is what was asked for."""
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except Exception:
        if not catalog.namespace_exists(namespace):
            raise


def _write(
    table: "Table", name: str, reader: "pa.RecordBatchReader", mode: WriteMode,
    table_defaults: dict[str, str],
) -> tuple[str, int]:
    """Write `reader` into the existing `table`: the operation, and the snapshots expired
    (by the table's retention, else `table_defaults`)."""
    from pyiceberg.expressions import AlwaysTrue, And, GreaterThanOrEqual, LessThan

    if isinstance(mode, Append):
        current = table.current_snapshot()
        current_id = current.snapshot_id if current else None
        if current_id != mode.base_snapshot_id:
            raise IncrementConflictError(
                f"Iceberg table {name} moved from snapshot {mode.base_snapshot_id} (what this "
                f"run read as its incremental base) to {current_id} while the run computed "
                "its increment: another run wrote it. Nothing was appended; run the model "
                "again to build its increment on the new snapshot."
            )
        expired = _stream(table, reader, None, table_defaults)
    elif isinstance(mode, DayWindow):
        day_filter = And(
            GreaterThanOrEqual(mode.column, mode.start.isoformat()),
            LessThan(mode.column, mode.end.isoformat()),
        )
        expired = _stream(table, reader, day_filter, table_defaults)
    else:
        expired = _stream(table, reader, AlwaysTrue(), table_defaults)
    return _operation(mode), expired


def _stream(
    table: "Table", reader: "pa.RecordBatchReader", delete_filter, table_defaults: dict[str, str]
) -> int:
    """One transaction (one catalog commit): delete what `delete_filter` matches, then
    append `reader` (`_append_batches`), then expire the snapshots the table's retention
    lets go; how many it expired. The order and snapshot kinds are those of pyiceberg
    0.12's `Transaction.overwrite` (a delete snapshot, then a fast append)."""
    from lakeport.iceberg_transactions import WriteTransaction, expire_snapshots

    with WriteTransaction(table) as transaction:
        if delete_filter is not None and table.current_snapshot() is not None:
            transaction.delete(delete_filter)
        _append_batches(transaction, table.io, reader)
        return expire_snapshots(transaction, int(time.time() * 1000), table_defaults)


def _append_batches(transaction, io, reader: "pa.RecordBatchReader") -> None:
    """Add `reader` to `transaction` as one fast append of data files of about
    `write.target-file-size-bytes` each, each file written before the next is read."""
    import itertools

    import pyarrow as pa

    # Private in pyiceberg 0.12: the function `Transaction.append` itself calls to turn
    # Arrow data into data files. tests/unit/test_pyiceberg_seams.py holds its signature.
    from pyiceberg.io.pyarrow import _dataframe_to_data_files, bin_pack_record_batches

    target_file_size = int(
        transaction.table_metadata.properties.get(
            "write.target-file-size-bytes", TABLE_PROPERTIES["write.target-file-size-bytes"]
        )
    )
    with transaction.update_snapshot().fast_append() as append_files:
        # One counter for all bins: it numbers the data files' names within the write.
        counter = itertools.count(0)
        for batches in bin_pack_record_batches(reader, target_file_size):
            data_files = _dataframe_to_data_files(
                table_metadata=transaction.table_metadata,
                df=pa.RecordBatchReader.from_batches(reader.schema, batches),
                io=io,
                write_uuid=append_files.commit_uuid,
                counter=counter,
            )
            for data_file in data_files:
                append_files.append_data_file(data_file)
