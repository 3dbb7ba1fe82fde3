"""`lakeport new-location NAME --dbt-project PATH`: a team's dbt project as a code location.

Writes a directory that is the build context of the team's image:

    NAME/
      Dockerfile               FROM the lakeport base image (the package, no demo); it
                               compiles the dbt manifest at build (`lakeport prepare-dbt`)
      dg.toml                  makes NAME a Dagster (`dg`) project rooted at <module>
      <module>/__init__.py
      <module>/defs/lakehouse/defs.yaml  a lakeport.LakeportDbtComponent for the project
      <module>/definitions.py  `defs`: the defs folder (lakeport.component.load_code_location)
      <module>/dbt_project/    a copy of the project, with the profiles.yml lakeport needs
      platform-location.yaml   the `codeLocations` entry to add to platform.yaml

The copy leaves out what dbt writes (target/, logs/, dbt_packages/) and the project's own
profiles.yml, whose warehouse connection lakeport replaces: DuckDB computes in the run,
and every table goes to the Iceberg catalog. Nothing is written when anything is wrong.
"""

import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

# What the copy leaves out: dbt's outputs, and the project's own connection settings.
SKIPPED = {"target", "logs", "dbt_packages", ".user.yml", "profiles.yml", "__pycache__"}
LOCATION_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,15}[a-z0-9])?$")
MODULE_NAME = re.compile(r"^[A-Za-z_]\w*$")
DEFAULT_BASE_IMAGE = "lakeport-base:0.1.0"


class ScaffoldError(ValueError):
    """A scaffold that cannot be written; says what is wrong and where."""


@dataclass(frozen=True)
class Scaffold:
    directory: Path
    module: str
    files: list[Path]


def new_location(
    name: str,
    dbt_project: str | Path,
    output: str | Path | None = None,
    *,
    module: str | None = None,
    image_repository: str | None = None,
    base_image: str = DEFAULT_BASE_IMAGE,
    partitions_start_date: str | None = None,
) -> Scaffold:
    """Write the code location `name` for the dbt project at `dbt_project` into `output`
    (default: ./NAME). Raises ScaffoldError, having written nothing, on bad input."""
    if not LOCATION_NAME.match(name):
        raise ScaffoldError(
            f"location name {name!r}: must be 1-17 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (it names a Kubernetes Service)"
        )
    module = module or name.replace("-", "_")
    if not MODULE_NAME.match(module) or module[0].isdigit():
        raise ScaffoldError(f"--module {module!r}: must be a Python identifier")
    project = Path(dbt_project).resolve()
    project_file = project / "dbt_project.yml"
    if not project_file.is_file():
        raise ScaffoldError(f"--dbt-project {dbt_project}: no dbt_project.yml in {project}")
    profile = _profile_name(project_file)
    start = partitions_start_date or date(date.today().year, 1, 1).isoformat()
    try:
        date.fromisoformat(start)
    except ValueError:
        raise ScaffoldError(f"--partitions-start-date {start!r}: not a YYYY-MM-DD date") from None
    target = Path(output) if output is not None else Path.cwd() / name
    if target.exists() and any(target.iterdir()):
        raise ScaffoldError(f"{target} exists and is not empty: choose another --output")

    # Written next to the target first and moved into place whole: nothing half-written.
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        package = staging / module
        shutil.copytree(project, package / "dbt_project",
                        ignore=lambda _dir, names: [n for n in names if n in SKIPPED])
        (package / "dbt_project" / "profiles.yml").write_text(_profiles_yml(profile))
        (package / "__init__.py").write_text(f'"""The code location {name}."""\n')
        (package / "definitions.py").write_text(_definitions_py(name))
        (package / "defs" / "lakehouse").mkdir(parents=True)
        (package / "defs" / "__init__.py").write_text(f'"""The defs folder of {name}."""\n')
        (package / "defs" / "lakehouse" / "defs.yaml").write_text(_defs_yaml(start))
        (staging / "dg.toml").write_text(_dg_toml(module))
        (staging / "Dockerfile").write_text(_dockerfile(name, module, base_image))
        (staging / "platform-location.yaml").write_text(
            _location_yaml(name, module, image_repository or name)
        )
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = sorted(p for p in target.rglob("*") if p.is_file())
    return Scaffold(directory=target, module=module, files=files)


