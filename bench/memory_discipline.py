"""Benchmark 1 — memory discipline: transforms over data 2x, 4x and 8x a pod's memory limit,
at pod limits from 512 MiB to 4 GiB.

Each run is a child process inside a real cgroup with that memory limit (the kernel
mechanism behind a pod's `limits.memory`), running one of these workloads:

- generated: a hash join of two generated tables, a high-cardinality GROUP BY with string
  aggregates and an ORDER BY, written to Parquet; every byte it holds is the join's build
  side, the aggregate's groups and the sort;
- catalog: the same transform as a run pod does it, its two inputs read from Iceberg tables
  in a catalog on a real S3 endpoint (moto's server) through lakeport's scratch (DuckDB views
  over iceberg_scan, httpfs), the mart written back through the catalog;

each two ways:

- lakeport: DuckDB settings from `lakeport.duckdb_settings.derive_duckdb_settings` for a
  profile of that pod size (limits.memory = the cgroup limit, spillVolumeSize
  SPILL_VOLUME_PER_LIMIT times it), read from the child's own cgroup as in a run pod;
- defaults: DuckDB as it configures itself (80% of the host's RAM, every core).

A third workload runs with lakeport only (`--workloads generated,catalog,dbt_run`):

- dbt_run: the catalog workload as a run pod runs it. The child is the run worker: Dagster
  executes lakeport's job of a one-model dbt project (the mart, its inputs as dbt sources)
  with its default executor, which starts a process for the step; there lakeport's dbt op
  fills the scratch from the catalog, derives DuckDB's settings, starts dbt's own process
  to build the mart, and writes it back. Dagster's processes, dbt and DuckDB share the
  cgroup as they share a pod.

A lakeport run builds its model again at a smaller memory_limit when DuckDB's own
out-of-memory error stops it, as lakeport's dbt op does
(lakeport.duckdb_settings.memory_limit_attempts); the limits it failed at are reported.

Reported per run: outcome (ok / OOM-killed / error), wall time, the kernel's peak charge of
the cgroup, the peak of anonymous memory, and the peak size of the spill directory.

    python -m bench.memory_discipline                          # 512 MiB pods, 2x 4x 8x
    python -m bench.memory_discipline --sizes 1024,2048,4096   # the larger pods (hours)
    python -m bench.memory_discipline --sizes 768 --factors 0.75 --configs lakeport  # smoke
"""

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from unittest import mock

from bench.cgroup import MemoryMeter, limited_cgroup
from bench.common import (
    REPO,
    RESULTS_DIR,
    code_under_test,
    mib,
    print_table,
    print_targets,
    seconds,
    write_result,
)

NAME = "memory_discipline"
PROFILE = "transform"
CONFIGS = ("lakeport", "defaults")
WORKLOADS = ("generated", "catalog")
# The catalog workload as a run pod does it, Dagster and dbt included (lakeport only):
# `--workloads generated,catalog,dbt_run`.
DBT_RUN = "dbt_run"
# Target: a lakeport run is never killed and its unreclaimable memory stays below this.
PEAK_TARGET_FRACTION = 0.90
# The bench profile's spill volume per byte of its memory limit. Measured: DuckDB 1.5.5
# spilled up to 1.5x the data it was given (12 GiB for 8x a 1 GiB pod), so 8x data needs a
# volume of 12x the limit and 90% of it for DuckDB (SPILL_HEADROOM_FRACTION): 16x fits.
SPILL_VOLUME_PER_LIMIT = 16
WAREHOUSE_BUCKET = "bench-memory"
ORDERS = ("raw", "orders")
PAYMENTS = ("raw", "payments")
MART = ("marts", "customer_revenue")

# Bytes per generated row as DuckDB holds it in memory (8 per BIGINT/DOUBLE, 16 per
# inlined short VARCHAR): orders carry 3 numbers and a string, payments 2 and a string.
ORDER_ROW_BYTES = 8 + 8 + 8 + 16
PAYMENT_ROW_BYTES = 8 + 8 + 16
# Half as many payments as orders, so data bytes = rows * (40 + 32 / 2).
BYTES_PER_ORDER = ORDER_ROW_BYTES + PAYMENT_ROW_BYTES / 2

