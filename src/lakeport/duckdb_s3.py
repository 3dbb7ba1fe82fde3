"""DuckDB's access to the platform's S3 (httpfs), e.g. to read Iceberg tables back.

The keys come from the standard AWS variables (lakeport.credentials); without them DuckDB
uses its credential chain (the pod's identity). The statement holds the secret, so it is
executed, never logged.
"""

from urllib.parse import urlsplit

import duckdb

from lakeport.catalog import s3_endpoint
from lakeport.credentials import (
    S3_ACCESS_KEY_ID_ENV,
    S3_SECRET_ACCESS_KEY_ENV,
    optional_secret,
    read_secret,
)
from lakeport.duckdb_extensions import load_extension
from lakeport.platform import Platform


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def configure_s3(connection: duckdb.DuckDBPyConnection, platform: Platform) -> None:
    load_extension(connection, "httpfs")
    storage = platform.object_storage
    options = {
        "TYPE": "s3",
        "REGION": _quoted(storage.region),
        "URL_STYLE": _quoted("path" if storage.path_style else "vhost"),
    }
    endpoint = s3_endpoint(platform)
    if endpoint:
        parts = urlsplit(endpoint)
        options["ENDPOINT"] = _quoted(parts.netloc)
        options["USE_SSL"] = "true" if parts.scheme == "https" else "false"
    key_id = optional_secret(S3_ACCESS_KEY_ID_ENV)
    if key_id:
        options["KEY_ID"] = _quoted(key_id)
        options["SECRET"] = _quoted(read_secret(S3_SECRET_ACCESS_KEY_ENV, "the S3 secret key"))
    else:
        options["PROVIDER"] = "credential_chain"
    body = ", ".join(f"{key} {value}" for key, value in options.items())
    connection.execute(f"CREATE OR REPLACE SECRET lakeport_s3 ({body})")
