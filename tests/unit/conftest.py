"""Fixtures the unit tests share."""

import pyarrow as pa
import pytest


@pytest.fixture
def sqlite_iceberg_table(tmp_path):
    """A table of pyiceberg's SQL catalog on SQLite and a local warehouse (no server), with
    three appends: three snapshots, oldest first."""
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("unit", uri="sqlite:///:memory:", warehouse=f"file://{tmp_path}")
    catalog.create_namespace("ns")
    table = catalog.create_table(("ns", "t"), schema=pa.schema([("id", pa.int64())]))
    for rows in ([1], [2, 3], [4, 5, 6]):
        table.append(pa.table({"id": rows}))
    return table
