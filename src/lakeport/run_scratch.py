"""A run's scratch DuckDB, filled from the catalog before dbt starts.

A run starts from an empty scratch database (a pod's spill volume, `lakeport dev`'s
per-run directory) and builds only what it selected. Everything else the selection reads
comes from the Iceberg catalog's current snapshots:

- every upstream table, incremental model, seed, snapshot and source that the run does
  not build becomes a DuckDB view over `iceberg_scan('<metadata file>')` in its own schema,
  so dbt's `ref()`/`source()` resolve as usual and DuckDB streams the table's Parquet
  files under the run's memory_limit (the snapshot is pinned for the whole run);
- views and ephemeral models are not stored anywhere. An unselected view the selection
  reads through is rebuilt in the run (it joins the run's one `dbt build`, its own tests
  left out), because a view is only its SQL: creating it costs no data, while storing it
  would need Iceberg views, which neither pyiceberg's SQL catalog nor DuckDB's iceberg
  reader supports at the versions pinned. Ephemeral models are inlined by dbt; only their
  upstreams are needed;
- a selected incremental model gets a copy of its table as a DuckDB table, since dbt's
  `is_incremental()` is true only for an existing *table* relation
  (dbt-adapters' `is_incremental` macro: `relation.type == 'table'`). The run then appends
  only what the model adds (lakeport.iceberg_publish.Append). Daily-partitioned models
  get no copy: each run computes and replaces exactly its day.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    from pyiceberg.catalog import Catalog

# dbt materializations whose rows are not stored: everything else is an Iceberg table.
NOT_STORED = ("view", "ephemeral")


class UpstreamMissingError(RuntimeError):
    """The run reads a table that has never been written to the catalog."""


@dataclass(frozen=True, order=True)
class Relation:
    """A table's DuckDB relation `schema.name`, which is also its Iceberg identifier."""

    schema: str
    name: str

    @property
    def identifier(self) -> tuple[str, str]:
        return (self.schema, self.name)

    @property
    def sql(self) -> str:
        return f'"{_ident(self.schema)}"."{_ident(self.name)}"'

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


def relation_of(node: Mapping[str, Any]) -> Relation:
    """Where a dbt node's rows live: the relation dbt builds, named like the Iceberg table."""
    if node.get("resource_type") == "source":
        return Relation(node["schema"], node.get("identifier") or node["name"])
    return Relation(node["schema"], node.get("alias") or node["name"])


def is_stored(node: Mapping[str, Any]) -> bool:
    """True for the dbt nodes whose rows live in an Iceberg table."""
    kind = node.get("resource_type")
    if kind in ("seed", "snapshot", "source"):
        return True
    if kind != "model":
        return False
    return (node.get("config") or {}).get("materialized") not in NOT_STORED


def is_incremental(node: Mapping[str, Any]) -> bool:
    return (node.get("config") or {}).get("materialized") == "incremental"


@dataclass
class ScratchPlan:
    """What a run's scratch needs before dbt starts."""

    # Upstream tables and sources, read from their current snapshot (unique_id -> relation).
    from_catalog: dict[str, Relation] = field(default_factory=dict)
    # Tables only tests of the selection read: read when they exist.
    from_catalog_if_present: dict[str, Relation] = field(default_factory=dict)
    # Unselected views the selection reads through, rebuilt in the run (unique ids).
    views_to_build: list[str] = field(default_factory=list)
    # Selected incremental models whose earlier state dbt must see (unique_id -> relation).
    incremental_bases: dict[str, Relation] = field(default_factory=dict)


def plan_scratch(
    manifest: Mapping[str, Any], selected: Iterable[str], partitioned: Iterable[str] = ()
) -> ScratchPlan:
    """The plan for a run that builds the dbt nodes `selected` (unique ids); `partitioned`
    names the daily-partitioned models, which start from nothing each run."""
    selected = set(selected)
    partitioned = set(partitioned)
    nodes = manifest["nodes"]
    sources = manifest.get("sources", {})
    parents = manifest.get("parent_map") or {}
    plan = ScratchPlan()
    # dbt builds the selected nodes and, by its default (eager) indirect selection, every
    # test with a selected parent; a relationships test reads its other model too. What
    # only such tests read is made readable when it exists, but its absence is no error:
    # with an --exclude (dagster-dbt's unpartitioned op excludes the partitioned models)
    # dbt does not run those tests, and when it does, dbt's own error names the table.
    tests = [
        unique_id
        for unique_id, node in nodes.items()
        if node["resource_type"] == "test" and selected & set(parents.get(unique_id, ()))
    ]
    views: set[str] = set()
    seen: set[str] = set()
    for required, starts in ((True, selected), (False, tests)):
        pending = [p for unique_id in starts for p in parents.get(unique_id, ())]
        while pending:
            unique_id = pending.pop()
            if unique_id in seen or unique_id in selected:
                continue
            seen.add(unique_id)
            node = nodes.get(unique_id) or sources.get(unique_id)
            if node is None:
                continue  # e.g. a metric or a macro: nothing to read
            if is_stored(node):
                target = plan.from_catalog if required else plan.from_catalog_if_present
                target[unique_id] = relation_of(node)
                continue
            if (node.get("config") or {}).get("materialized") == "view":
                views.add(unique_id)
            pending.extend(parents.get(unique_id, ()))
    plan.views_to_build = sorted(views)
    for unique_id in sorted(selected):
        node = nodes.get(unique_id)
        if node and is_incremental(node) and node["name"] not in partitioned:
            plan.incremental_bases[unique_id] = relation_of(node)
    return plan


