"""Writes through the catalog, on both catalogs lakeport runs on: pyiceberg's SQL catalog
(`make dev`) and a real Iceberg REST server (Apache Iceberg's RESTCatalogServer, the
protocol Polaris speaks on Kubernetes), both over a real S3 endpoint."""

import threading
from datetime import date

import duckdb
import pyarrow as pa
import pytest
from support.demo import WAREHOUSE_BUCKET, demo_platform

from lakeport.catalog import load_catalog
from lakeport.credentials import CATALOG_CREDENTIAL_ENV
from lakeport.duckdb_s3 import configure_s3
from lakeport.iceberg_publish import Append, DayWindow, IncrementConflictError, publish

SCHEMA = pa.schema([("id", pa.int64()), ("day", pa.date32()), ("amount", pa.float64())])


def _rows(ids, day):
    return pa.table(
        {"id": list(ids), "day": [day] * len(ids), "amount": [float(i) for i in ids]},
        schema=SCHEMA,
    )


def _reader(table: pa.Table, before_first_batch=None):
    """A factory of readers over `table`; `before_first_batch` runs once, mid-write."""
    calls = []

    def batches():
        if before_first_batch is not None and not calls:
            calls.append(1)
            before_first_batch()
        yield from table.to_batches()

    return lambda: pa.RecordBatchReader.from_batches(table.schema, batches())


@pytest.fixture(params=["sql", "rest"])
def platform(request, tmp_path, s3_server, s3_env, monkeypatch):
    s3_server.ensure_buckets(WAREHOUSE_BUCKET)
    if request.param == "sql":
        return demo_platform(tmp_path / "data", s3_server.endpoint)
    server = request.getfixturevalue("iceberg_rest_server")
    # Iceberg's server issues a token for any client credentials; Polaris checks them.
    monkeypatch.setenv(CATALOG_CREDENTIAL_ENV, "lakeport:not-checked-by-this-server")
    platform = demo_platform(tmp_path / "data", s3_server.endpoint)
    return platform.model_copy(update={"catalog": _rest_catalog(server)})


def _rest_catalog(server):
    from lakeport.platform import Catalog, RestCatalog

    return Catalog(type="rest", warehouse=server.warehouse, rest=RestCatalog(uri=server.uri))


def test_create_load_overwrite_a_day_and_read_back_with_duckdb(platform):
    catalog = load_catalog(platform)
    day1, day2 = date(2026, 11, 1), date(2026, 11, 2)
    both = pa.concat_tables([_rows(range(0, 10), day1), _rows(range(10, 30), day2)])
    first = publish(catalog, ("marts", "facts"), _reader(both))
    assert first.row_count == 30 and first.operation == "overwrite"

    # Day 2 replaced by 5 new rows; day 1 untouched.
    window = DayWindow("day", day2, date(2026, 11, 3))
    second = publish(catalog, ("marts", "facts"), _reader(_rows(range(100, 105), day2)), window)
    assert second.row_count == 5 and second.operation == "overwrite-window"
    table = catalog.load_table(("marts", "facts"))
    assert table.current_snapshot().snapshot_id == second.snapshot_id
    assert ("marts",) in catalog.list_namespaces()

    with duckdb.connect() as reader:
        configure_s3(reader, platform)
        rows = reader.execute(
            "select day, count(*), min(id) from iceberg_scan(?) group by day order by day",
            [table.metadata_location],
        ).fetchall()
    assert rows == [(day1, 10, 0), (day2, 5, 100)]


def test_rest_requests_ask_for_no_credential_vending(platform):
    if platform.catalog.type != "rest":
        pytest.skip("a header of the REST protocol")
    catalog = load_catalog(platform)
    # An empty header, not pyiceberg's default "vended-credentials": a Polaris catalog
    # without STS answers that default with HTTP 400 (apache/polaris#3853).
    assert catalog._session.headers["X-Iceberg-Access-Delegation"] == ""


