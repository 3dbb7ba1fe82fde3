"""Benchmark 4 — one mart in an empty scratch, its upstream read from the Iceberg catalog,
against the same mart built with its upstream already in the local DuckDB file.

The demo lakehouse is materialised once into a SQL catalog on a real S3 endpoint (moto's
server); then `marts/mart_customer_revenue` (a join of a view and a table, aggregated) is
built alone, two ways, alternated, each timed from the first statement to the written
Iceberg snapshot:

- catalog: what a lakeport run pod does. A new, empty scratch database; the upstream table
  and source become views over their Iceberg snapshots (lakeport.run_scratch), then one
  `dbt build` of the mart and its tests that also rebuilds the view the mart reads through
  (its own tests left out), then the mart written through the catalog.
- local: what lakeport did before the catalog was the control plane, when a run only
  worked if it found its upstream in the same DuckDB file: the upstream already there as
  DuckDB tables (copied in outside the timing), `dbt build` of the mart and its tests,
  then the mart written through the catalog.

Both use the DuckDB settings lakeport derives and the same prepared dbt parse.

    python -m bench.single_mart_run                          # 1,000,000 orders, 3 runs each
    python -m bench.single_mart_run --raw-rows 5000 --runs 1   # smoke size
"""

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import code_under_test, finish, local_s3, median, print_table, seconds

NAME = "single_mart_run"
MART = "model.lakeport_demo.mart_customer_revenue"
WAREHOUSE_BUCKET = "bench-warehouse"
RATIO_TARGET = 2.0


def _dbt(command: list[str], project: Path, env: dict) -> None:
    from lakeport.dbt_manifest import dbt_executable

    argv = [dbt_executable(), *command, "--project-dir", str(project),
            "--profiles-dir", str(project), "--no-send-anonymous-usage-stats"]
    result = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dbt {' '.join(command)} failed:\n{result.stdout[-4000:]}")


def _env(database: Path, settings, access) -> dict:
    from lakeport.duckdb_connection import SETTINGS_ENV
    from lakeport.duckdb_s3 import S3_ACCESS_ENV

    env = dict(os.environ, LAKEPORT_DUCKDB_PATH=str(database),
               **{SETTINGS_ENV: settings.to_json(), S3_ACCESS_ENV: access.to_json()})
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    for key in ("DBT_TARGET_PATH", "DBT_LOG_PATH"):
        env.pop(key, None)
    return env


def _publish_mart(connection, catalog, relation):
    from lakeport.iceberg_publish import publish, query_rows

    return publish(catalog, relation.identifier,
                   query_rows(connection, f"select * from {relation.sql}"))


