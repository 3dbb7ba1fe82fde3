"""lakeport's pyiceberg transactions and its snapshot retention, on pyiceberg's SQL catalog
over SQLite and a local warehouse (lakeport.iceberg_transactions). The writes through
them, on both real catalogs over S3: tests/integration/test_iceberg_writes.py."""

import pyarrow as pa
import pytest
from pyiceberg.table import Transaction

from lakeport.iceberg_transactions import WriteTransaction, snapshots_to_expire

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def table(sqlite_iceberg_table):
    return sqlite_iceberg_table


def _comparable(metadata):
    # Each computation stamps its own last_updated_ms when something is staged.
    return metadata.model_dump(exclude={"last_updated_ms"})


def test_metadata_is_computed_once_per_staged_change_and_matches_pyicebergs(table):
    ours, theirs = WriteTransaction(table), Transaction(table)
    first = ours.table_metadata
    assert ours.table_metadata is first  # no change staged: the same result
    for transaction in (ours, theirs):
        transaction.set_properties({"owner": "team-a"})
    staged = ours.table_metadata
    assert staged is not first and staged.properties["owner"] == "team-a"
    assert _comparable(staged) == _comparable(theirs.table_metadata)


def test_a_commit_refreshes_what_the_transaction_computes(table):
    transaction = WriteTransaction(table)
    before = transaction.table_metadata
    table.append(pa.table({"id": [7]}))  # the table's metadata is replaced by the commit
    assert transaction.table_metadata is not before
    assert transaction.table_metadata.current_snapshot_id == table.current_snapshot().snapshot_id


def test_a_write_through_the_transaction_commits_what_pyicebergs_would(table):
    with WriteTransaction(table) as transaction:
        transaction.append(pa.table({"id": [7, 8]}))
    assert table.scan().to_arrow().num_rows == 8
    assert table.current_snapshot().summary["added-records"] == "2"


def _with_retention(table, **properties):
    with table.transaction() as transaction:
        transaction.set_properties(properties)
    return table.metadata


def test_retention_keeps_the_newest_ancestors_and_everything_younger_than_the_age(table):
    snapshots = table.metadata.snapshots  # three appends, oldest first
    newest = max(s.timestamp_ms for s in snapshots)
    metadata = _with_retention(table, **{"history.expire.max-snapshot-age-ms": str(DAY_MS)})
    # All younger than a day: nothing goes, whatever the minimum.
    assert snapshots_to_expire(metadata, now_ms=newest + 1) == set()
    # A day later all are older: only the head stays (Iceberg's default minimum, 1).
    assert snapshots_to_expire(metadata, now_ms=newest + DAY_MS + 1) == {
        snapshots[0].snapshot_id, snapshots[1].snapshot_id}
    metadata = _with_retention(table, **{"history.expire.min-snapshots-to-keep": "2"})
    assert snapshots_to_expire(metadata, now_ms=newest + DAY_MS + 1) == {
        snapshots[0].snapshot_id}


def test_retention_defaults_to_icebergs_five_days(table):
    newest = max(s.timestamp_ms for s in table.metadata.snapshots)
    assert snapshots_to_expire(table.metadata, now_ms=newest + 4 * DAY_MS) == set()
    assert len(snapshots_to_expire(table.metadata, now_ms=newest + 6 * DAY_MS)) == 2


def test_a_tag_and_its_snapshot_are_never_expired(table):
    oldest = table.metadata.snapshots[0]
    table.manage_snapshots().create_tag(oldest.snapshot_id, "release").commit()
    newest = max(s.timestamp_ms for s in table.metadata.snapshots)
    expired = snapshots_to_expire(table.metadata, now_ms=newest + 6 * DAY_MS)
    assert expired == {table.metadata.snapshots[1].snapshot_id}


def test_the_platforms_retention_applies_where_the_table_sets_none(table):
    newest = max(s.timestamp_ms for s in table.metadata.snapshots)
    one_day = {"history.expire.max-snapshot-age-ms": str(DAY_MS)}
    assert len(snapshots_to_expire(table.metadata, newest + 2 * DAY_MS, one_day)) == 2
    # The table's own property wins over the platform's.
    metadata = _with_retention(table, **{"history.expire.max-snapshot-age-ms": str(3 * DAY_MS)})
    assert snapshots_to_expire(metadata, newest + 2 * DAY_MS, one_day) == set()