def test_a_replacing_write_that_loses_a_race_retries_on_the_fresh_snapshot(platform):
    catalog = load_catalog(platform)
    publish(catalog, ("marts", "raced"), _reader(_rows(range(3), date(2026, 1, 1))))
    other = load_catalog(platform)

    def concurrent_writer():
        # Commits between this write's load of the table and its commit.
        publish(other, ("marts", "raced"), _reader(_rows(range(50, 60), date(2026, 1, 1))))

    mine = _rows(range(7), date(2026, 1, 1))
    result = publish(catalog, ("marts", "raced"), _reader(mine, concurrent_writer))
    table = catalog.load_table(("marts", "raced"))
    # The retry replaced the other writer's rows: the table holds exactly ours, and both
    # commits are in its history (nothing lost silently).
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(7))
    assert table.current_snapshot().snapshot_id == result.snapshot_id
    # The metadata before ours: the table created with its first rows (one commit), then
    # the other writer's.
    assert len(table.metadata.metadata_log) == 2
    # Snapshots: the first rows' append, then a delete and an append for each of the two
    # replacing writes.
    assert [s.summary.operation.value for s in table.snapshots()] == [
        "append", "delete", "append", "delete", "append"]


def test_an_append_whose_base_moved_fails_naming_the_conflict(platform):
    catalog = load_catalog(platform)
    first = publish(catalog, ("marts", "appended"), _reader(_rows(range(3), date(2026, 1, 1))))
    other = load_catalog(platform)

    def concurrent_writer():
        publish(other, ("marts", "appended"), _reader(_rows(range(3, 5), date(2026, 1, 1))),
                Append(first.snapshot_id))

    with pytest.raises(IncrementConflictError, match=r"marts\.appended moved from snapshot"):
        publish(catalog, ("marts", "appended"), _reader(_rows(range(3, 6), date(2026, 1, 1)),
                concurrent_writer), Append(first.snapshot_id))
    table = catalog.load_table(("marts", "appended"))
    # The other writer's increment is there once; ours was not appended on top of it.
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [0, 1, 2, 3, 4]


def test_two_writers_at_once_both_commit(platform):
    catalog = load_catalog(platform)
    publish(catalog, ("marts", "contended"), _reader(_rows(range(1), date(2026, 1, 1))))
    errors, results = [], []

    def write(ids):
        try:
            results.append(
                publish(load_catalog(platform), ("marts", "contended"),
                        _reader(_rows(ids, date(2026, 1, 1))))
            )
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(range(i * 10, i * 10 + 10),)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    table = catalog.load_table(("marts", "contended"))
    ids = sorted(table.scan().to_arrow().column("id").to_pylist())
    assert ids in (list(range(10, 20)), list(range(20, 30)))
    assert table.current_snapshot().snapshot_id in {r.snapshot_id for r in results}