_SAMPLE_INTERVAL = 0.01
_SPILL_SAMPLE_INTERVAL = 0.1


def orders_sql(orders: int) -> str:
    customers = max(1, orders // 4)
    return (f"SELECT i AS order_id, hash(i) % {customers} AS customer_id, "
            f"(i % 1000) / 10.0 AS amount, 'status-' || (i % 7)::VARCHAR AS status "
            f"FROM range({orders}) t(i)")


def payments_sql(orders: int) -> str:
    return (f"SELECT 2 * j AS order_id, (j % 500) / 5.0 AS paid, "
            f"'method-' || (j % 5)::VARCHAR AS method FROM range({orders // 2}) t(j)")


def mart_sql(orders: str, payments: str) -> str:
    """The transform: join, aggregate per customer (with string aggregates), sort."""
    return f"""
      SELECT o.customer_id, count(*) AS orders, sum(o.amount) AS revenue,
             sum(p.paid) AS paid, max(o.status) AS last_status, min(p.method) AS first_method
      FROM {orders} o JOIN {payments} p ON o.order_id = p.order_id
      GROUP BY o.customer_id
      ORDER BY revenue DESC, o.customer_id
    """


def transform_sql(orders: int, output: str) -> str:
    """The generated workload: inputs from range(), so nothing is read from disk; only the
    result reaches it."""
    return f"""
    COPY (
      WITH orders AS ({orders_sql(orders)}), payments AS ({payments_sql(orders)})
      {mart_sql("orders", "payments")}
    ) TO '{output}' (FORMAT parquet)
    """


def bench_profile(limit_bytes: int):
    """The resource profile of a pod this size: what a platform engineer would write."""
    from lakeport.config import parse_platform

    memory = f"{limit_bytes >> 20}Mi"
    spill = f"{(SPILL_VOLUME_PER_LIMIT * limit_bytes) >> 20}Mi"
    return parse_platform(
        f"resourceProfiles: {{{PROFILE}: {{requests: {{cpu: 500m, memory: {memory}}}, "
        f"limits: {{cpu: '2', memory: {memory}}}, spillVolumeSize: {spill}}}}}"
    ).profile(PROFILE)


# --- the child: runs inside the cgroup ----------------------------------------------------------


def child(config: str, workload: str, orders: int, workdir: Path, limit_bytes: int,
          platform_file: Path | None) -> int:
    import duckdb

    from lakeport.duckdb_settings import connect, derive_duckdb_settings, memory_limit_attempts

    if workload == DBT_RUN:
        return _dbt_run(workdir, platform_file)
    database = ":memory:" if workload == "generated" else workdir / "scratch.duckdb"
    if workload == "catalog":
        # Loaded before the settings are derived, as in a run worker, whose memory in use
        # when it derives them includes pyiceberg and pyarrow.
        import pyarrow  # noqa: F401
        import pyiceberg.catalog.sql  # noqa: F401

        import lakeport.catalog  # noqa: F401
        import lakeport.iceberg_publish  # noqa: F401
        import lakeport.run_scratch  # noqa: F401
    if config == "lakeport":
        # Derived here, inside the cgroup: the limit comes from this process's own cgroup.
        settings = derive_duckdb_settings(bench_profile(limit_bytes), spill_dir=workdir / "spill")
        connection = connect(settings, database)
        derived = settings.as_metadata()
        # As lakeport's dbt op does, the model is built again at a smaller memory_limit
        # when DuckDB's own out-of-memory error stops it.
        attempts = list(memory_limit_attempts(settings))
    else:
        connection = duckdb.connect(str(database))
        derived = {}
        attempts = [None]
    effective = dict(
        connection.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('memory_limit', 'threads', 'temp_directory', 'max_temp_directory_size')"
        ).fetchall()
    )
    temp_directory = Path(effective["temp_directory"])
    if not temp_directory.is_absolute():
        temp_directory = workdir / temp_directory
    _say({"event": "start", "settings": effective, "derived": derived,
          "temp_directory": str(temp_directory)})

    started = time.monotonic()
    if workload == "generated":
        output = workdir / "result.parquet"

        def build_model():
            connection.execute(transform_sql(orders, str(output)))

        build_with_attempts(connection, attempts, build_model)
        groups, matched = connection.execute(
            f"SELECT count(*), sum(orders) FROM read_parquet('{output}')"
        ).fetchone()
    else:
        groups, matched = _catalog_mart(connection, platform_file, attempts)
    _say({"event": "done", "query_seconds": time.monotonic() - started, "groups": groups,
          "matched": matched})
    return 0


