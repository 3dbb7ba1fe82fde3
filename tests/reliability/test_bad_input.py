"""Bad input at every door: a clear error naming what and where, a non-zero exit or a
failed run, and nothing half-written to the Iceberg catalog.

The catalogue of malformed platform.yaml files is tests/support/platform_files.py
(BAD_FILES, through `lakeport validate` in tests/unit/test_platform_validation.py); here the
same mistakes reach the other doors that read the file: `lakeport dev` and a code
location's process.
"""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest
from support.demo import WAREHOUSE_BUCKET, copy_project, demo_platform, postgres_instance, prepare
from support.dev_platform import LAKEPORT, make_data_dir
from support.platform_files import BAD_FILES, write_over_kind

from lakeport.catalog import load_catalog
from lakeport.config import PLATFORM_FILE_ENV, parse_platform
from lakeport.credentials import CATALOG_CREDENTIAL_ENV
from lakeport.dbt_manifest import ManifestCycleError, ManifestMissingError
from lakeport.lakehouse import build_lakehouse_definitions
from lakeport_demo.bronze import BRONZE_ASSETS
from lakeport_demo.build import PARTITIONS_START_DATE, build_demo_definitions

# --- platform.yaml -----------------------------------------------------------------------

# A few of the catalogue's mistakes, each of another kind: spelling, cross-field, type.
DEV_CASES = [c for c in BAD_FILES if c[0] in
             ("typo in nested key", "limit below request", "wrong type")]


@pytest.mark.parametrize("overlay,field,text", [c[1:] for c in DEV_CASES],
                         ids=[c[0] for c in DEV_CASES])
