"""Fifty runs queued at once behind a queue of four, on the local platform: the queue holds,
every run finishes, none is lost, and the UI's GraphQL answers within a second throughout."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from dagster._core.storage.dagster_run import ACTIVE_RUN_STATUSES
from platform_support import launch, tiny_config
from support.waiting import wait_for

from lakeport.dev.processes import descendants_of

pytestmark = pytest.mark.slow

RUNS = 50
LIMIT = 4  # dagster.runQueue.maxConcurrentRuns in conftest's FAULT_SETTINGS
# What the queue counts against its limit (Dagster's ACTIVE_RUN_STATUSES). NOT_STARTED is
# not one: a run launched through GraphQL is NOT_STARTED for a moment before it is
# QUEUED, holding no worker and no slot (counting it too, one sample once showed 5).
IN_PROGRESS = [status.value for status in ACTIVE_RUN_STATUSES]
# What the UI's runs page asks for, and what it polls while runs go on.
RUNS_PAGE = """{ runsOrError(limit: 25) { ... on Runs { results {
  runId status jobName startTime endTime tags { key value } } } } }"""


def _live_workers(daemon_pid: int) -> int:
    """This platform's run worker processes alive now (`dagster api execute_run` below its
    daemon; other platforms on the machine do not count), ended runs' included."""
    count = 0
    for pid in descendants_of(daemon_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"execute_run" in argv:
            count += 1
    return count


def test_fifty_runs_behind_a_queue_of_four(fault_platform):
    assert fault_platform.platform.dagster.run_queue.max_concurrent_runs == LIMIT
    daemon_pid = fault_platform.service("daemon").pid
    done = threading.Event()
    in_progress, workers, latencies, errors = [], [], [], []

    def sample_storage():
        with fault_platform.postgres() as conn:
            while not done.is_set():
                (count,) = conn.execute(
                    "SELECT count(*) FROM runs WHERE status = ANY(%s)", (IN_PROGRESS,)
                ).fetchone()
                in_progress.append(count)
                # Walking /proc is CPU work in this process: done every 2s only, so it does
                # not hold the GIL while the UI thread below times its answers.
                if len(in_progress) % 10 == 1:
                    workers.append(_live_workers(daemon_pid))
                time.sleep(0.2)

    def poll_ui():
        while not done.is_set():
            started = time.monotonic()
            try:
                fault_platform.graphql(RUNS_PAGE, timeout=10)
            except Exception as exc:  # a failed answer is a finding, not a crash of the thread
                errors.append(repr(exc))
            latencies.append(time.monotonic() - started)
            time.sleep(0.5)

    threads = [threading.Thread(target=f, daemon=True) for f in (sample_storage, poll_ui)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        run_ids = [launch(fault_platform, "tiny_job", tiny_config(0), {"load": "fifty"})
                   for _ in range(RUNS)]
        with fault_platform.postgres() as conn:

            def all_finished():
                rows = conn.execute(
                    "SELECT status, count(*) FROM runs WHERE run_id = ANY(%s) GROUP BY status",
                    (run_ids,),
                ).fetchall()
                statuses = dict(rows)
                return sum(statuses.values()) == RUNS and set(statuses) <= {
                    "SUCCESS", "FAILURE", "CANCELED"} and statuses

            statuses = wait_for(all_finished, what="fifty runs to finish", timeout=420,
                                interval=2)
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    elapsed = time.monotonic() - started
    print(f"\n{RUNS} runs in {elapsed:.0f}s; max in progress {max(in_progress)} "
          f"({len(in_progress)} samples), max live workers {max(workers)}; GraphQL "
          f"{len(latencies)} answers, max {max(latencies):.3f}s, "
          f"median {sorted(latencies)[len(latencies) // 2]:.3f}s")
    assert len(set(run_ids)) == RUNS
    assert statuses == {"SUCCESS": RUNS}
    # The queue was really used (not 50 runs one after the other) and never exceeded.
    assert max(in_progress) == LIMIT, in_progress
    # Not asserted: worker processes. A worker writes its run's end, then still takes a
    # moment to exit, while the queue already starts the next run (as a pod terminates
    # after its run ended); the printed maximum shows how many overlap on this machine.
    assert errors == []
    slow = [round(s, 3) for s in latencies if s >= 1.0]
    assert slow == [], f"{len(slow)} of {len(latencies)} GraphQL answers took a second or more"


def test_the_skipping_schedule_does_not_import_the_dbt_factory():
    """Every run worker imports its whole code location; the load test's location has only
    a schedule and tiny jobs, and must not pay for dagster-dbt and pyiceberg fifty times."""
    probe = ("import sys, lakeport.schedules; "
             "print(sorted(m for m in ('dagster_dbt', 'pyiceberg') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, timeout=120)
    assert result.stdout.strip() == "[]"
