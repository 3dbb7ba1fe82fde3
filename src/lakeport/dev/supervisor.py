"""`lakeport dev`: the whole platform on one machine, started and stopped as one.

Order of start: PostgreSQL (Dagster's storage), the S3 endpoint (compute logs, the
Iceberg warehouse), the Iceberg catalog, the code location's gRPC server, the webserver,
the daemon. Each is reported when it answers, not when its process exists. Any signal
(Ctrl-C, SIGTERM) or a service dying stops everything in reverse order; stopping a
service stops its process group, and as the subreaper of its descendants the supervisor
finally stops anything that escaped its group.
"""

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from lakeport.config import PLATFORM_FILE_ENV, PlatformFileError
from lakeport.credentials import (
    POSTGRES_PASSWORD_ENV,
    S3_ACCESS_KEY_ID_ENV,
    S3_SECRET_ACCESS_KEY_ENV,
)
from lakeport.dev import cgroups, processes
from lakeport.dev.dev_secrets import postgres_password
from lakeport.dev.instance_config import dagster_instance_config, workspace_config, write_yaml
from lakeport.dev.options import HOST, DevOptions, effective_platform
from lakeport.dev.ports import port_in_use
from lakeport.dev.postgres import PostgresServer, find_postgres_bin
from lakeport.dev.probes import daemons_healthy, graphql, grpc_ready, http_ok
from lakeport.dev.processes import (
    ServiceError,
    ServiceProcess,
    Stopped,
    find_executable,
    wait_until_ready,
)
from lakeport.dev.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, S3Server
from lakeport.dev.s3_snapshot import S3Snapshot
from lakeport.platform import CodeLocation

_INSTALL = "run `make install` (it installs the pinned Python packages into .venv)"


