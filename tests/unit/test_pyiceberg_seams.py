"""The pyiceberg internals lakeport calls (pinned pyiceberg 0.12.0). If an upgrade renames
or reshapes them, this fails here, instead of every large write failing in a run."""

import inspect

from pyiceberg.io import pyarrow as pyiceberg_arrow


def test_the_data_file_writer_iceberg_publish_calls_keeps_its_signature():
    # iceberg_publish._stream: pyiceberg's own Transaction.append calls it the same way.
    parameters = inspect.signature(pyiceberg_arrow._dataframe_to_data_files).parameters
    assert list(parameters) == ["table_metadata", "df", "io", "write_uuid", "counter"]
    assert callable(pyiceberg_arrow.bin_pack_record_batches)


def test_a_create_table_transaction_still_keeps_its_fileio_on_its_staged_table():
    # iceberg_publish._create_with_rows writes a new table's first data files with the
    # FileIO of the transaction's staged table, as Transaction.append does.
    from pyiceberg.table import CreateTableTransaction, Transaction

    assert issubclass(CreateTableTransaction, Transaction)
    assert "self._table.io" in inspect.getsource(Transaction.append)
    assert list(inspect.signature(CreateTableTransaction.__init__).parameters) == [
        "self", "table"]


def test_an_s3_fileio_of_lakeport_opens_output_streams_with_delayed_open():
    # lakeport.iceberg_fileio overrides PyArrowFileIO._initialize_s3_fs, which pyiceberg's
    # fs_by_scheme calls for s3 locations, and rebuilds the filesystem pyiceberg made from
    # its pickled options (pyarrow's S3FileSystem.__reduce__).
    from pyiceberg.io import load_file_io

    from lakeport.iceberg_fileio import FILEIO_CLASS, FILEIO_PROPERTY, SinglePutFileIO

    assert "self._initialize_s3_fs(netloc)" in inspect.getsource(
        pyiceberg_arrow.PyArrowFileIO._initialize_fs
    )
    io = load_file_io({
        FILEIO_PROPERTY: FILEIO_CLASS, "s3.endpoint": "http://127.0.0.1:9",
        "s3.region": "eu-west-1", "s3.access-key-id": "an-id", "s3.secret-access-key": "a-key",
        "s3.force-virtual-addressing": "false",
    }, "s3://bucket/warehouse")
    assert isinstance(io, SinglePutFileIO)
    rebuild, (options,) = io.fs_by_scheme("s3", "bucket").__reduce__()
    assert options["allow_delayed_open"] is True
    # Everything pyiceberg set from the catalog's properties is kept.
    assert (options["endpoint_override"], options["region"], options["access_key"],
            options["force_virtual_addressing"]) == (
        "http://127.0.0.1:9", "eu-west-1", "an-id", False)


def test_a_filesystem_without_keys_keeps_the_default_credential_chain():
    # A pod's own identity (IRSA, workload identity): no keys in the options, so the
    # rebuilt filesystem must not turn them into empty keys.
    from pyarrow.fs import S3FileSystem

    from lakeport.iceberg_fileio import with_delayed_open

    _, (options,) = with_delayed_open(S3FileSystem(region="us-east-1")).__reduce__()
    assert options["access_key"] is None and options["secret_key"] is None
    assert options["allow_delayed_open"] is True


def test_a_transactions_metadata_is_still_computed_from_the_tables_and_the_staged_updates(
    sqlite_iceberg_table,
):
    # lakeport.iceberg_transactions caches Transaction.table_metadata by the identity of
    # these two inputs; that is right only while the property reads nothing else and every
    # staged change rebinds `_updates` (a tuple) instead of changing it in place.
    from pyiceberg.table import Transaction

    assert isinstance(Transaction.__dict__["table_metadata"], property)
    assert "return update_table_metadata(self._table.metadata, self._updates)" in (
        inspect.getsource(Transaction.__dict__["table_metadata"].fget))
    assert "self._updates += updates" in inspect.getsource(Transaction._stage)
    assert isinstance(Transaction(sqlite_iceberg_table).__dict__["_updates"], tuple)


def test_snapshot_expiry_is_still_staged_through_a_transaction():
    # lakeport.iceberg_transactions.expire_snapshots stages pyiceberg's ExpireSnapshots
    # in the write's own transaction, and evolves a schema through Transaction.update_schema.
    from pyiceberg.table import Transaction
    from pyiceberg.table.update.snapshot import ExpireSnapshots

    assert list(inspect.signature(ExpireSnapshots.__init__).parameters) == [
        "self", "transaction"]
    assert "RemoveSnapshotsUpdate(snapshot_ids=self._snapshot_ids_to_expire)" in (
        inspect.getsource(ExpireSnapshots._commit))
    assert "UpdateSchema(\n            self," in inspect.getsource(Transaction.update_schema)
