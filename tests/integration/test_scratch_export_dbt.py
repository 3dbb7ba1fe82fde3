"""Inside a real `dbt build`, lakeport's dbt-duckdb plugin copies each requested table as
dbt finishes it (lakeport.scratch_export), and dbt's process makes every copy it queued
before it exits.

This is the seam with dbt-core: the plugin adds a callback to dbt_common's event manager
when dbt-duckdb makes the plugin, and relies on dbt's CLI not replacing its callbacks
after that, and on dbt's NodeFinished events carrying the node's unique id and status. If
dbt changes either, no copy is made and these tests fail (the op would still write every
table, from the scratch after dbt, only later)."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from lakeport.scratch_export import EXPORT_ENV, ExportRequest, read_copy

TABLES = 30

PROFILES_YML = """\
copies:
  target: run
  outputs:
    run:
      type: duckdb
      path: "{{ env_var('LAKEPORT_DUCKDB_PATH') }}"
      threads: 1
      plugins:
        - module: lakeport.dbt_duckdb_plugin
"""


def _project(root: Path) -> Path:
    project = root / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: copies\nversion: '1.0.0'\nconfig-version: 2\nprofile: copies\n"
        "models:\n  copies:\n    +materialized: table\n"
    )
    (project / "profiles.yml").write_text(PROFILES_YML)
    (project / "models" / "base.sql").write_text(
        "{{ config(materialized='view') }}\nselect range as id from range(100)\n")
    for i in range(TABLES):
        (project / "models" / f"t{i:02d}.sql").write_text(
            f"select id, id * {i} as scaled, 'row ' || id as label from {{{{ ref('base') }}}}\n")
    (project / "models" / "broken.sql").write_text("select no_such_column from {{ ref('base') }}\n")
    return project


def test_dbt_copies_every_requested_table_it_built_before_it_exits(tmp_path):
    project = _project(tmp_path)
    database = tmp_path / "scratch.duckdb"
    names = [f"t{i:02d}" for i in range(TABLES)] + ["broken"]
    request = ExportRequest(
        directory=str(tmp_path / "copies"), max_cells=1_000_000,
        tables={f"model.copies.{name}": ("main", name) for name in names},
    )
    dbt = Path(sys.executable).with_name("dbt")
    result = subprocess.run(
        [str(dbt), "build", "--project-dir", str(project), "--profiles-dir", str(project)],
        cwd=project, capture_output=True, text=True,
        env={**os.environ, "LAKEPORT_DUCKDB_PATH": str(database),
             EXPORT_ENV: request.to_json()},
    )
    assert result.returncode == 1, result.stdout[-3000:]  # `broken` fails, the rest builds
    assert "PASS=31" in result.stdout and "ERROR=1" in result.stdout, result.stdout[-3000:]

    copied = sorted(p.name for p in (tmp_path / "copies").iterdir())
    assert copied == [f"model.copies.t{i:02d}.parquet" for i in range(TABLES)]
    with duckdb.connect(str(database), read_only=True) as scratch, duckdb.connect() as reader:
        for i in range(TABLES):
            built = scratch.table(f"main.t{i:02d}").to_arrow_table()
            assert read_copy(reader, request.copy_path(f"model.copies.t{i:02d}")).equals(built)


def test_without_a_request_dbt_copies_nothing(tmp_path):
    project = _project(tmp_path)
    (project / "models" / "broken.sql").unlink()
    database = tmp_path / "scratch.duckdb"
    dbt = Path(sys.executable).with_name("dbt")
    env = {**os.environ, "LAKEPORT_DUCKDB_PATH": str(database)}
    env.pop(EXPORT_ENV, None)
    result = subprocess.run(
        [str(dbt), "build", "--project-dir", str(project), "--profiles-dir", str(project)],
        cwd=project, capture_output=True, text=True, env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert not (tmp_path / "copies").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "scratch.duckdb"]