def build_with_attempts(connection, attempts: list, build_model) -> None:
    """Run `build_model` under each of `attempts` in turn while DuckDB's own out-of-memory
    error stops it. The op starts a new dbt process per attempt; here the same connection
    gets the smaller limit (SET memory_limit evicts down to it and flushes the allocator).
    Only the limit: DuckDB refuses to set temp_directory again once it has spilled there,
    even to the same path ("Cannot switch temporary directory after the current one has
    been used")."""
    import duckdb

    from lakeport.duckdb_connection import MEMORY_LIMIT_VARIABLE
    from lakeport.duckdb_errors import is_out_of_memory

    for number, settings in enumerate(attempts):
        if settings is not None and number > 0:
            connection.execute(f"SET memory_limit = '{settings.memory_limit}'")
            connection.execute(f"SET VARIABLE {MEMORY_LIMIT_VARIABLE} = "
                               f"'{settings.memory_limit}'")
        try:
            build_model()
            return
        except duckdb.OutOfMemoryException as exc:
            if settings is None or number == len(attempts) - 1 or not is_out_of_memory(str(exc)):
                raise
            _say({"event": "out_of_memory", "memory_limit": settings.memory_limit})


def _catalog_mart(connection, platform_file: Path, attempts: list) -> tuple[int, int]:
    """What a run pod does for one model: its upstream from the catalog into the scratch,
    the model as a table there, the table published to the catalog."""
    from lakeport.catalog import load_catalog
    from lakeport.config import load_platform
    from lakeport.duckdb_s3 import configure_s3
    from lakeport.iceberg_publish import publish, query_rows
    from lakeport.run_scratch import Relation, ScratchPlan, fill_scratch

    platform = load_platform(platform_file)
    catalog = load_catalog(platform)
    orders, payments, mart = Relation(*ORDERS), Relation(*PAYMENTS), Relation(*MART)
    configure_s3(connection, platform)
    fill_scratch(connection, catalog, ScratchPlan(
        from_catalog={"source.bench.raw.orders": orders, "source.bench.raw.payments": payments}))
    connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{mart.schema}"')

    def build_model():
        connection.execute(
            f"CREATE OR REPLACE TABLE {mart.sql} AS {mart_sql(orders.sql, payments.sql)}")

    build_with_attempts(connection, attempts, build_model)
    publish(catalog, mart.identifier, query_rows(connection, f"SELECT * FROM {mart.sql}"))
    return _mart_counts(connection, catalog, mart.identifier)


def _mart_counts(connection, catalog, identifier) -> tuple[int, int]:
    """Groups and matched orders of the mart as published: read back from the catalog,
    since the published table is the result."""
    published = catalog.load_table(identifier).metadata_location.replace("'", "''")
    return connection.execute(
        f"SELECT count(*), sum(orders) FROM iceberg_scan('{published}')"
    ).fetchone()


# Where the dbt_run job finds its project and platform in every process Dagster starts
# for it (the executor re-imports the job through `reconstructable`).
DBT_RUN_PROJECT_ENV = "LAKEPORT_BENCH_DBT_RUN_PROJECT"
DBT_RUN_PLATFORM_ENV = "LAKEPORT_BENCH_DBT_RUN_PLATFORM"


