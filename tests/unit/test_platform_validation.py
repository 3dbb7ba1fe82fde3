"""`lakeport validate`: good files pass, each kind of mistake names its file, field and line."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.platform_files import BAD_FILES, KIND_FILE, write_over_kind

from lakeport.cli import main
from lakeport.config import helm_merge, load_platform

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_FILES = sorted(ROOT.glob("platform-config/*/platform.yaml"))


def test_every_environment_file_is_valid():
    assert {p.parent.name for p in PLATFORM_FILES} == {"local", "kind", "local-cluster", "cloud"}
    result = subprocess.run(
        [Path(sys.executable).parent / "lakeport", "validate", *PLATFORM_FILES],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": valid") == len(PLATFORM_FILES)


@pytest.mark.parametrize("overlay,field,text", [c[1:] for c in BAD_FILES],
                         ids=[c[0] for c in BAD_FILES])
def test_bad_file_names_file_field_and_problem(tmp_path, capsys, overlay, field, text):
    path = write_over_kind(tmp_path, overlay)
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    matching = [line for line in lines if f": {field or '<top level>'}: " in line]
    assert matching, f"no line names {field!r}: {lines}"
    assert any(text in line for line in matching), lines
    assert all(line.startswith(str(path)) for line in lines)


def test_at_least_twenty_distinct_mistakes():
    assert len({c[0] for c in BAD_FILES}) >= 20


def test_line_number_points_at_the_offending_key(tmp_path, capsys):
    path = tmp_path / "platform.yaml"
    path.write_text(textwrap.dedent("""\
        dagster:
          webserver:
            port: 3000
            replicsa: 2
        """))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:4: dagster.webserver.replicsa: unknown key" in err


@pytest.mark.parametrize("overlay,secret", [
    ("postgres: {enabled: false, host: db, passwordSecret: hunter2-s3cr3t}", "hunter2-s3cr3t"),
    ("postgres: {password: hunter2-s3cr3t}", "hunter2-s3cr3t"),
    ("objectStorage: {credentialsSecret: AKIAEXAMPLESECRET}", "AKIAEXAMPLESECRET"),
    ("objectStorage: {endpoint: 'http://admin:pa55word@s3.local:9000'}", "pa55word"),
    ("codeLocations: [{name: team, module: m, image: {repository: r, tag: t}, "
     "env: {ERP_API_TOKEN: hunter2-s3cr3t}}]", "hunter2-s3cr3t"),
    ("codeLocations: [{name: team, module: m, image: {repository: r, tag: t}, "
     "secretEnv: [{name: ERP_TOKEN, value: hunter2-s3cr3t}]}]", "hunter2-s3cr3t"),
    ("lineage: {transport: {type: http, url: 'http://m:5000', tokenSecret: hunter2-s3cr3t}}",
     "hunter2-s3cr3t"),
    ("lineage: {transport: {type: http, url: 'http://u:hunter2-s3cr3t@m:5000'}}",
     "hunter2-s3cr3t"),
])
def test_literal_secrets_are_rejected_and_never_echoed(tmp_path, capsys, overlay, secret):
    path = write_over_kind(tmp_path, overlay)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.strip(), "a rejected file must say why"
    assert secret not in err


def test_invalid_yaml_names_the_line(tmp_path, capsys):
    path = tmp_path / "platform.yaml"
    path.write_text("dagster:\n  webserver: [port: 1\n")
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "not valid YAML" in err


def test_missing_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read file" in capsys.readouterr().err


def test_several_files_report_each(tmp_path, capsys):
    bad = write_over_kind(tmp_path, "computeLogs: {bucket: X}")
    assert main(["validate", str(KIND_FILE), str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"{KIND_FILE}: valid" in captured.out
    assert f"{bad}" in captured.err


def test_values_merge_like_helm():
    defaults = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert helm_merge(defaults, {"a": {"c": [3]}, "d": None, "e": 2}) == {
        "a": {"b": 1, "c": [3]},
        "e": 2,
    }


def test_partial_profile_inherits_chart_default(tmp_path):
    path = tmp_path / "platform.yaml"
    path.write_text("resourceProfiles: {transform: {limits: {memory: 3Gi}}}\n")
    profile = load_platform(path).profile()
    assert profile.limits.memory == "3Gi"
    assert profile.requests.memory == "1Gi"
