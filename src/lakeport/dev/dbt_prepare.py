"""Preparing the code location's dbt manifests before its code server starts.

Definitions only read `target/manifest.json` (parsing on import would cost every
process seconds); the image build prepares it on Kubernetes. On one machine the
supervisor does it: every dbt project inside the code location's package whose manifest
is missing or older than its sources is parsed again with lakeport's `prepare_manifest`.
"""

import importlib.util
from pathlib import Path

from lakeport.dbt_manifest import manifest_path, prepare_manifest

_SKIP = {"target", "logs", "dbt_packages", "__pycache__"}
_SOURCES = {".sql", ".yml", ".yaml", ".csv", ".py", ".md"}


def code_location_dir(module: str) -> Path | None:
    """The directory of the module's top-level package, found without importing it."""
    spec = importlib.util.find_spec(module.split(".")[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def dbt_projects(package_dir: Path) -> list[Path]:
    return sorted(
        p.parent for p in package_dir.rglob("dbt_project.yml")
        if not _SKIP.intersection(p.relative_to(package_dir).parts[:-1])
    )


def is_stale(project: Path) -> bool:
    manifest = manifest_path(project)
    if not manifest.is_file():
        return True
    built = manifest.stat().st_mtime
    return any(
        path.stat().st_mtime > built
        for path in project.rglob("*")
        if path.suffix in _SOURCES and not _SKIP.intersection(path.relative_to(project).parts)
    )


def prepare_stale_projects(module: str) -> list[Path]:
    """Parse the projects that need it; return the ones parsed."""
    package_dir = code_location_dir(module)
    if package_dir is None:
        return []
    parsed = []
    for project in dbt_projects(package_dir):
        if is_stale(project):
            prepare_manifest(project)
            parsed.append(project)
    return parsed
