"""The pyiceberg internals lakeport calls (pinned pyiceberg 0.12.0). If an upgrade renames
or reshapes them, this fails here, instead of every large write failing in a run."""

import inspect

from pyiceberg.io import pyarrow as pyiceberg_arrow


def test_the_data_file_writer_iceberg_publish_calls_keeps_its_signature():
    # iceberg_publish._stream: pyiceberg's own Transaction.append calls it the same way.
    parameters = inspect.signature(pyiceberg_arrow._dataframe_to_data_files).parameters
    assert list(parameters) == ["table_metadata", "df", "io", "write_uuid", "counter"]
    assert callable(pyiceberg_arrow.bin_pack_record_batches)
