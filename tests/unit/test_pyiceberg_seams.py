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
