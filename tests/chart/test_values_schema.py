"""helm rejects what the platform model rejects, naming the field; the schema and
values.yaml describe every key."""

import json
import re

import pytest
import yaml
from chart_render import CHART, CI_VALUES, RENDERED_ENVIRONMENTS, helm, platform_file

from lakeport.config import PlatformFileError, parse_platform


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


# --- every rule of the platform model that crosses fields, in the chart itself ------------

EXTERNAL_POSTGRES = {"enabled": False, "host": "db.example.com",
                     "passwordSecret": {"secretName": "pg", "key": "password"}}
EXTERNAL_CATALOG = {"rest": {"uri": "https://catalog.example.com/api/catalog",
                             "credentialsSecret": {"secretName": "catalog", "key": "credential"}}}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"postgres": {"enabled": False, "passwordSecret": {"secretName": "pg", "key": "pw"}}},
         "postgres.host: is required when postgres.enabled is false (external Postgres)"),
        ({"postgres": {"enabled": False, "host": "db.example.com"}},
         "postgres.passwordSecret: is required when postgres.enabled is false"),
        ({"polaris": {"enabled": False}, "catalog": {"rest": {"credentialsSecret": {
            "secretName": "catalog", "key": "credential"}}}},
         "catalog.rest.uri: is required when polaris.enabled is false"),
        ({"polaris": {"enabled": False},
          "catalog": {"rest": {"uri": "https://catalog.example.com/api/catalog"}}},
         "catalog.rest.credentialsSecret: is required when polaris.enabled is false"),
        ({"images": {"lakeport": {"tag": None}}},
         "images.lakeport: an image needs a tag or a digest"),
        ({"codeLocations": [{"name": "team", "module": "m", "image": {"repository": "r"}}]},
         "codeLocations[0].image: an image needs a tag or a digest"),
        ({"dagster": {"webserver": {"resources": {"limits": {"memory": "256Mi"}}}}},
         "dagster.webserver.resources: limits.memory (256Mi) is below requests.memory (512Mi)"),
        ({"polaris": {"resources": {"limits": {"cpu": "100m"}}}},
         "polaris.resources: limits.cpu (100m) is below requests.cpu (250m)"),
        ({"codeLocations": [{"name": "team", **TEAM, "resources": {
            "requests": {"cpu": 2}, "limits": {"cpu": 1.5}}}]},
         "codeLocations[0].resources: limits.cpu (1.5) is below requests.cpu (2)"),
        ({"resourceProfiles": {"large": {"duckdb": {"memoryLimit": "1Gi",
                                                    "memoryLimitFraction": 0.5}}}},
         "resourceProfiles.large.duckdb: set memoryLimitFraction or memoryLimit, not both"),
        ({"resourceProfiles": {"large": {"limits": {"memory": None}}}},
         "resourceProfiles.large: limits.memory is required"),
        ({"resourceProfiles": {"large": {"requests": {"memory": "16Gi"}}}},
         "resourceProfiles.large: limits.memory (4Gi) is below requests.memory (16Gi)"),
        ({"resourceProfiles": {"large": {"duckdb": {"memoryLimit": "4096Mi"}}}},
         "resourceProfiles.large: duckdb.memoryLimit (4096Mi) must be below limits.memory (4Gi)"),
        ({"resourceProfiles": {"huge": {"requests": {"memory": "1Gi"}, "limits": {
            "memory": "2Gi"}, "duckdb": {"maxTempDirectorySize": "10Gi"}}}},
         "resourceProfiles.huge: spillVolumeSize (10Gi) must be larger than "
         "duckdb.maxTempDirectorySize (10Gi)"),
        ({"resourceProfiles": {"transform": None},
          "dagster": {"runLauncher": {"defaultProfile": "large"}}},
         "resourceProfiles: must define the 'transform' profile"),
        # Before the check, this one broke the instance template on a missing profile.
        ({"dagster": {"runLauncher": {"defaultProfile": "huge"}}},
         'dagster.runLauncher.defaultProfile: "huge" names no profile in resourceProfiles'),
        ({"codeLocations": [{"name": "team", **TEAM, "profiles": ["large"]}]},
         'codeLocations[0].profiles: must include the default profile "transform"'),
        ({"codeLocations": [{"name": "team", **TEAM, "env": {"ERP_HOST": "erp"},
                             "secretEnv": [{"name": "ERP_HOST", "secretName": "s", "key": "k"}]}]},
         "codeLocations[0].secretEnv: sets an environment variable twice"),
        ({"lineage": {"transport": {"type": "http"}}},
         "lineage.transport.url: is required when type is http"),
        ({"lineage": {"transport": {"type": "file"}}},
         "lineage.transport.logFilePath: is required when type is file"),
        ({"lineage": {"transport": {"type": "file", "logFilePath": "/tmp/lineage.jsonl",
                                    "tokenSecret": {"secretName": "s", "key": "k"}}}},
         "lineage.transport.tokenSecret: is only sent by the http transport (type is file)"),
        ({"dagster": {"readOnlyWebserver": {"enabled": True}}},
         "dagster.readOnlyWebserver.host: is required when ingress.enabled is true"),
        ({"dagster": {"readOnlyWebserver": {"enabled": True, "host": "localhost"}}},
         'dagster.readOnlyWebserver.host: "localhost" must differ from ingress.host'),
        ({"ingress": {"tls": [{"secretName": "tls", "hosts": ["lakeport.example.com"]}]}},
         'ingress.tls: no TLS entry covers ingress.host "localhost"'),
    ],
)
def test_every_cross_field_rule_fails_the_render_naming_the_field(tmp_path, override, expected):
    """Each Platform validator that values.schema.json cannot state, over the kind file
    (ingress on, host localhost), and what `lakeport validate` says of the same file."""
    result = _template(tmp_path, override)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    assert "values don't meet the specifications of the schema" not in result.stderr
    field = expected.split(":")[0]
    with pytest.raises(PlatformFileError) as raised:
        kind = yaml.safe_load(platform_file("kind").read_text())
        parse_platform(yaml.safe_dump(_overlay(kind, override)))
    assert any(_python_field(p.field) in field for p in raised.value.problems), (
        raised.value.problems
    )


