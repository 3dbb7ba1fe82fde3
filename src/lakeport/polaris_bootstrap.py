"""Set up Polaris for lakeport, idempotently: the chart's post-install/post-upgrade Job.

The realm itself (schema, root principal) is bootstrapped by the Polaris admin tool in
the Polaris pod before the server starts. This module then, through Polaris' REST APIs:
creates the Iceberg catalog on the warehouse bucket (S3, path-style, no STS for
S3-compatible endpoints), a principal for Dagster, a principal role and a catalog role
with CATALOG_MANAGE_CONTENT; and it writes the principal's
"client_id:client_secret" into the Kubernetes Secret that Dagster pods and run pods read
as LAKEPORT_CATALOG_CREDENTIAL.

Every step tolerates having run before: what exists is left alone, and grants and role
assignments are listed before they are made, because Polaris 1.2.0 on relational-jdbc
answers a repeated grant with HTTP 500 (a plain INSERT into grant_records;
apache/polaris#4553, fixed in 1.6.0 by #4554). A principal's secret can only be read when
it is created or reset, so when the Secret no longer holds working credentials the
principal is reset (by root) and the Secret rewritten.

Only the standard library: it runs in the lakeport image with nothing else.
"""

import base64
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from lakeport.config import load_effective_platform
from lakeport.platform import Platform

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
REALM_HEADER = "Polaris-Realm"


class HttpError(RuntimeError):
    def __init__(self, method: str, url: str, status: int, body: str):
        super().__init__(f"{method} {url}: HTTP {status}: {body[:500]}")
        self.status = status


def request(method, url, *, headers=None, body=None, form=None, context=None, timeout=30):
    """One HTTP request; returns the decoded JSON body (or None); raises HttpError."""
    headers = dict(headers or {})
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raise HttpError(method, url, exc.code, exc.read().decode(errors="replace")) from None
    return json.loads(raw) if raw.strip() else None


def split_credential(value: str) -> tuple[str, str]:
    """"client_id:client_secret" -> (client_id, client_secret)."""
    client_id, sep, client_secret = value.strip().partition(":")
    if not sep or not client_id or not client_secret:
        raise ValueError("a credential must look like client_id:client_secret")
    return client_id, client_secret


# --- what to create ---------------------------------------------------------------------


def catalog_body(platform: Platform) -> dict:
    """The management API's CreateCatalogRequest for the platform's catalog."""
    catalog = platform.catalog
    storage = platform.object_storage
    location = catalog.warehouse
    storage_config = {
        "storageType": "S3",
        "allowedLocations": [location],
        "region": storage.region,
        "pathStyleAccess": storage.path_style,
        # No STS: LocalStack and most S3-compatible stores have none, and lakeport's
        # readers use their own S3 credentials rather than vended ones.
        "stsUnavailable": True,
    }
    if storage.endpoint:
        storage_config["endpoint"] = storage.endpoint
        storage_config["endpointInternal"] = storage.endpoint
    return {
        "catalog": {
            "name": catalog.name,
            "type": "INTERNAL",
            "properties": {"default-base-location": location},
            "storageConfigInfo": storage_config,
        }
    }


def principal_role_name(platform: Platform) -> str:
    return f"{platform.polaris.principal}_role"


def catalog_role_name(platform: Platform) -> str:
    return f"{platform.catalog.name}_writer"


# --- Polaris -------------------------------------------------------------------------------


@dataclass
class PolarisClient:
    """Polaris' REST APIs (OAuth token, management, catalog) for one realm. The settings
    model of the same service is `lakeport.platform.Polaris`."""

    base_url: str  # http://host:port
    realm: str

    def token(self, client_id: str, client_secret: str, scope: str = "PRINCIPAL_ROLE:ALL") -> str:
        answer = request(
            "POST",
            f"{self.base_url}/api/catalog/v1/oauth/tokens",
            headers={REALM_HEADER: self.realm},
            form={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
                "scope": scope,
            },
        )
        return answer["access_token"]

    def call(self, token, method, path, body=None, ok_statuses=()):
        """A management/catalog API call; statuses in ok_statuses count as success (None)."""
        try:
            return request(
                method,
                f"{self.base_url}{path}",
                headers={REALM_HEADER: self.realm, "Authorization": f"Bearer {token}"},
                body=body,
            )
        except HttpError as exc:
            if exc.status in ok_statuses:
                return None
            raise


def wait_for_token(
    polaris: PolarisClient, client_id: str, client_secret: str, attempts: int, pause: float
):
    """Polaris may still be starting (post-install runs as soon as objects exist)."""
    last = None
    for _ in range(attempts):
        try:
            return polaris.token(client_id, client_secret)
        except (OSError, HttpError) as exc:
            if isinstance(exc, HttpError) and exc.status in (400, 401, 403):
                raise  # wrong root credentials: retrying will not help
            last = exc
            print(f"waiting for Polaris at {polaris.base_url}: {exc}", flush=True)
            time.sleep(pause)
    raise RuntimeError(f"Polaris did not answer: {last}")


def ensure_catalog(polaris: PolarisClient, token: str, platform: Platform) -> None:
    name = platform.catalog.name
    mgmt = "/api/management/v1"
    polaris.call(token, "POST", f"{mgmt}/catalogs", catalog_body(platform), ok_statuses=(409,))
    role = catalog_role_name(platform)
    polaris.call(
        token, "POST", f"{mgmt}/catalogs/{name}/catalog-roles",
        {"catalogRole": {"name": role}}, ok_statuses=(409,),
    )
    grant = {"type": "catalog", "privilege": "CATALOG_MANAGE_CONTENT"}
    grants = polaris.call(token, "GET", f"{mgmt}/catalogs/{name}/catalog-roles/{role}/grants")
    if grant not in (grants or {}).get("grants", []):
        polaris.call(
            token, "PUT", f"{mgmt}/catalogs/{name}/catalog-roles/{role}/grants", {"grant": grant}
        )


