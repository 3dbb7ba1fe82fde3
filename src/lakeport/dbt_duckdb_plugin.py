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

When the op asks for copies of the small tables it will write to Iceberg
(LAKEPORT_SCRATCH_EXPORT, lakeport.scratch_export), the plugin starts the `Exporter` on
dbt's connection and hands it dbt's events, so each table is copied as dbt finishes it and
the op writes it to the catalog while dbt goes on.
"""

import atexit
import os

from dbt.adapters.duckdb.plugins import BasePlugin

from lakeport.duckdb_connection import SETTINGS_ENV, DuckDBSettings
from lakeport.duckdb_s3 import S3_ACCESS_ENV, S3Access, configure_s3
from lakeport.scratch_export import EXPORT_ENV, Exporter, ExportRequest


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
    def initialize(self, plugin_config):
        self.exporter = _exporter_for_this_process()

    def configure_connection(self, conn):
        settings_for_this_process().apply(conn)
        access = os.environ.get(S3_ACCESS_ENV)
        if access:
            configure_s3(conn, S3Access.from_json(access))
        if self.exporter is not None:
            self.exporter.start(conn)


_exporter: Exporter | None = None


def _exporter_for_this_process() -> Exporter | None:
    """One Exporter per dbt process, when the op asked for copies: dbt-duckdb makes a
    plugin per environment it creates, and each copy must be made once."""
    global _exporter
    request = os.environ.get(EXPORT_ENV)
    if _exporter is None and request:
        # dbt_common's event manager calls every callback with every event dbt fires.
        # dbt's CLI sets its callbacks once, before the adapter (and so this plugin) is
        # made (dbt/cli/requires.py preflight -> setup_event_logger, dbt-core 1.11), so
        # one added here stays for the whole command.
        # tests/integration/test_scratch_export_dbt.py holds the seam.
        from dbt_common.events.event_manager_client import add_callback_to_manager

        _exporter = Exporter(ExportRequest.from_json(request))
        add_callback_to_manager(_exporter.on_dbt_event)
        # Runs before dbt-duckdb's own atexit drops dbt's connection: atexit runs in the
        # reverse order of registering, and dbt-duckdb registers close_all_connections
        # when its connections module is imported (dbt/adapters/duckdb/connections.py,
        # dbt-duckdb 1.11.1), before any plugin is made. The copies queued by then are
        # finished on a live connection.
        atexit.register(_exporter.close)
    return _exporter
