"""An S3 HTTP endpoint on this machine: moto's server, run as a child process.

LocalStack plays this part in the chart; here (no Docker) moto's server is a real S3
API over HTTP that boto3, Dagster's S3ComputeLogManager and DuckDB's httpfs all talk to.
"""

import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config

from lakeport.dev.postgres import ServiceError

# moto accepts any key pair; these are only placeholders for the local endpoint.
LOCAL_ACCESS_KEY_ID = "lakeport-local"
LOCAL_SECRET_ACCESS_KEY = "lakeport-local-secret"


def _moto_server_bin() -> str:
    beside_python = Path(sys.executable).parent / "moto_server"
    found = str(beside_python) if beside_python.exists() else shutil.which("moto_server")
    if not found:
        raise ServiceError("moto_server not found: run `make install` (it installs moto[server])")
    return found


@dataclass
class S3Server:
    port: int
    host: str = "127.0.0.1"
    region: str = "us-east-1"
    log_file: Path | None = None
    _process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=LOCAL_ACCESS_KEY_ID,
            aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )

    def start(self, timeout: float = 30, env: dict | None = None) -> None:
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [_moto_server_bin(), "-H", self.host, "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )
        if self.log_file:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise ServiceError(
                    f"moto_server exited with code {self._process.returncode} while starting on "
                    f"{self.endpoint} (is the port taken?)"
                )
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    message = f"S3 endpoint {self.endpoint} not ready after {timeout}s"
                    raise ServiceError(message) from None
                time.sleep(0.2)

    def ensure_buckets(self, *names: str) -> None:
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for name in names:
            if name not in existing:
                client.create_bucket(Bucket=name)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 10) -> None:
        if not self.running():
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
