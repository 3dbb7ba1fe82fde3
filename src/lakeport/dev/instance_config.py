"""The Dagster instance (`dagster.yaml`) and workspace of the one-machine platform.

Both come from the same platform model the chart renders its instance ConfigMap from:
Postgres storage (on a connection pool), S3 compute logs, the queued run coordinator
with the run queue's limits, run monitoring and run retries. What differs is only where
things are (local ports and directories) and the run launcher: LocalRunLauncher instead
of K8sRunLauncher.
The Postgres password is referenced as an environment variable, never written here.
"""

from pathlib import Path

import yaml

from lakeport.credentials import POSTGRES_PASSWORD_ENV
from lakeport.platform import Platform
from lakeport.postgres_storage import instance_storage_config, postgres_db_config

LOCAL_RUN_LAUNCHER = {"module": "lakeport.dev.run_launcher", "class": "LocalRunLauncher"}


def dagster_instance_config(platform: Platform, compute_log_dir: Path) -> dict:
    """The contents of dagster.yaml for `platform` (its effective, local settings)."""
    pg = platform.postgres
    logs = platform.compute_logs
    dagster = platform.dagster
    queue = dagster.run_queue
    monitoring = dagster.run_monitoring
    storage = platform.object_storage
    tag_limits = [
        {"key": t.key, "limit": t.limit, **({"value": t.value} if t.value is not None else {})}
        for t in queue.tag_concurrency_limits
    ]
    return {
        # The chart's storage classes: dagster-postgres' on a connection pool.
        **instance_storage_config(postgres_db_config(
            username=pg.user,
            password={"env": POSTGRES_PASSWORD_ENV},
            hostname=pg.host,
            port=pg.port,
            db_name=pg.dagster_database,
        )),
        "compute_logs": {
            "module": "dagster_aws.s3.compute_log_manager",
            "class": "S3ComputeLogManager",
            "config": {
                "bucket": logs.bucket,
                "prefix": logs.prefix,
                "local_dir": str(compute_log_dir),
                "skip_empty_files": logs.skip_empty_files,
                "upload_interval": logs.upload_interval_seconds,
                "endpoint_url": storage.endpoint,
                "region": storage.region,
                "use_ssl": (storage.endpoint or "https:").startswith("https:"),
            },
        },
        "run_coordinator": {
            "module": "lakeport.run_coordinator",
            "class": "LakeportRunCoordinator",
            "config": {
                "max_concurrent_runs": queue.max_concurrent_runs,
                **({"tag_concurrency_limits": tag_limits} if tag_limits else {}),
            },
        },
        "run_launcher": {
            **LOCAL_RUN_LAUNCHER,
            "config": {"cgroup_limits": platform.dev.cgroup_limits},
        },
        "run_monitoring": {
            "enabled": monitoring.enabled,
            "start_timeout_seconds": monitoring.start_timeout_seconds,
            "cancel_timeout_seconds": monitoring.cancel_timeout_seconds,
            # A local worker that died cannot be resumed; LocalRunLauncher does not resume.
            "max_resume_run_attempts": 0,
            "poll_interval_seconds": monitoring.poll_interval_seconds,
        },
        "run_retries": {
            "enabled": dagster.run_retries.enabled,
            "max_retries": dagster.run_retries.max_retries,
        },
        "retention": {
            kind: {"purge_after_days": getattr(dagster.retention, kind).model_dump()}
            for kind in ("schedule", "sensor", "auto_materialize")
        },
        # No phoning home from a developer's machine (and no network here).
        "telemetry": {"enabled": False},
    }


def workspace_config(platform: Platform, host: str = "127.0.0.1") -> dict:
    """workspace.yaml: one gRPC server per code location, never imported in-process."""
    return {
        "load_from": [
            {
                "grpc_server": {
                    "host": host,
                    "port": location.port,
                    "location_name": location.name,
                }
            }
            for location in platform.code_locations
        ]
    }


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by `lakeport dev` from platform.yaml on every start; edits are lost.\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    return path
