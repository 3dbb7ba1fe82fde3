"""Benchmark 2 — code-location load time of a generated 1,000-model dbt project.

The same manifest is loaded as Dagster definitions two ways, each in a fresh process
(a code server pays every import on every start, so a warm process would flatter both):

- lakeport: `lakeport.lakehouse.build_lakehouse_definitions` (lakeport's translator,
  asset checks, job, schedule, automation sensors, failure webhook);
- component: the same factory reached the way a `dg` project reaches it: a dg.toml and a
  defs folder whose defs.yaml names `lakeport.LakeportDbtComponent`, loaded with
  `lakeport.component.load_code_location` (what the demo's `definitions.py` does);
- plain: one `@dbt_assets` with dagster-dbt's default translator.

A load is what a code server does before it can answer the webserver: import, build the
Definitions, resolve the repository and serialize its snapshot (the gRPC server's reply
to the webserver). Reported: median wall time of the process, per phase, and the ratio.

    python -m bench.codelocation_load                  # 1,000 models, 5 loads each
    python -m bench.codelocation_load --models 20 --runs 1    # smoke size
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, code_under_test, finish, median, print_table, seconds
from bench.dbt_project_gen import generate
from lakeport.config import PLATFORM_FILE_ENV

NAME = "codelocation_load"
PLATFORM_FILE = REPO / "platform-config" / "local" / "platform.yaml"
CONFIGS = ("lakeport", "component", "plain")
RATIO_TARGET = 1.15
# The component builds through the factory: its load may cost YAML resolution and the defs
# folder's walk, and no more than this over the factory's.
COMPONENT_RATIO_TARGET = 1.05
ABSOLUTE_TARGET_SECONDS = 10.0


# --- the child: one load in a fresh interpreter -------------------------------------------------


def child(config: str, project_dir: Path) -> int:
    phases = {}
    started = time.perf_counter()
    import dagster as dg
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    phases["import_dagster"] = time.perf_counter() - started

    mark = time.perf_counter()
    if config == "lakeport":
        from lakeport.config import load_platform
        from lakeport.lakehouse import build_lakehouse_definitions

        phases["import_factory"] = time.perf_counter() - mark
        mark = time.perf_counter()
        defs = build_lakehouse_definitions(
            project_dir, load_platform(PLATFORM_FILE), partitions_start_date="2025-01-01"
        )
    elif config == "component":
        phases["import_factory"] = time.perf_counter() - mark
        mark = time.perf_counter()
        from lakeport.component import load_code_location

        os.environ[PLATFORM_FILE_ENV] = str(PLATFORM_FILE)
        defs = load_code_location(_dg_project(project_dir))
    else:
        from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

        phases["import_factory"] = time.perf_counter() - mark
        mark = time.perf_counter()
        project = DbtProject(project_dir=project_dir, profiles_dir=project_dir)

        @dbt_assets(manifest=project.manifest_path, project=project)
        def bench_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
            yield from dbt.cli(["build"], context=context).stream()

        defs = dg.Definitions(
            assets=[bench_models],
            resources={"dbt": DbtCliResource(
                project_dir=str(project_dir), profiles_dir=str(project_dir),
                # The dbt beside this interpreter, as lakeport finds it: PATH may lack the venv.
                dbt_executable=_dbt_beside_python(),
            )},
        )
    phases["build_definitions"] = time.perf_counter() - mark

    mark = time.perf_counter()
    repository = defs.get_repository_def()
    # What the code server sends the webserver when it asks for the repository.
    snapshot = serialize_value(RepositorySnap.from_def(repository, defer_snapshots=True))
    phases["resolve_and_snapshot"] = time.perf_counter() - mark

    graph = repository.asset_graph
    print(json.dumps({
        "phases": phases,
        "in_process_seconds": time.perf_counter() - started,
        "assets": len([k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable]),
        "asset_checks": len(list(graph.asset_check_keys)),
        "jobs": sorted(job.name for job in repository.get_all_jobs()),
        "snapshot_bytes": len(snapshot),
    }))
    return 0


def _dg_project(project_dir: Path) -> Path:
    """A dg project beside the dbt project whose defs folder holds one defs.yaml naming the
    component; its package is made importable, as an installed code location's is."""
    root = project_dir.parent / "dg_project"
    defs = root / "bench_location" / "defs" / "dbt"
    defs.mkdir(parents=True, exist_ok=True)
    (root / "dg.toml").write_text('directory_type = "project"\n\n[project]\n'
                                  'root_module = "bench_location"\n')
    for package in (root / "bench_location", root / "bench_location" / "defs"):
        (package / "__init__.py").touch()
    (defs / "defs.yaml").write_text(json.dumps({
        "type": "lakeport.LakeportDbtComponent",
        "attributes": {"project": str(project_dir), "partitions_start_date": "2025-01-01"},
    }))
    sys.path.insert(0, str(root))
    return root