def dbt_run_job():
    """The dbt_run workload's job: lakeport's definitions of its one-model project."""
    from lakeport.config import load_platform
    from lakeport.lakehouse import build_lakehouse_definitions

    platform = load_platform(os.environ[DBT_RUN_PLATFORM_ENV])
    return build_lakehouse_definitions(
        os.environ[DBT_RUN_PROJECT_ENV], platform, partitions_start_date="2025-01-01"
    ).resolve_job_def("lakehouse_job")


def _dbt_run(workdir: Path, platform_file: Path) -> int:
    """The catalog workload as a run pod does it. This process is the run worker
    (`dagster api execute_run`'s part): it executes the job with the job's own executor,
    Dagster's default, which starts a process for the step; there lakeport's dbt op fills
    the run's scratch from the catalog, starts dbt's own process to build the mart, and
    writes the mart to the catalog. All of them share the cgroup as they share a pod; the
    op derives DuckDB's settings."""
    import dagster as dg

    from lakeport.catalog import load_catalog
    from lakeport.config import load_platform
    from lakeport.duckdb_settings import default_spill_dir

    platform = load_platform(platform_file)
    _say({"event": "start", "settings": {}, "derived": {},
          "temp_directory": str(default_spill_dir(platform))})
    started = time.monotonic()
    os.environ[DBT_RUN_PROJECT_ENV] = str(workdir / "project")
    os.environ[DBT_RUN_PLATFORM_ENV] = str(platform_file)
    (workdir / "dagster").mkdir(exist_ok=True)
    with dg.DagsterInstance.local_temp(str(workdir / "dagster")) as instance:
        # Imported by name: as `python -m`, this module is __main__, which the step's
        # process could not import the job from.
        from bench.memory_discipline import dbt_run_job as job

        result = dg.execute_job(dg.reconstructable(job), instance=instance)
        logs = [r.user_message for r in instance.all_logs(result.run_id)]
    for message in logs:
        if "DuckDB's out-of-memory error" in message or "building again" in message:
            _say({"event": "op_log", "message": message[:500]})
    if not result.success:
        failure = next((e for e in result.all_events if e.is_failure), None)
        print(failure.event_specific_data.error.message if failure else "the run failed",
              file=sys.stderr)
        return 1
    [mart] = [e.event_specific_data.materialization for e in result.all_events
              if e.event_type_value == "ASSET_MATERIALIZATION"]
    metadata = {key: getattr(value, "value", value) for key, value in mart.metadata.items()}
    settings = {key.removeprefix("duckdb/"): value for key, value in metadata.items()
                if key.startswith("duckdb/")}
    _say({"event": "settings", "settings": {k: settings.get(k) for k in (
              "memory_limit", "threads", "temp_directory", "max_temp_directory_size")},
          "derived": {f"duckdb/{k}": v for k, v in settings.items()}})
    import duckdb

    from lakeport.duckdb_s3 import configure_s3

    with duckdb.connect() as connection:
        configure_s3(connection, platform)
        groups, matched = _mart_counts(connection, load_catalog(platform),
                                       metadata["iceberg/table"])
    _say({"event": "done", "query_seconds": time.monotonic() - started, "groups": groups,
          "matched": matched})
    return 0


