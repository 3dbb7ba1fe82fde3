"""dbt-duckdb plugin: holds dbt's DuckDB connections to the run's derived settings.

Named in the dbt profile (`plugins: [{module: lakeport.dbt_duckdb_plugin}]`). The Dagster
op derives the settings once and hands them over in LAKEPORT_DUCKDB_SETTINGS, so dbt
uses exactly the values recorded as materialization metadata; a `dbt build` started by
hand derives them itself from platform.yaml (or the chart defaults when none is set).
"""

import os

from dbt.adapters.duckdb.plugins import BasePlugin

from lakeport.config import PLATFORM_FILE_ENV, load_effective_platform
from lakeport.duckdb_settings import settings_for_run
from lakeport.platform import Platform


class Plugin(BasePlugin):
    def configure_connection(self, conn):
        platform = load_effective_platform() if os.environ.get(PLATFORM_FILE_ENV) else Platform()
        settings_for_run(platform).apply(conn)
