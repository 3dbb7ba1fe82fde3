"""What every benchmark shares: the machine it ran on, a printed table, the results file."""

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"

_PACKAGES = ("duckdb", "dagster", "dagster-dbt", "dagster-postgres", "dbt-core", "dbt-duckdb",
             "pyiceberg")


def machine() -> dict:
    """The facts a reader needs before comparing figures from two machines."""
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "kernel": platform.release(),
        # Other work on the machine moves every timing: read the figures with this.
        "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in _PACKAGES},
    }


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def code_under_test() -> dict:
    """The commit, and whether lakeport's sources differ from it. Taken when a benchmark
    starts: its child processes import lakeport afresh, so what counts is the code then."""
    try:
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True,
            text=True, check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        changed = None
    return {"git_commit": git_commit(),
            "src_changes_not_committed": None if changed is None else len(changed)}


def write_result(name: str, payload: dict, output: Path | None = None,
                 code: dict | None = None) -> Path:
    """Write `bench/results/<name>.json` (or `output`) with the machine and a timestamp."""
    document = {
        "benchmark": name,
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **(code or code_under_test()),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        **payload,
    }
    path = output or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole then renamed: an interrupted run never leaves half a results file.
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    print(f"\nwrote {path}")
    return path


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def median(values: list[float]) -> float:
    return statistics.median(values)


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / (1 << 20):.0f} MiB"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def print_targets(targets: dict) -> None:
    for name, target in targets.items():
        print(f"{'PASS' if target['pass'] else 'FAIL'}  {name}: {target['target']} "
              f"(measured {target['value']})")


def finish(name: str, payload: dict, targets: dict, output: Path | None, code: dict) -> int:
    """The end of a benchmark's main: print its targets, write its results file (the
    targets last in it) and return the exit status, 0."""
    print_targets(targets)
    write_result(name, {**payload, "targets": targets}, output, code)
    return 0


@contextlib.contextmanager
def local_s3(*buckets: str, **env: str) -> Iterator:
    """A real S3 endpoint (moto's server, lakeport.dev.s3) with `buckets`, and its keys
    (plus `env`) in this process's environment, both for the block only: a caller in the
    same process (a smoke test inside pytest) must not inherit them."""
    from lakeport.dev.ports import free_port
    from lakeport.dev.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, S3Server

    s3 = S3Server(port=free_port())
    with mock.patch.dict(os.environ, {"AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
                                      "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY, **env}):
        try:
            s3.start()
            s3.ensure_buckets(*buckets)
            yield s3
        finally:
            s3.stop()
