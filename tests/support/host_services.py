"""The chart's external services, run on this host for the local cluster (scripts/e2e-local.sh).

The images of postgres, apache/polaris and localstack cannot be pulled here, so their parts
run as host processes on the cluster bridge's address, where pods reach them exactly as they
reach a managed database, S3 and a catalog outside a cloud cluster
(platform-config/local-cluster/platform.yaml: postgres.enabled, polaris.enabled and
localstack.enabled all false):

- PostgreSQL (Debian's binaries), database `dagster`, password auth from the pod network;
- an S3 endpoint (moto's server) with the warehouse and compute-log buckets;
- Apache Iceberg's own REST catalog server (tests/support/iceberg_rest.py) on that S3;
- an OpenLineage endpoint with a token (tests/support/lineage_receiver.py), standing in for
  Marquez: the events the run pods send land in DIR/lineage-events.jsonl.

    PYTHONPATH=tests python -m support.host_services --address 10.244.0.1 --dir DIR

runs them until SIGTERM or SIGINT. When all answer it writes DIR/ready, and the Secret
values the chart's pods need, one file each (mode 0600), under DIR/secrets/.
"""

import argparse
import secrets
import shutil
import signal
import sys
import threading
from pathlib import Path

from lakeport.dev.postgres import PostgresServer
from lakeport.dev.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, S3Server
from support.iceberg_rest import IcebergRestServer
from support.lineage_receiver import LineageReceiver

POSTGRES_PORT = 5432
S3_PORT = 4566
CATALOG_PORT = 8181
LINEAGE_PORT = 5000
LINEAGE_EVENTS = "lineage-events.jsonl"
BUCKETS = ("lakeport-warehouse", "lakeport-compute-logs")
WAREHOUSE = "s3://lakeport-warehouse/"
POD_NETWORK = "10.244.0.0/24"


def write_secret(directory: Path, name: str, value: str) -> None:
    path = directory / name
    path.touch(mode=0o600)
    path.write_text(value)


def allow_pod_network(server: PostgresServer, network: str) -> None:
    """initdb allows TCP from loopback only; the pods connect from the bridge's network."""
    hba = server.pgdata / "pg_hba.conf"
    line = f"host all all {network} scram-sha-256\n"
    if line not in hba.read_text():
        with hba.open("a") as f:
            f.write(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="address to serve on (the bridge's)")
    parser.add_argument("--dir", required=True, type=Path, help="data, logs and secrets")
    args = parser.parse_args(argv)
    base: Path = args.dir
    base.mkdir(parents=True, exist_ok=True)
    secret_dir = base / "secrets"
    secret_dir.mkdir(mode=0o700, exist_ok=True)
    (base / "ready").unlink(missing_ok=True)
    # Each start is a new platform: a new password, and S3 (moto, in memory) starts empty.
    # What a run killed before its clean-up left behind would not match either: its
    # Postgres cluster holds another password, its catalog names files that are gone.
    for leftover in (base / "postgres", base / "iceberg-rest"):
        shutil.rmtree(leftover, ignore_errors=True)

    password = secrets.token_urlsafe(24)
    postgres = PostgresServer(
        data_dir=base / "postgres", port=POSTGRES_PORT, password=password, host=args.address,
        durable=False,
    )
    s3 = S3Server(port=S3_PORT, host=args.address, log_file=base / "s3.log")
    catalog = IcebergRestServer(
        port=CATALOG_PORT, s3_endpoint=s3.endpoint, warehouse=WAREHOUSE,
        data_dir=base / "iceberg-rest",
    )
    lineage_token = secrets.token_urlsafe(24)
    (base / LINEAGE_EVENTS).unlink(missing_ok=True)
    lineage = LineageReceiver(host=args.address, port=LINEAGE_PORT, token=lineage_token,
                              events_file=base / LINEAGE_EVENTS)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        postgres.initialize()
        allow_pod_network(postgres, POD_NETWORK)
        postgres.start()
        postgres.ensure_database("dagster")
        s3.start()
        s3.ensure_buckets(*BUCKETS)
        catalog.start()
        write_secret(secret_dir, "postgres-password", password)
        write_secret(secret_dir, "s3-access-key-id", LOCAL_ACCESS_KEY_ID)
        write_secret(secret_dir, "s3-secret-access-key", LOCAL_SECRET_ACCESS_KEY)
        # Apache's REST server does not check client credentials; the chart still wires one
        # through a Secret, as it would for any external catalog.
        write_secret(secret_dir, "catalog-credential", f"lakeport:{secrets.token_urlsafe(16)}")
        write_secret(secret_dir, "lineage-token", lineage_token)
        (base / "ready").write_text(
            f"postgres {args.address}:{POSTGRES_PORT}\ns3 {s3.endpoint}\ncatalog {catalog.uri}\n"
            f"lineage {lineage.url}\n"
        )
        print(f"host-services: ready on {args.address}", flush=True)
        while not stop.wait(1):
            servers = (("postgres", postgres), ("s3", s3), ("catalog", catalog.process),
                       ("lineage", lineage))
            for name, server in servers:
                if not server.running():
                    print(f"host-services: {name} exited", file=sys.stderr, flush=True)
                    return 1
        return 0
    finally:
        lineage.stop()
        catalog.stop()
        s3.stop()
        postgres.stop()


if __name__ == "__main__":
    sys.exit(main())
