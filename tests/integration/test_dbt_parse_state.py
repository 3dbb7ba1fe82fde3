"""dbt under lakeport's op starts from the parse the manifest was prepared with (a
partitioned run too: its day window re-parses only the model that reads it), and keeps no
log file of its own unless the run's environment asks for one.

A run pod's dbt must not parse the whole project again: `lakeport prepare-dbt` (the image
build) parses for the database path runs use, and dbt keeps that parse only while the
profile it renders is the same. Real dbt, DuckDB and Dagster; dbt's own debug log (turned
on with DBT_LOG_LEVEL_FILE) says which parse it did.
"""

import json
from datetime import date

import dagster as dg
import duckdb
import pytest

from lakeport.config import parse_platform
from lakeport.dbt_manifest import DUCKDB_PATH_ENV, prepare_manifest
from lakeport.lakehouse import build_lakehouse_definitions

FULL_PARSE = "Unable to do partial parsing"
REUSED_PARSE = "Nothing changed, skipping partial parsing"


PROFILES_YML = """\
parse_state:
  target: run
  outputs:
    run:
      type: duckdb
      path: "{{ env_var('LAKEPORT_DUCKDB_PATH', 'target/parse_state.duckdb') }}"
      threads: 1
      plugins:
        - module: lakeport.dbt_duckdb_plugin
"""


def write_project(project_dir):
    """A small lakeport dbt project: a staging view, a table over it with tests, and a
    daily-partitioned table reading its run's window."""
    (project_dir / "models" / "staging").mkdir(parents=True)
    (project_dir / "models" / "intermediate").mkdir(parents=True)
    (project_dir / "dbt_project.yml").write_text(
        "name: parse_state\nversion: '1.0.0'\nconfig-version: 2\nprofile: parse_state\n"
        "models:\n  parse_state:\n    staging: {+materialized: view}\n"
        "    intermediate: {+materialized: table}\n"
    )
    (project_dir / "profiles.yml").write_text(PROFILES_YML)
    (project_dir / "models" / "staging" / "stg_numbers.sql").write_text(
        "select i as id from range(100) t(i)\n"
    )
    (project_dir / "models" / "intermediate" / "int_even.sql").write_text(
        "select id from {{ ref('stg_numbers') }} where id % 2 = 0\n"
    )
    (project_dir / "models" / "intermediate" / "int_daily.sql").write_text(
        "select date '2025-01-01' + id::integer as day, id from {{ ref('stg_numbers') }}\n"
        "where id < 10\n"
        "  and date '2025-01-01' + id::integer"
        " >= date '{{ env_var('LAKEPORT_PARTITION_START', '1900-01-01') }}'\n"
        "  and date '2025-01-01' + id::integer"
        " < date '{{ env_var('LAKEPORT_PARTITION_END', '2999-01-01') }}'\n"
    )
    (project_dir / "models" / "intermediate" / "_intermediate.yml").write_text(
        "version: 2\nmodels:\n  - name: int_even\n"
        "    columns:\n      - name: id\n        data_tests: [not_null, unique]\n"
        "  - name: int_daily\n"
        "    config: {meta: {lakeport: {partition_column: day}}}\n"
    )
    return project_dir


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("parse-state")
    project_dir = write_project(root / "project")
    database = root / "run.duckdb"
    prepare_manifest(project_dir, duckdb_path=database)
    return project_dir, database


@pytest.fixture
def s3(s3_server, s3_env):
    s3_server.ensure_buckets("lakeport-warehouse")
    return s3_server


def run_job(project_dir, data_dir, monkeypatch, database, s3, log_level_file=None,
            partition="2025-01-03"):
    """One lakehouse_job run of a day; returns the target directories of the two dbt
    builds it started (its unpartitioned op's and its partitioned op's), and any other
    dbt invocation (there must be none: the partitioned op rebuilds the view it reads
    inside its own build)."""
    monkeypatch.setenv(DUCKDB_PATH_ENV, str(database))
    if log_level_file:
        monkeypatch.setenv("DBT_LOG_LEVEL_FILE", log_level_file)
    else:
        monkeypatch.delenv("DBT_LOG_LEVEL_FILE", raising=False)
    before = set((project_dir / "target").iterdir())
    platform = parse_platform(
        f"dev: {{dataDir: '{data_dir}'}}\ncatalog: {{type: sql}}\n"
        f"objectStorage: {{endpoint: '{s3.endpoint}', pathStyle: true}}\n"
    )
    defs = build_lakehouse_definitions(project_dir, platform, partitions_start_date="2025-01-01")
    database.unlink(missing_ok=True)
    result = defs.resolve_job_def("lakehouse_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=partition
    )
    assert result.success
    invocations = sorted(p for p in set((project_dir / "target").iterdir()) - before
                         if p.is_dir())
    builds = [p for p in invocations if p.name.split("-")[0] in ("dbt_daily_models",
                                                                 "dbt_models")]
    assert [p.name.split("-")[0] for p in builds] == ["dbt_daily_models", "dbt_models"]
    return (*builds, [p for p in invocations if p not in builds])


def test_a_run_on_the_prepared_path_reuses_the_parse(project, tmp_path, monkeypatch, s3):
    project_dir, database = project
    daily, models, others = run_job(project_dir, tmp_path, monkeypatch, database, s3,
                                    log_level_file="debug")
    log = (models / "dbt.log").read_text()
    assert REUSED_PARSE in log
    assert FULL_PARSE not in log
    # The view the partitioned op reads (built by the other op, not stored) was rebuilt in
    # the partitioned op's own build: one dbt start per op, no other invocation.
    assert others == []
    results = json.loads((daily / "run_results.json").read_text())["results"]
    statuses = {r["unique_id"]: r["status"] for r in results}
    assert statuses["model.parse_state.stg_numbers"] == "success"
    assert statuses["model.parse_state.int_daily"] == "success"
    # The partitioned run re-parsed the one file that reads the changed window ...
    daily_log = (daily / "dbt.log").read_text()
    assert FULL_PARSE not in daily_log
    assert "Partial parsing: updated file: parse_state://models/intermediate/int_daily.sql" \
        in daily_log
    # ... and built exactly its day.
    with duckdb.connect(str(database), read_only=True) as connection:
        days = connection.execute("select day from int_daily").fetchall()
    assert days == [(date(2025, 1, 3),)]


def test_a_run_on_another_path_parses_again(project, tmp_path, monkeypatch, s3):
    # What every run did before the manifest was prepared for the runs' path.
    project_dir, _database = project
    _daily, models, _others = run_job(project_dir, tmp_path, monkeypatch,
                                      tmp_path / "elsewhere.duckdb", s3, log_level_file="debug")
    log = (models / "dbt.log").read_text()
    assert f"{FULL_PARSE} because profile has changed" in log


def test_dbt_writes_no_log_file_unless_asked(project, tmp_path, monkeypatch, s3):
    project_dir, database = project
    daily, models, others = run_job(project_dir, tmp_path, monkeypatch, database, s3)
    for target in [daily, models, *others]:
        assert (target / "run_results.json").is_file()
        assert not (target / "dbt.log").exists()