def write_dbt_run_project(workdir: Path, inputs_platform: Path, limit_bytes: int) -> Path:
    """A one-model dbt project (the mart over the two catalog inputs, as dbt sources), its
    manifest prepared as the image build prepares it, and the platform the run uses: the
    inputs' (their catalog, endpoint and data directory, where the op keeps its scratch
    and spill) with the pod size's profile. Returns the platform file."""
    import yaml

    from lakeport.config import load_platform
    from lakeport.dbt_assets import duckdb_database_path
    from lakeport.dbt_manifest import prepare_manifest

    platform = yaml.safe_load(inputs_platform.read_text())
    profile = bench_profile(limit_bytes)
    platform["resourceProfiles"] = {PROFILE: {
        "requests": {"cpu": "500m", "memory": profile.limits.memory},
        "limits": {"cpu": "2", "memory": profile.limits.memory},
        "spillVolumeSize": profile.spill_volume_size,
    }}
    platform_file = workdir / "platform.yaml"
    platform_file.write_text(yaml.safe_dump(platform))

    project = workdir / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(yaml.safe_dump({
        "name": "bench_memory", "version": "1.0.0", "config-version": 2,
        "profile": "bench_memory", "model-paths": ["models"], "macro-paths": ["macros"],
    }))
    (project / "profiles.yml").write_text(yaml.safe_dump({"bench_memory": {
        "target": "lakeport", "outputs": {"lakeport": {
            "type": "duckdb", "threads": 1,
            "path": "{{ env_var('LAKEPORT_DUCKDB_PATH', 'target/bench.duckdb') }}",
            "plugins": [{"module": "lakeport.dbt_duckdb_plugin"}]}}}}))
    # The node's schema is the Iceberg namespace, as the demo's macro makes it.
    (project / "macros").mkdir()
    (project / "macros" / "generate_schema_name.sql").write_text(
        "{% macro generate_schema_name(custom_schema_name, node) -%}\n"
        "{{ custom_schema_name or target.schema }}\n{%- endmacro %}\n")
    (project / "models" / "sources.yml").write_text(yaml.safe_dump({
        "version": 2, "sources": [{"name": ORDERS[0], "schema": ORDERS[0],
                                   "tables": [{"name": ORDERS[1]}, {"name": PAYMENTS[1]}]}]}))
    orders, payments = (f"{{{{ source('{schema}', '{name}') }}}}"
                        for schema, name in (ORDERS, PAYMENTS))
    config = f"{{{{ config(materialized='table', schema='{MART[0]}') }}}}"
    (project / "models" / f"{MART[1]}.sql").write_text(
        f"{config}\n{mart_sql(orders, payments)}")
    prepare_manifest(project, duckdb_path=duckdb_database_path(load_platform(platform_file)))
    return platform_file


def _say(message: dict) -> None:
    print(json.dumps(message), flush=True)


# --- the catalog's inputs: written once per data size, outside any cgroup -----------------------


class CatalogInputs:
    """An S3 endpoint and a SQL catalog holding `raw.orders` and `raw.payments`."""

    def __init__(self, root: Path):
        from lakeport.dev.ports import free_port
        from lakeport.dev.s3 import S3Server

        self.root = root
        self.server = S3Server(port=free_port())
        self.platform_file = root / "platform.yaml"
        self.orders = None

    def __enter__(self):
        from lakeport.dev.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY

        # The writer here and the children find the endpoint's keys the standard way, for
        # as long as the inputs exist (then the caller's environment is as it was).
        self._environment = mock.patch.dict(os.environ, {
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
        })
        self._environment.start()
        self.server.start()
        self.server.ensure_buckets(WAREHOUSE_BUCKET)
        self.platform_file.write_text(
            f"catalog: {{type: sql, warehouse: 's3://{WAREHOUSE_BUCKET}/'}}\n"
            f"objectStorage: {{endpoint: '{self.server.endpoint}', region: us-east-1, "
            f"pathStyle: true}}\ndev: {{dataDir: '{self.root / 'data'}'}}\n"
        )
        return self

    def __exit__(self, *exc):
        self.server.stop()
        self._environment.stop()

    def fill(self, orders: int) -> None:
        """Replace both inputs with `orders` orders and half as many payments."""
        import duckdb

        from lakeport.catalog import load_catalog
        from lakeport.config import load_platform
        from lakeport.iceberg_publish import publish, query_rows

        if self.orders == orders:
            return
        catalog = load_catalog(load_platform(self.platform_file))
        with duckdb.connect() as generator:
            generator.execute("SET memory_limit = '2GB'")
            generator.execute(f"SET temp_directory = '{self.root / 'generator-spill'}'")
            publish(catalog, ORDERS, query_rows(generator, orders_sql(orders)))
            publish(catalog, PAYMENTS, query_rows(generator, payments_sql(orders)))
        self.orders = orders


# --- the parent: one run per (workload, factor, config) -----------------------------------------


