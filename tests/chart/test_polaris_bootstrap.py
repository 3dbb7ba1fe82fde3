"""lakeport.polaris_bootstrap against an HTTP stand-in for Polaris and the API server.

Polaris (a Java server) and a Kubernetes API server cannot run on these machines, so a
small in-process HTTP server keeps the state those two would keep (catalogs, principals,
roles, grants; one Secret) and answers the documented status codes (201 created, 409
exists, 404 missing, 401 bad credentials). What is under test is the module's own logic:
the requests it sends, and that running it again changes nothing.
"""

import base64
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from chart_render import effective_platform_text, render_env

from lakeport import polaris_bootstrap as pb
from lakeport.config import parse_platform

ROOT = "root:s3cr3t-root"


class FakeWorld:
    def __init__(self):
        self.catalogs, self.catalog_roles, self.grants = {}, {}, set()
        self.principals = {"root": "s3cr3t-root"}  # client id == principal name here
        self.principal_roles, self.assignments, self.role_catalog_roles = set(), set(), set()
        self.namespace_listings, self.secret_data = [], {}
        self.requests = []
        self.rotations = 0


def _handler(world: FakeWorld):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status, body=None):
            raw = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length).decode() if length else ""

        def _authorized(self):
            return self.headers.get("Authorization", "").startswith("Bearer token-for-")

        def do_GET(self):  # noqa: N802
            world.requests.append(("GET", self.path, None))
            secret = "/api/v1/namespaces/lakeport/secrets/lakeport-polaris-principal"
            if self.path.startswith(secret):
                return self._reply(200, {"data": world.secret_data})
            mgmt = "/api/management/v1"
            parts = self.path.split("/")
            if self.path.startswith(mgmt) and self._authorized():
                if self.path.endswith("/grants"):  # catalogs/{c}/catalog-roles/{r}/grants
                    return self._reply(200, {"grants": [
                        {"type": "catalog", "privilege": p}
                        for c, r, p in world.grants if (c, r) == (parts[5], parts[7])]})
                if self.path.endswith("/principal-roles"):  # principals/{p}/principal-roles
                    return self._reply(200, {"roles": [
                        {"name": r} for p, r in world.assignments if p == parts[5]]})
                if "/catalog-roles/" in self.path:  # principal-roles/{r}/catalog-roles/{c}
                    return self._reply(200, {"roles": [
                        {"name": cr} for r, c, cr in world.role_catalog_roles
                        if (r, c) == (parts[5], parts[7])]})
            if self.path == "/api/catalog/v1/lakeport/namespaces" and self._authorized():
                world.namespace_listings.append(self.headers["Authorization"])
                return self._reply(200, {"namespaces": []})
            self._reply(404, {"error": "not found"})

        def do_PATCH(self):  # noqa: N802
            body = json.loads(self._body())
            world.requests.append(("PATCH", self.path, body))
            assert self.headers["Content-Type"] == "application/merge-patch+json"
            world.secret_data.update(body["data"])
            self._reply(200, {})

        def do_PUT(self):  # noqa: N802
            body = json.loads(self._body())
            world.requests.append(("PUT", self.path, body))
            if not self._authorized():
                return self._reply(401)
            parts = self.path.split("/")
            # Polaris 1.2.0 on relational-jdbc writes every grant as a plain INSERT into
            # grant_records: the same grant twice is a primary-key violation, answered
            # with HTTP 500 (apache/polaris#4553; idempotent only from 1.6.0, #4554).
            if self.path.endswith("/grants"):
                record = (parts[5], parts[7], body["grant"]["privilege"])
                target = world.grants
            elif self.path.endswith("/principal-roles"):
                assert parts[5] in world.principals, "role assigned to a missing principal"
                record = (parts[5], body["principalRole"]["name"])
                target = world.assignments
            elif "/catalog-roles/" in self.path:
                record = (parts[5], parts[7], body["catalogRole"]["name"])
                target = world.role_catalog_roles
            else:
                return self._reply(404)
            if record in target:
                return self._reply(500, {"error": {"message": "duplicate key value violates "
                                                   "unique constraint \"grant_records_pkey\""}})
            target.add(record)
            return self._reply(201)

        def do_POST(self):  # noqa: N802
            raw = self._body()
            if self.path == "/api/catalog/v1/oauth/tokens":
                form = dict(urllib.parse.parse_qsl(raw))
                world.requests.append(("POST", self.path, {k: v for k, v in form.items()
                                                            if k != "client_secret"}))
                assert self.headers["Polaris-Realm"] == "POLARIS"
                if world.principals.get(form["client_id"]) != form["client_secret"]:
                    return self._reply(401, {"error": "unauthorized_client"})
                return self._reply(200, {"access_token": f"token-for-{form['client_id']}"})
            body = json.loads(raw) if raw else None
            world.requests.append(("POST", self.path, body))
            if not self._authorized():
                return self._reply(401)
            mgmt = "/api/management/v1"
            if self.path == f"{mgmt}/catalogs":
                name = body["catalog"]["name"]
                if name in world.catalogs:
                    return self._reply(409)
                world.catalogs[name] = body["catalog"]
                return self._reply(201, body["catalog"])
            if self.path.endswith("/catalog-roles"):
                key = (self.path.split("/")[5], body["catalogRole"]["name"])
                if key in world.catalog_roles:
                    return self._reply(409)
                world.catalog_roles[key] = True
                return self._reply(201)
            if self.path == f"{mgmt}/principals":
                name = body["principal"]["name"]
                if name in world.principals:
                    return self._reply(409)
                world.principals[name] = f"secret-{name}-0"
                return self._reply(201, {"principal": {"name": name}, "credentials": {
                    "clientId": name, "clientSecret": world.principals[name]}})
            if self.path.endswith("/rotate") or self.path.endswith("/reset"):
                name = self.path.split("/")[5]
                caller = self.headers["Authorization"].removeprefix("Bearer token-for-")
                # Polaris 1.2.0: rotate is for the principal itself (a self operation),
                # reset for the root principal only (PolarisAdminService, PolarisAuthorizerImpl).
                allowed = caller == name if self.path.endswith("/rotate") else caller == "root"
                if not allowed:
                    return self._reply(403, {"error": {"message": "forbidden"}})
                if self.path.endswith("/reset") and body not in (None, {}):
                    return self._reply(400)
                world.rotations += 1
                world.principals[name] = f"secret-{name}-{world.rotations}"
                return self._reply(200, {"principal": {"name": name}, "credentials": {
                    "clientId": name, "clientSecret": world.principals[name]}})
            if self.path == f"{mgmt}/principal-roles":
                name = body["principalRole"]["name"]
                if name in world.principal_roles:
                    return self._reply(409)
                world.principal_roles.add(name)
                return self._reply(201)
            self._reply(404)

    return Handler


