"""Python assets on the lakehouse: read and write Iceberg tables through the catalog.

The resource a Python asset takes (`lakehouse: dg.ResourceParam[IcebergTables]`) for the
bronze layer or any other table dbt does not build. Its session gives the asset a DuckDB
connection held to the run's derived settings (memory_limit, threads, spill) that can
read any table of the catalog (`scan(identifier)`), and writes a query's rows into a
table as one commit, streaming (lakeport.iceberg_publish). A table written here is what a dbt source
`<schema>.<identifier>` reads, with the asset key `[schema, identifier]`
(lakeport.translator), so Python bronze assets and dbt models are one lineage.

dagster-iceberg would be the obvious library, but its releases pin pyiceberg < 0.12,
which lakeport's REST catalog path needs; this is the small part of it lakeport uses.
"""

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import dagster as dg

from lakeport.duckdb_settings import default_spill_dir, derive_duckdb_settings
from lakeport.platform import Platform
from lakeport.profiles import PROFILE_TAG

if TYPE_CHECKING:

    from lakeport.duckdb_connection import DuckDBSettings
    from lakeport.iceberg_publish import WriteMode


class IcebergTables:
    """The platform's Iceberg catalog, as a Python asset uses it:

        with lakehouse.session(context) as session:
            return session.write(("raw", "orders"), "select ... from range(1000)")
    """

    def __init__(self, platform: Platform):
        self.platform = platform
        self._catalog = None

    @property
    def catalog(self):
        if self._catalog is None:
            from lakeport.catalog import load_catalog

            self._catalog = load_catalog(self.platform)
        return self._catalog

    @contextlib.contextmanager
    def session(self, context: dg.AssetExecutionContext) -> Iterator["TableSession"]:
        """An in-memory DuckDB held to this run's profile, able to read the warehouse."""
        import duckdb

        from lakeport import duckdb_errors
        from lakeport.duckdb_connection import connect
        from lakeport.duckdb_s3 import configure_s3
        from lakeport.lineage import RunLineage

        name = self.platform.profile_name(context.run.tags.get(PROFILE_TAG))
        profile = self.platform.profile(name)
        settings = derive_duckdb_settings(profile, spill_dir=default_spill_dir(self.platform))
        lineage = RunLineage.for_context(self.platform, context)
        # The asset is one OpenLineage job run: what it scans in, what it writes out.
        job = lineage.run(_job_name(context), "ASSET", integration="DAGSTER")
        with contextlib.closing(connect(settings)) as connection:
            configure_s3(connection, self.platform)
            session = TableSession(self, context, connection, settings, lineage)
            try:
                yield session
            except duckdb.OutOfMemoryException as exc:
                job.fail(exc)
                sized = duckdb_errors.explain(str(exc), name, profile, settings)
                if sized is None:
                    raise
                # The same asset under the same profile fails the same way: no retry.
                raise dg.Failure(
                    description=f"{sized}. DuckDB: {exc}", allow_retries=False
                ) from exc
            except BaseException as exc:
                job.fail(exc)
                raise
            job.complete(session.outputs, inputs=session.inputs)


class TableSession:
    """One asset's DuckDB connection and the catalog it writes to."""

    def __init__(
        self, tables: IcebergTables, context, connection, settings: "DuckDBSettings", lineage
    ):
        self.tables = tables
        self.context = context
        self.connection = connection
        self.settings = settings
        self.lineage = lineage
        # The OpenLineage datasets this session read and wrote.
        self.inputs: list = []
        self.outputs: list = []

    def scan(self, identifier: Sequence[str]) -> str:
        """SQL for the table's current snapshot, e.g. `f"select * from {session.scan(...)}"`."""
        from lakeport.catalog import load_table

        table = load_table(self.tables.catalog, tuple(identifier))
        if self.lineage.enabled:
            from lakeport.iceberg_publish import table_fields

            self.inputs.append(self.lineage.input_table(".".join(identifier), table_fields(table)))
        location = table.metadata_location.replace("'", "''")
        return f"iceberg_scan('{location}')"

    def write(
        self,
        identifier: Sequence[str],
        query: str,
        params: list | None = None,
        mode: "WriteMode" = None,
    ) -> dg.MaterializeResult:
        """Replace the table's rows (or a day window, or append) with the query's: one
        commit. Returns the asset's materialization, recording the snapshot written."""
        from lakeport.iceberg_publish import publish, query_rows
        from lakeport.lineage import commit_lineage

        rows = query_rows(self.connection, query, params)
        published = commit_lineage(
            self.lineage,
            ".".join(identifier),
            lambda: publish(self.tables.catalog, tuple(identifier), rows, mode),
        )
        if self.lineage.enabled:
            self.outputs.append(self.lineage.written_table(published))
        self.context.log.info(
            f"wrote {published.identifier} to Iceberg ({published.operation}): "
            f"{published.row_count} rows, snapshot {published.snapshot_id}"
        )
        return dg.MaterializeResult(
            metadata={**published.as_metadata(), **self.settings.as_metadata()}
        )


def _job_name(context) -> str:
    """The asset's key (`raw/orders`) as its OpenLineage job, else the op's name."""
    keys = list(context.selected_asset_keys)
    return keys[0].to_user_string() if len(keys) == 1 else context.op_def.name