def run_side(side: str, project: Path, database: Path, platform, manifest, settings,
             catalog, local_copy: Path | None) -> dict:
    from lakeport.duckdb_connection import connect
    from lakeport.duckdb_s3 import configure_s3, s3_access
    from lakeport.run_scratch import (
        fill_scratch,
        plan_scratch,
        relation_of,
        selectors,
        tests_to_leave_out,
    )

    access = s3_access(platform)
    env = _env(database, settings, access)
    database.unlink(missing_ok=True)
    if side == "local":
        shutil.copyfile(local_copy, database)
    mart = relation_of(manifest["nodes"][MART])
    started = time.perf_counter()
    plan = plan_scratch(manifest, [MART], partitioned=["fct_orders"])
    select = ["--select", "mart_customer_revenue"]
    if side == "catalog":
        with contextlib.closing(connect(settings, database)) as connection:
            configure_s3(connection, access)
            fill_scratch(connection, catalog, plan)
        # As the op does it (lakeport.dbt_assets._view_rebuild_args).
        views = selectors(manifest, plan.views_to_build)
        tests = selectors(manifest, tests_to_leave_out(manifest, [MART], plan.views_to_build))
        select = ["--select", " ".join(["mart_customer_revenue", *views])]
        if tests:
            select += ["--exclude", " ".join(tests)]
    _dbt(["build", *select], project, env)
    with contextlib.closing(connect(settings, database)) as connection:
        configure_s3(connection, access)
        result = _publish_mart(connection, catalog, mart)
    wall = time.perf_counter() - started
    return {"side": side, "wall_seconds": wall, "mart_rows": result.row_count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw-rows", type=int, default=1_000_000, help="demo orders")
    parser.add_argument("--runs", type=int, default=3, help="runs per side")
    parser.add_argument("--output", type=Path, help="default: bench/results/single_mart_run.json")
    args = parser.parse_args(argv)

    import dagster as dg

    from lakeport.catalog import load_catalog
    from lakeport.config import parse_platform
    from lakeport.dbt_manifest import load_manifest, prepare_manifest
    from lakeport.duckdb_connection import connect
    from lakeport.duckdb_s3 import configure_s3, s3_access
    from lakeport.duckdb_settings import derive_duckdb_settings
    from lakeport.run_scratch import fill_scratch, plan_scratch, selectors
    from lakeport_demo.build import DBT_PROJECT_DIR, build_demo_definitions

    code = code_under_test()
    workdir = Path(tempfile.mkdtemp(prefix="lakeport-bench-mart-"))
    runs = []
    try:
        # The demo's size reaches its assets through the environment, set for this
        # benchmark only, as the S3 keys are.
        with local_s3(WAREHOUSE_BUCKET, LAKEPORT_DEMO_RAW_ROWS=str(args.raw_rows)) as s3:
            project = workdir / "dbt_project"
            shutil.copytree(DBT_PROJECT_DIR, project,
                            ignore=shutil.ignore_patterns("target", "logs", "*.duckdb"))
            database = workdir / "scratch" / "lakehouse.duckdb"
            database.parent.mkdir()
            prepare_manifest(project, duckdb_path=database)
            manifest = load_manifest(project)
            platform = parse_platform(
                f"dev: {{dataDir: '{workdir / 'data'}'}}\n"
                f"catalog: {{type: sql, warehouse: 's3://{WAREHOUSE_BUCKET}/'}}\n"
                f"objectStorage: {{endpoint: '{s3.endpoint}', pathStyle: true}}\n")
            print(f"filling the catalog: the demo at {args.raw_rows} orders ...", flush=True)
            os.environ["LAKEPORT_DUCKDB_PATH"] = str(database)
            defs = build_demo_definitions(platform, project_dir=project)
            job = defs.resolve_job_def("lakehouse_job")
            partition = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
            assert job.execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                          partition_key=partition).success
            catalog = load_catalog(platform)
            settings = derive_duckdb_settings(platform.profile(), spill_dir=workdir / "spill")

            # The local side's file: the mart's upstream as DuckDB tables, made once.
            # Named like the scratch file: dbt's views name their database (the file's stem).
            local_copy = workdir / "local" / database.name
            plan = plan_scratch(manifest, [MART], partitioned=["fct_orders"])
            with contextlib.closing(connect(settings, local_copy)) as connection:
                configure_s3(connection, platform)
                fill_scratch(connection, catalog, plan)
                for relation in plan.from_catalog.values():
                    copy = f'"{relation.schema}"."{relation.name}__copy"'
                    connection.execute(f"create table {copy} as select * from {relation.sql}")
                    connection.execute(f"drop view {relation.sql}")
                    connection.execute(f'alter table {copy} rename to "{relation.name}"')
            _dbt(["run", "--select", " ".join(selectors(manifest, plan.views_to_build))], project,
                 _env(local_copy, settings, s3_access(platform)))

            for run in range(args.runs):
                for side in ("catalog", "local"):
                    runs.append(run_side(side, project, database, platform, manifest, settings,
                                         catalog, local_copy))
                print(f"  run {run + 1}/{args.runs}: catalog {runs[-2]['wall_seconds']:.2f} s, "
                      f"local {runs[-1]['wall_seconds']:.2f} s", flush=True)
    finally:
        if not os.environ.get("LAKEPORT_BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)

    catalog_median = median([r["wall_seconds"] for r in runs if r["side"] == "catalog"])
    local_median = median([r["wall_seconds"] for r in runs if r["side"] == "local"])
    ratio = catalog_median / local_median
    rows = {r["mart_rows"] for r in runs}
    print(f"\nOne mart ({MART.split('.')[-1]}) over the demo at {args.raw_rows} orders, "
          f"median of {args.runs} runs each\n")
    print_table(["side", "median wall", "mart rows"],
                [["catalog (empty scratch)", seconds(catalog_median), runs[0]["mart_rows"]],
                 ["local upstream", seconds(local_median), runs[1]["mart_rows"]]])
    targets = {
        "ratio": {"target": f"catalog / local median wall time <= {RATIO_TARGET}",
                  "value": round(ratio, 3), "pass": ratio <= RATIO_TARGET},
        "same_result": {"target": "both sides wrote the same number of mart rows",
                        "value": sorted(rows), "pass": len(rows) == 1},
    }
    print(f"\nratio catalog/local: {ratio:.3f}")
    return finish(NAME, {
        "parameters": {"raw_rows": args.raw_rows, "runs": args.runs},
        "summary": {"catalog_median_seconds": catalog_median,
                    "local_median_seconds": local_median, "ratio": ratio},
        "runs": runs,
    }, targets, args.output, code)


if __name__ == "__main__":
    sys.exit(main())
