"""Benchmark 1 — memory discipline: a transform over data 2x, 4x and 8x a pod's memory limit.

Each run is a child process inside a real cgroup with that memory limit (the kernel
mechanism behind a pod's `limits.memory`), running the same DuckDB transform
(a hash join of two generated tables, a high-cardinality GROUP BY and an ORDER BY,
written to Parquet) two ways:

- lakeport: DuckDB settings from `lakeport.duckdb_settings.derive_duckdb_settings`, which
  reads the memory limit from the child's own cgroup, exactly as in a run pod;
- defaults: DuckDB as it configures itself (80% of the host's RAM, every core).

Reported per run: outcome (ok / OOM-killed / error), wall time, the kernel's peak charge of
the cgroup, the peak of anonymous memory, and the peak size of the spill directory.

    python -m bench.memory_discipline                        # 512 MiB limit, 2x 4x 8x
    python -m bench.memory_discipline --limit-mib 768 --factors 0.75 --configs lakeport  # smoke
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.cgroup import MemoryMeter, limited_cgroup
from bench.common import (
    REPO,
    code_under_test,
    mib,
    print_table,
    print_targets,
    seconds,
    write_result,
)

NAME = "memory_discipline"
PLATFORM_FILE = REPO / "platform-config" / "local" / "platform.yaml"
PROFILE = "transform"
CONFIGS = ("lakeport", "defaults")
# Target: a lakeport run is never killed and its unreclaimable memory stays below this.
PEAK_TARGET_FRACTION = 0.90

# Bytes per generated row as DuckDB holds it in memory (8 per BIGINT/DOUBLE, 16 per
# inlined short VARCHAR): orders carry 3 numbers and a string, payments 2 and a string.
ORDER_ROW_BYTES = 8 + 8 + 8 + 16
PAYMENT_ROW_BYTES = 8 + 8 + 16
# Half as many payments as orders, so data bytes = rows * (40 + 32 / 2).
BYTES_PER_ORDER = ORDER_ROW_BYTES + PAYMENT_ROW_BYTES / 2

_SAMPLE_INTERVAL = 0.01
_SPILL_SAMPLE_INTERVAL = 0.1


def transform_sql(orders: int, output: str) -> str:
    """The transform: join, aggregate per customer, sort; only the result reaches disk.

    Inputs come from range() so nothing is read from disk: every byte of memory the run
    needs is the join's build side, the aggregate's groups and the sort."""
    payments, customers = orders // 2, max(1, orders // 4)
    return f"""
    COPY (
      WITH orders AS (
        SELECT i AS order_id, hash(i) % {customers} AS customer_id,
               (i % 1000) / 10.0 AS amount, 'status-' || (i % 7)::VARCHAR AS status
        FROM range({orders}) t(i)
      ), payments AS (
        SELECT 2 * j AS order_id, (j % 500) / 5.0 AS paid, 'method-' || (j % 5)::VARCHAR AS method
        FROM range({payments}) t(j)
      )
      SELECT o.customer_id, count(*) AS orders, sum(o.amount) AS revenue,
             sum(p.paid) AS paid, max(o.status) AS last_status, min(p.method) AS first_method
      FROM orders o JOIN payments p ON o.order_id = p.order_id
      GROUP BY o.customer_id
      ORDER BY revenue DESC, o.customer_id
    ) TO '{output}' (FORMAT parquet)
    """


# --- the child: runs inside the cgroup ----------------------------------------------------------


def child(config: str, orders: int, workdir: Path) -> int:
    import duckdb

    if config == "lakeport":
        from lakeport.config import load_platform
        from lakeport.duckdb_settings import connect, derive_duckdb_settings

        # Derived here, inside the cgroup: the limit comes from this process's own cgroup.
        settings = derive_duckdb_settings(
            load_platform(PLATFORM_FILE).profile(PROFILE), spill_dir=workdir / "spill"
        )
        connection = connect(settings)
        derived = settings.as_metadata()
    else:
        connection = duckdb.connect()
        derived = {}
    effective = dict(
        connection.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('memory_limit', 'threads', 'temp_directory', 'max_temp_directory_size')"
        ).fetchall()
    )
    temp_directory = Path(effective["temp_directory"])
    if not temp_directory.is_absolute():
        temp_directory = workdir / temp_directory
    _say({"event": "start", "settings": effective, "derived": derived,
          "temp_directory": str(temp_directory)})

    output = workdir / "result.parquet"
    started = time.monotonic()
    connection.execute(transform_sql(orders, str(output)))
    query_seconds = time.monotonic() - started
    groups, matched = connection.execute(
        f"SELECT count(*), sum(orders) FROM read_parquet('{output}')"
    ).fetchone()
    _say({"event": "done", "query_seconds": query_seconds, "groups": groups, "matched": matched})
    return 0


def _say(message: dict) -> None:
    print(json.dumps(message), flush=True)


# --- the parent: one run per (factor, config) ---------------------------------------------------


@dataclass
class Run:
    factor: float
    config: str
    limit_bytes: int
    data_bytes: int
    orders: int
    outcome: str = "error"
    exit_code: int | None = None
    oom_kills: int = 0
    wall_seconds: float = 0.0
    query_seconds: float | None = None
    kernel_peak_bytes: int = 0
    anon_peak_bytes: int = 0
    working_set_peak_bytes: int = 0
    spill_peak_bytes: int = 0
    # As DuckDB reports them, and (lakeport runs) as lakeport derived them, with why.
    duckdb_settings: dict = field(default_factory=dict)
    lakeport_settings: dict = field(default_factory=dict)
    result_checks: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def anon_peak_fraction(self) -> float:
        return self.anon_peak_bytes / self.limit_bytes


def run_one(factor: float, config: str, limit_bytes: int) -> Run:
    orders = int(factor * limit_bytes / BYTES_PER_ORDER) // 2 * 2
    run = Run(factor, config, limit_bytes, int(orders * BYTES_PER_ORDER), orders)
    workdir = Path(tempfile.mkdtemp(prefix=f"lakeport-bench-mem-{config}-"))
    try:
        with limited_cgroup(f"bench-{config}", limit_bytes) as cgroup:
            _measure(run, cgroup, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return run


def _measure(run: Run, cgroup, workdir: Path) -> None:
    meter = MemoryMeter(cgroup)
    argv = [sys.executable, "-m", "bench.memory_discipline", "--child", run.config,
            "--orders", str(run.orders), "--workdir", str(workdir)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = time.monotonic()
    process = subprocess.Popen(
        cgroup.command(argv), cwd=workdir, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    messages: list[dict] = []
    spill_dir: list[Path] = []
    stop = threading.Event()

    def read_stdout():
        for line in process.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            messages.append(message)
            if message.get("event") == "start":
                spill_dir.append(Path(message["temp_directory"]))

    def sample_memory():
        while not stop.is_set():
            try:
                reading = meter.sample()
            except OSError:
                break
            run.anon_peak_bytes = max(run.anon_peak_bytes, reading["anon"])
            run.working_set_peak_bytes = max(run.working_set_peak_bytes, reading["working_set"])
            stop.wait(_SAMPLE_INTERVAL)

    def sample_spill():
        while not stop.is_set():
            if spill_dir:
                run.spill_peak_bytes = max(run.spill_peak_bytes, _allocated_bytes(spill_dir[0]))
            stop.wait(_SPILL_SAMPLE_INTERVAL)

    threads = [threading.Thread(target=t, daemon=True)
               for t in (read_stdout, sample_memory, sample_spill)]
    for thread in threads:
        thread.start()
    stderr = process.stderr.read()
    process.wait()
    run.wall_seconds = time.monotonic() - started
    stop.set()
    for thread in threads:
        thread.join()

    run.exit_code = process.returncode
    run.kernel_peak_bytes = meter.peak_bytes()
    run.oom_kills = cgroup.oom_kills()
    start = next((m for m in messages if m.get("event") == "start"), {})
    done = next((m for m in messages if m.get("event") == "done"), None)
    run.duckdb_settings = start.get("settings", {})
    run.lakeport_settings = start.get("derived", {})
    if done is not None:
        run.query_seconds = done["query_seconds"]
        run.result_checks = {
            "groups": done["groups"],
            "matched_rows": done["matched"],
            # Every payment joins exactly one order: anything else is a wrong result.
            "expected_matched_rows": run.orders // 2,
        }
    if process.returncode in (-9, 137) and run.oom_kills > 0:
        run.outcome = "OOM-killed"
    elif process.returncode == 0 and done is not None:
        right = done["matched"] == run.orders // 2
        run.outcome = "ok" if right else "wrong result"
    else:
        run.outcome = "error"
        lines = stderr.strip().splitlines() or [f"exit code {process.returncode}"]
        # The exception line says what went wrong; DuckDB appends a hint after it.
        run.error = next((line for line in lines if "Error" in line or "Exception" in line),
                         lines[-1])


def _allocated_bytes(directory: Path) -> int:
    """Disk blocks actually allocated below `directory` (spill files may be sparse)."""
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass  # DuckDB deleted it between the listing and the stat
    return total


def evaluate(runs: list[Run]) -> dict:
    lakeport = [r for r in runs if r.config == "lakeport"]
    never_killed = bool(lakeport) and all(r.outcome == "ok" for r in lakeport)
    worst = max((r.anon_peak_fraction for r in lakeport), default=None)
    return {
        "lakeport_never_oom_killed": {
            "target": "every lakeport run completes (not OOM-killed, no error, right result)",
            "value": [r.outcome for r in lakeport],
            "pass": never_killed,
        },
        "lakeport_peak_memory": {
            "target": f"peak anonymous memory <= {PEAK_TARGET_FRACTION:.0%} of the limit",
            "value": None if worst is None else round(worst, 3),
            "pass": worst is not None and worst <= PEAK_TARGET_FRACTION,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit-mib", type=int, default=512, help="the cgroup memory limit")
    parser.add_argument("--factors", default="2,4,8",
                        help="data sizes as multiples of the limit, comma-separated")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--output", type=Path, help="default: bench/results/memory_discipline.json")
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--orders", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.orders, args.workdir)

    code = code_under_test()
    limit = args.limit_mib << 20
    factors = [float(f) for f in args.factors.split(",")]
    configs = args.configs.split(",")
    runs = []
    for factor in factors:
        for config in configs:
            run = run_one(factor, config, limit)
            print(f"  {factor:g}x {config}: {run.outcome} in {run.wall_seconds:.1f} s", flush=True)
            runs.append(run)

    print(f"\nMemory discipline: cgroup memory limit {mib(limit)}, "
          f"transform = join + GROUP BY + ORDER BY over generated data\n")
    print_table(
        ["data", "config", "outcome", "wall", "cgroup peak", "anon peak", "spilled",
         "memory_limit"],
        [[f"{r.factor:g}x ({mib(r.data_bytes)})", r.config, r.outcome, seconds(r.wall_seconds),
          f"{mib(r.kernel_peak_bytes)}", f"{mib(r.anon_peak_bytes)} ({r.anon_peak_fraction:.0%})",
          mib(r.spill_peak_bytes), r.duckdb_settings.get("memory_limit")] for r in runs],
    )
    targets = evaluate(runs)
    print()
    print_targets(targets)
    write_result(NAME, {
        "parameters": {"limit_bytes": limit, "factors": factors, "configs": configs,
                       "profile": PROFILE, "platform_file": str(PLATFORM_FILE.relative_to(REPO)),
                       "sample_interval_seconds": _SAMPLE_INTERVAL},
        "notes": (
            "cgroup peak is the kernel's memory.max_usage_in_bytes (v1) / memory.peak (v2): it "
            "includes page cache, which the kernel only reclaims once the charge reaches the "
            "limit, so any run that writes more than the headroom shows a peak at the limit. "
            "anon peak (rss+shmem, sampled every 10 ms) is the memory only an OOM kill can take "
            "back; the peak-memory target is judged on it. spilled is the peak allocated size of "
            "DuckDB's temp directory, sampled every 100 ms."
        ),
        "runs": [asdict(r) | {"anon_peak_fraction": round(r.anon_peak_fraction, 3)} for r in runs],
        "targets": targets,
    }, args.output, code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
