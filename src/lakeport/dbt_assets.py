"""dbt models as Dagster assets: the `@dbt_assets` definitions lakeport builds.

One op runs `dbt build` for whatever the run selected, so models and their tests run in
one DuckDB process held to the run's derived settings. Daily-partitioned models (those
with `meta.lakeport.partition_column`) get their own op, because one op has one
partitions definition; a partitioned run passes its day window to dbt in the environment
(LAKEPORT_PARTITION_START, LAKEPORT_PARTITION_END: ISO dates, end exclusive), which the
model reads with `env_var()`. Not as `--vars`: dbt throws its whole saved parse away when
the command-line vars change, while a changed environment variable re-parses only the
files that read it.

Before dbt starts, the op fills the run's empty scratch database from the Iceberg catalog
(lakeport.run_scratch): what the selection reads but does not build becomes a view over
the catalog's current snapshot, unselected views it reads through are rebuilt, and a
selected incremental model gets its table to build on. dbt's events reach Dagster as dbt
produces them. Each table dbt built is written to the catalog, one commit each
(lakeport.iceberg_publish); a table's materialization (and its checks) waits for that, so
it records the Iceberg snapshot written, and goes to Dagster while the tables after it are
written. dbt holds DuckDB's write lock on the scratch while it runs, so a small table
written whole is copied by dbt's own process as dbt finishes it (lakeport.scratch_export)
and written from the copy while dbt goes on; the others (large, a day window, an
increment) are written after dbt exits, small ones PUBLISH_WORKERS at a time, as their
write is round trips, not memory. Every materialization records the DuckDB settings used.

A dbt error (bad SQL, a failing test) is raised as a Failure that is not retried: the
same SQL fails the same way. A dbt failure whose cause is outside the SQL and passes
(another process holding DuckDB's write lock on the database file) is retried by the
policy, as is anything else (the catalog, S3). One kind of dbt failure is retried inside
the op instead: when DuckDB's own out-of-memory error is the only error, what it stopped
and what dbt skipped after it are built again at a smaller memory_limit, since that error
is not monotonic in the limit (lakeport.duckdb_settings.memory_limit_attempts).
"""

import contextlib
import importlib.metadata
import json
import os
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets
from dagster_dbt.asset_utils import DAGSTER_DBT_UNIQUE_ID_METADATA_KEY as DBT_UNIQUE_ID_METADATA
from packaging import version

from lakeport import duckdb_errors
from lakeport.catalog import WarehouseObjectsLostError, load_catalog
from lakeport.cgroup_limits import read_container_limits
from lakeport.dbt_manifest import DUCKDB_PATH_ENV, RUN_POD_DUCKDB_PATH
from lakeport.duckdb_s3 import configure_s3
from lakeport.duckdb_settings import (
    RUN_SCRATCH_ENV,
    SETTINGS_ENV,
    connect,
    dbt_build_memory,
    default_spill_dir,
    derive_duckdb_settings,
    memory_limit_attempts,
    room_beside_duckdb,
    small_memory_limit_warning,
)
from lakeport.iceberg_publish import (
    Append,
    DayWindow,
    Published,
    publish,
    query_rows,
    unchanged,
)
from lakeport.lineage import RunLineage, commit_lineage
from lakeport.platform import Platform
from lakeport.profiles import PROFILE_TAG, SPILL_MOUNT_PATH
from lakeport.run_scratch import (
    UpstreamMissingError,
    added_rows_query,
    empty_scratch,
    fill_scratch,
    is_stored,
    plan_scratch,
    relation_of,
    selectors,
    tests_to_leave_out,
)
from lakeport.scratch_export import EXPORT_ENV, ExportRequest, read_copy, wait_for_copy
from lakeport.translator import LakeportDbtTranslator, model_options

if TYPE_CHECKING:
    import pyarrow as pa

