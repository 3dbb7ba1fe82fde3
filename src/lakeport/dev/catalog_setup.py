"""The one-machine Iceberg catalog: pyiceberg's SQL catalog in SQLite under the data dir.

Created through lakeport.catalog, the module the code location and run workers use, so
the supervisor, the code server and every run open the very same catalog. Runs create
the namespaces they write to (one per dbt schema / layer).
"""

import os
from pathlib import Path

from lakeport.catalog import load_catalog, sql_catalog_path
from lakeport.credentials import S3_ACCESS_KEY_ID_ENV, S3_SECRET_ACCESS_KEY_ENV
from lakeport.platform import Platform


def ensure_catalog(platform: Platform, env: dict[str, str]) -> tuple[Path, int]:
    """Create the catalog's own tables if missing; return its file and its table count."""
    # lakeport.catalog finds S3 credentials in the environment, as the services do.
    for name in (S3_ACCESS_KEY_ID_ENV, S3_SECRET_ACCESS_KEY_ENV):
        os.environ[name] = env[name]
    catalog = load_catalog(platform)
    tables = sum(len(catalog.list_tables(namespace)) for namespace in catalog.list_namespaces())
    return sql_catalog_path(platform), tables
