"""The Iceberg catalog named in platform.yaml, as a pyiceberg catalog.

On Kubernetes it is Polaris over the Iceberg REST protocol, authenticated with the
principal's `client_id:client_secret` from LAKEPORT_CATALOG_CREDENTIAL; on one machine
pyiceberg's SQL catalog keeps its state in SQLite under `dev.dataDir`. Either way the
table data lives in the S3 warehouse, written through pyiceberg's FileIO with the
platform's endpoint, region and addressing style.
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING

from lakeport.credentials import (
    CATALOG_CREDENTIAL_ENV,
    S3_ACCESS_KEY_ID_ENV,
    S3_SECRET_ACCESS_KEY_ENV,
    optional_secret,
    read_secret,
)
from lakeport.platform import Platform

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

# The standard variable boto3 and the AWS CLI read; the chart sets it to the in-chart
# LocalStack when objectStorage.endpoint is empty.
S3_ENDPOINT_ENV = "AWS_ENDPOINT_URL_S3"
# The in-chart Polaris service's URL, set by the chart when catalog.rest.uri is empty.
CATALOG_URI_ENV = "LAKEPORT_CATALOG_URI"
# pyiceberg's REST catalog sends every `header.*` property as an HTTP header.
ACCESS_DELEGATION_PROPERTY = "header.X-Iceberg-Access-Delegation"


class CatalogConfigError(RuntimeError):
    pass


class CatalogUnreachableError(RuntimeError):
    """The catalog did not answer; a run retries this (it may come back)."""


class WarehouseObjectsLostError(RuntimeError):
    """The catalog lists a table whose files are gone from the warehouse bucket."""


def load_table(catalog: "Catalog", identifier: tuple[str, ...]) -> "Table":
    """`catalog.load_table`, saying plainly when the object store lost the table's files.

    The catalog's state (Postgres, SQLite) and the warehouse's objects live apart: an S3
    service that keeps objects in memory (the chart's LocalStack, whose free image has no
    persistence) loses them on restart while the catalog still lists every table.
    pyiceberg then fails reading the metadata file with a bare FileNotFoundError."""
    try:
        return catalog.load_table(identifier)
    except FileNotFoundError as exc:
        raise WarehouseObjectsLostError(
            f"Iceberg table {'.'.join(identifier)} is in the catalog, but its metadata file "
            f"is gone from the warehouse ({exc}). The object store lost the table's files: "
            "an S3 service that keeps objects in memory (the chart's LocalStack) loses "
            "them when it restarts. Rebuild the table (materialise it again after dropping "
            "it from the catalog) or restore the bucket; see the chart README, 'Object "
            "storage on kind'."
        ) from exc


def s3_endpoint(platform: Platform) -> str | None:
    """The S3 endpoint: platform.yaml's, else the environment's; None means AWS S3 itself."""
    return platform.object_storage.endpoint or os.environ.get(S3_ENDPOINT_ENV) or None


def s3_fileio_properties(platform: Platform) -> dict[str, str]:
    """pyiceberg FileIO properties for the warehouse bucket."""
    from lakeport.iceberg_fileio import FILEIO_CLASS, FILEIO_PROPERTY

    storage = platform.object_storage
    props = {
        # Every table's FileIO (lakeport.iceberg_fileio): small files in one S3 request.
        FILEIO_PROPERTY: FILEIO_CLASS,
        "s3.region": storage.region,
        "s3.force-virtual-addressing": "false" if storage.path_style else "true",
    }
    endpoint = s3_endpoint(platform)
    if endpoint:
        props["s3.endpoint"] = endpoint
    key_id = optional_secret(S3_ACCESS_KEY_ID_ENV)
    if key_id:
        # Without keys pyiceberg falls back to the pod's identity (IRSA / workload identity).
        props["s3.access-key-id"] = key_id
        props["s3.secret-access-key"] = read_secret(
            S3_SECRET_ACCESS_KEY_ENV, "the S3 secret access key"
        )
    return props


# Catalog properties under this prefix are the Iceberg table properties a lakeport write
# assumes for a table that does not set them itself (lakeport.iceberg_transactions).
TABLE_DEFAULT_PREFIX = "lakeport.table-default."
_DAY_MS = 24 * 60 * 60 * 1000


def table_default_properties(platform: Platform) -> dict[str, str]:
    """catalog.snapshotRetention as the Iceberg retention properties it stands for."""
    retention = platform.catalog.snapshot_retention
    return {
        f"{TABLE_DEFAULT_PREFIX}history.expire.max-snapshot-age-ms":
            str(round(retention.max_age_days * _DAY_MS)),
        f"{TABLE_DEFAULT_PREFIX}history.expire.min-snapshots-to-keep":
            str(retention.min_snapshots),
    }


def table_defaults(catalog: "Catalog") -> dict[str, str]:
    """The table properties `table_default_properties` put on `catalog`."""
    return {key.removeprefix(TABLE_DEFAULT_PREFIX): value
            for key, value in catalog.properties.items()
            if key.startswith(TABLE_DEFAULT_PREFIX)}


def sql_catalog_path(platform: Platform) -> Path:
    return (Path(platform.dev.data_dir) / platform.catalog.sql.sqlite_path).resolve()


def load_catalog(platform: Platform) -> "Catalog":
    """The platform's Iceberg catalog, ready to use."""
    # Imported here, not at module level: pyiceberg's catalogs (SQLAlchemy, the REST
    # client) take seconds to import, and a code server that only builds Definitions
    # never opens the catalog.
    import requests
    from pyiceberg.catalog.rest import RestCatalog
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = platform.catalog
    # FileIO properties for every table, and the table defaults lakeport's writes read back.
    properties = {**s3_fileio_properties(platform), **table_default_properties(platform)}
    if catalog.type == "sql":
        path = sql_catalog_path(platform)
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqlCatalog(
            catalog.name, uri=f"sqlite:///{path}", warehouse=catalog.warehouse, **properties
        )
    uri = catalog.rest.uri or os.environ.get(CATALOG_URI_ENV)
    if not uri:
        raise CatalogConfigError(
            f"catalog.rest.uri is empty in platform.yaml and {CATALOG_URI_ENV} is not set: "
            "lakeport cannot tell where the Polaris REST catalog is"
        )
    credential = read_secret(CATALOG_CREDENTIAL_ENV, "the Polaris principal's credential")
    try:
        # Connects at once: the token request and the catalog's config.
        return RestCatalog(
            catalog.name,
            uri=uri,
            # Polaris calls the catalog a "warehouse" in the REST config request.
            warehouse=catalog.name,
            credential=credential,
            scope=catalog.rest.scope,
            # pyiceberg 0.12 asks every REST request for vended credentials
            # (pyiceberg/catalog/rest/__init__.py, _config_headers: setdefault
            # "X-Iceberg-Access-Delegation: vended-credentials"). lakeport hands the
            # warehouse's S3 access to pyiceberg and DuckDB itself, and a catalog without
            # STS (the chart's Polaris) answers that header with HTTP 400 "Credential
            # vending was requested ..." (apache/polaris#3853). An empty header property
            # is set first, so setdefault leaves it empty: no delegation asked for.
            **{ACCESS_DELEGATION_PROPERTY: ""},
            **properties,
        )
    except (requests.ConnectionError, requests.Timeout) as exc:
        # Without this, the error only names an HTTP pool and a token URL. The credential
        # travels in the request body, never in the URL this message shows.
        raise CatalogUnreachableError(
            f"the Iceberg REST catalog '{catalog.name}' at {uri} (catalog.rest.uri) cannot be "
            f"reached: {type(exc).__name__}: {exc}"
        ) from exc
