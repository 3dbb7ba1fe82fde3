"""Memory figures of a run cgroup, for the benchmarks.

The cgroup itself (creation under this process's cgroup, the limit, joining it before
exec, OOM-kill count, removal) is lakeport's own `lakeport.dev.cgroups`, the code that
limits local run workers, so the benchmark measures the mechanism the platform uses.
What it does not offer, and a benchmark needs, is reading how much memory the cgroup
used: that is here.
"""

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

from lakeport.dev.cgroups import CgroupUnavailable, RunCgroup, create_run_cgroup

__all__ = ["CgroupUnavailable", "MemoryMeter", "RunCgroup", "limited_cgroup"]


@contextlib.contextmanager
def limited_cgroup(prefix: str, memory_limit: int) -> Iterator[RunCgroup]:
    """A fresh cgroup with this memory limit (no CPU limit), removed afterwards."""
    # A random suffix: a crashed earlier benchmark's leftover never gets reused.
    cgroup = create_run_cgroup(f"{prefix}-{secrets.token_hex(4)}", memory_limit, None)
    try:
        yield cgroup
    finally:
        cgroup.remove()


class MemoryMeter:
    """Reads the memory controller files of one cgroup (v1 or v2)."""

    def __init__(self, cgroup: RunCgroup):
        # The memory hierarchy's directory comes first (v1); v2 has only one.
        self.directory: Path = cgroup.directories[0]
        self.version = cgroup.version

    def peak_bytes(self) -> int:
        """The kernel's own high-water mark of the cgroup's charge since creation
        (`memory.max_usage_in_bytes` / `memory.peak`). It counts page cache too, which the
        kernel reclaims only once the charge reaches the limit."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        return int(self._read(name))

    def usage_bytes(self) -> int:
        return int(self._read("memory.usage_in_bytes" if self.version == 1 else "memory.current"))

    def stat(self) -> dict[str, int]:
        stats = {}
        for line in self._read("memory.stat").splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                stats[key] = int(value)
        return stats

    def sample(self) -> dict[str, int]:
        """One reading of what the cgroup holds now.

        anon: heap and DuckDB's buffers, which only an OOM kill can take back (no swap in a
        pod); working_set: usage minus inactive page cache, the figure kubelet evicts on."""
        usage, stats = self.usage_bytes(), self.stat()
        if self.version == 1:
            anon = stats.get("total_rss", 0) + stats.get("total_shmem", 0)
            inactive_file = stats.get("total_inactive_file", 0)
        else:
            anon = stats.get("anon", 0) + stats.get("shmem", 0)
            inactive_file = stats.get("inactive_file", 0)
        return {"anon": anon, "working_set": max(0, usage - inactive_file), "usage": usage}

    def _read(self, name: str) -> str:
        return (self.directory / name).read_text()