def test_first_writers_into_a_new_namespace_at_once_all_commit(platform):
    """Three tables of one new namespace written at the same moment, as a run pod's
    parallel steps write the demo's bronze tables: each creates the namespace if missing."""
    start = threading.Barrier(3, timeout=60)
    errors = []
    # One catalog client per writer, as each step process has its own.
    catalogs = [load_catalog(platform) for _ in range(3)]

    def write(name, catalog):
        start.wait()
        try:
            publish(catalog, ("bronze", name), _reader(_rows(range(5), date(2026, 1, 1))))
        except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(f"{name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=write, args=(f"t{i}", catalogs[i])) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    tables = load_catalog(platform).list_tables("bronze")
    assert sorted(t[-1] for t in tables) == ["t0", "t1", "t2"]


def test_a_new_table_is_created_with_its_rows_in_one_commit(platform):
    catalog = load_catalog(platform)
    result = publish(catalog, ("marts", "fresh"), _reader(_rows(range(4), date(2026, 1, 1))))
    table = catalog.load_table(("marts", "fresh"))
    assert table.metadata.metadata_log == []  # no empty table committed before the rows
    assert [s.snapshot_id for s in table.snapshots()] == [result.snapshot_id]
    assert (result.row_count, result.operation) == (4, "overwrite")
    assert table.properties["commit.retry.num-retries"] == "0"


def test_a_new_table_another_writer_created_first_is_written_into(platform):
    catalog = load_catalog(platform)
    other = load_catalog(platform)

    def concurrent_creator():
        # Creates the table between this write's finding it missing and its commit.
        publish(other, ("marts", "both_new"), _reader(_rows(range(50, 52), date(2026, 1, 1))))

    mine = _rows(range(3), date(2026, 1, 1))
    result = publish(catalog, ("marts", "both_new"), _reader(mine, concurrent_creator))
    table = catalog.load_table(("marts", "both_new"))
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [0, 1, 2]
    assert table.current_snapshot().snapshot_id == result.snapshot_id
    # The other writer's table was kept, and replaced by a second commit: one create.
    assert len(table.metadata.metadata_log) == 1


def test_an_increment_whose_table_is_gone_fails_without_creating_it(platform):
    catalog = load_catalog(platform)
    with pytest.raises(IncrementConflictError, match=r"marts\.dropped is gone"):
        publish(catalog, ("marts", "dropped"), _reader(_rows(range(2), date(2026, 1, 1))),
                Append(1234))
    assert not catalog.table_exists(("marts", "dropped"))


def test_tables_whose_files_the_object_store_lost_are_named_plainly(platform, s3_server):
    """The chart's LocalStack keeps objects in memory: after a restart the catalog still
    lists every table, but the files are gone. A run must say so, not fail later with a
    bare missing-object error."""
    if platform.catalog.type != "sql":
        pytest.skip("the REST server reads metadata itself; its answer is its own")
    from lakeport.catalog import WarehouseObjectsLostError
    from lakeport.run_scratch import Relation, ScratchPlan, fill_scratch

    catalog = load_catalog(platform)
    publish(catalog, ("raw", "lost_orders"), _reader(_rows(range(5), date(2026, 1, 1))))
    client = s3_server.client()
    keys = [o["Key"] for o in client.list_objects_v2(
        Bucket=WAREHOUSE_BUCKET, Prefix="raw/lost_orders/").get("Contents", [])]
    assert keys
    for key in keys:  # what a LocalStack restart does to the bucket
        client.delete_object(Bucket=WAREHOUSE_BUCKET, Key=key)

    plan = ScratchPlan(from_catalog={"source.t.raw.lost_orders": Relation("raw", "lost_orders")})
    with duckdb.connect() as connection, pytest.raises(WarehouseObjectsLostError) as lost:
        configure_s3(connection, platform)
        fill_scratch(connection, catalog, plan)
    message = str(lost.value)
    assert "raw.lost_orders is in the catalog, but its metadata file is gone" in message
    assert "LocalStack" in message
    # A write to it says the same instead of writing on top of a table it cannot read.
    with pytest.raises(WarehouseObjectsLostError):
        publish(catalog, ("raw", "lost_orders"), _reader(_rows(range(2), date(2026, 1, 1))))


def test_a_write_larger_than_a_data_file_streams_file_by_file(platform):
    """A table bigger than the run's memory must never be whole in Python: the reader is
    read no faster than data files are written. (pyiceberg 0.12's own `append` of a
    reader submits every bin to its thread pool as fast as the reader yields them, so a
    fast reader is read whole before the files are written: see iceberg_publish.)"""
    import pyarrow.compute as pc

    from lakeport.iceberg_publish import TABLE_PROPERTIES

    target = int(TABLE_PROPERTIES["write.target-file-size-bytes"])
    batch_rows = 1 << 17  # 1 MiB of int64 per batch, made as fast as DuckDB hands them over
    batches = 10 * target // (batch_rows * 8)  # ten data files' worth
    arrow_bytes_held = []
    first_ids = pa.array(range(batch_rows), pa.int64())

    def rows():
        def generate():
            for i in range(batches):
                arrow_bytes_held.append(pa.total_allocated_bytes())
                yield pa.record_batch([pc.add(first_ids, i * batch_rows)], names=["id"])

        return pa.RecordBatchReader.from_batches(pa.schema([("id", pa.int64())]), generate())

    catalog = load_catalog(platform)
    result = publish(catalog, ("marts", "streamed"), rows)
    assert result.row_count == batches * batch_rows
    # About one file being gathered and one being written; never the ten files' worth.
    assert max(arrow_bytes_held) < 4 * target, [b >> 20 for b in arrow_bytes_held]
    table = catalog.load_table(("marts", "streamed"))
    assert len(table.inspect.files()) >= 10
    assert table.scan().to_arrow().num_rows == batches * batch_rows


def test_each_small_file_of_a_write_is_one_s3_put(platform, s3_server):
    # lakeport.iceberg_fileio: without delayed open, Arrow uploads every file as a
    # multipart upload (three requests); S3 marks such an object with an ETag of the form
    # "<md5>-<parts>", a single PutObject with the plain MD5.
    from urllib.parse import urlparse

    catalog = load_catalog(platform)
    publish(catalog, ("marts", "small"), _reader(_rows(range(0, 100), date(2026, 11, 1))))
    location = urlparse(catalog.load_table(("marts", "small")).location())
    listed = s3_server.client().list_objects_v2(
        Bucket=location.netloc, Prefix=location.path.lstrip("/") + "/"
    )
    # The files lakeport's FileIO writes: the data file, its manifest and the manifest
    # list (a REST catalog's server writes the metadata JSON with its own FileIO).
    written = {o["Key"]: o["ETag"].strip('"') for o in listed["Contents"]
               if o["Key"].endswith((".parquet", ".avro"))}
    assert len(written) == 3, written
    assert [key for key, etag in written.items() if "-" in etag] == []


def _set_properties(catalog, identifier, **properties):
    with catalog.load_table(identifier).transaction() as transaction:
        transaction.set_properties(properties)


def test_a_write_expires_the_snapshots_the_tables_retention_lets_go(platform):
    # Iceberg's own retention properties, as the Java library's RemoveSnapshots reads them:
    # here every snapshot is older than the maximum age, so the newest three of the branch
    # stay and nothing else does, in the write's own commit.
    catalog = load_catalog(platform)
    identifier = ("marts", "kept_short")
    publish(catalog, identifier, _reader(_rows(range(3), date(2026, 1, 1))))
    _set_properties(catalog, identifier, **{
        "history.expire.max-snapshot-age-ms": "1", "history.expire.min-snapshots-to-keep": "3"})
    results = [publish(catalog, identifier, _reader(_rows(range(i), date(2026, 1, 1))))
               for i in (4, 5, 6)]
    table = catalog.load_table(identifier)
    # Each replacing write adds a delete and an append snapshot: 1 + 2 + 2 + 2 made.
    assert len(table.snapshots()) == 3
    assert [r.snapshots_expired for r in results] == [0, 2, 2]
    assert results[-1].as_metadata()["iceberg/snapshots_expired"] == 2
    head = table.current_snapshot()
    assert head.snapshot_id == results[-1].snapshot_id
    # The three kept are the head and its two parents, linked as before.
    kept = {s.snapshot_id: s for s in table.snapshots()}
    assert kept[head.parent_snapshot_id].parent_snapshot_id in kept
    assert table.scan().to_arrow().num_rows == 6
    # The snapshot log no longer names what was expired.
    assert {entry.snapshot_id for entry in table.metadata.snapshot_log} <= set(kept)


def test_a_table_on_icebergs_default_retention_keeps_its_recent_snapshots(platform):
    # Unset, the retention is Iceberg's: five days, so nothing written just now expires.
    catalog = load_catalog(platform)
    identifier = ("marts", "kept_default")
    for i in (2, 3, 4):
        result = publish(catalog, identifier, _reader(_rows(range(i), date(2026, 1, 1))))
        assert result.snapshots_expired == 0
    assert len(catalog.load_table(identifier).snapshots()) == 5


def test_a_tag_keeps_its_snapshot_through_expiry(platform):
    catalog = load_catalog(platform)
    identifier = ("marts", "tagged")
    first = publish(catalog, identifier, _reader(_rows(range(3), date(2026, 1, 1))))
    catalog.load_table(identifier).manage_snapshots().create_tag(
        first.snapshot_id, "release").commit()
    _set_properties(catalog, identifier, **{"history.expire.max-snapshot-age-ms": "1"})
    result = publish(catalog, identifier, _reader(_rows(range(5), date(2026, 1, 1))))
    table = catalog.load_table(identifier)
    assert {s.snapshot_id for s in table.snapshots()} == {first.snapshot_id, result.snapshot_id}
    assert result.snapshots_expired == 1  # the delete snapshot between them
