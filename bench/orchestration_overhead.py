"""Benchmark 3 — orchestration overhead: a generated 200-model project through lakeport vs
a bare `dbt build`.

Both sides build the same models and run the same tests into a fresh DuckDB file, each in
its own process, timed from start to exit:

- lakeport: the process a run worker is — import, load the code location through
  `lakeport.lakehouse.build_lakehouse_definitions`, and execute its `lakehouse_job` on a
  DagsterInstance whose run and event storage is a real PostgreSQL server (started once,
  outside the timing; fsync on, as the chart deploys it). dbt runs under lakeport's op,
  with the DuckDB settings it derives and an event per model and test stored in Postgres.
- bare: `dbt build --target bare` (dbt-duckdb without lakeport's plugin).

lakeport writes every table to the Iceberg catalog (pyiceberg's SQL catalog on a real S3
endpoint, moto's server, started once outside the timing), because that is where a
lakeport run keeps its results: the figure includes that write, where bare dbt leaves its
tables in a local DuckDB file that dies with a pod.

With `--catalog existing` the tables exist already (an untimed first run made them), so
every timed run replaces them, as a scheduled run does day after day.

    python -m bench.orchestration_overhead                 # 200 models, 3 runs each
    python -m bench.orchestration_overhead --catalog existing --runs 5
    python -m bench.orchestration_overhead --models 12 --runs 1   # smoke size
"""

import argparse
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from bench.common import REPO, code_under_test, finish, median, print_table, seconds
from bench.dbt_project_gen import generate

NAME = "orchestration_overhead"
WAREHOUSE_BUCKET = "bench-warehouse"
RATIO_TARGET = 1.5
PARTITION = "2025-01-01"
PASSWORD_ENV = "LAKEPORT_BENCH_PG_PASSWORD"
BARE_TARGET_PATH = "target-bare"


# --- the lakeport child: one run worker ---------------------------------------------------------


