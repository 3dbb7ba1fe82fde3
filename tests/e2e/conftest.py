"""Access to the cluster for the `e2e`-marked tests: kind (`make e2e`, context
`kind-lakeport`) or the local single-node cluster (`make e2e-local` and `make test`, which
set LAKEPORT_E2E_CONTEXT=lakeport-local and the other LAKEPORT_E2E_* variables through
`scripts/e2e-local.sh env`).

Without the kubeconfig context (or a reachable cluster behind it, or the release in it) the
e2e tests are skipped with the reason. `make e2e`, `make e2e-local` and `make test` set
LAKEPORT_E2E_REQUIRED=1: there a missing cluster is a failure, not a skip.
"""

import os
from dataclasses import dataclass
from functools import cache

import pytest
import yaml
from e2e_helpers import connect_to_cluster

from lakeport.config import parse_platform

CONTEXT = os.environ.get("LAKEPORT_E2E_CONTEXT", "kind-lakeport")
NAMESPACE = os.environ.get("LAKEPORT_E2E_NAMESPACE", "lakeport")
RELEASE = "lakeport"
REQUIRED = os.environ.get("LAKEPORT_E2E_REQUIRED") == "1"


@dataclass(frozen=True)
class Cluster:
    context: str
    namespace: str
    release: str
    api_client: object


@cache
def _connect() -> tuple[Cluster | None, str]:
    api_client, reason = connect_to_cluster(CONTEXT, NAMESPACE)
    if api_client is None:
        return None, reason
    return Cluster(CONTEXT, NAMESPACE, RELEASE, api_client), ""


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    found, reason = _connect()
    if found is None:
        if REQUIRED:
            pytest.fail(f"e2e: {reason}")
        pytest.skip(f"e2e needs a cluster: {reason}")
    return found


@pytest.fixture(scope="session")
def k8s(cluster):
    from kubernetes import client

    return (
        client.CoreV1Api(cluster.api_client),
        client.AppsV1Api(cluster.api_client),
        client.BatchV1Api(cluster.api_client),
    )


@pytest.fixture(scope="session")
def effective_platform(cluster, k8s):
    """What the chart mounted into every pod (platform.yaml + in-chart services/Secrets)."""
    core, _, _ = k8s
    config_map = core.read_namespaced_config_map(f"{cluster.release}-platform", cluster.namespace)
    text = config_map.data["platform.yaml"]
    return yaml.safe_load(text), parse_platform(text, "configmap platform.yaml")