@pytest.fixture
def world():
    state = FakeWorld()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def platform():
    return parse_platform(effective_platform_text(render_env("kind")))


def _run(world, platform):
    store = pb.SecretStore(world.url, "lakeport", "lakeport-polaris-principal", "sa-token", None)
    pb.run(platform, pb.PolarisClient(world.url, "POLARIS"), ROOT, store, "credential",
           attempts=3, pause=0.01)


def _stored(world):
    return base64.b64decode(world.secret_data["credential"]).decode()


def test_first_run_sets_everything_up(world, platform):
    _run(world, platform)
    catalog = world.catalogs["lakeport"]
    # Only fields of the management API's Catalog schema (Polaris rejects unknown ones).
    assert set(catalog) == {"name", "type", "properties", "storageConfigInfo"}
    assert catalog["type"] == "INTERNAL"
    assert catalog["properties"] == {"default-base-location": "s3://lakeport-warehouse/"}
    assert catalog["storageConfigInfo"] == {
        "storageType": "S3",
        "allowedLocations": ["s3://lakeport-warehouse/"],
        "region": "us-east-1",
        "pathStyleAccess": True,
        "stsUnavailable": True,
        "endpoint": "http://lakeport-localstack.lakeport.svc:4566",
        "endpointInternal": "http://lakeport-localstack.lakeport.svc:4566",
    }
    assert ("lakeport", "lakeport_writer", "CATALOG_MANAGE_CONTENT") in world.grants
    assert world.assignments == {("dagster", "dagster_role")}
    assert world.role_catalog_roles == {("dagster_role", "lakeport", "lakeport_writer")}
    assert _stored(world) == "dagster:secret-dagster-0"
    # The catalog was read with the Dagster principal's own token: its grants work. No
    # namespace is made up front: runs create one per dbt schema as they write.
    assert world.namespace_listings == ["Bearer token-for-dagster"]
    assert not [r for r in world.requests if r[0] == "POST" and r[1].endswith("/namespaces")]