def child(project_dir: Path, data_dir: Path, s3_endpoint: str) -> int:
    started = time.perf_counter()
    import dagster as dg

    from lakeport.config import parse_platform
    from lakeport.lakehouse import build_lakehouse_definitions

    # The chart's defaults, with this run's data directory (spill, scratch) and a SQL
    # catalog of its own on the benchmark's S3 endpoint.
    platform = parse_platform(yaml.safe_dump({
        "dev": {"dataDir": str(data_dir)},
        "catalog": {"type": "sql", "warehouse": f"s3://{WAREHOUSE_BUCKET}/{data_dir.name}/"},
        "objectStorage": {"endpoint": s3_endpoint, "region": "us-east-1", "pathStyle": True},
    }))
    defs = build_lakehouse_definitions(project_dir, platform, partitions_start_date=PARTITION)
    job = defs.resolve_job_def("lakehouse_job")
    loaded = time.perf_counter() - started

    mark, mark_epoch = time.perf_counter(), time.time()
    with dg.DagsterInstance.get() as instance:
        storage = type(instance.run_storage).__name__
        result = job.execute_in_process(instance=instance,
                                        raise_on_error=False)
        executed = time.perf_counter() - mark
        phases = run_phases(instance.all_logs(result.run_id), mark_epoch, executed)
        materializations = [
            e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"
        ]
        checks = [
            e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        logs = instance.all_logs(result.run_id)
        # What the run stored, by kind: each is at least one INSERT and a NOTIFY.
        stored_by_kind = Counter(
            record.dagster_event.event_type_value if record.is_dagster_event
            else "log message" for record in logs
        )
    print(json.dumps({
        "success": result.success,
        "run_storage": storage,
        "load_seconds": loaded,
        "execute_seconds": executed,
        "materializations": len(materializations),
        "checks_passed": sum(1 for e in checks if e.event_specific_data.passed),
        "events_stored": len(logs),
        "events_stored_by_kind": dict(stored_by_kind.most_common()),
        "phases": phases,
        "cpu_seconds": {"run_worker": cpu_seconds(resource.RUSAGE_SELF),
                        "dbt": cpu_seconds(resource.RUSAGE_CHILDREN)},
    }))
    return 0 if result.success else 1


def cpu_seconds(who: int) -> float:
    """User and system CPU of this process (RUSAGE_SELF) or of the children it has waited
    for (RUSAGE_CHILDREN: in the run worker, dbt's process)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_phases(records, started_epoch: float, executed: float) -> dict[str, float]:
    """Where the run's time went, from its own event log: before the dbt op's step started
    (creating the run, its planned events, the executor), the op's phases as it logs them
    (lakeport.dbt_assets.PHASES_MESSAGE), and what is left (the op's own Python, the
    events it yields after the write, the run's end)."""
    from lakeport.dbt_assets import PHASES_MESSAGE

    step_starts = [r.timestamp for r in records
                   if r.dagster_event and r.dagster_event.event_type_value == "STEP_START"]
    [logged] = [r.user_message for r in records if r.user_message.startswith(PHASES_MESSAGE)]
    op = json.loads(logged[len(PHASES_MESSAGE):])
    phases = {"before_step": min(step_starts) - started_epoch}
    phases.update({name: op[name] for name in ("scratch", "dbt", "lineage", "publish")
                   if name in op})
    phases["rest"] = executed - sum(phases.values())
    phases["tables_written"] = op["tables_written"]
    return phases


# --- the parent ---------------------------------------------------------------------------------


def dagster_home(root: Path, server) -> Path:
    """A DAGSTER_HOME whose dagster.yaml puts run/event/schedule storage in Postgres."""
    from lakeport.postgres_storage import instance_storage_config, postgres_db_config

    root.mkdir(parents=True, exist_ok=True)
    config = {
        # lakeport's storage classes, as the chart's and `lakeport dev`'s dagster.yaml name them.
        **instance_storage_config(postgres_db_config(
            username=server.user, password={"env": PASSWORD_ENV}, hostname=server.host,
            port=server.port, db_name="dagster",
        )),
        "telemetry": {"enabled": False},
    }
    (root / "dagster.yaml").write_text(yaml.safe_dump(config))
    return root


def bare_dbt(command: str, project_dir: Path, database: Path) -> tuple[float, float]:
    """`dbt <command>` on the bare target; returns its wall time and CPU seconds."""
    from lakeport.dbt_manifest import dbt_executable

    env = _env(LAKEPORT_DUCKDB_PATH=str(database))
    # Its own target path: switching targets in one target dir would throw away the other
    # side's partial-parse state, and both sides would pay a full parse on every run.
    argv = [dbt_executable(), command, "--target", "bare", "--target-path", BARE_TARGET_PATH,
            "--project-dir", str(project_dir), "--profiles-dir", str(project_dir),
            "--no-send-anonymous-usage-stats"]
    started, cpu_before = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
    result = subprocess.run(argv, cwd=project_dir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"bare dbt {command} failed:\n"
                           f"{result.stdout[-4000:]}{result.stderr[-2000:]}")
    return wall, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_before


def run_bare(project_dir: Path, database: Path) -> dict:
    wall, cpu = bare_dbt("build", project_dir, database)
    run_results = json.loads((project_dir / BARE_TARGET_PATH / "run_results.json").read_text())
    statuses = [r["status"] for r in run_results["results"]]
    return {"wall_seconds": wall, "cpu_seconds": {"dbt": cpu}, "nodes": len(statuses),
            "nodes_ok": sum(1 for s in statuses if s in ("success", "pass"))}


def run_lakeport(project_dir: Path, database: Path, data_dir: Path, home: Path,
                 password: str, s3, profile: Path | None = None) -> dict:
    from lakeport.dev.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY

    env = _env(LAKEPORT_DUCKDB_PATH=str(database), DAGSTER_HOME=str(home),
               AWS_ACCESS_KEY_ID=LOCAL_ACCESS_KEY_ID,
               AWS_SECRET_ACCESS_KEY=LOCAL_SECRET_ACCESS_KEY,
               **{PASSWORD_ENV: password})
    argv = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else []),
            "-m", "bench.orchestration_overhead", "--child",
            "--project", str(project_dir), "--data-dir", str(data_dir),
            "--s3-endpoint", s3.endpoint]
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if os.environ.get("LAKEPORT_BENCH_KEEP"):
        (data_dir.parent / f"{data_dir.name}.log").write_text(result.stderr)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"lakeport run failed (exit {result.returncode}):\n"
                           f"{result.stdout[-3000:]}{result.stderr[-4000:]}")
    return {"wall_seconds": wall, **json.loads(lines[-1])}


