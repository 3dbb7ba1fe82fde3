"""OpenLineage events for the dbt models one `dbt build` built, from its artifacts.

openlineage-dbt's own processor (openlineage.common.provider.dbt, the code behind the
`dbt-ol` wrapper) reads manifest.json and run_results.json and makes a START and a
COMPLETE (status success) or FAIL (status error) per model and snapshot it ran, with the
model's parents as inputs, its SQL, the dbt run facet and the assertions of its tests;
skipped nodes get none. lakeport runs it on the artifacts of its own invocation instead
of wrapping dbt, with three changes, because DuckDB here is compute, not storage:

- datasets are named by their Iceberg identifier (`schema.table`, lakeport.run_scratch
  .relation_of) under the catalog's namespace, not `duckdb://<scratch path>` and
  `<database>.<schema>.<table>` (the database is the run's scratch file);
- the schema facets come from the columns the relations have in the run's scratch after
  the build (the processor would otherwise read only the columns documented in YAML);
- the parent run facet is the Dagster run.

The processor's methods overridden below are named in
tests/unit/test_openlineage_seams.py, which fails when openlineage-dbt changes them.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attr
from openlineage.client.facet_v2 import error_message_run
from openlineage.common.provider.dbt.facets import DbtRunRunFacet, ParentRunMetadata
from openlineage.common.provider.dbt.processor import DbtArtifactProcessor, ModelNode

from lakeport.lineage import PRODUCER, Field, RunLineage
from lakeport.run_scratch import relation_of

if TYPE_CHECKING:
    import duckdb
    from openlineage.client.event_v2 import RunEvent


def scratch_columns(connection: "duckdb.DuckDBPyConnection") -> dict[str, list[Field]]:
    """`schema.name` -> its columns, for every relation in the run's scratch database."""
    rows = connection.execute(
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        "where table_catalog = current_database() order by table_schema, table_name, "
        "ordinal_position"
    ).fetchall()
    columns: dict[str, list[Field]] = {}
    for schema, table, column, kind in rows:
        columns.setdefault(f"{schema}.{table}", []).append((column, kind))
    return columns


def dbt_model_events(
    lineage: RunLineage,
    manifest: Mapping[str, Any],
    run_results: Mapping[str, Any],
    columns: Mapping[str, list[Field]],
) -> list["RunEvent"]:
    """The START and COMPLETE/FAIL events of every model one build ran, in build order."""
    processor = _LakeportDbtProcessor(lineage, manifest, run_results, columns)
    messages = {r["unique_id"]: r.get("message") for r in run_results.get("results", ())}
    events = [_with_error(event, messages) for event in processor.parse().events()]
    return sorted(events, key=lambda event: (event.eventTime, event.eventType.value != "START"))


def _with_error(event: "RunEvent", messages: Mapping[str, str | None]) -> "RunEvent":
    """A FAIL with dbt's message as its errorMessage facet (the processor sends none). The
    START shares the processor's Run object, so the FAIL gets a copy."""
    if event.eventType.value != "FAIL":
        return event
    node = (event.job.facets or {}).get("dbt_node")
    message = messages.get(getattr(node, "unique_id", None))
    if not message:
        return event
    facet = error_message_run.ErrorMessageRunFacet(
        message=message[:2000], programmingLanguage="sql", producer=PRODUCER
    )
    run = attr.evolve(event.run, facets={**(event.run.facets or {}), "errorMessage": facet})
    return attr.evolve(event, run=run)


class _LakeportDbtProcessor(DbtArtifactProcessor):
    # A build that ran no model (`dbt build` of tests only) has no events, not an error.
    should_raise_on_unsupported_command = False

    def __init__(self, lineage: RunLineage, manifest, run_results, columns):
        super().__init__(producer=PRODUCER, job_namespace=lineage.job_namespace)
        self.lineage = lineage
        self._artifacts = (manifest, run_results)
        self._columns = columns
        self.dbt_run_metadata = ParentRunMetadata(
            run_id=lineage.parent_run_id,
            job_name=lineage.parent_job_name,
            job_namespace=lineage.job_namespace,
        )

    def get_dbt_metadata(self):
        manifest, run_results = self._artifacts
        # dbt's catalog.json shape, filled from the scratch instead of `dbt docs generate`.
        catalog = {"nodes": {}, "sources": {}}
        for kind, nodes in (("nodes", manifest["nodes"]), ("sources", manifest["sources"])):
            for unique_id, node in nodes.items():
                fields = self._columns.get(str(relation_of(node)))
                if fields:
                    catalog[kind][unique_id] = {
                        "columns": {
                            name: {"name": name, "type": kind_, "index": i}
                            for i, (name, kind_) in enumerate(fields, start=1)
                        }
                    }
        # Only `type` is read, for the dialect of the SQL facet: namespaces are set below.
        return manifest, run_results, {"type": "duckdb"}, catalog

    def extract_dataset_namespace(self, profile: dict) -> None:
        self.dataset_namespace = self.lineage.dataset_namespace
        self.dataset_symlink_namespace = None

    def _format_dataset_name(self, database, schema, table) -> str:
        # The scratch database's name is not part of a table's identity (column lineage
        # and job names use this too).
        return ".".join(part for part in (schema, table) if part)

    def extract_dataset_data(self, node: ModelNode, assertions, has_facets: bool = False):
        namespace, _, facets, input_facets = super().extract_dataset_data(
            node, assertions, has_facets
        )
        # The catalog's facet instead of the processor's dataSource (the DuckDB scratch).
        facets.pop("dataSource", None)
        facets.update(self.lineage.table_facets())
        # The relation the rows are in: a source's `identifier`, a model's `alias`.
        return namespace, str(relation_of(node.metadata_node)), facets, input_facets

    def dbt_run_run_facet(self) -> dict[str, DbtRunRunFacet]:
        manifest, _ = self._artifacts
        invocation_id = self.run_metadata.get("invocation_id")
        if not invocation_id:
            return {}
        return {
            "dbt_run": DbtRunRunFacet(
                invocation_id=invocation_id,
                project_name=(manifest.get("metadata") or {}).get("project_name"),
                dbt_runtime="core",
                full_refresh=self.full_refresh,
            )
        }
