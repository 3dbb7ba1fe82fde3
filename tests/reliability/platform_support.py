"""The local platform with a hand on each of its processes, for killing and restarting them.

`lakeport dev` (the supervisor) stops the whole platform when one service dies; that is its
documented behaviour, and tests/dev covers it. Here we want the other half of the story:
what Dagster does when one part goes away and comes back, as a Kubernetes pod restarts
under its Deployment. So the platform is started by the supervisor's own DevPlatform
(same instance config, same processes, same ports logic) inside the test process, without
its watch loop, and the tests stop and start the parts themselves.

DevPlatform.stop() ends with a sweep of every descendant of the calling process; inside
pytest that would also kill the session's PostgreSQL and moto fixtures, so `shutdown`
stops only what this platform started.
"""

import os
import signal
import time
from pathlib import Path

import psycopg
from dagster import DagsterInstance
from support.dev_platform import graphql, launch_run
from support.waiting import wait_for

from lakeport.dev.options import HOST, DevOptions
from lakeport.dev.ports import free_port
from lakeport.dev.probes import grpc_ready
from lakeport.dev.processes import ServiceProcess, wait_until_ready
from lakeport.dev.supervisor import DevPlatform

HERE = Path(__file__).resolve().parent
LOCATION = "reliability"


class FaultPlatform:
    def __init__(self, data_dir: Path, platform_file: Path):
        options = DevOptions(
            platform_file=platform_file, data_dir=data_dir,
            webserver_port=free_port(),
            postgres_port=free_port(), s3_port=free_port(),
        )
        self.out_file = data_dir / "lakeport-dev.out"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._out = open(self.out_file, "a")  # noqa: SIM115
        self.dev = DevPlatform(options, out=self._out)
        self.platform = self.dev.platform
        self.data_dir = self.dev.data_dir

    # --- whole platform --------------------------------------------------------------------

    def start(self) -> float:
        started = time.monotonic()
        # The test code location and the run workers import reliability_location from here.
        path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(HERE) + (os.pathsep + path if path else "")
        try:
            self.dev.start()
        except BaseException:
            self.shutdown()
            raise
        finally:
            if path is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = path
        return time.monotonic() - started

    def shutdown(self) -> None:
        for service in reversed(self.dev.services):
            service.stop()
        if self.dev.s3:
            self.dev.s3.stop()
        if self.dev.postgres:
            self.dev.postgres.stop()
        self._out.close()

    # --- the parts ---------------------------------------------------------------------------

    def service(self, name: str) -> ServiceProcess:
        return next(s for s in self.dev.services if s.name == name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a Dagster service's process alone (not its group: the daemon's group
        holds the run workers, which a crash of the daemon's pod would not take along)."""
        os.kill(self.service(name).pid, sig)
        self.service(name)._process.wait(30)

    def restart_code_server(self) -> None:
        """Start the code server again with the same command, as its Deployment would."""
        service = self.service(f"code server '{LOCATION}'")
        service.start()
        port = self.platform.code_locations[0].port
        wait_until_ready(service, lambda: grpc_ready(HOST, port), 120, interval=0.5)

    def restart_s3(self) -> None:
        """Start the S3 endpoint again and put back what the supervisor's copy holds (moto
        keeps objects in memory only, as LocalStack without persistence does)."""
        self.dev.s3.start()
        self.dev.s3.ensure_buckets(self.platform.compute_logs.bucket,
                                   self.platform.catalog.warehouse_bucket)
        self.dev.snapshot.restore()

    # --- looking at it -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.dev.webserver_url

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        return graphql(self.url, query, variables, timeout)

    def postgres(self) -> psycopg.Connection:
        return self.dev.postgres.connect(self.platform.postgres.dagster_database,
                                         autocommit=True)

    def instance(self) -> DagsterInstance:
        """A DagsterInstance on the platform's own dagster.yaml (as the webserver has)."""
        os.environ.setdefault("LAKEPORT_POSTGRES_PASSWORD", self.dev.postgres.password)
        return DagsterInstance.from_config(str(self.dev.dagster_home))

    def log(self, name: str) -> str:
        return (self.dev.logs_dir / name).read_text(errors="replace")


def launch(platform: FaultPlatform, job: str, run_config: dict | None = None,
           tags: dict | None = None) -> str:
    return launch_run(platform, LOCATION, job, run_config, tags)


def tiny_config(seconds: float) -> dict:
    return {"ops": {"say_and_wait": {"config": {"seconds": seconds}}}}


def run_status(platform: FaultPlatform, run_id: str) -> str:
    with platform.postgres() as conn:
        row = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
    return row[0] if row else "MISSING"


def wait_finished(platform: FaultPlatform, run_id: str, timeout: float = 180) -> str:
    finished = ("SUCCESS", "FAILURE", "CANCELED")
    return wait_for(lambda: (s := run_status(platform, run_id)) in finished and s,
                    what=f"run {run_id} to finish", timeout=timeout)
