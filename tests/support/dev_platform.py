"""Running `lakeport dev` the way `make dev` does, as a subprocess, and watching its processes."""

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from lakeport.dev.ports import free_port, port_in_use
from lakeport.dev.processes import descendants_of

ROOT = Path(__file__).resolve().parents[2]
LOCAL_PLATFORM = ROOT / "platform-config" / "local" / "platform.yaml"
# The `lakeport` command of the environment running the tests (`make dev` uses .venv's).
LAKEPORT = Path(sys.executable).parent / "lakeport"


def make_data_dir(prefix: str = "lakeport-dev-") -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    # The PostgreSQL server runs as `postgres` under root and must traverse this directory.
    path.chmod(0o755)
    return path


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid`: tells a live process from a later one with its pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[19]


@dataclass
class DevPlatformProcess:
    """`lakeport dev` on free ports and a private data directory."""

    data_dir: Path
    webserver_port: int = field(default_factory=free_port)
    code_server_port: int = field(default_factory=free_port)
    postgres_port: int = field(default_factory=free_port)
    s3_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    # Every (pid, start time) seen below the supervisor, sampled while it runs.
    seen: set[tuple[int, str]] = field(default_factory=set)
    _watching: threading.Event = field(default_factory=threading.Event)
    _output: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def ports(self) -> list[int]:
        return [self.webserver_port, self.code_server_port, self.postgres_port, self.s3_port]

    def argv(self) -> list[str]:
        return [
            str(LAKEPORT), "dev", str(LOCAL_PLATFORM), "--data-dir", str(self.data_dir),
            "--webserver-port", str(self.webserver_port),
            "--code-server-port", str(self.code_server_port),
            "--postgres-port", str(self.postgres_port), "--s3-port", str(self.s3_port),
            "--s3-snapshot-interval", "5",
        ]

    def output(self, since: int = 0) -> str:
        if not self._output or not self._output.exists():
            return ""
        return self._output.read_bytes()[since:].decode(errors="replace")

    def start(self, timeout: float = 300) -> float:
        """Start and wait for the ready line; return the seconds it took."""
        started = time.monotonic()
        self._output = self.data_dir.parent / f"{self.data_dir.name}-lakeport-dev.out"
        # A restart appends to the same file: only what this start prints counts.
        offset = self._output.stat().st_size if self._output.exists() else 0
        with open(self._output, "ab") as out:
            self.process = subprocess.Popen(
                self.argv(), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )
        self._watching.clear()
        threading.Thread(target=self._watch, daemon=True).start()
        while "Dagster UI:" not in self.output(offset):
            if self.process.poll() is not None:
                raise AssertionError(f"lakeport dev exited with {self.process.returncode}:\n"
                                     + self.output(offset))
            if time.monotonic() - started > timeout:
                raise AssertionError(f"lakeport dev not ready after {timeout}s:\n"
                                     + self.output(offset))
            time.sleep(0.5)
        return time.monotonic() - started

    def _watch(self) -> None:
        while not self._watching.is_set() and self.process.poll() is None:
            for pid in descendants_of(self.process.pid):
                start = _start_time(pid)
                if start:
                    self.seen.add((pid, start))
            time.sleep(0.5)

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM, as Ctrl-C or a process manager would; return the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        finally:
            self._watching.set()
        return code

    def leftovers(self) -> list[str]:
        """Processes the platform started that are still alive (pid reuse excluded)."""
        alive = []
        for pid, start in sorted(self.seen):
            if _start_time(pid) == start:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                alive.append(f"{pid}: {cmdline.decode(errors='replace')[:200]}")
        return alive

    def remove_data(self) -> None:
        """Delete the data directory and the captured output (after a clean stop)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self._output:
            self._output.unlink(missing_ok=True)

    def ports_in_use(self) -> list[int]:
        return [port for port in self.ports if port_in_use(port)]

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(self.url, query, variables)


# --- Dagster's GraphQL API, as the UI uses it (tests/dev and tests/reliability) -------------

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    """POST one query to the webserver at `url`; its `data` (GraphQL errors fail the test)."""
    request = urllib.request.Request(
        url + "/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.load(response)
    assert "errors" not in body, body
    return body["data"]


def launch_run(platform, location: str, job: str, run_config: dict | None = None,
               tags: dict | None = None, assets: list[list[str]] | None = None) -> str:
    """Launch `job` of the code location through `platform.graphql`; the new run's id.
    `assets` selects asset keys (paths), as the UI's "Materialize" does on `__ASSET_JOB`."""
    selector = {"repositoryLocationName": location, "repositoryName": "__repository__",
                "jobName": job}
    if assets is not None:
        selector["assetSelection"] = [{"path": path} for path in assets]
        selector["assetCheckSelection"] = []
    params = {
        "selector": selector,
        "runConfigData": run_config or {},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
    }
    result = platform.graphql(LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]