def _overlay(base, override):
    """`-f kind -f override` as one file: maps merge, a null stays null (so that it removes
    the chart default as it does in helm)."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    return {**base, **{key: _overlay(base.get(key), value) for key, value in override.items()}}


def _python_field(field: str) -> str:
    """lakeport validate's dotted path (codeLocations.0.image) as the chart writes it."""
    return ".".join(f"[{p}]" if p.isdigit() else p for p in field.split(".")).replace(".[", "[")


@pytest.mark.parametrize(
    "values",
    [None, *(str(platform_file(env)) for env in RENDERED_ENVIRONMENTS), *map(str, CI_VALUES)],
    ids=["chart defaults", *RENDERED_ENVIRONMENTS, *(p.stem for p in CI_VALUES)],
)
def test_valid_values_pass_the_checks(values):
    args = ["template", "lakeport", str(CHART)] + (["-f", values] if values else [])
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stderr


def test_external_services_pass_the_checks(tmp_path):
    result = _template(tmp_path, {"postgres": EXTERNAL_POSTGRES, "polaris": {"enabled": False},
                                  "catalog": EXTERNAL_CATALOG})
    assert result.returncode == 0, result.stderr


# --- documentation that reaches the user ----------------------------------------------------

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _properties(node: dict, path: str):
    """(path, property schema) of every property below `node`, through $ref, anyOf, list
    items and the entries of a map (additionalProperties)."""
    if "$ref" in node:
        yield from _properties(SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]], path)
    for name, prop in node.get("properties", {}).items():
        where = f"{path}.{name}" if path else name
        yield where, prop
        yield from _properties(prop, where)
    for option in node.get("anyOf", []):
        yield from _properties(option, path)
    if isinstance(node.get("items"), dict):
        yield from _properties(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _properties(node["additionalProperties"], f"{path}.<name>")


def test_every_property_of_the_schema_has_a_description():
    """An editor shows it on hover; the field's docstring in src/lakeport/platform.py."""
    paths = [path for path, _ in _properties(SCHEMA, "")]
    assert {"codeLocations[].image.tag", "resourceProfiles.<name>.duckdb.threads"} <= set(paths)
    missing = [path for path, prop in _properties(SCHEMA, "") if not prop.get("description")]
    assert missing == [], f"properties without a description (add a docstring): {missing}"


KEY_LINE = re.compile(r"^(?P<indent> *)(?P<dash>- )?(?P<key>[^\s#][^:]*):(?: |$)")


def test_every_key_of_values_yaml_has_a_comment_above_it():
    lines = (CHART / "values.yaml").read_text().splitlines()
    keys, bare = 0, []
    for number, line in enumerate(lines):
        match = KEY_LINE.match(line)
        if not match:
            continue
        keys += 1
        above = lines[number - 1] if number else ""
        # The comment stands at the key's own column (a list item's: at its dash).
        if not above.startswith(f"{match['indent']}# "):
            bare.append(f"values.yaml:{number + 1}: {line.strip()}")
    assert keys > 100
    assert bare == []
