"""DuckDB in a real memory cgroup (cgroup v1, as root): with lakeport's settings an
aggregation far bigger than memory spills and completes; with DuckDB's defaults, next to
the rest of a run pod's memory, the kernel OOM-kills it.

The cgroup stands in for a run pod's container: 1 GiB limit, and a ballast process that
holds what the Dagster run worker holds in the same pod (~320 MiB).
"""

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lakeport.duckdb_settings import DEFAULT_MEMORY_FRACTION

MEMORY_HIERARCHY = Path("/sys/fs/cgroup/memory")
MiB = 1 << 20
LIMIT = 1024 * MiB
WORKER_BALLAST = 320 * MiB
GROUPS = 30_000_000
WORKER = Path(__file__).with_name("spill_worker.py")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (MEMORY_HIERARCHY / "memory.limit_in_bytes").exists(),
    reason="needs root and a cgroup v1 memory hierarchy at /sys/fs/cgroup/memory",
)

BALLAST = f"""
import sys, time
ballast = bytearray({WORKER_BALLAST})
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def pod_cgroup():
    cgroup = MEMORY_HIERARCHY / f"lakeport-test-{secrets.token_hex(4)}"
    cgroup.mkdir()
    started: list[subprocess.Popen] = []
    try:
        (cgroup / "memory.limit_in_bytes").write_text(str(LIMIT))
        ballast = _start_in(cgroup, [sys.executable, "-c", BALLAST])
        started.append(ballast)
        assert ballast.stdout.readline().strip() == "ready"
        yield cgroup, started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
        # The kernel removes a cgroup only once it holds no process.
        for _ in range(50):
            try:
                cgroup.rmdir()
                break
            except OSError:
                time.sleep(0.1)
        assert not cgroup.exists(), f"could not remove test cgroup {cgroup}"


def _start_in(cgroup: Path, argv: list[str], oom_first: bool = False, cwd=None):
    def enter():
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))
        if oom_first:
            # If the cgroup runs out, the kernel must kill DuckDB, not the ballast standing
            # in for the run worker (unprivileged code may raise its own score, not lower).
            Path("/proc/self/oom_score_adj").write_text("500")

    return subprocess.Popen(
        argv, preexec_fn=enter, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=cwd,
    )


def _oom_kills(cgroup: Path) -> int:
    for line in (cgroup / "memory.oom_control").read_text().splitlines():
        if line.startswith("oom_kill "):
            return int(line.split()[1])
    raise AssertionError("memory.oom_control has no oom_kill counter")


def _run_worker(cgroup, started, mode, spill_dir: Path, cwd: Path):
    peak = {"bytes": 0}
    done = threading.Event()

    def watch():
        while not done.is_set():
            size = sum(p.stat().st_size for p in spill_dir.rglob("*") if p.is_file())
            peak["bytes"] = max(peak["bytes"], size)
            time.sleep(0.05)

    spill_dir.mkdir(parents=True, exist_ok=True)
    (cgroup / "memory.max_usage_in_bytes").write_text("0")
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    worker = _start_in(
        cgroup,
        [sys.executable, str(WORKER), mode, str(spill_dir), str(GROUPS)],
        oom_first=True,
        cwd=cwd,
    )
    started.append(worker)
    out, err = worker.communicate(timeout=240)
    done.set()
    watcher.join()
    max_usage = int((cgroup / "memory.max_usage_in_bytes").read_text())
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return worker.returncode, lines, err, peak["bytes"], max_usage


def test_lakeport_settings_spill_where_duckdb_defaults_are_oom_killed(pod_cgroup, tmp_path):
    cgroup, started = pod_cgroup

    kills_before = _oom_kills(cgroup)
    code, lines, err, spilled, max_usage = _run_worker(
        cgroup, started, "lakeport", tmp_path / "spill", tmp_path
    )
    assert code == 0, err[-2000:]
    settings, result = lines
    derived = settings["derived"]
    # Derived inside the cgroup, from the cgroup's own files.
    assert f"/sys/fs/cgroup/memory/{cgroup.name}/memory.limit_in_bytes" in (
        derived["memory_limit_source"]
    )
    memory_limit = int(derived["memory_limit"].removesuffix("MiB")) * MiB
    # DEFAULT_MEMORY_FRACTION (0.8) of what the ballast (and the worker's own Python) left.
    assert memory_limit < (LIMIT - WORKER_BALLAST) * DEFAULT_MEMORY_FRACTION
    assert settings["temp_directory"] == str(tmp_path / "spill")
    assert result == {"groups": GROUPS, "rows": GROUPS}
    # It spilled (nothing else writes there) and stayed inside its cgroup.
    assert spilled > 128 * MiB
    assert _oom_kills(cgroup) == kills_before
    assert max_usage <= LIMIT
    print(
        f"\nlakeport: limit {LIMIT // MiB} MiB, duckdb memory_limit {memory_limit // MiB} MiB, "
        f"peak cgroup usage {max_usage // MiB} MiB, peak spill {spilled // MiB} MiB"
    )

    code, lines, err, spilled, max_usage = _run_worker(
        cgroup, started, "defaults", tmp_path / "cwd" / ".tmp", tmp_path / "cwd"
    )
    assert code == -9, f"expected an OOM kill (SIGKILL), got exit {code}: {err[-2000:]}"
    assert _oom_kills(cgroup) == kills_before + 1
    assert lines and lines[0]["derived"] is None
    print(
        f"defaults: duckdb memory_limit {lines[0]['memory_limit']}, OOM-killed at "
        f"{max_usage // MiB} MiB, after spilling {spilled // MiB} MiB"
    )
