"""`lakeport validate`: good files pass, each kind of mistake names its file, field and line."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from lakeport.cli import main
from lakeport.config import helm_merge, load_platform

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_FILES = sorted(ROOT.glob("platform-config/*/platform.yaml"))
KIND_FILE = ROOT / "platform-config/kind/platform.yaml"


def test_every_environment_file_is_valid():
    assert {p.parent.name for p in PLATFORM_FILES} == {"local", "kind", "local-cluster", "cloud"}
    result = subprocess.run(
        [Path(sys.executable).parent / "lakeport", "validate", *PLATFORM_FILES],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": valid") == len(PLATFORM_FILES)


# (name, YAML laid over the kind file, dotted field the message must name, text it must say)
BAD_FILES = [
    ("unknown top-level key", "resourceProfile: {}", "resourceProfile", "unknown key"),
    ("typo in nested key", "dagster: {webserver: {replicsa: 2}}", "dagster.webserver.replicsa",
     "unknown key"),
    ("limit below request", "resourceProfiles: {transform: {requests: {memory: 4Gi}}}",
     "resourceProfiles.transform", "limits.memory (2Gi) is below requests.memory (4Gi)"),
    ("cpu limit below request", "resourceProfiles: {transform: {requests: {cpu: '3'}}}",
     "resourceProfiles.transform", "limits.cpu (2) is below requests.cpu (3)"),
    ("bad memory quantity", "resourceProfiles: {transform: {limits: {memory: 2GB}}}",
     "resourceProfiles.transform.limits.memory", "Kubernetes quantity"),
    ("negative cpu", "resourceProfiles: {transform: {limits: {cpu: -1}}}",
     "resourceProfiles.transform.limits.cpu", "Kubernetes quantity"),
    ("fraction of one", "resourceProfiles: {transform: {duckdb: {memoryLimitFraction: 1.0}}}",
     "resourceProfiles.transform.duckdb.memoryLimitFraction", "less than 1"),
    ("fraction of zero", "resourceProfiles: {transform: {duckdb: {memoryLimitFraction: 0}}}",
     "resourceProfiles.transform.duckdb.memoryLimitFraction", "greater than 0"),
    ("fraction and absolute",
     "resourceProfiles: {transform: {duckdb: {memoryLimit: 1Gi}}}",
     "resourceProfiles.transform.duckdb", "not both"),
    ("duckdb above pod limit",
     "resourceProfiles: {transform: {duckdb: {memoryLimitFraction: null, memoryLimit: 3Gi}}}",
     "resourceProfiles.transform", "must be below limits.memory"),
    ("spill volume too small",
     "resourceProfiles: {transform: {spillVolumeSize: 1Gi, duckdb: {maxTempDirectorySize: 5Gi}}}",
     "resourceProfiles.transform", "spillVolumeSize (1Gi) must be larger"),
    ("profile without memory limit",
     "resourceProfiles: {tiny: {requests: {cpu: 100m}, limits: {cpu: 500m}}}",
     "resourceProfiles.tiny", "limits.memory is required"),
    ("profile name not a k8s name", ("resourceProfiles: {Big_One: {limits: {memory: 1Gi}, "
     "requests: {}}}"), "resourceProfiles.Big_One", "Kubernetes name"),
    ("default profile missing", "dagster: {runLauncher: {defaultProfile: huge}}",
     "dagster.runLauncher.defaultProfile", "names no profile"),
    ("transform removed", "resourceProfiles: {transform: null}", "resourceProfiles",
     "must define the 'transform' profile"),
    ("bad compute-log bucket", "computeLogs: {bucket: My_Bucket}", "computeLogs.bucket",
     "S3 bucket name"),
    ("bucket as IP", "computeLogs: {bucket: 192.168.1.1}", "computeLogs.bucket",
     "S3 bucket name"),
    ("warehouse not s3", "catalog: {warehouse: 'gs://x/y'}", "catalog.warehouse", "s3://"),
    ("warehouse bad bucket", "catalog: {warehouse: 's3://ab/'}", "catalog.warehouse",
     "S3 bucket name"),
    ("bad ingress host", "ingress: {host: 'lake port.example.com'}", "ingress.host",
     "DNS hostname"),
    ("bad postgres host", "postgres: {host: '-db-'}", "postgres.host", "DNS hostname"),
    ("external postgres without host", ("postgres: {enabled: false, "
     "passwordSecret: {secretName: pg, key: password}}"), "postgres", "host is required"),
    ("port out of range", "dagster: {webserver: {port: 70000}}", "dagster.webserver.port",
     "less than or equal to 65535"),
    ("wrong type", "dagster: {webserver: {replicas: many}}", "dagster.webserver.replicas",
     "valid integer"),
    ("bad pull policy", "images: {lakeport: {pullPolicy: Sometimes}}",
     "images.lakeport.pullPolicy", "'Always', 'IfNotPresent' or 'Never'"),
    ("bad catalog type", "catalog: {type: hive}", "catalog.type", "'rest' or 'sql'"),
    ("rest catalog without polaris or uri", "polaris: {enabled: false}", "catalog.rest.uri",
     "is required when polaris.enabled is false"),
    ("endpoint not a URL", "objectStorage: {endpoint: 'localstack:4566'}",
     "objectStorage.endpoint", "http:// or https://"),
    ("bad region", "objectStorage: {region: Europe}", "objectStorage.region", "pattern"),
    ("tls does not cover host", "ingress: {tls: [{secretName: t, hosts: [other.example.com]}]}",
     "ingress.tls", "no TLS entry covers"),
    ("log level", "dagster: {daemon: {logLevel: LOUD}}", "dagster.daemon.logLevel", "DEBUG"),
    ("negative TTL", "dagster: {runLauncher: {finishedJobTtlSeconds: -5}}",
     "dagster.runLauncher.finishedJobTtlSeconds", "greater than or equal to 0"),
    ("code location without an image", "codeLocations: [{name: team, module: team.defs}]",
     "codeLocations.0.image", "Field required"),
    ("image without tag or digest",
     "codeLocations: [{name: team, module: m, image: {repository: r}}]",
     "codeLocations.0.image", "needs a tag or a digest"),
    ("image digest not sha256",
     "codeLocations: [{name: team, module: m, image: {repository: r, digest: 'sha256:abc'}}]",
     "codeLocations.0.image.digest", "pattern"),
    ("location profile unknown", ("codeLocations: [{name: team, module: m, "
     "image: {repository: r, tag: t}, profiles: [transform, huge]}]"),
     "codeLocations.0.profiles.1", "names no profile in resourceProfiles"),
    ("location profiles without the default", ("codeLocations: [{name: team, module: m, "
     "image: {repository: r, tag: t}, profiles: [large]}]"),
     "codeLocations.0.profiles", "must include the default profile 'transform'"),
    ("duplicate location names", ("codeLocations: [{name: team, module: a, image: {repository: "
     "r, tag: t}}, {name: team, module: b, image: {repository: r, tag: t}}]"),
     "codeLocations.1.name", "names must be unique"),
    ("location name too long", ("codeLocations: [{name: a-very-long-team-name, module: m, "
     "image: {repository: r, tag: t}}]"), "codeLocations.0.name", "at most 17 characters"),
    ("secretEnv without a Secret", ("codeLocations: [{name: team, module: m, "
     "image: {repository: r, tag: t}, secretEnv: [{name: TOKEN, key: token}]}]"),
     "codeLocations.0.secretEnv.0.secretName", "Field required"),
    ("env set twice", ("codeLocations: [{name: team, module: m, image: {repository: r, tag: t},"
     " env: {REGION: eu}, secretEnv: [{name: REGION, secretName: s, key: k}]}]"),
     "codeLocations.0.secretEnv", "sets an environment variable twice"),
    ("bad toleration operator",
     "resourceProfiles: {large: {scheduling: {tolerations: [{key: a, operator: Is}]}}}",
     "resourceProfiles.large.scheduling.tolerations.0.operator", "'Exists' or 'Equal'"),
    ("bad node selector label",
     "resourceProfiles: {large: {scheduling: {nodeSelector: {'bad key!': x}}}}",
     "resourceProfiles.large.scheduling.nodeSelector.bad key!", "pattern"),
    ("lineage over http without a url", "lineage: {transport: {type: http}}",
     "lineage.transport.url", "is required when type is http"),
    ("lineage to a file without a path", "lineage: {transport: {type: file}}",
     "lineage.transport.logFilePath", "is required when type is file"),
    ("lineage token for a file", ("lineage: {transport: {type: file, logFilePath: /tmp/ol, "
     "tokenSecret: {secretName: ol, key: token}}}"), "lineage.transport.tokenSecret",
     "only sent by the http transport"),
    ("lineage transport unknown", "lineage: {transport: {type: kafka}}",
     "lineage.transport.type", "'noop', 'http' or 'file'"),
    ("lineage namespace not a URI", "lineage: {datasetNamespace: lakeport}",
     "lineage.datasetNamespace", "should match pattern"),
]


def _overlay(base, overlay):
    """Deep-merge keeping explicit nulls, so the file says `key: null` as a user would."""
    if not isinstance(base, dict) or not isinstance(overlay, dict):
        return overlay
    return {**base, **{k: _overlay(base.get(k), v) for k, v in overlay.items()}}


def _write_over_kind(tmp_path: Path, overlay: str) -> Path:
    merged = _overlay(yaml.safe_load(KIND_FILE.read_text()), yaml.safe_load(overlay))
    target = tmp_path / "platform.yaml"
    target.write_text(yaml.safe_dump(merged, sort_keys=False))
    return target


@pytest.mark.parametrize("overlay,field,text", [c[1:] for c in BAD_FILES],
                         ids=[c[0] for c in BAD_FILES])
def test_bad_file_names_file_field_and_problem(tmp_path, capsys, overlay, field, text):
    path = _write_over_kind(tmp_path, overlay)
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
    path = _write_over_kind(tmp_path, overlay)
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
    bad = _write_over_kind(tmp_path, "computeLogs: {bucket: X}")
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
