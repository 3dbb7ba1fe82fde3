"""The dbt manifest: prepared at build/test time, only read when definitions load.

Parsing a dbt project takes seconds and needs dbt's whole toolchain; a code server or run
pod that parsed on import would pay that on every start. The image build and the tests
call `prepare_manifest` (CLI: `lakeport prepare-dbt <project dir>`); loading definitions
only reads `target/manifest.json` and says how to make it when it is missing.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson

from lakeport.profiles import SPILL_MOUNT_PATH

MANIFEST = Path("target") / "manifest.json"
# Where dbt-duckdb keeps a run's database: a lakeport dbt project's profiles.yml reads
# this variable for its `path`.
DUCKDB_PATH_ENV = "LAKEPORT_DUCKDB_PATH"
# That database in a run pod, on its spill volume: what the image build parses for.
RUN_POD_DUCKDB_PATH = f"{SPILL_MOUNT_PATH}/lakehouse.duckdb"


class ManifestMissingError(RuntimeError):
    pass


class ManifestCycleError(RuntimeError):
    """`dbt parse` accepts models that depend on each other in a circle (only `dbt build`
    refuses them); definitions built from such a manifest would recurse without end."""


def manifest_path(project_dir: str | Path) -> Path:
    return Path(project_dir) / MANIFEST


def manifest_is_current(project_dir: str | Path) -> bool:
    """True when target/manifest.json is newer than every file dbt parses."""
    project_dir = Path(project_dir)
    manifest = manifest_path(project_dir)
    if not manifest.is_file():
        return False
    sources = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in ("models", "macros", "tests", "seeds", "snapshots", "analyses"):
        sources += [p for p in (project_dir / folder).rglob("*") if p.is_file()]
    newest = max((p.stat().st_mtime for p in sources if p.exists()), default=0)
    return manifest.stat().st_mtime >= newest


def prepare_manifest(
    project_dir: str | Path,
    *,
    if_stale: bool = False,
    duckdb_path: str | Path = RUN_POD_DUCKDB_PATH,
) -> Path:
    """Run `dbt parse` on the project (its own profiles.yml); return the manifest's path.
    With `if_stale`, an up-to-date manifest is kept as it is.

    The parse is made for runs whose database is `duckdb_path`. dbt saves its parse state
    (target/partial_parse.msgpack, which dagster-dbt hands to every dbt it starts) with a
    hash of the rendered profile, and the profile names the database file: a run whose
    path differs re-parses the whole project first (3 s of a 200-model build here).
    """
    project_dir = Path(project_dir).resolve()
    if not (project_dir / "dbt_project.yml").is_file():
        raise FileNotFoundError(f"{project_dir} has no dbt_project.yml")
    if if_stale and manifest_is_current(project_dir):
        return manifest_path(project_dir)
    command = [
        dbt_executable(), "parse", "--project-dir", str(project_dir),
        "--profiles-dir", str(project_dir), "--target-path", "target",
        "--no-send-anonymous-usage-stats", "--log-path", str(project_dir / "logs"),
    ]
    # A stray DBT_TARGET_PATH (dagster-dbt sets one per invocation) would move the manifest.
    env = {k: v for k, v in os.environ.items() if k not in ("DBT_TARGET_PATH", "DBT_LOG_PATH")}
    env[DUCKDB_PATH_ENV] = str(duckdb_path)
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=project_dir)
    path = manifest_path(project_dir)
    if result.returncode != 0 or not path.is_file():
        raise RuntimeError(
            f"dbt parse failed for {project_dir} (exit {result.returncode}):\n"
            + (result.stdout[-4000:] + result.stderr[-4000:])
        )
    try:
        check_no_cycle(json.loads(path.read_text()), path)
    except ManifestCycleError:
        # No manifest a code location could load and then choke on.
        path.unlink()
        raise
    return path


def check_no_cycle(manifest: dict, path: Path) -> None:
    """Raise ManifestCycleError naming the models of the first dependency cycle found."""
    parents = manifest.get("parent_map") or {}
    done: set[str] = set()
    for start in sorted(parents):
        if start in done:
            continue
        # Iterative depth-first walk; `trail` is the current path from `start`.
        trail, on_trail = [start], {start}
        pending = [iter(sorted(parents.get(start, [])))]
        while pending:
            parent = next(pending[-1], None)
            if parent is None:
                pending.pop()
                finished = trail.pop()
                on_trail.discard(finished)
                done.add(finished)
            elif parent in on_trail:
                cycle = trail[trail.index(parent):] + [parent]
                names = " -> ".join(node.split(".")[-1] for node in reversed(cycle))
                raise ManifestCycleError(
                    f"{path}: the dbt project has a dependency cycle: {names} "
                    f"({', '.join(reversed(cycle[:-1]))}); break it by removing one of "
                    "these ref()s"
                )
            elif parent not in done:
                trail.append(parent)
                on_trail.add(parent)
                pending.append(iter(sorted(parents.get(parent, []))))


def load_manifest(project_dir: str | Path) -> dict:
    path = manifest_path(project_dir)
    if not path.is_file():
        raise ManifestMissingError(
            f"{path} does not exist: prepare the dbt manifest first with "
            f"`lakeport prepare-dbt {project_dir}` (the image build does this)"
        )
    manifest = orjson.loads(path.read_bytes())
    check_no_cycle(manifest, path)
    return manifest


def dbt_executable() -> str:
    beside_python = Path(sys.executable).with_name("dbt")
    return str(beside_python) if beside_python.exists() else (shutil.which("dbt") or "dbt")
