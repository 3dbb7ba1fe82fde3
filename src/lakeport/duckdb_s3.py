"""DuckDB's access to the platform's S3 (httpfs), to read Iceberg tables with iceberg_scan.

`S3Access` is the part of platform.yaml DuckDB needs (no secret in it): the run derives it
once and hands it to the dbt subprocess in LAKEPORT_DUCKDB_S3, whose connections then read
the catalog's tables too (lakeport.dbt_duckdb_plugin). The keys come from the standard AWS
variables (lakeport.credentials); without them DuckDB uses its credential chain (the
pod's identity). The statement holds the secret, so it is executed, never logged.
"""

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lakeport.credentials import (
    S3_ACCESS_KEY_ID_ENV,
    S3_SECRET_ACCESS_KEY_ENV,
    optional_secret,
    read_secret,
)
from lakeport.duckdb_extensions import load_extension

if TYPE_CHECKING:
    import duckdb

    from lakeport.platform import Platform

S3_ACCESS_ENV = "LAKEPORT_DUCKDB_S3"


@dataclass(frozen=True)
class S3Access:
    region: str
    path_style: bool
    endpoint: str | None  # None: AWS S3 itself

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "S3Access":
        return cls(**json.loads(text))


def s3_access(platform: "Platform") -> S3Access:
    from lakeport.catalog import s3_endpoint

    storage = platform.object_storage
    return S3Access(storage.region, storage.path_style, s3_endpoint(platform))


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def configure_s3(
    connection: "duckdb.DuckDBPyConnection", access: "S3Access | Platform"
) -> None:
    """Let `connection` read the warehouse: httpfs and iceberg loaded, the S3 secret set."""
    if not isinstance(access, S3Access):
        access = s3_access(access)
    load_extension(connection, "iceberg")
    options = {
        "TYPE": "s3",
        "REGION": _quoted(access.region),
        "URL_STYLE": _quoted("path" if access.path_style else "vhost"),
    }
    if access.endpoint:
        parts = urlsplit(access.endpoint)
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
