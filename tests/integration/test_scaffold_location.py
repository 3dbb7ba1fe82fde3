"""`lakeport new-location` on a dbt project the repository did not write for the demo
(tests/fixtures/shop_dbt_project: seeds, staging views, a mart, a Postgres profile): the
written code location compiles its manifest as its Dockerfile does, its definitions load,
its job builds every model into the Iceberg catalog with every test passing, and
`lakeport validate` accepts the block it says to add."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.demo import WAREHOUSE_BUCKET, postgres_instance

from lakeport.catalog import load_catalog
from lakeport.config import PLATFORM_FILE_ENV, load_platform
from lakeport.dbt_assets import DUCKDB_PATH_ENV

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "tests/fixtures/shop_dbt_project"
LAKEPORT = Path(sys.executable).parent / "lakeport"


def _lakeport(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(LAKEPORT), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory):
    out = tmp_path_factory.mktemp("location") / "shop"
    result = _lakeport("new-location", "shop", "--dbt-project", str(SHOP), "--output", str(out),
                       "--image-repository", "registry.example.com/shop-lakehouse")
    assert result.returncode == 0, result.stderr
    assert "next: docker build" in result.stdout
    return out


def test_the_scaffold_writes_a_location_its_dockerfile_and_block(scaffold):
    files = {str(p.relative_to(scaffold)) for p in scaffold.rglob("*") if p.is_file()}
    assert {"Dockerfile", "platform-location.yaml", "shop/__init__.py",
            "shop/definitions.py", "dg.toml", "shop/defs/lakehouse/defs.yaml",
            "shop/dbt_project/dbt_project.yml",
            "shop/dbt_project/profiles.yml", "shop/dbt_project/seeds/shop_sales.csv",
            "shop/dbt_project/models/marts/category_revenue.sql"} <= files
    # The team's own warehouse connection is not copied; lakeport's profile has its name.
    profiles = yaml.safe_load((scaffold / "shop/dbt_project/profiles.yml").read_text())
    assert list(profiles) == ["shop_warehouse"]
    assert profiles["shop_warehouse"]["outputs"]["lakehouse"]["type"] == "duckdb"
    assert "SHOP_WAREHOUSE_PASSWORD" not in (scaffold / "shop/dbt_project/profiles.yml").read_text()
    dockerfile = (scaffold / "Dockerfile").read_text()
    assert "ARG LAKEPORT_BASE_IMAGE=lakeport-base:0.1.0" in dockerfile
    assert "RUN lakeport prepare-dbt /app/locations/shop/dbt_project" in dockerfile
    assert '"--module-name", "shop.definitions", "--host"' in dockerfile
    assert "COPY dg.toml /app/locations/dg.toml" in dockerfile
    component = yaml.safe_load((scaffold / "shop/defs/lakehouse/defs.yaml").read_text())
    assert component["type"] == "lakeport.LakeportDbtComponent"
    assert component["attributes"]["project"] == "../../dbt_project"
    # The Dockerfile passes the linter the repository's own pass.
    hadolint = Path(sys.executable).parent / "hadolint"
    lint = subprocess.run([str(hadolint), str(scaffold / "Dockerfile")],
                          capture_output=True, text=True)
    assert (lint.returncode, lint.stdout) == (0, ""), lint.stdout


def test_the_added_block_validates(scaffold, tmp_path):
    block = yaml.safe_load((scaffold / "platform-location.yaml").read_text())
    platform = yaml.safe_load((REPO / "platform-config/kind/platform.yaml").read_text())
    platform["codeLocations"] += block["codeLocations"]
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(platform, sort_keys=False))
    result = _lakeport("validate", str(path))
    assert result.returncode == 0, result.stderr
    location = load_platform(path).code_location("shop")
    assert location.module == "shop.definitions"
    assert location.image.reference == "registry.example.com/shop-lakehouse:0.1.0"


def test_the_location_loads_and_its_job_builds_the_project_into_the_catalog(
    scaffold, tmp_path, s3_server, s3_env, postgres_server, postgres_database, monkeypatch
):
    # What the Dockerfile runs at build.
    result = _lakeport("prepare-dbt", str(scaffold / "shop/dbt_project"),
                       "--duckdb-path", str(tmp_path / "build.duckdb"))
    assert result.returncode == 0, result.stderr
    s3_server.ensure_buckets(WAREHOUSE_BUCKET)
    platform_file = tmp_path / "platform.yaml"
    platform_file.write_text(
        f"catalog: {{type: sql, warehouse: 's3://{WAREHOUSE_BUCKET}/shop/'}}\n"
        f"objectStorage: {{endpoint: '{s3_server.endpoint}', region: us-east-1, "
        f"pathStyle: true}}\ndev: {{dataDir: '{tmp_path / 'data'}'}}\n"
    )
    monkeypatch.setenv(PLATFORM_FILE_ENV, str(platform_file))
    monkeypatch.delenv(DUCKDB_PATH_ENV, raising=False)
    monkeypatch.syspath_prepend(str(scaffold))
    defs = importlib.import_module("shop.definitions").defs

    asset_graph = defs.resolve_asset_graph()
    keys = {tuple(k.path) for k in asset_graph.get_all_asset_keys()}
    assert {k[-1] for k in keys} == {
        "shop_products", "shop_sales", "stg_products", "stg_sales", "category_revenue"}
    job = defs.resolve_job_def("lakehouse_job")
    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        # No daily-partitioned model here: the job is not partitioned.
        assert job.partitions_def is None
        result = job.execute_in_process(instance=instance)
        assert result.success
        evaluations = result.get_asset_check_evaluations()
        assert len(evaluations) == len(asset_graph.asset_check_keys) == 7
        assert all(e.passed for e in evaluations)
    catalog = load_catalog(load_platform(platform_file))
    tables = {t for ns in catalog.list_namespaces() for t in catalog.list_tables(ns)}
    by_name = {name: (namespace, name) for namespace, name in tables}
    # Seeds and the mart are stored; the staging views are not.
    assert set(by_name) == {"shop_products", "shop_sales", "category_revenue"}
    revenue = catalog.load_table(by_name["category_revenue"]).scan().to_arrow().to_pylist()
    assert {r["category"]: str(r["revenue"]) for r in revenue} == {
        "coffee": "213.20", "accessories": "22.40", "equipment": "79.00", "milk": "25.20"}
    # In the relation's own schema: the project sets none, so dbt-duckdb's `main`.
    assert {namespace for namespace, _name in tables} == {"main"}


def test_bad_input_names_what_is_wrong_and_writes_nothing(tmp_path):
    out = tmp_path / "nothing"
    result = _lakeport("new-location", "shop", "--dbt-project", str(tmp_path), "-o", str(out))
    assert result.returncode == 1
    assert f"no dbt_project.yml in {tmp_path}" in result.stderr
    assert not out.exists()
    result = _lakeport("new-location", "Shop_Team", "--dbt-project", str(SHOP), "-o", str(out))
    assert result.returncode == 1 and "location name 'Shop_Team'" in result.stderr
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _lakeport("new-location", "shop", "--dbt-project", str(SHOP), "-o", str(out))
    assert result.returncode == 1 and "is not empty" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".shop-")]