@dataclass
class Run:
    workload: str
    factor: float
    config: str
    limit_bytes: int
    data_bytes: int
    orders: int
    outcome: str = "error"
    exit_code: int | None = None
    oom_kills: int = 0
    wall_seconds: float = 0.0
    query_seconds: float | None = None
    kernel_peak_bytes: int = 0
    anon_peak_bytes: int = 0
    working_set_peak_bytes: int = 0
    spill_peak_bytes: int = 0
    # As DuckDB reports them, and (lakeport runs) as lakeport derived them, with why.
    duckdb_settings: dict = field(default_factory=dict)
    lakeport_settings: dict = field(default_factory=dict)
    result_checks: dict = field(default_factory=dict)
    # The memory limits at which DuckDB's own out-of-memory error stopped the model, which
    # was then built again at the next smaller one (lakeport runs only).
    out_of_memory_at: list = field(default_factory=list)
    error: str | None = None

    @property
    def anon_peak_fraction(self) -> float:
        return self.anon_peak_bytes / self.limit_bytes


def orders_for(factor: float, limit_bytes: int) -> int:
    return int(factor * limit_bytes / BYTES_PER_ORDER) // 2 * 2


def run_one(workload: str, factor: float, config: str, limit_bytes: int,
            inputs: CatalogInputs | None = None) -> Run:
    orders = orders_for(factor, limit_bytes)
    run = Run(workload, factor, config, limit_bytes, int(orders * BYTES_PER_ORDER), orders)
    workdir = Path(tempfile.mkdtemp(prefix=f"lakeport-bench-mem-{config}-"))
    try:
        if inputs is not None:
            inputs.fill(orders)
        platform_file = inputs.platform_file if inputs is not None else None
        if workload == DBT_RUN:
            platform_file = write_dbt_run_project(workdir, inputs.platform_file, limit_bytes)
        with limited_cgroup(f"bench-{config}", limit_bytes) as cgroup:
            _measure(run, cgroup, workdir, platform_file)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return run


