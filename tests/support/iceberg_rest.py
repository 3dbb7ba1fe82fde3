"""A real Iceberg REST catalog server for tests: Apache Iceberg's RESTCatalogServer
(iceberg-open-api 1.10.1, fetched by `make install` into .tools/iceberg), backed by its
JDBC catalog in SQLite and the test's S3 endpoint. The server reads its catalog
properties from CATALOG_* variables (RCKUtils.environmentCatalogConfig in that jar:
`CATALOG_` stripped, `__` -> `-`, `_` -> `.`, lower-cased)."""

import shutil
from dataclasses import dataclass
from pathlib import Path

from lakeport.dev.probes import http_ok
from lakeport.dev.processes import ServiceProcess, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]
JAR = ROOT / ".tools" / "iceberg" / "iceberg-rest-server-1.10.1.jar"


@dataclass
class IcebergRestServer:
    port: int
    s3_endpoint: str
    warehouse: str
    data_dir: Path
    process: ServiceProcess | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        java = shutil.which("java")
        if java is None or not JAR.is_file():
            raise RuntimeError(f"the Iceberg REST server needs java and {JAR}: run `make install`")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": "/usr/bin:/bin",
            "CATALOG_REST_PORT": str(self.port),
            "CATALOG_WAREHOUSE": self.warehouse,
            "CATALOG_URI": f"jdbc:sqlite:file:{self.data_dir / 'catalog.db'}",
            "CATALOG_IO__IMPL": "org.apache.iceberg.aws.s3.S3FileIO",
            "CATALOG_S3_ENDPOINT": self.s3_endpoint,
            "CATALOG_S3_PATH__STYLE__ACCESS": "true",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
        }
        self.process = ServiceProcess(
            "iceberg-rest", [java, "-Xmx512m", "-jar", str(JAR)], self.data_dir / "server.log",
            env=env,
        )
        self.process.start()
        wait_until_ready(self.process, lambda: http_ok(f"{self.uri}/v1/config"), timeout,
                         interval=0.3)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