def _env(**values: str) -> dict:
    env = dict(os.environ, **values)
    # The dbt subprocess must find this venv's dbt and the repo's bench/lakeport packages.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    # dagster-dbt sets these per invocation; a stray one would move dbt's target.
    for key in ("DBT_TARGET_PATH", "DBT_LOG_PATH", "LAKEPORT_DUCKDB_SETTINGS"):
        env.pop(key, None)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3, help="runs per side")
    parser.add_argument("--raw-rows", type=int, default=1000, help="rows per raw model")
    parser.add_argument("--postgres-fsync", choices=("on", "off"), default="on",
                        help="off shows how much of the overhead is Postgres' commits")
    parser.add_argument("--output", type=Path,
                        help="default: bench/results/orchestration_overhead.json")
    parser.add_argument("--catalog", choices=("fresh", "existing"), default="fresh",
                        help="fresh: each lakeport run creates its tables in an empty catalog; "
                        "existing: an untimed first run creates them, and every timed run "
                        "replaces them, as a scheduled run does day after day")
    parser.add_argument("--profile-dir", type=Path,
                        help="write a cProfile of each lakeport run here (run-N.prof; read "
                        "with python -m pstats); profiling slows the runs, so not for figures")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--s3-endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.project, args.data_dir, args.s3_endpoint)

    from lakeport.dbt_manifest import prepare_manifest
    from lakeport.dev.ports import free_port
    from lakeport.dev.postgres import PostgresServer
    from lakeport.dev.s3 import S3Server

    code = code_under_test()
    workdir = Path(tempfile.mkdtemp(prefix="lakeport-bench-orch-"))
    # Not below a private temp dir: the server runs as `postgres` when we are root.
    pg_dir = Path(tempfile.mkdtemp(prefix="lakeport-pg-"))
    password = secrets.token_urlsafe(16)
    server = PostgresServer(data_dir=pg_dir, port=free_port(), password=password,
                            durable=args.postgres_fsync == "on")
    s3 = S3Server(port=free_port())
    bare, lakeport = [], []
    try:
        s3.start()
        s3.ensure_buckets(WAREHOUSE_BUCKET)
        project_dir = generate(workdir / "project", args.models, raw_rows=args.raw_rows)
        # Both sides start with dbt's parse state warm, as a user's second run would:
        # lakeport's from preparing the manifest for its runs' database (as the image
        # build does for a run pod's), bare's from a parse for its own. Each side builds
        # into the same file every run (removed first), as a pod's spill volume or a
        # user's profile would: dbt re-parses everything when that path changes.
        bare_database, lakeport_database = workdir / "bare.duckdb", workdir / "lakeport.duckdb"
        prepare_manifest(project_dir, duckdb_path=lakeport_database)
        bare_dbt("parse", project_dir, bare_database)
        server.start()
        server.ensure_database("dagster")
        home = dagster_home(workdir / "dagster_home", server)
        # With an existing catalog every run writes into the one the first run made.
        shared_data_dir = workdir / "data-shared" if args.catalog == "existing" else None
        if shared_data_dir:
            lakeport_database.unlink(missing_ok=True)
            run_lakeport(project_dir, lakeport_database, shared_data_dir, home, password, s3)
        for run in range(args.runs):
            # Alternated, so noise from elsewhere on the machine lands on both sides.
            bare_database.unlink(missing_ok=True)
            bare.append(run_bare(project_dir, bare_database))
            lakeport_database.unlink(missing_ok=True)
            profile = None
            if args.profile_dir:
                args.profile_dir.mkdir(parents=True, exist_ok=True)
                profile = args.profile_dir / f"run-{run + 1}.prof"
            data_dir = shared_data_dir or workdir / f"data-{run}"
            lakeport.append(run_lakeport(project_dir, lakeport_database, data_dir, home,
                                         password, s3, profile))
            print(f"  run {run + 1}/{args.runs}: bare {bare[-1]['wall_seconds']:.2f} s, "
                  f"lakeport {lakeport[-1]['wall_seconds']:.2f} s", flush=True)
    finally:
        server.stop()
        s3.stop()
        shutil.rmtree(pg_dir, ignore_errors=True)
        if not os.environ.get("LAKEPORT_BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)

    bare_median = median([r["wall_seconds"] for r in bare])
    lakeport_median = median([r["wall_seconds"] for r in lakeport])
    ratio = lakeport_median / bare_median
    nodes = bare[0]["nodes"]
    print(f"\nOrchestration overhead: {args.models} models ({nodes} dbt nodes with tests), "
          f"median of {args.runs} runs each; lakeport on a Postgres-backed DagsterInstance\n")
    print_table(
        ["side", "median wall", "of which load", "of which execute", "nodes ok"],
        [["bare dbt build", seconds(bare_median), "-", "-", bare[0]["nodes_ok"]],
         ["lakeport", seconds(lakeport_median),
          seconds(median([r["load_seconds"] for r in lakeport])),
          seconds(median([r["execute_seconds"] for r in lakeport])),
          lakeport[0]["materializations"] + lakeport[0]["checks_passed"]]],
    )
    phase_medians = {
        name: median([r["phases"][name] for r in lakeport])
        for name in lakeport[0]["phases"] if name != "tables_written"
    }
    print("\nlakeport's execute, by phase (medians; dbt includes Dagster storing its events "
          f"as they come; publish wrote {lakeport[0]['phases']['tables_written']} tables):")
    print_table(["phase", "median"], [[name, seconds(value)]
                                      for name, value in phase_medians.items()])
    complete = all(
        r["success"] and r["materializations"] + r["checks_passed"] == nodes for r in lakeport
    ) and all(r["nodes_ok"] == r["nodes"] for r in bare)
    targets = {
        "ratio": {
            "target": f"lakeport / bare dbt build median wall time <= {RATIO_TARGET}",
            "value": round(ratio, 3),
            "pass": ratio <= RATIO_TARGET,
        },
        # The timing only compares like with like if both did all the work.
        "complete": {
            "target": "every model built and every test passed on both sides",
            "value": {"bare_nodes_ok": [r["nodes_ok"] for r in bare],
                      "lakeport_materializations_plus_checks": [
                          r["materializations"] + r["checks_passed"] for r in lakeport],
                      "dbt_nodes": nodes},
            "pass": complete,
        },
    }
    print(f"\nratio lakeport/bare: {ratio:.3f}")
    return finish(NAME, {
        "parameters": {"models": args.models, "runs": args.runs, "raw_rows": args.raw_rows,
                       "postgres_fsync": args.postgres_fsync == "on", "iceberg_publishing": True,
                       "catalog": args.catalog},
        "summary": {"bare_median_seconds": bare_median,
                    "lakeport_median_seconds": lakeport_median, "ratio": ratio,
                    "lakeport_phase_medians_seconds": phase_medians},
        "bare": bare,
        "lakeport": lakeport,
    }, targets, args.output, code)


if __name__ == "__main__":
    sys.exit(main())
