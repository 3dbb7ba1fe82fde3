"""helm rejects what the platform model rejects, naming the field."""

import pytest
import yaml
from chart_render import CHART, helm, platform_file


def _template(tmp_path, override: dict):
    extra = tmp_path / "bad.yaml"
    extra.write_text(yaml.safe_dump(override))
    return helm("template", "lakeport", str(CHART), "-f", str(platform_file("kind")),
                "-f", str(extra), check=False)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"dagster": {"webserver": {"replicas": "two"}}},
         "at '/dagster/webserver/replicas': got string, want integer"),
        ({"dagster": {"webserver": {"replicsa": 2}}},
         "at '/dagster/webserver': additional properties 'replicsa' not allowed"),
        ({"postgres": {"port": 70000}}, "at '/postgres/port'"),
        ({"resourceProfiles": {"large": {"spillVolumeSize": "lots"}}},
         "at '/resourceProfiles/large/spillVolumeSize'"),
        ({"catalgo": {}}, "additional properties 'catalgo' not allowed"),
        ({"objectStorage": {"credentialsSecret": "hunter2hunter2"}},
         "at '/objectStorage/credentialsSecret'"),
        ({"codeLocations": [{"name": "team", "module": "m"}]},
         "at '/codeLocations/0': missing property 'image'"),
        ({"codeLocations": [{"name": "team", "module": "m", "image": {"repository": "r",
          "tag": "t"}, "secretEnv": [{"name": "ERP_TOKEN", "value": "hunter2hunter2"}]}]},
         "at '/codeLocations/0/secretEnv/0'"),
        ({"resourceProfiles": {"large": {"scheduling": {"tolerations": [{"operator": "Is"}]}}}},
         "at '/resourceProfiles/large/scheduling/tolerations/0/operator'"),
    ],
)
def test_schema_error_names_the_field(tmp_path, override, expected):
    result = _template(tmp_path, override)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert expected in result.stderr, result.stderr


def test_a_valid_override_renders(tmp_path):
    result = _template(tmp_path, {"dagster": {"webserver": {"replicas": 3}}})
    assert result.returncode == 0, result.stderr
    assert "replicas: 3" in result.stdout


TEAM = {"module": "team.definitions", "image": {"repository": "team", "tag": "1"}}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"codeLocations": [{"name": "team", **TEAM}, {"name": "team", **TEAM}]},
         'codeLocations[1].name: "team" is also the name of codeLocations[0]'),
        ({"codeLocations": [{"name": "team", **TEAM, "profiles": ["transform", "huge"]}]},
         'codeLocations[0].profiles[1]: "huge" names no profile in resourceProfiles'),
        ({"codeLocations": [{"name": "team", **TEAM, "env": {"ERP_API_TOKEN": "hunter2x"}}]},
         "codeLocations[0].env.ERP_API_TOKEN looks like a secret"),
    ],
)
def test_cross_field_errors_fail_the_render_naming_the_field(tmp_path, override, expected):
    """Rules the schema cannot state, checked by the chart itself (no `lakeport validate`)."""
    result = _template(tmp_path, override)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    assert "hunter2x" not in result.stderr
