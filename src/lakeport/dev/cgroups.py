"""A cgroup per run worker on one machine: the pod's memory (and CPU) limit without a pod.

On Kubernetes a run pod over `limits.memory` is OOMKilled by the kernel. Here the run
worker is put in a cgroup with the same limit, so the same run dies the same way (the
kernel's OOM killer, exit 137) instead of passing locally and failing in the cluster.
The cgroup is created below the cgroup this process already runs in (respecting any
delegation), with cgroup v1 (memory/cpu hierarchies) or v2 (unified, when the memory
controller can be enabled there). Creating one needs write access to the hierarchy, in
practice root on Linux; elsewhere `CgroupUnavailable` says why and runs go unlimited.

The worker enters its cgroup before it runs a single instruction of Dagster: it is
started through `lakeport.dev.cgroup_exec`, which joins the cgroup and then execs.
"""

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lakeport.cgroup_limits import own_cgroup_directories

_PREFIX = "lakeport-run-"
_CPU_PERIOD_US = 100_000


class CgroupUnavailable(RuntimeError):
    """No cgroup can be made here; the message says why."""


@dataclass(frozen=True)
class RunCgroup:
    """The cgroup directories of one run worker (one per v1 hierarchy, one for v2)."""

    directories: tuple[Path, ...]
    version: int
    memory_limit: int
    cpu_limit: float | None

    def command(self, argv: list[str]) -> list[str]:
        """`argv`, started inside this cgroup."""
        joins = [arg for d in self.directories for arg in ("--cgroup", str(d))]
        return [sys.executable, "-m", "lakeport.dev.cgroup_exec", *joins, "--", *argv]

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in this cgroup."""
        for directory in self.directories:
            for name in ("memory.events", "memory.oom_control"):
                try:
                    text = (directory / name).read_text()
                except OSError:
                    continue
                for line in text.splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return 0

    def remove(self, timeout: float = 10) -> bool:
        """Remove the directories once the processes in them are gone; False if they linger."""
        deadline = time.monotonic() + timeout
        pending = list(self.directories)
        while pending:
            for directory in list(pending):
                try:
                    directory.rmdir()
                    pending.remove(directory)
                except FileNotFoundError:
                    pending.remove(directory)
                except OSError:
                    pass
            if pending:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.1)
        return True


def create_run_cgroup(name: str, memory_limit: int, cpu_limit: float | None) -> RunCgroup:
    """A new cgroup `lakeport-run-<name>` with these limits, below this process's cgroup."""
    if not sys.platform.startswith("linux"):
        raise CgroupUnavailable(f"cgroups are a Linux feature (this is {sys.platform})")
    hierarchies = _hierarchies()
    v1_memory = hierarchies.get("memory")
    if v1_memory is not None:
        return _create_v1(name, hierarchies, memory_limit, cpu_limit)
    unified = hierarchies.get("")
    if unified is not None:
        return _create_v2(name, unified, memory_limit, cpu_limit)
    raise CgroupUnavailable("no cgroup hierarchy with the memory controller is mounted")


def remove_stale(min_age_seconds: float = 30) -> None:
    """Remove empty run cgroups left behind by a daemon that was killed.

    Not the newest: another platform on this machine may have just made one for a worker
    that has not joined it yet, which takes well under a second (a cgroup with processes
    in it cannot be removed anyway).
    """
    try:
        hierarchies = _hierarchies() if sys.platform.startswith("linux") else {}
    except CgroupUnavailable:
        return
    now = time.time()
    for parent in hierarchies.values():
        for directory in parent.glob(_PREFIX + "*"):
            try:
                if now - directory.stat().st_mtime > min_age_seconds:
                    directory.rmdir()
            except OSError:
                pass


# --- v1 and v2 ---------------------------------------------------------------------------------


def _create_v1(name, hierarchies, memory_limit, cpu_limit) -> RunCgroup:
    memory_dir = _make_dir(hierarchies["memory"] / (_PREFIX + name))
    directories = [memory_dir]
    try:
        _write(memory_dir / "memory.limit_in_bytes", str(memory_limit))
        # Without swap accounting capped too, the worker would swap instead of being killed.
        swap_limit = memory_dir / "memory.memsw.limit_in_bytes"
        if swap_limit.exists():
            _write(swap_limit, str(memory_limit))
        if cpu_limit is not None and "cpu" in hierarchies:
            cpu_dir = _make_dir(hierarchies["cpu"] / (_PREFIX + name))
            directories.append(cpu_dir)
            _write(cpu_dir / "cpu.cfs_period_us", str(_CPU_PERIOD_US))
            _write(cpu_dir / "cpu.cfs_quota_us", str(max(1000, int(cpu_limit * _CPU_PERIOD_US))))
    except CgroupUnavailable:
        RunCgroup(tuple(directories), 1, memory_limit, cpu_limit).remove(timeout=0)
        raise
    return RunCgroup(tuple(directories), 1, memory_limit, cpu_limit)


def _create_v2(name, parent: Path, memory_limit, cpu_limit) -> RunCgroup:
    try:
        available = (parent / "cgroup.controllers").read_text().split()
    except OSError as exc:
        raise CgroupUnavailable(f"cannot read {parent / 'cgroup.controllers'}: {exc}") from None
    if "memory" not in available:
        raise CgroupUnavailable(
            f"the memory controller is not delegated to {parent} (cgroup v2); run as root or "
            "under a systemd scope with Delegate=yes"
        )
    wanted = ["memory"] + (["cpu"] if cpu_limit is not None and "cpu" in available else [])
    try:
        # v2 allows controllers in children only when the parent enables them for its subtree.
        _write(parent / "cgroup.subtree_control", " ".join("+" + c for c in wanted))
    except CgroupUnavailable as exc:
        raise CgroupUnavailable(
            f"{exc} (cgroup v2 refuses this when {parent} itself holds processes)"
        ) from None
    directory = _make_dir(parent / (_PREFIX + name))
    cgroup = RunCgroup((directory,), 2, memory_limit, cpu_limit)
    try:
        _write(directory / "memory.max", str(memory_limit))
        swap = directory / "memory.swap.max"
        if swap.exists():
            _write(swap, "0")
        if "cpu" in wanted:
            _write(directory / "cpu.max", f"{max(1000, int(cpu_limit * _CPU_PERIOD_US))} "
                                          f"{_CPU_PERIOD_US}")
    except CgroupUnavailable:
        cgroup.remove(timeout=0)
        raise
    return cgroup


# --- where we are --------------------------------------------------------------------------------


def _hierarchies() -> dict[str, Path]:
    """Controller ("memory", "cpu"; "" for v2) -> the directory of this process's cgroup."""
    try:
        return own_cgroup_directories()
    except OSError as exc:
        raise CgroupUnavailable(f"cannot read this process's cgroups: {exc}") from None


def _make_dir(path: Path) -> Path:
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        raise CgroupUnavailable(f"cannot create cgroup {path}: {exc.strerror}") from None
    return path


def _write(path: Path, value: str) -> None:
    try:
        with open(path, "w") as handle:
            handle.write(value)
    except OSError as exc:
        raise CgroupUnavailable(f"cannot write {path}: {exc.strerror}") from None


def join(directory: Path, pid: int | None = None) -> None:
    _write(directory / "cgroup.procs", str(pid or os.getpid()))