def test_lakeport_dev_refuses_a_bad_file_before_starting_anything(tmp_path, overlay, field,
                                                                   text):
    path = write_over_kind(tmp_path, overlay)
    data_dir = make_data_dir()
    result = subprocess.run([str(LAKEPORT), "dev", str(path), "--data-dir", str(data_dir)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    problems = [line for line in result.stderr.splitlines() if f": {field}: " in line]
    assert problems and all(f"{path}:" in line for line in problems), result.stderr
    assert any(text in line for line in problems), result.stderr
    assert not (data_dir / "postgres").exists() and not (data_dir / "logs").exists()


def test_lakeport_dev_names_the_line_of_broken_yaml(tmp_path):
    path = tmp_path / "platform.yaml"
    path.write_text("dagster:\n  webserver:\n    port: [3000\n")
    result = subprocess.run([str(LAKEPORT), "dev", str(path), "--data-dir", str(make_data_dir())],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"{path}:" in result.stderr and "not valid YAML" in result.stderr, result.stderr


def test_a_code_location_given_a_bad_file_exits_naming_the_field(tmp_path):
    path = tmp_path / "platform.yaml"
    path.write_text("dagster:\n  webserver:\n    prot: 3000\n")
    env = {**os.environ, PLATFORM_FILE_ENV: str(path)}
    result = subprocess.run([sys.executable, "-c", "import lakeport_demo.definitions"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert f"{path}:3: dagster.webserver.prot: unknown key" in result.stderr, result.stderr[-2000:]


# --- the dbt project ------------------------------------------------------------------------

BROKEN_PROJECTS = {
    # model file -> (new text, what the error must say)
    "jinja syntax error": ("models/staging/stg_orders.sql",
                           "select * from {{ ref('raw_orders') \n",
                           ["stg_orders", "models/staging/stg_orders.sql"]),
    "missing ref": ("models/intermediate/int_orders_enriched.sql",
                    "select * from {{ ref('stg_order') }}\n",
                    ["int_orders_enriched", "stg_order"]),
    # dbt parse itself accepts a cycle; lakeport checks the manifest it wrote.
    "cycle": ("models/staging/stg_customers.sql",
              "select * from {{ ref('dim_customers') }}\n",
              ["has a dependency cycle",
               "dim_customers -> stg_customers -> dim_customers"]),
}


@pytest.mark.parametrize("case", list(BROKEN_PROJECTS))
def test_a_broken_dbt_project_is_refused_when_its_manifest_is_prepared(tmp_path, case):
    model, text, expected = BROKEN_PROJECTS[case]
    project = copy_project(tmp_path / "dbt_project")
    (project / model).write_text(text)
    result = subprocess.run([str(LAKEPORT), "prepare-dbt", str(project)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("lakeport prepare-dbt: ") and str(project) in result.stderr
    for words in expected:
        assert words in result.stderr, (words, result.stderr[-3000:])
    # No manifest a code location could load half of.
    assert not (project / "target" / "manifest.json").exists()


def test_a_cyclic_manifest_made_elsewhere_is_refused_when_definitions_load(tmp_path):
    """A manifest from plain `dbt parse` (not lakeport's prepare) reaches load_manifest."""
    project = prepare(copy_project(tmp_path / "dbt_project"))
    manifest_file = project / "target" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    customers, dim = "model.lakeport_demo.stg_customers", "model.lakeport_demo.dim_customers"
    assert customers in manifest["parent_map"][dim]
    manifest["parent_map"][customers].append(dim)
    manifest_file.write_text(json.dumps(manifest))
    platform = demo_platform(tmp_path / "data", "http://127.0.0.1:9")
    # Before the check, this recursed until Python gave up (RecursionError, no names).
    with pytest.raises(ManifestCycleError, match="dim_customers -> stg_customers") as raised:
        build_demo_definitions(platform, project_dir=project)
    assert str(manifest_file) in str(raised.value)


def test_a_missing_manifest_names_the_file_and_the_command(tmp_path):
    project = copy_project(tmp_path / "dbt_project")
    platform = demo_platform(tmp_path / "data", "http://127.0.0.1:9")
    with pytest.raises(ManifestMissingError) as raised:
        build_demo_definitions(platform, project_dir=project)
    message = str(raised.value)
    assert str(project / "target" / "manifest.json") in message
    assert f"lakeport prepare-dbt {project}" in message


# --- at run time: bad SQL, an unreachable catalog ---------------------------------------------

MART = "mart_customer_revenue"
SLICE = [dg.AssetKey(k) for k in (
    ["raw", "raw_customers"], ["raw", "raw_orders"], ["raw", "raw_payments"],
    ["staging", "stg_customers"], ["staging", "stg_orders"], ["staging", "stg_payments"],
    ["intermediate", "int_orders_enriched"], ["marts", MART])]
# The slice's dbt models alone: they read the bronze tables from the catalog.
DBT_SLICE = [key for key in SLICE if key.path[0] != "raw"]


def _catalog_state(catalog) -> dict:
    """Every table's current snapshot and metadata file: what a half commit would change."""
    state = {}
    for identifier in [t for ns in catalog.list_namespaces() for t in catalog.list_tables(ns)]:
        table = catalog.load_table(identifier)
        state[".".join(identifier)] = (table.metadata_location,
                                       [s.snapshot_id for s in table.snapshots()])
    return state


def _warehouse_keys(s3_server) -> set[str]:
    pages = s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=WAREHOUSE_BUCKET)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def _run(platform, project, instance, retry_policy=None, selection=DBT_SLICE):
    defs = build_lakehouse_definitions(project, platform,
                                       partitions_start_date=PARTITIONS_START_DATE,
                                       retry_policy=retry_policy, python_assets=BRONZE_ASSETS)
    job = defs.resolve_job_def("lakehouse_job")
    return job.execute_in_process(instance=instance, asset_selection=selection,
                                  raise_on_error=False)


def _failure_text(instance, run_id) -> str:
    texts = []
    for record in instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records:
        error = record.event_log_entry.dagster_event.step_failure_data.error
        while error is not None:
            texts.append(error.message)
            error = error.cause
    return "\n".join(texts)


@pytest.fixture
def published(tmp_path, demo_platform_on_s3, postgres_server, postgres_database):
    """A good run of the slice first, so there are tables a bad run could damage."""
    platform = demo_platform_on_s3()
    project = prepare(copy_project(tmp_path / "dbt_project"))
    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        assert _run(platform, project, instance, selection=SLICE).success
        catalog = load_catalog(platform)
        assert f"marts.{MART}" in _catalog_state(catalog)
        yield platform, project, instance, catalog


def test_bad_sql_fails_the_run_naming_the_model_and_leaves_the_catalog_as_it_was(
    published, s3_server
):
    platform, project, instance, catalog = published
    model = project / "models" / "marts" / f"{MART}.sql"
    model.write_text("selec customer_id from {{ ref('stg_customers') }}\n")
    prepare(project)  # parses: dbt does not check SQL until it runs it
    before, keys = _catalog_state(catalog), _warehouse_keys(s3_server)

    result = _run(platform, project, instance)
    assert not result.success
    text = _failure_text(instance, result.run_id)
    assert "dbt build failed" in text and MART in text and "syntax error" in text, text
    assert f"models/marts/{MART}.sql" in text, text
    after = _catalog_state(catalog)
    # The broken mart's table is exactly as it was; the model that built before it in the
    # same run (int_orders_enriched) is written whole, as its materialization says.
    assert after[f"marts.{MART}"] == before[f"marts.{MART}"]
    assert set(after) == set(before)
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {"intermediate.int_orders_enriched"}
    materialized = {e.asset_key for e in result.all_events
                    if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert dg.AssetKey(["intermediate", "int_orders_enriched"]) in materialized
    assert dg.AssetKey(["marts", MART]) not in materialized
    # The broken mart gets nothing, so no new files belong to it.
    assert not [k for k in _warehouse_keys(s3_server) - keys if f"/{MART}/" in k]


def test_an_unreachable_catalog_fails_the_run_naming_it_and_writes_nothing(
    published, s3_server, monkeypatch, tmp_path
):
    platform, project, instance, catalog = published
    before, keys = _catalog_state(catalog), _warehouse_keys(s3_server)
    secret = "lakeport-test:not-a-real-secret"
    monkeypatch.setenv(CATALOG_CREDENTIAL_ENV, secret)
    data = platform.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["catalog"] = {"type": "rest", "warehouse": f"s3://{WAREHOUSE_BUCKET}/",
                       "rest": {"uri": "http://127.0.0.1:9/api/catalog"}}
    unreachable = parse_platform(json.dumps(data))

    # The policy retries a catalog failure (it may be a blip); here it never comes back.
    result = _run(unreachable, project, instance, dg.RetryPolicy(max_retries=1, delay=1))
    assert not result.success
    text = _failure_text(instance, result.run_id)
    assert ("the Iceberg REST catalog 'lakeport' at http://127.0.0.1:9/api/catalog "
            "(catalog.rest.uri) cannot be reached: ConnectionError") in text, text
    assert secret.split(":")[1] not in text
    retries = instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY).records
    assert len(retries) == 1
    assert _catalog_state(catalog) == before
    assert _warehouse_keys(s3_server) == keys