# dbt's own log file: off unless the run's environment asks for it. Every event it would
# hold reaches Dagster anyway (dagster-dbt reads dbt's JSON on stdout), and writing it as
# JSON at debug level cost a 200-model build 1.5 s of its 12 (bench/orchestration_overhead).
# DBT_LOG_LEVEL_FILE=debug in the run's environment brings it back, in the invocation's
# target directory.
DBT_LOG_LEVEL_FILE_ENV = "DBT_LOG_LEVEL_FILE"
DEFAULT_DBT_LOG_LEVEL_FILE = "none"
# A partitioned run's day window, for the partitioned models' SQL.
PARTITION_START_ENV = "LAKEPORT_PARTITION_START"
PARTITION_END_ENV = "LAKEPORT_PARTITION_END"
# Where a run keeps an incremental model's added rows in its scratch before writing them.
INCREMENT_SCHEMA = "__lakeport_increments"
# Built tables this small (rows x columns) are written to Iceberg PUBLISH_WORKERS at a
# time: each is a few catalog and S3 round trips, 0.15-0.3 s, and one Arrow batch of a few
# MiB; larger ones are streamed one at a time, as the memory derivation assumes.
SMALL_TABLE_CELLS = 1_000_000
PUBLISH_WORKERS = 2
# Small tables read and queued for the workers ahead of the one whose materialization goes
# to Dagster next: enough to keep both busy while Dagster stores that one's events. Each
# is held in memory as Arrow until written.
PUBLISH_AHEAD = 2 * PUBLISH_WORKERS
# Built tables this small are copied by dbt's process as dbt finishes them and written
# from the copy while dbt goes on (lakeport.scratch_export). Unlike the writes after dbt,
# these happen while dbt's DuckDB holds its memory_limit, in the share the derivation
# leaves outside DuckDB (lakeport.duckdb_settings), so they are kept a tenth of
# SMALL_TABLE_CELLS: PUBLISH_WORKERS of them in Arrow at once is a few MiB. The 140 tables
# of bench/orchestration_overhead.py's 200 models are 1,000 rows each.
COPY_MAX_CELLS = SMALL_TABLE_CELLS // 10
# ... and only in a pod with this much room beside the run worker, DuckDB's memory_limit,
# DuckDB's own memory and dbt's process (lakeport.duckdb_settings.room_beside_duckdb): with
# copies, the writers grow the run worker while dbt runs. Sampled from /proc during
# bench/orchestration_overhead.py's 200-model run (2026-12-07): the writers took the run
# worker from 208 to about 300 MiB (pyarrow's S3 client and pyiceberg set up, one malloc
# arena per writer thread); without the copies that growth comes after dbt has exited.
# The room does not count what DuckDB's extra threads may hold outside its pool, so this
# takes pods of about 2 GiB and more; smaller ones write every table after dbt.
COPY_ROOM_NEEDED = 128 << 20
# The DuckDB each copy writer reads its copies with: one thread, and a memory_limit that
# bounds it should a copy be far wider than its cell count says.
READER_CONFIG = {"threads": 1, "memory_limit": "64MiB"}
DEFAULT_RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=15, backoff=dg.Backoff.EXPONENTIAL)
# dbt failures that say nothing about the SQL: waiting and trying again can succeed.
TRANSIENT_DBT_ERRORS = (
    # DuckDB allows one writing process per database file; the other one may finish.
    "Could not set lock on file",
)


class LakeportDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without the two things it does before starting dbt that
    lakeport's op never uses, each several seconds on every run:

    - `dbt --version` in a subprocess (a whole dbt start-up) to learn the version: the dbt
      beside this interpreter is the dbt-core package installed here;
    - a dbt adapter opened inside the run worker (it imports dbt-core and loads every
      macro), which only `fetch_row_counts()` / `fetch_column_metadata()` use. lakeport
      records row counts of what it publishes from the rows it writes to Iceberg.
    """

    # Mirrors DbtCliResource._cli_version in dagster_dbt/core/resource.py (dagster-dbt
    # 0.29.27), which runs `dbt --version`; tests/unit/test_dagster_seams.py fails if it goes.
    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable).resolve() == Path(sys.executable).with_name("dbt").resolve():
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                return version.parse(importlib.metadata.version("dbt-core"))
        return super()._cli_version

    # Replaces DbtCliResource._initialize_dbt_core_adapter in dagster_dbt/core/resource.py
    # (dagster-dbt 0.29.27); `cli()` logs and carries on without an adapter when it gets
    # None. tests/unit/test_dagster_seams.py fails if the method or its call goes.
    def _initialize_dbt_core_adapter(self, args):
        return None


PHASES_MESSAGE = "Time spent in this op (seconds):"


class _Phases:
    """Where a dbt op's time went, logged once at the end of it: filling the scratch from
    the catalog, dbt's build (with Dagster storing its events meanwhile), lineage, and
    writing to Iceberg. A user asking why a run is slow reads it in the run's logs;
    bench/orchestration_overhead.py reads it to split the run into phases."""

    def __init__(self, *always: str):
        # Phases reported even when they took no time (`publish` when every table was
        # written while dbt ran), so a reader finds the same keys in every run's message.
        self.seconds: dict[str, float] = dict.fromkeys(always, 0.0)

    @contextlib.contextmanager
    def timed(self, phase: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.seconds[phase] = self.seconds.get(phase, 0.0) + elapsed

    def message(self, **counts: int) -> str:
        figures = {name: round(value, 3) for name, value in self.seconds.items()}
        return f"{PHASES_MESSAGE} {json.dumps({**figures, **counts})}"


def is_transient_dbt_error(message: str) -> bool:
    return any(marker in message for marker in TRANSIENT_DBT_ERRORS)


def duckdb_database_path(platform: Platform) -> Path:
    """The run's DuckDB file: scratch space on the spill volume in a pod, under
    dev.dataDir on one machine. Durable tables live in the Iceberg catalog, not here."""
    if os.environ.get(DUCKDB_PATH_ENV):
        return Path(os.environ[DUCKDB_PATH_ENV])
    if os.environ.get(RUN_SCRATCH_ENV):
        return Path(os.environ[RUN_SCRATCH_ENV]) / "lakehouse.duckdb"
    if Path(SPILL_MOUNT_PATH).is_dir():
        return Path(RUN_POD_DUCKDB_PATH)
    return Path(platform.dev.data_dir).resolve() / "duckdb" / "lakehouse.duckdb"


def partitioned_models(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Model name -> its partition column, for every daily-partitioned model."""
    return {
        node["name"]: options.partition_column
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and (options := model_options(node)).partition_column is not None
    }