def _profile_name(project_file: Path) -> str:
    try:
        config = yaml.safe_load(project_file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ScaffoldError(f"{project_file}: not valid YAML ({exc})") from None
    profile = config.get("profile") if isinstance(config, dict) else None
    if not isinstance(profile, str) or not profile:
        raise ScaffoldError(f"{project_file}: `profile` must name the project's dbt profile")
    return profile


def _profiles_yml(profile: str) -> str:
    return f"""\
# Written by `lakeport new-location`. dbt-duckdb computes in the run; lakeport's plugin
# applies the DuckDB settings derived from the run pod's limits, and every table the
# project builds is written to the platform's Iceberg catalog. LAKEPORT_DUCKDB_PATH is
# the run's own database file (on the spill volume in a run pod).
{profile}:
  target: lakehouse
  outputs:
    lakehouse:
      type: duckdb
      path: "{{{{ env_var('LAKEPORT_DUCKDB_PATH', 'target/lakehouse.duckdb') }}}}"
      threads: 1
      plugins:
        - module: lakeport.dbt_duckdb_plugin
"""


def _definitions_py(name: str) -> str:
    return f'''\
"""The code location {name} (`dagster api grpc --module-name ...`), written by
`lakeport new-location`.

A Dagster project (dg.toml beside this package): its defs folder declares the dbt project
as a lakeport.LakeportDbtComponent (defs/lakehouse/defs.yaml; `dg check defs` checks it).
Its dbt models are assets, its tests asset checks, all in `lakehouse_job` on a skipping
daily schedule; a model's `meta: {{lakeport: {{profile: large}}}}` asks for a bigger run
pod. The manifest is compiled when the image is built; nothing parses dbt on import.
"""

from pathlib import Path

from lakeport.component import load_code_location

defs = load_code_location(Path(__file__).resolve().parent)
'''


def _defs_yaml(start: str) -> str:
    return f"""\
# Written by `lakeport new-location`; yours to change (README: As a Dagster Component).
type: lakeport.LakeportDbtComponent
attributes:
  project: ../../dbt_project
  # The first day of daily-partitioned models.
  partitions_start_date: "{start}"
"""


def _dg_toml(module: str) -> str:
    return f"""\
# Written by `lakeport new-location`: this directory is a Dagster project (`dg`).
directory_type = "project"

[project]
root_module = "{module}"
"""


def _dockerfile(name: str, module: str, base_image: str) -> str:
    project = f"/app/locations/{module}/dbt_project"
    cmd = (
        f'CMD ["dagster", "api", "grpc", "--module-name", "{module}.definitions", '
        '"--host", "0.0.0.0", "--port", "4000"]'
    )
    return f"""\
# The code location {name}, written by `lakeport new-location`; yours to change.
#
#   docker build -t {name}:0.1.0 .
#
# FROM the lakeport base image: the lakeport package with Dagster, dbt-duckdb and their
# pinned dependencies, user 10001, no demo (`make images` builds it as lakeport-base).
ARG LAKEPORT_BASE_IMAGE={base_image}
FROM ${{LAKEPORT_BASE_IMAGE}}

USER 0
COPY dg.toml /app/locations/dg.toml
COPY {module} /app/locations/{module}
# The dbt manifest is compiled here, so no pod parses dbt at start-up; dbt writes each
# run's artifacts to target/ and logs/, which the run's user owns.
RUN lakeport prepare-dbt {project} \\
    && mkdir -p {project}/logs \\
    && chown -R 10001:10001 {project}/target {project}/logs
ENV PYTHONPATH=/app/locations
USER 10001:10001

EXPOSE 4000
{cmd}
"""


def _location_yaml(name: str, module: str, repository: str) -> str:
    return f"""\
# Add this entry to `codeLocations` in your platform.yaml (`lakeport validate` checks it),
# then `helm upgrade`. Push the image first; a digest (image.digest) pins exactly it.
codeLocations:
  - name: {name}
    image: {{repository: {repository}, tag: 0.1.0}}
    module: {module}.definitions
    # Plain settings here; secrets only by reference:
    # secretEnv: [{{name: MY_API_TOKEN, secretName: {name}-secrets, key: token}}]
    env: {{}}
    # The resource profiles its runs may use (empty: all of them).
    profiles: []
"""
