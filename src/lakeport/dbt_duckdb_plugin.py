"""dbt-duckdb plugin: holds dbt's DuckDB connections to the run's derived settings.

Named in the dbt profile (`plugins: [{module: lakeport.dbt_duckdb_plugin}]`). The Dagster
op derives the settings once and hands them over in LAKEPORT_DUCKDB_SETTINGS, so dbt
uses exactly the values recorded as materialization metadata (and imports nothing heavy);
a `dbt build` started by hand derives them itself from platform.yaml, or from the chart
defaults when no platform file is set.

When the run reads upstream tables from the Iceberg catalog (views over `iceberg_scan` in
the scratch database, lakeport.run_scratch), it also hands over the warehouse's S3 access
in LAKEPORT_DUCKDB_S3, and every dbt connection loads the iceberg extension (from its
wheel) and the S3 secret, so those views resolve inside dbt.
"""

import os

from dbt.adapters.duckdb.plugins import BasePlugin

from lakeport.duckdb_connection import SETTINGS_ENV, DuckDBSettings
from lakeport.duckdb_s3 import S3_ACCESS_ENV, S3Access, configure_s3


def settings_for_this_process() -> DuckDBSettings:
    text = os.environ.get(SETTINGS_ENV)
    if text:
        return DuckDBSettings.from_json(text)
    from lakeport.config import PLATFORM_FILE_ENV, load_effective_platform
    from lakeport.duckdb_settings import settings_for_run
    from lakeport.platform import Platform

    platform = load_effective_platform() if os.environ.get(PLATFORM_FILE_ENV) else Platform()
    return settings_for_run(platform)


class Plugin(BasePlugin):
    def configure_connection(self, conn):
        settings_for_this_process().apply(conn)
        access = os.environ.get(S3_ACCESS_ENV)
        if access:
            configure_s3(conn, S3Access.from_json(access))