class DevPlatform:
    """The platform on this machine: `start` brings the services up in order (each ready
    before the next), `serve` watches them, `stop` takes them down in reverse order.

    `run` below is the command around it; the tests drive it directly."""

    def __init__(self, options: DevOptions, out=sys.stdout):
        self.options = options
        self.out = out
        self.platform = effective_platform(options)
        self.data_dir = Path(self.platform.dev.data_dir)
        self.logs_dir = self.data_dir / "logs"
        self.dagster_home = self.data_dir / "dagster"
        self.stop_requested = threading.Event()
        self.postgres: PostgresServer | None = None
        self.s3: S3Server | None = None
        self.snapshot: S3Snapshot | None = None
        self.services: list[ServiceProcess] = []

    # --- helpers ----------------------------------------------------------------------------

    def say(self, message: str) -> None:
        print(f"lakeport dev: {message}", file=self.out, flush=True)

    @property
    def webserver_url(self) -> str:
        return f"http://{HOST}:{self.platform.dagster.webserver.port}"

    @property
    def s3_port(self) -> int:
        return urlsplit(self.platform.object_storage.endpoint).port

    def _wait(self, service: ServiceProcess, ready: Callable[[], bool], what: str) -> None:
        wait_until_ready(service, ready, self.options.startup_timeout, what=what,
                         stop_requested=self.stop_requested, interval=0.3)

    # --- preflight -------------------------------------------------------------------------------

    def preflight(self) -> dict[str, str]:
        """Fail before starting anything: taken ports, missing programs."""
        platform = self.platform
        ports = {
            "PostgreSQL": (platform.postgres.port, "--postgres-port"),
            "the S3 endpoint": (self.s3_port, "--s3-port"),
            **{
                f"the code server of location '{location.name}'": (
                    location.port, f"codeLocations[{i}].port or --code-server-port"
                )
                for i, location in enumerate(platform.code_locations)
            },
            "the webserver": (platform.dagster.webserver.port, "--webserver-port"),
        }
        seen = {}
        for name, (port, flag) in ports.items():
            if port in seen:
                raise ServiceError(f"{name} and {seen[port]} are both set to port {port}; "
                                   f"pass {flag} to move one")
            seen[port] = name
            if port_in_use(port, HOST):
                raise ServiceError(
                    f"port {port} on {HOST} (for {name}) is already in use: stop what uses "
                    f"it (another `make dev`?) or pass {flag} PORT"
                )
        find_postgres_bin()
        return {
            "moto_server": find_executable("moto_server", _INSTALL + " (moto[server])"),
            "dagster-webserver": find_executable("dagster-webserver", _INSTALL),
            "dagster-daemon": find_executable("dagster-daemon", _INSTALL),
        }

    # --- start -----------------------------------------------------------------------------------

    def start(self) -> None:
        started = time.monotonic()
        programs = self.preflight()
        for directory in (self.data_dir, self.logs_dir, self.dagster_home):
            directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # As root, PostgreSQL runs as `postgres`, which must be able to pass through
            # the data directory to reach its own cluster below it (secrets/ stays 0700).
            self.data_dir.chmod(self.data_dir.stat().st_mode | 0o111)
        processes.become_subreaper()
        self._start_postgres()
        self._start_s3()
        env = self._service_env()
        self._prepare_catalog(env)
        self._start_code_servers(env)
        self._start_webserver(env, programs["dagster-webserver"])
        self._start_daemon(env, programs["dagster-daemon"])
        self.say(f"all services ready in {time.monotonic() - started:.0f}s")
        self.say(f"Dagster UI: {self.webserver_url}  (Ctrl-C stops everything)")

    def _start_postgres(self) -> None:
        pg = self.platform.postgres
        cluster_dir = self.data_dir / "postgres"
        password = postgres_password(self.data_dir, cluster_dir / "pgdata")
        self.postgres = PostgresServer(
            data_dir=cluster_dir, port=pg.port, password=password, user=pg.user, host=HOST,
            log_file=self.logs_dir / "postgres.log",
        )
        self._password = password
        self.postgres.start(timeout=60)
        self.postgres.ensure_database(pg.dagster_database)
        self.say(f"PostgreSQL ready on {HOST}:{pg.port} (data in {shown(cluster_dir)})")

    def _start_s3(self) -> None:
        self.s3 = S3Server(port=self.s3_port, host=HOST, region=self.platform.object_storage.region,
                           log_file=self.logs_dir / "s3.log")
        self.s3.start()
        buckets = [self.platform.compute_logs.bucket, self.platform.catalog.warehouse_bucket]
        self.s3.ensure_buckets(*buckets)
        self.snapshot = S3Snapshot(self.data_dir / "s3", self.s3.client(), buckets)
        restored = self.snapshot.restore()
        self.say(f"S3 endpoint ready on {self.s3.endpoint} (buckets {', '.join(buckets)}; "
                 f"{restored} objects restored from {shown(self.data_dir / 's3')})")

    def _service_env(self) -> dict[str, str]:
        platform_file = self.data_dir / "platform.yaml"
        write_yaml(platform_file, self.platform.model_dump(mode="json", by_alias=True,
                                                           exclude_none=True))
        compute_log_dir = Path(self.platform.compute_logs.local_dir)
        write_yaml(self.dagster_home / "dagster.yaml",
                   dagster_instance_config(self.platform, compute_log_dir))
        write_yaml(self.dagster_home / "workspace.yaml", workspace_config(self.platform, HOST))
        env = dict(os.environ)
        env.update({
            "DAGSTER_HOME": str(self.dagster_home),
            PLATFORM_FILE_ENV: str(platform_file),
            POSTGRES_PASSWORD_ENV: self._password,
            S3_ACCESS_KEY_ID_ENV: LOCAL_ACCESS_KEY_ID,
            S3_SECRET_ACCESS_KEY_ENV: LOCAL_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": self.platform.object_storage.region,
            "AWS_ENDPOINT_URL_S3": self.platform.object_storage.endpoint,
        })
        return env

    def _prepare_catalog(self, env: dict[str, str]) -> None:
        if self.platform.catalog.type != "sql":
            raise ServiceError("catalog.type must be 'sql' for `make dev` (no Polaris here); "
                               f"{self.options.platform_file} sets {self.platform.catalog.type!r}")
        # pyiceberg reads credentials from the environment, as the services will.
        from lakeport.dev.catalog_setup import ensure_catalog

        path, tables = ensure_catalog(self.platform, env)
        catalog = self.platform.catalog
        self.say(f"Iceberg catalog ready (SQL catalog {shown(path)}, {tables} tables, "
                 f"warehouse {catalog.warehouse})")

    def _start_code_servers(self, env: dict[str, str]) -> None:
        for location in self.platform.code_locations:
            self._start_code_server(location, env)

    def _start_code_server(self, location: CodeLocation, env: dict[str, str]) -> None:
        from lakeport.dev.dbt_prepare import prepare_stale_projects

        try:
            for project in prepare_stale_projects(location.module):
                self.say(f"dbt manifest prepared for {shown(project)}")
        except RuntimeError as exc:  # dbt parse failed: its output says why
            raise ServiceError(
                f"cannot prepare the dbt manifest of {location.module} (code location "
                f"'{location.name}'): {exc}"
            ) from None
        log = self.logs_dir / f"code-server-{location.name}.log"
        service = ServiceProcess(
            f"code server '{location.name}'",
            [sys.executable, "-m", "dagster", "api", "grpc", "-m", location.module, "-h", HOST,
             "-p", str(location.port), "--location-name", location.name,
             # Run workers start with this very interpreter, whatever is on PATH.
             "--use-python-environment-entry-point",
             "--log-level", self.platform.dagster.daemon.log_level.lower()],
            # The location's own settings, as its pods get them on Kubernetes.
            log, env={**env, **location.env},
        )
        self._launch(service)
        self._wait(service, lambda: grpc_ready(HOST, location.port),
                   f"the code server of '{location.name}'")
        self.say(f"code server ready on {HOST}:{location.port} ({location.module}, location "
                 f"'{location.name}')")

    def _start_webserver(self, env: dict[str, str], program: str) -> None:
        web = self.platform.dagster.webserver
        log = self.logs_dir / "webserver.log"
        service = ServiceProcess(
            "webserver",
            [program, "-h", HOST, "-p", str(web.port),
             "-w", str(self.dagster_home / "workspace.yaml"),
             "--dagster-log-level", web.log_level.lower()],
            log, env=env,
        )
        self._launch(service)
        self._wait(service, lambda: http_ok(self.webserver_url + "/server_info"), "the webserver")
        self.say(f"webserver ready on {self.webserver_url}")

    def _start_daemon(self, env: dict[str, str], program: str) -> None:
        log = self.logs_dir / "daemon.log"
        service = ServiceProcess(
            "daemon",
            [program, "run", "-w", str(self.dagster_home / "workspace.yaml"),
             "--log-level", self.platform.dagster.daemon.log_level.lower()],
            log, env=env,
        )
        self._launch(service)
        self._wait(service, lambda: daemons_healthy(self.webserver_url), "the daemon")
        self.say("daemon ready (run queue, schedules, sensors, run monitoring)")

    def _launch(self, service: ServiceProcess) -> None:
        service.start()
        self.services.append(service)

    # --- run until stopped ---------------------------------------------------------------

    def serve(self) -> int:
        """Watch the services until a signal; 1 when one of them died on its own."""
        last_snapshot = time.monotonic()
        while not self.stop_requested.wait(0.5):
            processes.reap_children()
            for service in self.services:
                if not service.running():
                    self.say(f"{service.name} exited with code {service.returncode}; stopping "
                             f"everything. Last lines of {service.log_file}:\n"
                             f"{service.log_tail()}")
                    return 1
            for name, server in (("PostgreSQL", self.postgres), ("S3 endpoint", self.s3)):
                if not server.running():
                    self.say(f"{name} exited; stopping everything (see {self.logs_dir})")
                    return 1
            if time.monotonic() - last_snapshot >= self.options.s3_snapshot_interval:
                self._save_snapshot(quiet=True)
                last_snapshot = time.monotonic()
        return 0

    def _save_snapshot(self, quiet: bool = False) -> None:
        if not (self.snapshot and self.s3 and self.s3.running()):
            return
        try:
            fetched = self.snapshot.save()
        except Exception as exc:  # a snapshot failure must not take the platform down
            self.say(f"could not copy S3 objects to {self.snapshot.directory}: {exc}")
            return
        if not quiet:
            self.say(f"S3 objects kept in {shown(self.snapshot.directory)} "
                     f"({self.snapshot.object_count()} objects, {fetched} updated)")

    def _cancel_active_runs(self, timeout: float = 60) -> None:
        """Terminate running runs through the UI's own API, so they end CANCELED (as the
        user asked) instead of FAILED by an unexplained interrupt, which run retries would
        start again on the next `make dev`. Queued runs stay queued for the next start."""
        active = graphql(self.webserver_url, _ACTIVE_RUNS)
        run_ids = [r["runId"] for r in (active or {}).get("runsOrError", {}).get("results", [])]
        if not run_ids:
            return
        self.say(f"cancelling {len(run_ids)} running run(s)")
        for run_id in run_ids:
            graphql(self.webserver_url, _TERMINATE, {"runId": run_id})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = graphql(self.webserver_url, _ACTIVE_RUNS)
            if not (left or {}).get("runsOrError", {}).get("results"):
                return
            time.sleep(1)

    # --- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        if not (self.services or self.postgres or self.s3):
            return  # nothing was started (a preflight check failed)
        if any(s.name == "webserver" and s.running() for s in self.services):
            self._cancel_active_runs()
        # Dagster first (the daemon's group holds the run workers), so nothing writes to
        # Postgres or S3 after those stop; S3 is copied out before its memory goes.
        for service in reversed(self.services):
            if service.pid is not None:
                self.say(f"stopping {service.name}")
                service.stop()
        self.services.clear()
        self._save_snapshot()
        if self.s3:
            self.say("stopping S3 endpoint")
            self.s3.stop()
        if self.postgres:
            self.say("stopping PostgreSQL")
            self.postgres.stop()
        leftover = processes.reap_orphans()
        if leftover:
            self.say(f"stopped {len(leftover)} leftover process(es): {leftover}")
        cgroups.remove_stale()
        self.say("stopped")


def run(options: DevOptions) -> int:
    """The `lakeport dev` command: start, serve until a signal, stop. Returns the exit code."""
    stop_requested = threading.Event()

    def request_stop(signum, _frame):
        stop_requested.set()

    # Before anything starts, so a signal at any point later leads to an orderly stop.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        platform = DevPlatform(options)
    except (PlatformFileError, ValidationError) as exc:
        problems = exc.problems if isinstance(exc, PlatformFileError) else [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        ]
        for problem in problems:
            print(f"lakeport dev: {problem}", file=sys.stderr)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        return 1
    platform.stop_requested = stop_requested
    code = 0
    try:
        platform.start()
        code = platform.serve()
    except Stopped:
        code = 0
    except ServiceError as exc:
        print(f"lakeport dev: {exc}", file=sys.stderr)
        code = 1
    finally:
        platform.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def shown(path: Path) -> str:
    """A path as the user gave it: relative to the working directory when inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


_ACTIVE_RUNS = (
    "{ runsOrError(filter: {statuses: [STARTING, STARTED, CANCELING]}) "
    "{ ... on Runs { results { runId } } } }"
)
_TERMINATE = (
    "mutation Terminate($runId: String!) { terminateRun(runId: $runId) { __typename } }"
)
