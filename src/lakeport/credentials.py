"""Where secrets reach a process: environment variables with fixed names.

platform.yaml only names Secrets; the chart maps each `secretKeyRef` to the variable
below, and `make dev` sets the same variables itself. Code reads secrets only here, so a
value never passes through a ConfigMap, a log line or an error message.
"""

import os

POSTGRES_PASSWORD_ENV = "LAKEPORT_POSTGRES_PASSWORD"
# "client_id:client_secret" of the Polaris principal the platform runs as.
CATALOG_CREDENTIAL_ENV = "LAKEPORT_CATALOG_CREDENTIAL"
# The standard names, so boto3, dagster-aws and DuckDB's httpfs all find them.
S3_ACCESS_KEY_ID_ENV = "AWS_ACCESS_KEY_ID"
S3_SECRET_ACCESS_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
# The Bearer token of the OpenLineage HTTP endpoint (lineage.transport.tokenSecret).
LINEAGE_TOKEN_ENV = "LAKEPORT_LINEAGE_TOKEN"


class MissingSecretError(RuntimeError):
    pass


def read_secret(env_name: str, what: str) -> str:
    value = os.environ.get(env_name)
    if not value:
        raise MissingSecretError(
            f"{what} is not available: environment variable {env_name} is not set "
            "(on Kubernetes the chart sets it from the Secret named in platform.yaml)"
        )
    return value


def optional_secret(env_name: str) -> str | None:
    return os.environ.get(env_name) or None