def _measure(run: Run, cgroup, workdir: Path, platform_file: Path | None) -> None:
    meter = MemoryMeter(cgroup)
    argv = [sys.executable, "-m", "bench.memory_discipline", "--child", run.config,
            "--workload", run.workload, "--orders", str(run.orders), "--workdir", str(workdir),
            "--sizes", str(run.limit_bytes >> 20)]
    if platform_file is not None:
        argv += ["--platform-file", str(platform_file)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = time.monotonic()
    process = subprocess.Popen(
        cgroup.command(argv), cwd=workdir, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    messages: list[dict] = []
    spill_dir: list[Path] = []
    stop = threading.Event()

    def read_stdout():
        for line in process.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            messages.append(message)
            if message.get("event") == "start":
                spill_dir.append(Path(message["temp_directory"]))

    def sample_memory():
        while not stop.is_set():
            try:
                reading = meter.sample()
            except OSError:
                break
            run.anon_peak_bytes = max(run.anon_peak_bytes, reading["anon"])
            run.working_set_peak_bytes = max(run.working_set_peak_bytes, reading["working_set"])
            stop.wait(_SAMPLE_INTERVAL)

    def sample_spill():
        while not stop.is_set():
            if spill_dir:
                run.spill_peak_bytes = max(run.spill_peak_bytes, _allocated_bytes(spill_dir[0]))
            stop.wait(_SPILL_SAMPLE_INTERVAL)

    threads = [threading.Thread(target=t, daemon=True)
               for t in (read_stdout, sample_memory, sample_spill)]
    for thread in threads:
        thread.start()
    stderr = process.stderr.read()
    process.wait()
    run.wall_seconds = time.monotonic() - started
    stop.set()
    for thread in threads:
        thread.join()

    run.exit_code = process.returncode
    run.kernel_peak_bytes = meter.peak_bytes()
    run.oom_kills = cgroup.oom_kills()
    # A dbt run's settings are derived inside its op: it says them once it has run.
    start = next((m for m in reversed(messages) if m.get("event") in ("start", "settings")),
                 {})
    done = next((m for m in messages if m.get("event") == "done"), None)
    run.duckdb_settings = start.get("settings", {})
    run.out_of_memory_at = [m["memory_limit"] for m in messages
                            if m.get("event") == "out_of_memory"]
    run.lakeport_settings = start.get("derived", {})
    if done is not None:
        run.query_seconds = done["query_seconds"]
        run.result_checks = {
            "groups": done["groups"],
            "matched_rows": done["matched"],
            # Every payment joins exactly one order: anything else is a wrong result.
            "expected_matched_rows": run.orders // 2,
        }
    # A dbt run's worker outlives its step's process when the kernel kills that one: it
    # reports the crash and exits 1.
    if process.returncode != 0 and run.oom_kills > 0:
        run.outcome = "OOM-killed"
    elif process.returncode == 0 and done is not None:
        right = done["matched"] == run.orders // 2
        run.outcome = "ok" if right else "wrong result"
    else:
        run.outcome = "error"
        lines = stderr.strip().splitlines() or [f"exit code {process.returncode}"]
        # The exception line says what went wrong; DuckDB appends a hint after it. A dbt
        # run's failure quotes dbt's log, DuckDB's own error in it.
        run.error = next((line for line in lines if "Out of Memory Error" in line), None) or next(
            (line for line in lines if "Error" in line or "Exception" in line), lines[-1])


def _allocated_bytes(directory: Path) -> int:
    """Disk blocks actually allocated below `directory` (spill files may be sparse)."""
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass  # DuckDB deleted it between the listing and the stat
    return total


def evaluate(runs: list[Run]) -> dict:
    lakeport = [r for r in runs if r.config == "lakeport"]
    never_killed = bool(lakeport) and all(r.outcome == "ok" for r in lakeport)
    worst = max((r.anon_peak_fraction for r in lakeport), default=None)
    return {
        "lakeport_never_oom_killed": {
            "target": "every lakeport run completes (not OOM-killed, no error, right result)",
            "value": [f"{r.workload} {r.factor:g}x: {r.outcome}" for r in lakeport],
            "pass": never_killed,
        },
        "lakeport_peak_memory": {
            "target": f"peak anonymous memory <= {PEAK_TARGET_FRACTION:.0%} of the limit",
            "value": None if worst is None else round(worst, 3),
            "pass": worst is not None and worst <= PEAK_TARGET_FRACTION,
        },
    }


def comparison(runs: list[Run]) -> dict:
    """DuckDB's defaults at the same sizes: the failure lakeport's derivation prevents."""
    defaults = [r for r in runs if r.config == "defaults"]
    return {
        "defaults_outcomes": [f"{r.workload} {r.factor:g}x: {r.outcome}" for r in defaults],
        "defaults_all_failed": bool(defaults) and all(r.outcome != "ok" for r in defaults),
    }


def result_path(limit_mib: int) -> Path:
    """512 MiB (the default size) keeps the historic name; other sizes get their own file."""
    if limit_mib == 512:
        return RESULTS_DIR / f"{NAME}.json"
    return RESULTS_DIR / (f"{NAME}_{limit_mib >> 10}gib.json" if limit_mib % 1024 == 0
                          else f"{NAME}_{limit_mib}mib.json")


def run_size(limit_mib: int, workloads: list[str], factors: list[float],
             catalog_factors: list[float], configs: list[str], output: Path | None,
             code: dict) -> bool:
    limit = limit_mib << 20
    path = output or result_path(limit_mib)
    # Each run is added to this as it ends, so a run of hours stopped early still leaves
    # its figures; the results file proper is written, and this removed, at the end.
    partial = path.with_suffix(".partial.json")
    runs = []
    for workload in workloads:
        with contextlib.ExitStack() as stack:
            inputs = None
            if workload in ("catalog", DBT_RUN):
                root = Path(stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="lakeport-bench-catalog-")))
                inputs = stack.enter_context(CatalogInputs(root))
            for factor in (factors if workload == "generated" else catalog_factors):
                # DuckDB's defaults cannot be given to lakeport's op: a dbt run is lakeport's.
                for config in (configs if workload != DBT_RUN else ["lakeport"]):
                    run = run_one(workload, factor, config, limit, inputs)
                    print(f"  {limit_mib} MiB {workload} {factor:g}x {config}: {run.outcome} "
                          f"in {run.wall_seconds:.1f} s", flush=True)
                    runs.append(run)
                    partial.write_text(json.dumps({
                        "benchmark": NAME, "complete": False, "limit_bytes": limit, **code,
                        "runs": [asdict(r) for r in runs],
                    }, indent=2) + "\n")

    profile = bench_profile(limit)
    print(f"\nMemory discipline: cgroup memory limit {mib(limit)}, profile spillVolumeSize "
          f"{profile.spill_volume_size}; transform = join + GROUP BY + ORDER BY\n")
    print_table(
        ["workload", "data", "config", "outcome", "wall", "cgroup peak", "anon peak", "spilled",
         "memory_limit", "threads", "out of memory at"],
        [[r.workload, f"{r.factor:g}x ({mib(r.data_bytes)})", r.config, r.outcome,
          seconds(r.wall_seconds), f"{mib(r.kernel_peak_bytes)}",
          f"{mib(r.anon_peak_bytes)} ({r.anon_peak_fraction:.0%})", mib(r.spill_peak_bytes),
          r.duckdb_settings.get("memory_limit"), r.duckdb_settings.get("threads"),
          ", ".join(r.out_of_memory_at) or "-"]
         for r in runs],
    )
    targets = evaluate(runs)
    compared = comparison(runs)
    print()
    print_targets(targets)
    print(f"DuckDB defaults at this size: {', '.join(compared['defaults_outcomes']) or '-'}")
    write_result(NAME, {
        "parameters": {"limit_bytes": limit, "workloads": workloads, "factors": factors,
                       "catalog_factors": catalog_factors, "configs": configs,
                       "profile": {"name": PROFILE, "limits_memory": str(profile.limits.memory),
                                   "spill_volume_size": str(profile.spill_volume_size)},
                       "sample_interval_seconds": _SAMPLE_INTERVAL},
        "notes": (
            "cgroup peak is the kernel's memory.max_usage_in_bytes (v1) / memory.peak (v2): it "
            "includes page cache, which the kernel only reclaims once the charge reaches the "
            "limit, so any run that writes more than the headroom shows a peak at the limit. "
            "anon peak (rss+shmem, sampled every 10 ms) is the memory only an OOM kill can take "
            "back; the peak-memory target is judged on it. spilled is the peak allocated size of "
            "DuckDB's temp directory, sampled every 100 ms. data is the inputs' size as DuckDB "
            "holds them in memory."
        ),
        "runs": [asdict(r) | {"anon_peak_fraction": round(r.anon_peak_fraction, 3)} for r in runs],
        "targets": targets,
        "comparison": compared,
    }, path, code)
    partial.unlink(missing_ok=True)
    return all(t["pass"] for t in targets.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="512",
                        help="pod memory limits in MiB, comma-separated (one results file each)")
    parser.add_argument("--factors", default="2,4,8",
                        help="generated data sizes as multiples of the limit, comma-separated")
    parser.add_argument("--catalog-factors", default="2,4,8",
                        help="catalog input sizes as multiples of the limit, comma-separated")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--output", type=Path,
                        help="one size only; default: bench/results/memory_discipline[_SIZE].json")
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=(*WORKLOADS, DBT_RUN), help=argparse.SUPPRESS)
    parser.add_argument("--orders", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--platform-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.child:
        return child(args.child, args.workload, args.orders, args.workdir, sizes[0] << 20,
                     args.platform_file)
    if args.output is not None and len(sizes) > 1:
        parser.error("--output takes one size; without it each size gets its own file")

    code = code_under_test()
    for size in sizes:
        run_size(size, args.workloads.split(","), _floats(args.factors),
                 _floats(args.catalog_factors), args.configs.split(","), args.output, code)
    return 0


def _floats(text: str) -> list[float]:
    return [float(value) for value in text.split(",") if value]


if __name__ == "__main__":
    sys.exit(main())
