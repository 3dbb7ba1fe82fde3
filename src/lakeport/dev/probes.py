"""How `lakeport dev` asks a started service whether it answers: HTTP, Dagster's gRPC
ping, and the webserver's GraphQL API. Each probe returns False (never raises) while the
service is not there yet, so `processes.wait_until_ready` can poll it."""

import json
import urllib.request


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def grpc_ready(host: str, port: int) -> bool:
    """The code server answers only after it has loaded the code location."""
    from dagster._grpc.client import DagsterGrpcClient

    try:
        return DagsterGrpcClient(port=port, host=host).ping("lakeport") is not None
    except Exception:
        return False


def graphql(base_url: str, query: str, variables: dict | None = None) -> dict | None:
    """The `data` of one query to the webserver's GraphQL API; None when it does not answer."""
    request = urllib.request.Request(
        base_url + "/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response).get("data")
    except (OSError, ValueError):
        return None


_DAEMON_HEALTH = "{ instance { daemonHealth { allDaemonStatuses { required healthy } } } }"


def daemons_healthy(base_url: str) -> bool:
    """Every daemon the instance requires reports healthy (seen through the webserver)."""
    data = graphql(base_url, _DAEMON_HEALTH)
    try:
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
    except (KeyError, TypeError):
        return False
    required = [s for s in statuses if s["required"]]
    return bool(required) and all(s["healthy"] for s in required)