def build_dbt_assets(
    *,
    project: DbtProject,
    manifest: Mapping[str, Any],
    platform: Platform,
    translator: LakeportDbtTranslator,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    retry_policy: dg.RetryPolicy | None = DEFAULT_RETRY_POLICY,
    name_prefix: str = "dbt",
) -> list[dg.AssetsDefinition]:
    """The dagster-dbt assets of one dbt project: one op for the unpartitioned models and,
    when any model has `meta.lakeport.partition_column`, one for the daily-partitioned ones
    (`partitions_def`). Both run `_DbtBuild`: dbt builds in the run's scratch DuckDB, filled
    from the Iceberg catalog, and every stored model is then published to the catalog.
    Op names are `<name_prefix>_models` and `<name_prefix>_daily_models`."""
    partitioned = partitioned_models(manifest)
    runner = _DbtBuild(platform, manifest, partitioned)
    definitions = []
    selection = " ".join(sorted(partitioned))

    @dbt_assets(
        manifest=manifest,
        project=project,
        dagster_dbt_translator=translator,
        exclude=selection or None,
        name=f"{name_prefix}_models",
        retry_policy=retry_policy,
    )
    def unpartitioned(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        yield from runner(context, dbt)

    definitions.append(unpartitioned)
    if partitioned:

        @dbt_assets(
            manifest=manifest,
            project=project,
            dagster_dbt_translator=translator,
            select=selection,
            name=f"{name_prefix}_daily_models",
            partitions_def=partitions_def,
            retry_policy=retry_policy,
        )
        def daily(context: dg.AssetExecutionContext, dbt: DbtCliResource):
            yield from runner(context, dbt)

        definitions.append(daily)
    return definitions


class _DbtBuild:
    """The body of every lakeport dbt op."""

    def __init__(self, platform, manifest, partitioned: dict[str, str]):
        self.platform = platform
        self.manifest = manifest
        self.partitioned = partitioned

    def __call__(self, context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator:
        database = duckdb_database_path(self.platform)
        with _scratch_held(database), contextlib.ExitStack() as cleanup:
            yield from self._build(context, dbt, database, cleanup)

    def _build(
        self, context, dbt: DbtCliResource, database: Path, cleanup: contextlib.ExitStack
    ) -> Iterator:
        from lakeport.duckdb_s3 import S3_ACCESS_ENV, s3_access

        platform = self.platform
        profile_name = platform.profile_name(context.run.tags.get(PROFILE_TAG))
        profile = platform.profile(profile_name)
        selected = self._selected_unique_ids(context)
        plan = plan_scratch(self.manifest, selected, self.partitioned)
        # dbt's process starts after the settings are derived, in the same pod limit, and
        # this process opens DuckDB to fill the scratch first.
        dbt_memory = dbt_build_memory(
            len(self.manifest["nodes"]),
            _nodes_built(self.manifest, [*selected, *plan.views_to_build]),
        )
        # One reading of the pod's cgroup for the settings, the warning and the copy room.
        limits = read_container_limits()
        settings = derive_duckdb_settings(
            profile, limits=limits, spill_dir=default_spill_dir(platform), beside=dbt_memory)
        context.log.info(f"DuckDB settings for this run: {settings.to_json()}")
        warning = small_memory_limit_warning(
            profile_name, profile, settings, limits=limits, beside=dbt_memory)
        if warning:
            context.log.warning(warning)
        days = None
        if context.assets_def.partitions_def is not None:
            window = context.partition_time_window
            days = (window.start.date(), window.end.date())

        catalog = load_catalog(platform)
        access = s3_access(platform)
        phases = _Phases("scratch", "dbt", "publish")
        with phases.timed("scratch"):
            bases = self._fill_scratch(context, settings, database, catalog, access, plan)

        environment = {
            SETTINGS_ENV: settings.to_json(),
            S3_ACCESS_ENV: access.to_json(),
            DUCKDB_PATH_ENV: str(database),
            DBT_LOG_LEVEL_FILE_ENV: os.environ.get(
                DBT_LOG_LEVEL_FILE_ENV, DEFAULT_DBT_LOG_LEVEL_FILE
            ),
        }
        if days is not None:
            environment.update({PARTITION_START_ENV: str(days[0]), PARTITION_END_ENV: str(days[1])})

        lineage = RunLineage.for_context(platform, context)
        request = None
        room = room_beside_duckdb(profile, settings, limits=limits, beside=dbt_memory)
        if room >= COPY_ROOM_NEEDED:
            request = self._copy_request(database, selected, days, bases)
        else:
            context.log.info(
                f"tables are written to Iceberg after dbt exits: copying them while dbt runs "
                f"needs {COPY_ROOM_NEEDED >> 20} MiB beside DuckDB's memory_limit and dbt's "
                f"process, and profile {profile_name} leaves {max(room, 0) >> 20} MiB"
            )
        # Its pool and the copies' directory go when the op ends, however it ends.
        copies = cleanup.enter_context(_CopiedTableWrites(
            request,
            lambda node, rows: _write_rows(catalog, lineage, node, rows),
        ))
        if copies.request is not None:
            environment[EXPORT_ENV] = copies.request.to_json()
        args = ["build", *self._view_rebuild_args(context, selected, plan.views_to_build)]
        # Events go to Dagster as dbt produces them, so Dagster's handling of each
        # overlaps dbt's run, except that a stored node's Output waits until its table is
        # written to Iceberg (the Output carries the snapshot), and so does everything
        # after it, because Dagster requires a multi-asset's outputs in topological order.
        # A small table written whole is copied by dbt's process as dbt finishes it and
        # written from the copy while dbt goes on (`copies`); any other waits until dbt
        # exits (dbt holds DuckDB's write lock on the scratch until then).
        held: deque = deque()
        built: list[dg.Output] = []
        invocations: list = []  # every dbt build of this op, for its lineage
        attempts = memory_limit_attempts(settings)
        attempt_settings = next(attempts)
        done: list[str] = []  # nodes an earlier attempt completed
        while True:
            with phases.timed("dbt"):
                with _environment({**environment, SETTINGS_ENV: attempt_settings.to_json()}):
                    # dbt starts here, and takes the variables with it.
                    invocation = dbt.cli(args, context=context, raise_on_error=False)
                invocations.append(invocation)
                # Includes Dagster storing what is yielded while dbt runs.
                with copies.invocation():
                    yield from self._stream(
                        context, invocation, attempt_settings, held, built, copies
                    )
            again = None if invocation.is_successful() else _out_of_memory_nodes(invocation)
            retry_settings = next(attempts, None) if again else None
            if retry_settings is None:
                break
            # What DuckDB's own out-of-memory error stopped is built again, with what it
            # skipped, at a smaller limit (the error is not monotonic in memory_limit);
            # what was built stays in the scratch, where the rebuild reads it.
            context.log.warning(
                f"DuckDB ran out of memory at memory_limit {attempt_settings.memory_limit} "
                f"building {', '.join(sorted(again.failed))}; building it"
                + (f" and the {len(again.skipped)} node(s) skipped after it" if again.skipped
                   else "")
                + f" again at memory_limit {retry_settings.memory_limit}"
            )
            attempt_settings = retry_settings
            # dagster-dbt adds the op's own selection to any it is given (dbt unions
            # repeated --select; dagster_dbt/asset_utils.py,
            # get_updated_cli_invocation_params_for_context, at 0.29.27), so what
            # completed is excluded rather than the rest selected alone.
            done += again.done
            args = ["build", "--select", " ".join(selectors(self.manifest, again.unique_ids))]
            if done:
                args += ["--exclude", " ".join(selectors(self.manifest, done))]

        if lineage.enabled:
            with phases.timed("lineage"):
                self._model_lineage(context, lineage, attempt_settings, database, invocations)
        # Each held materialization goes to Dagster as soon as its table is written, while
        # the next tables are being written: Dagster storing its events (and its checks')
        # overlaps the writes. `publish` times only what the op waits for the writes.
        written = None  # the tables not written from copies, written from the scratch
        from_scratch: list[Published] = []
        try:
            for event in held:
                if isinstance(event, dg.Output) and self._is_stored(event):
                    with phases.timed("publish"):
                        published = copies.published(_unique_id(event))
                        if published is None:
                            if written is None:
                                # A large table is written alone: the copies' writes end first.
                                copies.wait()
                                written = self._publish(
                                    context, attempt_settings, database, catalog, access,
                                    [e for e in held if isinstance(e, dg.Output)
                                     and self._is_stored(e) and not copies.handled(_unique_id(e))],
                                    days, bases, lineage,
                                )
                            unique_id, published = next(written)
                            assert unique_id == _unique_id(event), (unique_id, _unique_id(event))
                            from_scratch.append(published)
                    event = event.with_metadata({**event.metadata, **published.as_metadata()})
                yield event
        finally:
            if written is not None:
                written.close()
            # One log message for all of them, also when a write fails: each message is an
            # event Dagster stores, and each table's own materialization carries the same
            # figures.
            from_copies = copies.written()
            _log_written(context, from_copies + from_scratch, len(built), len(from_copies))
        context.log.info(phases.message(
            tables_written=len(built), tables_written_from_copies=len(from_copies)
        ))

        if not invocation.is_successful():
            error = invocation.get_error()
            # DuckDB out of spill or memory: say which profile field to change. The same
            # selection under the same profile fails the same way (out of memory: at the
            # smaller limits tried above too), so no retry by the policy.
            sized = duckdb_errors.explain(str(error), profile_name, profile, attempt_settings)
            raise dg.Failure(
                description=f"dbt build failed: {sized + '. ' if sized else ''}{error}",
                metadata={"dbt/target_path": str(invocation.target_path)},
                allow_retries=sized is None and is_transient_dbt_error(str(error)),
            )

    def _stream(
        self, context, invocation, settings, held: deque, built: list, copies
    ) -> Iterator:
        """Yield the invocation's events that can go now; hold the rest in `held`, and
        collect the Outputs of tables to write to Iceberg in `built`, handing each to
        `copies` to write from its copy. After each of dbt's events, the held ones whose
        tables are written by then go, in order."""
        selected_outputs = set(context.selected_output_names)
        for event in invocation.stream():
            if isinstance(event, dg.Output):
                if event.output_name not in selected_outputs:
                    continue  # a view rebuilt only because the selection reads through it
                event = event.with_metadata({**event.metadata, **settings.as_metadata()})
                if self._is_stored(event):
                    built.append(event)
                    copies.submit(self.manifest["nodes"][_unique_id(event)])
            held.append(event)
            while held:
                head = held[0]
                if isinstance(head, dg.Output) and self._is_stored(head):
                    published = copies.published_now(_unique_id(head))
                    if published is None:
                        break
                    head = head.with_metadata({**head.metadata, **published.as_metadata()})
                held.popleft()
                yield head

    def _copy_request(self, database: Path, selected: list[str], days, bases):
        """The tables dbt's process is to copy as it builds them (lakeport.scratch_export):
        the selected stored nodes written whole; None when there are none."""
        tables = {}
        for unique_id in selected:
            node = self.manifest["nodes"][unique_id]
            if is_stored(node) and self._written_whole(node, days, bases):
                tables[unique_id] = relation_of(node).identifier
        if not tables:
            return None
        directory = database.with_name(database.stem + "-copies")
        return ExportRequest(str(directory), COPY_MAX_CELLS, tables)

    def _selected_unique_ids(self, context: dg.AssetExecutionContext) -> list[str]:
        # dagster-dbt's translator records each asset's dbt node in the spec's metadata,
        # and dagster-dbt reads it back from there to select a run's nodes
        # (asset_utils.get_dbt_resource_names_for_asset_keys, 0.29.27): the spec's key,
        # whatever a component's translation made of it. Building every node's spec
        # again instead took 84 ms a run at 200 models.
        assets_def = context.assets_def
        return [
            assets_def.get_asset_spec(key).metadata[DBT_UNIQUE_ID_METADATA]
            for key in context.selected_asset_keys
        ]

    def _fill_scratch(self, context, settings, database: Path, catalog, access, plan):
        """Start from an empty scratch database and put in what the selection reads."""
        import duckdb

        try:
            connection = connect(settings, database)
        except duckdb.IOException as exc:
            # Another process holds DuckDB's write lock on the file (on one machine, a
            # second run or a notebook using the same path): it may let go.
            raise dg.Failure(
                description=f"the run's scratch database {database} cannot be opened: {exc}",
                allow_retries=is_transient_dbt_error(str(exc)),
            ) from exc
        try:
            with contextlib.closing(connection):
                # The scratch is the run's alone: whatever an earlier run left in it (on
                # one machine, outside a run's own scratch directory) must not stand in
                # for the catalog's current snapshots.
                empty_scratch(connection)
                configure_s3(connection, access)
                bases = fill_scratch(connection, catalog, plan)
        except (UpstreamMissingError, WarehouseObjectsLostError) as exc:
            # The same selection fails the same way until someone materialises upstream
            # (or restores what the object store lost): retrying cannot help.
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        if plan.from_catalog:
            context.log.info(
                "read from the Iceberg catalog's current snapshots: "
                + ", ".join(sorted(str(r) for r in plan.from_catalog.values()))
            )
        for base in bases.values():
            if base.snapshot_id is not None:
                context.log.info(
                    f"incremental base {base.relation}: Iceberg snapshot {base.snapshot_id}"
                )
        return bases

    def _view_rebuild_args(self, context, selected: list[str], views: list[str]) -> list[str]:
        """dbt arguments that rebuild, in the run's own `dbt build`, the unselected views the
        selection reads through: they join the selection (dbt unions repeated --select
        options, dbt/cli/options.py MultiOption), the tests they would bring in stay out
        (run_scratch.tests_to_leave_out), and their Outputs are dropped from the op's
        events (they are not selected assets)."""
        if not views:
            return []
        names = selectors(self.manifest, views)
        tests = selectors(self.manifest, tests_to_leave_out(self.manifest, selected, views))
        context.log.info(f"rebuilding the views the selection reads through: {' '.join(names)}")
        # One value per flag: dagster-dbt takes a single value after --select/--exclude.
        args = ["--select", " ".join(names)]
        return [*args, "--exclude", " ".join(tests)] if tests else args

    def _is_stored(self, output: dg.Output) -> bool:
        node = self.manifest["nodes"].get(_unique_id(output) or "")
        return node is not None and is_stored(node)

    def _model_lineage(self, context, lineage, settings, database: Path, invocations) -> None:
        """A START and COMPLETE/FAIL per model each build ran (lakeport.dbt_lineage), with
        the columns the relations have in the scratch now."""
        from lakeport.dbt_lineage import dbt_model_events, scratch_columns

        try:
            with contextlib.closing(connect(settings, database)) as connection:
                columns = scratch_columns(connection)
            for invocation in invocations:
                try:
                    run_results = invocation.get_artifact("run_results.json")
                except (OSError, ValueError):
                    continue  # dbt stopped before it wrote its results: nothing ran
                try:
                    # dbt's own manifest of the build holds each model's compiled SQL.
                    manifest = invocation.get_artifact("manifest.json")
                except (OSError, ValueError):
                    manifest = self.manifest
                for event in dbt_model_events(lineage, manifest, run_results, columns):
                    lineage.emit(event)
        except Exception as exc:  # lineage must never fail the run
            context.log.warning(
                f"OpenLineage: the dbt models' events could not be made from dbt's artifacts "
                f"({type(exc).__name__}: {exc}); the run goes on without them"
            )

    def _publish(
        self, context, settings, database: Path, catalog, access, built, days, bases, lineage
    ) -> Iterator[tuple[str, Published]]:
        """(unique id, its write) for each table in `built`, in its order, as each is
        written to Iceberg."""
        targets = [self.manifest["nodes"][_unique_id(output)] for output in built]
        if not targets:
            return
        with contextlib.closing(connect(settings, database)) as connection:
            configure_s3(connection, access)

            def write(node, rows=None) -> Published:
                """One node's commit: `rows` read already (a small table), else read here."""
                if rows is not None:
                    return _write_rows(catalog, lineage, node, rows)
                return commit_lineage(
                    lineage, str(relation_of(node)),
                    lambda: self._publish_node(connection, catalog, node, days, bases),
                )

            small = {node["unique_id"] for node in self._small_tables(
                connection, targets, days, bases)}
            for node, result in _write_in_order(connection, targets, small, write):
                yield node["unique_id"], result

    def _small_tables(self, connection, targets, days, bases) -> list:
        """The targets written whole whose rows fit one Arrow batch of a few MiB (DuckDB's
        own row estimate times the columns): for them the write is catalog and object
        store round trips, not memory, so a few at a time cost no memory discipline."""
        sizes = {
            (schema, table): rows * columns
            for schema, table, rows, columns in connection.execute(
                "select schema_name, table_name, estimated_size, column_count "
                "from duckdb_tables() where database_name = current_database()"
            ).fetchall()
        }
        small = []
        for node in targets:
            cells = sizes.get(relation_of(node).identifier)
            if not self._written_whole(node, days, bases) or cells is None:
                continue
            if cells <= SMALL_TABLE_CELLS:
                small.append(node)
        return small

    def _written_whole(self, node, days, bases) -> bool:
        """Whether the node's whole table is written: not one day window of a partitioned
        model, not an increment on a base (`_publish_node` writes those)."""
        windowed = days is not None and node["name"] in self.partitioned
        return not windowed and node["unique_id"] not in bases

    def _publish_node(self, connection, catalog, node, days, bases) -> Published:
        relation = relation_of(node)
        column = self.partitioned.get(node["name"])
        if column and days:
            window = DayWindow(column, *days)
            query = (
                f'select * from {relation.sql} where "{column}" >= ? and "{column}" < ?'
            )
            return publish(
                catalog, relation.identifier, query_rows(connection, query, [*days]), window
            )
        base = bases.get(node["unique_id"])
        if base is not None:
            increment, added = self._increment(connection, base)
            if increment is not None and added == 0 and base.snapshot_id is not None:
                return unchanged(catalog, relation.identifier)
            if increment is not None:
                return publish(
                    catalog,
                    relation.identifier,
                    query_rows(connection, f"select * from {increment}"),
                    Append(base.snapshot_id),
                )
        everything = query_rows(connection, f"select * from {relation.sql}")
        return publish(catalog, relation.identifier, everything)

    def _increment(self, connection, base) -> tuple[str | None, int]:
        """The relation holding what an incremental model added to its base, and how many
        rows; None when the model also changed or removed base rows (then its whole table
        is written)."""
        increment = f'"{INCREMENT_SCHEMA}"."{base.relation.schema}__{base.relation.name}"'
        connection.execute(f'create schema if not exists "{INCREMENT_SCHEMA}"')
        # Kept in the scratch file (DuckDB spills it to disk), so counting and writing
        # it read the snapshot once.
        connection.execute(f"create or replace table {increment} as {added_rows_query(base)}")
        added = connection.execute(f"select count(*) from {increment}").fetchone()[0]
        now = connection.execute(f"select count(*) from {base.relation.sql}").fetchone()[0]
        removed = base.row_count + added - now
        return (increment if removed == 0 else None), added


def _write_in_order(
    connection, nodes: list, small: set[str], write
) -> Iterator[tuple[dict, Published]]:
    """(node, what `write` returned for it) for each node, in the order given, as each is
    written.

    A small node (its unique id in `small`) is read whole into Arrow on this thread and
    written by one of PUBLISH_WORKERS threads, `write(node, rows)` with `rows` a reader
    factory; up to PUBLISH_AHEAD of them are under way ahead of the node yielded, so the
    writes go on while the caller handles what was yielded. Any other node is written
    here, `write(node)`, when its turn comes, and nothing is written ahead past it: a
    large table is streamed alone, as the memory derivation assumes.

    DuckDB stays on this thread; the workers only write Arrow through pyiceberg. (Workers
    on DuckDB cursors of their own were tried before: the next duckdb.connect() to the
    scratch file then spun in DuckDB 1.5.5's instance cache,
    DBInstanceCache::GetInstanceInternal in src/main/db_instance_cache.cpp, waiting for an
    instance being torn down.) A failed write is raised in its turn, once the writes under
    way have ended; those not started are not started."""

    remaining = iter(nodes)
    queued: deque = deque()  # (node, its small write's future, or None), in order
    pool = ThreadPoolExecutor(PUBLISH_WORKERS, thread_name_prefix="lakeport-publish")
    try:
        while True:
            while (len(queued) < PUBLISH_AHEAD
                   and (not queued or queued[-1][1] is not None)):
                node = next(remaining, None)
                if node is None:
                    break
                future = None
                if node["unique_id"] in small:
                    table = connection.execute(f"select * from {relation_of(node).sql}")
                    future = pool.submit(write, node, _rows_of(table.to_arrow_table()))
                queued.append((node, future))
            if not queued:
                return
            node, future = queued.popleft()
            yield node, (future.result() if future is not None else write(node))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _log_written(context, written: list[Published], built: int, from_copies: int) -> None:
    if not written:
        return
    lines = [f"{p.identifier} ({p.operation}): {p.row_count} rows, snapshot {p.snapshot_id}"
             for p in written]
    during = f" ({from_copies} while dbt ran, from copies its process made)" if from_copies else ""
    context.log.info(f"wrote {len(written)} of {built} tables to Iceberg{during}:\n"
                     + "\n".join(lines))


def _rows_of(table: "pa.Table"):
    """`publish`'s `rows` for an Arrow table in memory."""
    import pyarrow as pa

    return lambda: pa.RecordBatchReader.from_batches(table.schema, table.to_batches())


def _write_rows(catalog, lineage: RunLineage, node, rows) -> Published:
    """Write a table read already (`rows`, a reader factory) as the node's whole table."""
    relation = relation_of(node)
    return commit_lineage(
        lineage, str(relation), lambda: publish(catalog, relation.identifier, rows)
    )


class _CopiedTableWrites:
    """Writes to Iceberg, while dbt runs, the tables dbt's process copies as it finishes
    them (lakeport.scratch_export), PUBLISH_WORKERS at a time, in the order submitted.

    Each write waits for its copy, reads it whole into Arrow (a copy is small) and removes
    it, then commits it. A table dbt's process did not copy (too large, or dbt ended
    first) is not written here: `handled` says False for it, and the op writes it from the
    scratch after dbt. A failed write is raised by `published`, in the op's order."""

    def __init__(self, request: ExportRequest | None, write):
        self.request = request
        self._write = write  # write(node, rows) -> Published
        self._futures: dict[str, Future] = {}
        self._dbt_exited = threading.Event()
        self._pool = ThreadPoolExecutor(PUBLISH_WORKERS, thread_name_prefix="lakeport-copy")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._readers: list = []
        if request is not None:
            # What an earlier attempt of this op left there is not this build's.
            shutil.rmtree(request.directory, ignore_errors=True)

    def __enter__(self) -> "_CopiedTableWrites":
        return self

    def __exit__(self, *exc_info) -> None:
        self._dbt_exited.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for reader in self._readers:
            reader.close()
        if self.request is not None:
            shutil.rmtree(self.request.directory, ignore_errors=True)

    @contextlib.contextmanager
    def invocation(self):
        """Around one dbt invocation's events: its copies are all made (or not) once its
        events end, since dbt's process finishes them before it exits."""
        self._dbt_exited = threading.Event()
        try:
            yield
        finally:
            self._dbt_exited.set()

    def submit(self, node) -> None:
        unique_id = node["unique_id"]
        if self.request is None or unique_id not in self.request.tables:
            return
        if unique_id not in self._futures:
            self._futures[unique_id] = self._pool.submit(
                self._write_copy, node, self._dbt_exited
            )

    def published_now(self, unique_id: str) -> Published | None:
        """The table's write if it has ended well by now, without waiting; else None."""
        return _ended_well(self._futures.get(unique_id))

    def published(self, unique_id: str) -> Published | None:
        """The table's write once it ends (its error, if it failed); None if it had no
        copy to write from."""
        future = self._futures.get(unique_id)
        return None if future is None else future.result()

    def wait(self) -> None:
        futures.wait(self._futures.values())

    def handled(self, unique_id: str) -> bool:
        """Whether the table's write was, or is being, made from its copy."""
        future = self._futures.get(unique_id)
        if future is None:
            return False
        return not future.done() or future.exception() is not None or future.result() is not None

    def written(self) -> list[Published]:
        """The writes from copies that have ended well, in the order submitted."""
        return [p for f in self._futures.values() if (p := _ended_well(f)) is not None]

    def _write_copy(self, node, dbt_exited: threading.Event) -> Published | None:
        copy = wait_for_copy(self.request, node["unique_id"], dbt_exited)
        if copy is None:
            return None
        table = read_copy(self._reader(), copy)
        copy.unlink()
        return self._write(node, _rows_of(table))

    def _reader(self):
        """This worker's in-memory DuckDB, kept for all its copies (opening a database
        costs more than reading a small copy). Not the scratch, which stays with the
        op's thread; one thread each, as a DuckDB connection is not for sharing."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            import duckdb

            connection = duckdb.connect(config=READER_CONFIG)
            self._local.connection = connection
            with self._lock:
                self._readers.append(connection)
        return connection


def _ended_well(future: Future | None) -> Published | None:
    """A write's result if it has ended without an error by now (None if it had no copy)."""
    if future is None or not future.done() or future.cancelled() or future.exception():
        return None
    return future.result()


@dataclass(frozen=True)
class OutOfMemoryNodes:
    """What one dbt build left undone because DuckDB ran out of memory."""

    failed: tuple[str, ...]  # names of the nodes DuckDB's own out-of-memory error stopped
    skipped: tuple[str, ...]  # names of the nodes dbt skipped after them
    unique_ids: tuple[str, ...]  # both, to select again
    done: tuple[str, ...] = ()  # unique ids of the nodes that completed, not to run again


def out_of_memory_nodes(
    run_results: Mapping[str, Any], manifest: Mapping[str, Any]
) -> OutOfMemoryNodes | None:
    """The nodes to build again when DuckDB's own out-of-memory error is the only error in
    a build's run_results.json; None when anything else failed (a failing test, bad SQL,
    the spill volume full), since what dbt skipped after that must stay skipped."""
    nodes = manifest["nodes"]
    failed, skipped, done = [], [], []
    for result in run_results.get("results", ()):
        status, unique_id = result.get("status"), result.get("unique_id")
        if status in ("error", "fail", "runtime error"):
            if status != "error" or not duckdb_errors.is_out_of_memory(result.get("message") or ""):
                return None
            failed.append(unique_id)
        elif status == "skipped":
            skipped.append(unique_id)
        elif unique_id in nodes:
            done.append(unique_id)
    if not failed or any(unique_id not in nodes for unique_id in failed):
        return None
    skipped = [unique_id for unique_id in skipped if unique_id in nodes]
    return OutOfMemoryNodes(
        failed=tuple(nodes[u]["name"] for u in failed),
        skipped=tuple(nodes[u]["name"] for u in skipped),
        unique_ids=tuple(failed + skipped),
        done=tuple(done),
    )


def _out_of_memory_nodes(invocation) -> OutOfMemoryNodes | None:
    try:
        run_results = invocation.get_artifact("run_results.json")
    except (OSError, ValueError):
        return None  # dbt stopped before it wrote its results: nothing to go on
    return out_of_memory_nodes(run_results, invocation.manifest)


def _nodes_built(manifest: dict, unique_ids: list[str]) -> int:
    """How many nodes a build of `unique_ids` runs: them and the tests on them."""
    children = manifest.get("child_map", {})
    tests = {child for unique_id in unique_ids for child in children.get(unique_id, ())
             if child.startswith("test.")}
    return len(set(unique_ids)) + len(tests)


def _unique_id(event: dg.Output) -> str | None:
    value = event.metadata.get("unique_id")
    return getattr(value, "value", value)


@contextlib.contextmanager
def _scratch_held(database: Path):
    """Hold the scratch database for one op from its emptying to its last write.

    DuckDB's own lock lasts only while a connection is open, and an op opens and closes
    several (fill, dbt, write): a second op on the same path (one machine, a
    LAKEPORT_DUCKDB_PATH shared by two runs) would empty the scratch between them. A run
    pod or `lakeport dev`'s per-run directory never shares one; this makes sharing a
    retried wait instead of a confusing failure."""
    import fcntl

    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lakeport-lock"), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise dg.Failure(
                description=f"the run's scratch database {database} is in use by another "
                "run on this machine (two runs share one LAKEPORT_DUCKDB_PATH); retried",
                allow_retries=True,
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """Set variables for a subprocess started inside the block, then put them back."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