def ensure_principal_roles(polaris: PolarisClient, token: str, platform: Platform) -> None:
    mgmt = "/api/management/v1"
    principal = platform.polaris.principal
    prole = principal_role_name(platform)
    crole = catalog_role_name(platform)
    catalog = platform.catalog.name
    polaris.call(
        token, "POST", f"{mgmt}/principal-roles", {"principalRole": {"name": prole}},
        ok_statuses=(409,),
    )
    if prole not in _role_names(polaris.call(
            token, "GET", f"{mgmt}/principals/{principal}/principal-roles")):
        polaris.call(
            token, "PUT", f"{mgmt}/principals/{principal}/principal-roles",
            {"principalRole": {"name": prole}},
        )
    if crole not in _role_names(polaris.call(
            token, "GET", f"{mgmt}/principal-roles/{prole}/catalog-roles/{catalog}")):
        polaris.call(
            token, "PUT", f"{mgmt}/principal-roles/{prole}/catalog-roles/{catalog}",
            {"catalogRole": {"name": crole}},
        )


def _role_names(answer: dict | None) -> set[str]:
    """Names in a PrincipalRoles / CatalogRoles answer: {"roles": [{"name": ...}, ...]}."""
    return {role["name"] for role in (answer or {}).get("roles", [])}


def principal_credential(
    polaris: PolarisClient, token: str, platform: Platform, current: str | None
):
    """Working "client_id:client_secret" for the principal; new ones only when needed.

    Returns (credential, changed)."""
    mgmt = "/api/management/v1"
    name = platform.polaris.principal
    if current:
        try:
            polaris.token(*split_credential(current))
            return current, False
        except (ValueError, HttpError):
            print("the stored principal credential does not work; replacing it", flush=True)
    created = polaris.call(
        token, "POST", f"{mgmt}/principals",
        {"principal": {"name": name}, "credentialRotationRequired": False},
        ok_statuses=(409,),
    )
    if created is None:
        # It exists and its secret is unknown to us: reset it. Not rotate: in Polaris
        # 1.2.0 only the principal itself may rotate its credentials (a self operation),
        # root gets 403 (apache/polaris#624); root may reset, with an empty body for new
        # random credentials (ENABLE_CREDENTIAL_RESET, on by default).
        created = polaris.call(token, "POST", f"{mgmt}/principals/{name}/reset", {})
    creds = created["credentials"]
    return f"{creds['clientId']}:{creds['clientSecret']}", True


def check_principal_reads_catalog(polaris: PolarisClient, token: str, platform: Platform) -> None:
    """List the catalog's namespaces as the principal: proves its token and grants work.
    Runs create the namespaces they write to (one per dbt schema) themselves."""
    catalog = urllib.parse.quote(platform.catalog.name, safe="")
    polaris.call(token, "GET", f"/api/catalog/v1/{catalog}/namespaces")


# --- the Kubernetes Secret -----------------------------------------------------------------


@dataclass
class SecretStore:
    """get/patch of one Secret through the API server, with the pod's service account."""

    api: str
    namespace: str
    name: str
    token: str
    context: ssl.SSLContext | None

    @classmethod
    def in_cluster(cls, namespace: str, name: str) -> "SecretStore":
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        with open(f"{SA_DIR}/token") as fh:
            token = fh.read().strip()
        context = ssl.create_default_context(cafile=f"{SA_DIR}/ca.crt")
        return cls(f"https://{host}:{port}", namespace, name, token, context)

    def _url(self) -> str:
        return f"{self.api}/api/v1/namespaces/{self.namespace}/secrets/{self.name}"

    def read(self, key: str) -> str | None:
        secret = request(
            "GET", self._url(), headers={"Authorization": f"Bearer {self.token}"},
            context=self.context,
        )
        value = (secret.get("data") or {}).get(key)
        return base64.b64decode(value).decode() if value else None

    def write(self, key: str, value: str) -> None:
        request(
            "PATCH",
            self._url(),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/merge-patch+json",
            },
            body={"data": {key: base64.b64encode(value.encode()).decode()}},
            context=self.context,
        )


def run(platform: Platform, polaris: PolarisClient, root_credential: str, store: SecretStore,
        secret_key: str, attempts: int = 60, pause: float = 5.0) -> None:
    root_token = wait_for_token(polaris, *split_credential(root_credential), attempts, pause)
    ensure_catalog(polaris, root_token, platform)
    credential, changed = principal_credential(
        polaris, root_token, platform, store.read(secret_key)
    )
    ensure_principal_roles(polaris, root_token, platform)
    if changed:
        store.write(secret_key, credential)
        print(f"wrote the principal's credential to Secret {store.name}", flush=True)
    principal_token = polaris.token(*split_credential(credential))
    check_principal_reads_catalog(polaris, principal_token, platform)
    print(
        f"Polaris ready: catalog {platform.catalog.name!r}, principal "
        f"{platform.polaris.principal!r}",
        flush=True,
    )


def main() -> int:
    platform = load_effective_platform()
    secret = platform.catalog.rest.credentials_secret
    if secret is None:
        print("catalog.rest.credentialsSecret is not set; nothing to write to", file=sys.stderr)
        return 2
    polaris = PolarisClient(os.environ["POLARIS_BASE_URL"].rstrip("/"), platform.polaris.realm)
    store = SecretStore.in_cluster(os.environ["POD_NAMESPACE"], secret.secret_name)
    run(platform, polaris, os.environ["POLARIS_ROOT_CREDENTIAL"], store, secret.key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
