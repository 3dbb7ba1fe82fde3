"""The demo as a Dagster project: `dg` finds lakeport's component, checks the demo's
defs.yaml and lists exactly what the Python factory builds for the same platform."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from lakeport.component import LakeportDbtComponent
from lakeport.config import PLATFORM_FILE_ENV, load_platform
from lakeport_demo.build import DBT_PROJECT_DIR, build_demo_definitions

REPO = Path(__file__).resolve().parents[2]
PLATFORM_FILE = REPO / "platform-config/local/platform.yaml"
DG = str(Path(sys.executable).with_name("dg"))


def _dg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DG, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, PLATFORM_FILE_ENV: str(PLATFORM_FILE)},
    )


def test_dg_lists_the_lakeport_component():
    listed = _dg("list", "components", "--json")
    assert listed.returncode == 0, listed.stderr
    components = {c["key"]: c for c in json.loads(listed.stdout)["items"]}
    assert "lakeport.LakeportDbtComponent" in components, sorted(components)
    assert components["lakeport.LakeportDbtComponent"]["summary"].startswith("A dbt project on")


def test_dg_check_defs_passes_on_the_demo():
    checked = _dg("check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr


@pytest.fixture(scope="module")
def listed_defs() -> dict:
    listed = _dg("list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def test_dg_lists_what_the_factory_builds(listed_defs):
    factory = build_demo_definitions(load_platform(PLATFORM_FILE))
    graph = factory.resolve_asset_graph()
    assert {a["asset_key"] for a in listed_defs["assets"]} == {
        key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {(c["asset_key"], c["name"]) for c in listed_defs["asset_checks"]} == {
        (key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert {j["name"] for j in listed_defs["jobs"]} == {
        j.name for j in factory.resolve_all_job_defs() if not j.name.startswith("__")}
    assert {(s["name"], s["cron_schedule"]) for s in listed_defs["schedules"]} == {
        (s.name, s.cron_schedule) for s in factory.schedules}
    assert {s["name"] for s in listed_defs["sensors"]} == {s.name for s in factory.sensors}
    assert {r["name"] for r in listed_defs["resources"]} == set(factory.resources)


def _component(**attributes) -> LakeportDbtComponent:
    return LakeportDbtComponent.resolve_from_yaml(json.dumps({
        "project": str(DBT_PROJECT_DIR), "partitions_start_date": "2025-01-01", **attributes}))


def test_translation_adjusts_lakeports_specs():
    platform = load_platform(PLATFORM_FILE)
    component = _component(translation={"tags": {"team": "{{ node.name }}"}},
                           group_profiles={"staging": "large"})
    defs = component.build_defs_for_platform(platform, REPO)
    specs = {spec.key: spec for a in defs.assets for spec in a.specs}
    spec = specs[dg.AssetKey(["staging", "stg_orders"])]
    assert spec.tags["team"] == "stg_orders"
    # lakeport's own translation is kept underneath: its profile tag and group.
    assert spec.tags["lakeport/profile"] == "large"
    assert spec.group_name == "staging"


def test_a_subclass_overrides_the_asset_spec():
    class Owned(LakeportDbtComponent):
        def get_asset_spec(self, manifest, unique_id, project):
            spec = super().get_asset_spec(manifest, unique_id, project)
            return spec.replace_attributes(owners=["team:platform"])

    component = Owned.resolve_from_yaml(json.dumps(
        {"project": str(DBT_PROJECT_DIR), "partitions_start_date": "2025-01-01"}))
    defs = component.build_defs_for_platform(load_platform(PLATFORM_FILE), REPO)
    owners = {tuple(spec.owners) for a in defs.assets for spec in a.specs
              if spec.key.path[0] != "raw"}
    assert owners == {("team:platform",)}


def test_a_retry_policy_of_null_turns_retries_off():
    component = _component(retry_policy=None)
    defs = component.build_defs_for_platform(load_platform(PLATFORM_FILE), REPO)
    dbt_ops = [a for a in defs.assets if a.op.name.startswith("dbt_")]
    assert dbt_ops and all(a.op.retry_policy is None for a in dbt_ops)
    default = _component().build_defs_for_platform(load_platform(PLATFORM_FILE), REPO)
    assert all(a.op.retry_policy.max_retries == 2 for a in default.assets
               if a.op.name.startswith("dbt_"))


@pytest.mark.parametrize(("reference", "says"), [
    ("lakeport_demo.bronze", "is not `module:attribute`"),
    ("lakeport_demo.bronze:NO_SUCH", "has no 'NO_SUCH'"),
    ("lakeport_demo.build:PARTITIONS_START_DATE", "holds str, not Dagster assets"),
])
def test_a_bad_python_assets_reference_names_itself(reference, says):
    component = _component(python_assets=[reference])
    with pytest.raises(ValueError, match="python_assets") as error:
        component.build_defs_for_platform(load_platform(PLATFORM_FILE), REPO)
    assert says in str(error.value) and reference.split(":")[0] in str(error.value)


def test_the_code_location_is_dgs_defs_folder_without_the_component_type_catalog(monkeypatch):
    """The seam lakeport.component.load_code_location depends on (dagster's ComponentTree):
    if building at the defs folder stops giving what load_from_defs_folder gives, or the
    catalog it leaves out moves, this fails."""
    from dagster.components.core.load_defs import PLUGIN_COMPONENT_TYPES_JSON_METADATA_KEY

    from lakeport.component import load_code_location

    monkeypatch.setenv(PLATFORM_FILE_ENV, str(PLATFORM_FILE))
    demo = REPO / "src/lakeport_demo"
    ours = load_code_location(demo).get_repository_def()
    dagsters = dg.load_from_defs_folder(path_within_project=demo).get_repository_def()
    assert set(ours.asset_graph.get_all_asset_keys()) == set(
        dagsters.asset_graph.get_all_asset_keys())
    assert set(ours.asset_graph.asset_check_keys) == set(dagsters.asset_graph.asset_check_keys)
    for kind in ("get_all_jobs", "schedule_defs", "sensor_defs"):
        def names(repository, kind=kind):
            found = getattr(repository, kind)
            return {d.name for d in (found() if callable(found) else found)}

        assert names(ours) == names(dagsters), kind
    assert set(ours.get_top_level_resources()) == set(dagsters.get_top_level_resources())
    assert PLUGIN_COMPONENT_TYPES_JSON_METADATA_KEY in dagsters.metadata
    assert PLUGIN_COMPONENT_TYPES_JSON_METADATA_KEY not in ours.metadata


def _team_project(root: Path) -> None:
    """An empty dg project at `root`, its package `team_location` under src/."""
    (root / "dg.toml").write_text(
        'directory_type = "project"\n\n[project]\nroot_module = "team_location"\n')
    (root / "src/team_location/defs").mkdir(parents=True)
    for package in ("src/team_location", "src/team_location/defs"):
        (root / package / "__init__.py").touch()


def test_dg_scaffolds_a_defs_yaml_for_a_teams_dbt_project(tmp_path):
    """A team's dg project: `dg scaffold defs` writes the component with the dbt project
    relative to the new defs folder, and that defs.yaml loads."""
    _team_project(tmp_path)
    scaffolded = subprocess.run(
        [DG, "scaffold", "defs", "lakeport.LakeportDbtComponent", "shop",
         "--project-path", str(DBT_PROJECT_DIR), "--partitions-start-date", "2025-01-01"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, PLATFORM_FILE_ENV: str(PLATFORM_FILE)},
    )
    assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    defs_dir = tmp_path / "src/team_location/defs/shop"
    written = yaml.safe_load((defs_dir / "defs.yaml").read_text())
    assert written["type"] == "lakeport.LakeportDbtComponent"
    assert written["attributes"] == {
        "project": os.path.relpath(DBT_PROJECT_DIR, defs_dir),
        "partitions_start_date": "2025-01-01"}
    component = LakeportDbtComponent.resolve_from_yaml(json.dumps(written["attributes"]))
    defs = component.build_defs_for_platform(load_platform(PLATFORM_FILE), defs_dir)
    assert dg.AssetKey(["marts", "fct_orders"]) in {
        spec.key for a in defs.assets for spec in a.specs}


def test_scaffolding_without_a_dbt_project_fails_naming_the_path(tmp_path):
    _team_project(tmp_path)
    scaffolded = subprocess.run(
        [DG, "scaffold", "defs", "lakeport.LakeportDbtComponent", "shop",
         "--project-path", str(tmp_path / "nowhere")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert scaffolded.returncode != 0
    assert f"--project-path {tmp_path / 'nowhere'}: no dbt_project.yml" in scaffolded.stderr
    assert not (tmp_path / "src/team_location/defs/shop/defs.yaml").exists()