def test_second_run_changes_nothing(world, platform):
    _run(world, platform)
    first = _stored(world)
    patches = sum(1 for r in world.requests if r[0] == "PATCH")
    _run(world, platform)
    assert _stored(world) == first
    assert world.rotations == 0
    assert sum(1 for r in world.requests if r[0] == "PATCH") == patches


def test_lost_secret_resets_the_existing_principal(world, platform):
    _run(world, platform)
    world.secret_data.clear()  # e.g. the Secret was deleted and recreated empty
    _run(world, platform)
    assert world.rotations == 1
    assert _stored(world) == "dagster:secret-dagster-1"
    assert pb.split_credential(_stored(world)) == ("dagster", "secret-dagster-1")
    # With root's token: reset, which root may call (rotate is the principal's own).
    (call,) = [r for r in world.requests if r[1].endswith(("/rotate", "/reset"))]
    assert call == ("POST", "/api/management/v1/principals/dagster/reset", {})


def test_a_second_run_lists_before_it_grants(world, platform):
    """Polaris 1.2.0 answers a repeated grant with HTTP 500; the second run (every helm
    upgrade, or a retry of the Job) must look first and grant nothing again."""
    _run(world, platform)
    first = len(world.requests)
    _run(world, platform)
    second = world.requests[first:]
    puts = [r for r in second if r[0] == "PUT"]
    assert puts == []
    listed = [r[1] for r in second if r[0] == "GET" and r[1].startswith("/api/management")]
    assert listed == [
        "/api/management/v1/catalogs/lakeport/catalog-roles/lakeport_writer/grants",
        "/api/management/v1/principals/dagster/principal-roles",
        "/api/management/v1/principal-roles/dagster_role/catalog-roles/lakeport",
    ]


def test_wrong_root_credentials_fail_at_once(world, platform):
    store = pb.SecretStore(world.url, "lakeport", "lakeport-polaris-principal", "t", None)
    with pytest.raises(pb.HttpError) as err:
        pb.run(platform, pb.PolarisClient(world.url, "POLARIS"), "root:wrong", store, "credential",
               attempts=3, pause=0.01)
    assert err.value.status == 401
    assert world.catalogs == {}


def test_waits_for_polaris_then_gives_up(platform):
    polaris = pb.PolarisClient("http://127.0.0.1:9", "POLARIS")  # nothing listens on port 9
    with pytest.raises(RuntimeError, match="did not answer"):
        pb.wait_for_token(polaris, "root", "x", attempts=2, pause=0.01)


def test_cloud_catalog_uses_aws_s3_without_endpoint():
    cloud = parse_platform(effective_platform_text(render_env("cloud")))
    storage = pb.catalog_body(cloud)["catalog"]["storageConfigInfo"]
    assert storage["allowedLocations"] == ["s3://acme-lakeport-warehouse/iceberg/"]
    assert storage["pathStyleAccess"] is False
    assert "endpoint" not in storage and "endpointInternal" not in storage


def test_split_credential_rejects_malformed_values():
    for bad in ("", "nocolon", ":secret", "id:"):
        with pytest.raises(ValueError):
            pb.split_credential(bad)