def tests_to_leave_out(
    manifest: Mapping[str, Any], selected: Iterable[str], views: Iterable[str]
) -> list[str]:
    """The tests a build that adds `views` to the selection `selected` must exclude.

    dbt's default (eager) indirect selection runs every test with a selected parent, so
    the added views would bring in their own tests and the tests of unselected models that
    reference them (a relationships test), whose other models are not in this run. The
    selection's own tests stay, even when they read one of the views."""
    selected, views = set(selected), set(views)
    if not views:
        return []
    parents = manifest.get("parent_map") or {}
    out = []
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] != "test" or not views & set(parents.get(unique_id, ())):
            continue
        attached = node.get("attached_node")
        runs_for_selection = (attached in selected) if attached else bool(
            selected & set(parents.get(unique_id, ())))
        if not runs_for_selection:
            out.append(unique_id)
    return sorted(out)


def selectors(manifest: Mapping[str, Any], unique_ids: Iterable[str]) -> list[str]:
    """dbt selectors (dotted fqn) naming exactly these nodes."""
    return [".".join(manifest["nodes"][unique_id]["fqn"]) for unique_id in unique_ids]


@dataclass(frozen=True)
class IncrementalBase:
    relation: Relation
    snapshot_id: int | None  # None: the table is new, or has no snapshot yet
    metadata_location: str | None
    row_count: int = 0  # rows of the base, as copied into the scratch


def empty_scratch(connection: "duckdb.DuckDBPyConnection") -> None:
    """Drop every relation and schema a database holds: a scratch starts empty."""
    schemas = connection.execute(
        "select schema_name from information_schema.schemata where catalog_name = "
        "current_database() and schema_name not in ('main', 'information_schema', "
        "'pg_catalog')"
    ).fetchall()
    for (schema,) in schemas:
        connection.execute(f'drop schema "{_ident(schema)}" cascade')
    relations = connection.execute(
        "select table_name, table_type from information_schema.tables where "
        "table_catalog = current_database() and table_schema = 'main'"
    ).fetchall()
    for name, kind in relations:
        what = "view" if kind == "VIEW" else "table"
        connection.execute(f'drop {what} if exists main."{_ident(name)}" cascade')


def fill_scratch(
    connection: "duckdb.DuckDBPyConnection", catalog: "Catalog", plan: ScratchPlan
) -> dict[str, IncrementalBase]:
    """Make the plan's upstream relations readable in `connection`'s database and copy
    the incremental bases in; return each base's snapshot (unique_id -> base).

    `connection` must be able to read the warehouse (iceberg extension, S3 secret)."""
    from pyiceberg.exceptions import NoSuchTableError

    from lakeport.catalog import load_table

    missing = []
    upstream = [(u, r, True) for u, r in plan.from_catalog.items()] + [
        (u, r, False) for u, r in plan.from_catalog_if_present.items()
    ]
    for unique_id, relation, required in sorted(upstream, key=lambda item: item[1]):
        try:
            table = load_table(catalog, relation.identifier)
        except NoSuchTableError:
            if required:
                missing.append(f"{relation} ({unique_id})")
            continue
        _create_schema(connection, relation)
        if table.current_snapshot() is None:
            # A table with no snapshot has no data files for iceberg_scan to read.
            _create_empty(connection, relation, table)
        else:
            connection.execute(
                f"create or replace view {relation.sql} as "
                f"select * from iceberg_scan('{_literal(table.metadata_location)}')"
            )
    if missing:
        raise UpstreamMissingError(
            "this run reads tables that are not in the Iceberg catalog yet: "
            + ", ".join(missing)
            + ". Materialise them first (or select them in the same run)."
        )
    bases = {}
    for unique_id, relation in plan.incremental_bases.items():
        try:
            table = load_table(catalog, relation.identifier)
        except NoSuchTableError:
            bases[unique_id] = IncrementalBase(relation, None, None)
            continue
        snapshot = table.current_snapshot()
        if snapshot is None:
            bases[unique_id] = IncrementalBase(relation, None, table.metadata_location)
            continue
        _create_schema(connection, relation)
        # A DuckDB table (not a view): dbt's is_incremental() wants a table. DuckDB
        # streams the copy into its own storage, spilling to disk, not into memory.
        connection.execute(
            f"create table {relation.sql} as "
            f"select * from iceberg_scan('{_literal(table.metadata_location)}')"
        )
        # Counted on the local copy, so telling added from removed rows later does not
        # scan the snapshot again.
        rows = connection.execute(f"select count(*) from {relation.sql}").fetchone()[0]
        bases[unique_id] = IncrementalBase(
            relation, snapshot.snapshot_id, table.metadata_location, rows
        )
    return bases


def added_rows_query(base: IncrementalBase) -> str:
    """SQL for the rows the incremental model added to its base (all rows for a new table).

    EXCEPT ALL keeps duplicates, so a model that appends a row equal to an old one still
    adds it; the caller compares counts to tell whether the model also removed rows."""
    relation = base.relation.sql
    if base.metadata_location is None or base.snapshot_id is None:
        return f"select * from {relation}"
    scan = f"iceberg_scan('{_literal(base.metadata_location)}')"
    return f"select * from {relation} except all select * from {scan}"


def _create_schema(connection, relation: Relation) -> None:
    connection.execute(f'create schema if not exists "{_ident(relation.schema)}"')


def _create_empty(connection, relation: Relation, table) -> None:
    empty = table.schema().as_arrow().empty_table()  # noqa: F841 (read by DuckDB by name)
    connection.execute(f"create or replace table {relation.sql} as select * from empty")


def _ident(name: str) -> str:
    return name.replace('"', '""')


def _literal(value: str) -> str:
    return value.replace("'", "''")
