"""An S3 HTTP endpoint on this machine: moto's server, run as a child process.

LocalStack plays this part in the chart; here (no Docker) moto's server is a real S3
API over HTTP that boto3, Dagster's S3ComputeLogManager and DuckDB's httpfs all talk to.
"""

import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

from lakeport.dev.processes import (
    ServerProcess,
    ServiceProcess,
    find_executable,
    wait_until_ready,
)

# moto accepts any key pair; these are only placeholders for the local endpoint.
LOCAL_ACCESS_KEY_ID = "lakeport-local"
LOCAL_SECRET_ACCESS_KEY = "lakeport-local-secret"
_MOTO_INSTALL = "run `make install` (it installs moto[server])"


@dataclass
class S3Server(ServerProcess):
    """moto's S3 server on `host:port`; its objects live in its memory only."""

    port: int
    host: str = "127.0.0.1"
    region: str = "us-east-1"
    log_file: Path | None = None

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
        self._service = ServiceProcess(
            f"the S3 endpoint {self.endpoint}",
            [find_executable("moto_server", _MOTO_INSTALL), "-H", self.host, "-p", str(self.port)],
            self.log_file, env=env,
            # Tests start it from fixtures on any thread; the server must outlive those.
            die_with_parent=False,
        )
        self._service.start()
        wait_until_ready(self._service, self._answers, timeout, hint="is the port taken?")

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).close()
            return True
        except OSError:
            return False

    def ensure_buckets(self, *names: str) -> None:
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for name in names:
            if name not in existing:
                client.create_bucket(Bucket=name)
