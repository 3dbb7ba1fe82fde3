"""The run launcher of the one-machine platform: a run worker process per run, sized by profile.

It plays the part of dagster-k8s's K8sRunLauncher: the same `dagster api execute_run`
command the run pod would run, started as a process of the daemon instead of a pod.
The run's resource profile (run tag `lakeport/profile`, else the platform default)
decides its limits: where cgroups can be made, the worker runs in one with the profile's
`limits.memory` (and `limits.cpu`), so a run that would be OOMKilled in the cluster is
OOM-killed here; without cgroups it runs unlimited. Either way the worker gets the
profile's name in LAKEPORT_PROFILE and derives its DuckDB settings from it (and from
its cgroup when it has one), exactly as in a pod.

Dagster's DefaultRunLauncher asks the code server to fork the worker, which leaves no
place to put the worker in a cgroup before it starts; hence a launcher of our own.
The worker's pid is kept as a run tag, so the webserver (terminate) and the daemon's
run monitoring (health) find it from any process.
"""

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import Bool, Field
from dagster._core.launcher.base import (
    CheckRunHealthResult,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from lakeport.config import load_effective_platform
from lakeport.dev.cgroups import CgroupUnavailable, RunCgroup, create_run_cgroup
from lakeport.profiles import PROFILE_TAG
from lakeport.quantities import cpu_cores, memory_bytes

WORKER_PID_TAG = "lakeport/worker-pid"
CGROUP_TAG = "lakeport/cgroup"


def run_scratch_dir(platform, run_id: str) -> Path:
    return Path(platform.dev.data_dir).resolve() / "runs" / run_id


class LocalRunLauncher(RunLauncher, ConfigurableClass):
    """Dagster's RunLauncher for `lakeport dev` (this module's docstring): each run is an
    `execute_run` worker process of the daemon, in a cgroup of its profile's limits when
    `cgroup_limits` is true and cgroups can be made here. Named in `lakeport dev`'s
    dagster.yaml (lakeport.dev.instance_config); the chart uses K8sRunLauncher instead."""

    def __init__(self, cgroup_limits: bool = True, inst_data: ConfigurableClassData | None = None):
        self._cgroup_limits = cgroup_limits
        self._inst_data = inst_data
        self._workers: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        super().__init__()

    # --- ConfigurableClass ------------------------------------------------------------------

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls):
        return {
            "cgroup_limits": Field(
                Bool, is_required=False, default_value=True,
                description="Run each worker in a cgroup sized by its resource profile.",
            ),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]):
        return cls(inst_data=inst_data, **config_value)

    # --- launching ----------------------------------------------------------------------------

    def launch_run(self, context: LaunchRunContext) -> None:
        # Here, not at the top: the webserver loads this class too and needs no DuckDB.
        from lakeport.duckdb_connection import RUN_SCRATCH_ENV
        from lakeport.duckdb_settings import PROFILE_ENV

        run = context.dagster_run
        if run.job_code_origin is None:
            raise ValueError(f"run {run.run_id} has no job code origin; cannot start a worker")
        platform = load_effective_platform()
        profile_name = run.tags.get(PROFILE_TAG) or platform.dagster.run_launcher.default_profile
        profile = platform.profile(profile_name)
        argv = list(
            ExecuteRunArgs(
                job_origin=run.job_code_origin,
                run_id=run.run_id,
                instance_ref=self._instance.get_ref(),
                # Like the run pod: a failed run is a failed process.
                set_exit_code_on_failure=True,
            ).get_command_args()
        )
        cgroup, why_unlimited = None, "cgroup limits are off (dev.cgroupLimits: false)"
        if self._cgroup_limits:
            try:
                cgroup = create_run_cgroup(
                    run.run_id,
                    memory_bytes(profile.limits.memory),
                    cpu_cores(profile.limits.cpu) if profile.limits.cpu is not None else None,
                )
            except CgroupUnavailable as exc:
                why_unlimited = str(exc)
        env = dict(os.environ)
        # The run's code location's own settings, as its run pods get them on Kubernetes
        # (the code server's container context), and no other location's.
        location = run.remote_job_origin.location_name if run.remote_job_origin else None
        for other in platform.code_locations:
            for name in other.env:
                env.pop(name, None)
        if location in {loc.name for loc in platform.code_locations}:
            env.update(platform.code_location(location).env)
        env[PROFILE_ENV] = profile_name
        # The run's own DuckDB file and spill dir, as a run pod has its own spill volume:
        # concurrent runs sharing one would fight over DuckDB's write lock.
        scratch = run_scratch_dir(platform, run.run_id)
        scratch.mkdir(parents=True, exist_ok=True)
        env[RUN_SCRATCH_ENV] = str(scratch)
        # Not a new session: the worker stays in the daemon's process group, so stopping
        # the daemon's group (`lakeport dev` shutting down) stops its runs too.
        process = subprocess.Popen(
            cgroup.command(argv) if cgroup else argv, env=env, stdin=subprocess.DEVNULL
        )
        with self._lock:
            self._workers[run.run_id] = process
        tags = {WORKER_PID_TAG: str(process.pid)}
        if cgroup:
            tags[CGROUP_TAG] = ",".join(str(d) for d in cgroup.directories)
        self._instance.add_run_tags(run.run_id, tags)
        if cgroup:
            limits = f"memory {profile.limits.memory}" + (
                f", cpu {profile.limits.cpu}" if cgroup.cpu_limit is not None else ""
            )
            message = (
                f"Run worker pid {process.pid} started with profile '{profile_name}' in cgroup "
                f"v{cgroup.version} limited to {limits}."
            )
        else:
            message = (
                f"Run worker pid {process.pid} started with profile '{profile_name}' WITHOUT a "
                f"memory limit: {why_unlimited}. DuckDB settings still follow the profile."
            )
        self._instance.report_engine_event(message, run, cls=self.__class__)
        threading.Thread(
            target=self._watch, args=(run.run_id, process, cgroup, profile_name, scratch),
            name=f"lakeport-run-{run.run_id[:8]}", daemon=True,
        ).start()

    def _watch(self, run_id: str, process: subprocess.Popen, cgroup: RunCgroup | None,
               profile_name: str, scratch: Path) -> None:
        """Wait for the worker, free its cgroup and scratch dir, and fail the run if the
        worker died with it."""
        returncode = process.wait()
        # Like a pod's emptyDir: scratch ends with the run (durable tables are in Iceberg).
        shutil.rmtree(scratch, ignore_errors=True)
        oom_kills = cgroup.oom_kills() if cgroup else 0
        if cgroup and not cgroup.remove():
            self._engine_event(run_id, f"cgroup {cgroup.directories[0]} still has processes; "
                                       "left in place")
        with self._lock:
            self._workers.pop(run_id, None)
        run = self._instance.get_run_by_id(run_id)
        if run is None:
            return
        oom = ""
        if oom_kills:
            oom = (
                f" The kernel's OOM killer killed {oom_kills} process(es) of this run: it went "
                f"over the memory limit of profile '{profile_name}' "
                f"({cgroup.memory_limit // (1 << 20)}MiB), as a pod over limits.memory would be "
                "OOMKilled. Give the run a larger profile or make DuckDB spill."
            )
        if not run.is_finished:
            self._instance.report_run_failed(
                run, f"Run worker exited with code {returncode} before the run finished.{oom}"
            )
        elif oom:
            self._engine_event(run_id, oom.strip())

    def _engine_event(self, run_id: str, message: str) -> None:
        run = self._instance.get_run_by_id(run_id)
        if run is not None:
            self._instance.report_engine_event(message, run, cls=self.__class__)

    # --- termination and health -------------------------------------------------------------

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        pid = _live_worker_pid(run)
        if pid is None:
            self._instance.report_run_canceled(run, "The run worker was no longer running.")
            return True
        # The worker maps SIGTERM to an interrupt (as in a pod) and reports the cancel itself.
        os.kill(pid, signal.SIGTERM)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if WORKER_PID_TAG not in run.tags:
            return CheckRunHealthResult(WorkerStatus.NOT_FOUND, "no run worker was started")
        if _live_worker_pid(run) is not None:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        if run.status in (DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING):
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"run worker pid {run.tags[WORKER_PID_TAG]} is gone but the run did not finish",
            )
        return CheckRunHealthResult(WorkerStatus.SUCCESS)

    def join(self, timeout: float = 30) -> None:
        with self._lock:
            processes = list(self._workers.values())
        for process in processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"run worker pid {process.pid} still running") from None


def _live_worker_pid(run: DagsterRun) -> int | None:
    """The worker's pid if that process is alive and is this run's worker (not a reused pid)."""
    try:
        pid = int(run.tags.get(WORKER_PID_TAG, ""))
    except ValueError:
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            return pid if run.run_id.encode() in cmdline.read_bytes() else None
        except OSError:
            return None
    try:
        os.kill(pid, 0)  # no /proc (macOS): alive is the best we can tell
    except OSError:
        return None
    return pid
