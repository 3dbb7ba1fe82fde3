"""Malformed platform.yaml files, and writing one over an environment's file.

BAD_FILES is `lakeport validate`'s catalogue of mistakes (tests/unit/test_platform_validation.py);
tests/reliability/test_bad_input.py takes the same mistakes to `lakeport dev` and to a code
location's process.
"""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
KIND_FILE = REPO / "platform-config/kind/platform.yaml"

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


def overlay(base, extra):
    """Deep-merge: maps merge, anything else replaces, explicit nulls are kept (so the file
    says `key: null` as a user would)."""
    if not isinstance(base, dict) or not isinstance(extra, dict):
        return extra
    return {**base, **{k: overlay(base.get(k), v) for k, v in extra.items()}}


def write_over(base: Path, overrides: dict, target: Path) -> Path:
    """`target`: the platform file `base` with `overrides` laid over it."""
    merged = overlay(yaml.safe_load(base.read_text()), overrides)
    target.write_text(yaml.safe_dump(merged, sort_keys=False))
    return target


def write_over_kind(directory: Path, overlay_yaml: str) -> Path:
    """directory/platform.yaml: the kind file with the YAML `overlay_yaml` laid over it."""
    return write_over(KIND_FILE, yaml.safe_load(overlay_yaml), directory / "platform.yaml")