def _dbt_beside_python() -> str:
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


# --- the parent ---------------------------------------------------------------------------------


def load_once(config: str, project_dir: Path) -> dict:
    argv = [sys.executable, "-m", "bench.codelocation_load", "--child", config,
            "--project", str(project_dir)]
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{config} load failed (exit {result.returncode}):\n"
                           + result.stderr[-4000:])
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return {"wall_seconds": wall, **report}


def dbt_parse(project_dir: Path) -> float:
    """`dbt parse` once, through lakeport's own manifest preparation; returns seconds."""
    from lakeport.dbt_manifest import prepare_manifest

    started = time.perf_counter()
    prepare_manifest(project_dir)
    return time.perf_counter() - started


def expected_counts(project_dir: Path) -> dict:
    manifest = json.loads((project_dir / "target" / "manifest.json").read_text())
    nodes = manifest["nodes"].values()
    return {
        "models": sum(1 for n in nodes if n["resource_type"] == "model"),
        "tests": sum(1 for n in nodes if n["resource_type"] == "test"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="loads per configuration")
    parser.add_argument("--output", type=Path, help="default: bench/results/codelocation_load.json")
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.project)

    code = code_under_test()
    workdir = Path(tempfile.mkdtemp(prefix="lakeport-bench-load-"))
    try:
        project_dir = generate(workdir / "project", args.models)
        parse_seconds = dbt_parse(project_dir)
        expected = expected_counts(project_dir)
        loads: dict[str, list[dict]] = {config: [] for config in CONFIGS}
        # Alternate them so a burst of load from elsewhere on the machine hits both.
        for run in range(args.runs):
            for config in CONFIGS:
                load = load_once(config, project_dir)
                loads[config].append(load)
                print(f"  load {run + 1}/{args.runs} {config}: {load['wall_seconds']:.2f} s",
                      flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    summary = {}
    for config, runs in loads.items():
        summary[config] = {
            "median_wall_seconds": median([r["wall_seconds"] for r in runs]),
            "median_phases": {
                phase: median([r["phases"][phase] for r in runs]) for phase in runs[0]["phases"]
            },
            "assets": runs[0]["assets"],
            "asset_checks": runs[0]["asset_checks"],
            "jobs": runs[0]["jobs"],
        }
    lakeport, plain = summary["lakeport"], summary["plain"]
    ratio = lakeport["median_wall_seconds"] / plain["median_wall_seconds"]
    component_ratio = summary["component"]["median_wall_seconds"] / lakeport["median_wall_seconds"]

    print(f"\nCode-location load: {expected['models']} dbt models, {expected['tests']} tests; "
          f"median of {args.runs} fresh-process loads (dbt parse once: {parse_seconds:.1f} s)\n")
    phase_names = list(lakeport["median_phases"])
    print_table(
        ["config", "median wall", *phase_names, "assets", "checks"],
        [[config, seconds(s["median_wall_seconds"]),
          *[seconds(s["median_phases"][p]) for p in phase_names], s["assets"], s["asset_checks"]]
         for config, s in summary.items()],
    )
    targets = {
        "ratio": {
            "target": f"lakeport / plain median load time <= {RATIO_TARGET}",
            "value": round(ratio, 3),
            "pass": ratio <= RATIO_TARGET,
        },
        "absolute": {
            "target": f"lakeport median load < {ABSOLUTE_TARGET_SECONDS:g} s",
            "value": round(lakeport["median_wall_seconds"], 3),
            "pass": lakeport["median_wall_seconds"] < ABSOLUTE_TARGET_SECONDS,
        },
        "component_ratio": {
            "target": f"component / lakeport median load time <= {COMPONENT_RATIO_TARGET}",
            "value": round(component_ratio, 3),
            "pass": component_ratio <= COMPONENT_RATIO_TARGET,
        },
        # Every load must describe the whole project, or the timing compares different work.
        "complete": {
            "target": "every load has one asset per model and one check per test",
            "value": {c: [s["assets"], s["asset_checks"]] for c, s in summary.items()},
            "pass": all(s["assets"] == expected["models"]
                        and s["asset_checks"] == expected["tests"] for s in summary.values()),
        },
    }
    print(f"\nratio lakeport/plain: {ratio:.3f}; component/lakeport: {component_ratio:.3f}")
    return finish(NAME, {
        "parameters": {"models": args.models, "runs": args.runs,
                       "platform_file": str(PLATFORM_FILE.relative_to(REPO))},
        "project": expected,
        "dbt_parse_seconds": parse_seconds,
        "summary": summary,
        "ratio": ratio,
        "component_ratio": component_ratio,
        "loads": loads,
    }, targets, args.output, code)


if __name__ == "__main__":
    sys.exit(main())
