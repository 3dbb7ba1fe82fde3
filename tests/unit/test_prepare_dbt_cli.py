"""`lakeport prepare-dbt`: the command the image build and the tests compile manifests with."""

import json
import shutil
from types import SimpleNamespace

from lakeport.cli import main
from lakeport_demo.build import DBT_PROJECT_DIR


def lakeport(capsys, *args: str) -> SimpleNamespace:
    code = main(list(args))
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def test_prepare_dbt_writes_the_manifest(tmp_path, capsys):
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    result = lakeport(capsys, "prepare-dbt", str(project))
    assert result.returncode == 0, result.stderr
    manifest = project / "target" / "manifest.json"
    assert result.stdout.strip() == str(manifest)
    nodes = json.loads(manifest.read_text())["nodes"]
    assert "model.lakeport_demo.fct_orders" in nodes

    before = manifest.stat().st_mtime_ns
    again = lakeport(capsys, "prepare-dbt", "--if-stale", str(project))
    assert again.returncode == 0 and manifest.stat().st_mtime_ns == before


def test_prepare_dbt_names_a_directory_without_a_project(tmp_path, capsys):
    result = lakeport(capsys, "prepare-dbt", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path} has no dbt_project.yml" in result.stderr
