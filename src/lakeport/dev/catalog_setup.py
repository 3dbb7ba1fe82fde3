"""The one-machine Iceberg catalog: pyiceberg's SQL catalog in SQLite under the data dir.

Created through lakeport.catalog, the module the code location and run workers use, so
the supervisor, the code server and every run open the very same catalog. Creating the
namespace up front makes an empty platform browsable before the first run.
"""

import os
from pathlib import Path

from pyiceberg.exceptions import NamespaceAlreadyExistsError

from lakeport.catalog import load_catalog, sql_catalog_path
from lakeport.credentials import S3_ACCESS_KEY_ID_ENV, S3_SECRET_ACCESS_KEY_ENV
from lakeport.platform import Platform


def ensure_catalog(platform: Platform, env: dict[str, str]) -> tuple[Path, int]:
    """Create the catalog's tables and namespace if missing; return its file and table count."""
    # lakeport.catalog finds S3 credentials in the environment, as the services do.
    for name in (S3_ACCESS_KEY_ID_ENV, S3_SECRET_ACCESS_KEY_ENV):
        os.environ[name] = env[name]
    catalog = load_catalog(platform)
    try:
        catalog.create_namespace(platform.catalog.namespace)
    except NamespaceAlreadyExistsError:
        pass
    return sql_catalog_path(platform), len(catalog.list_tables(platform.catalog.namespace))
