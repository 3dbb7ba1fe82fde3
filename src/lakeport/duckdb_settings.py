"""DuckDB settings for a run, derived inside the run from its container's own limits.

DuckDB left alone takes 80% of the container's memory limit for itself and spills to
`.tmp` under the working directory. In a run pod it shares that limit with the Dagster
run worker and dbt's own Python, so together they go over it and the pod is OOMKilled;
and `.tmp` is not the sized spill volume. Here the memory limit is a fraction of what the
container has left when the run starts (its cgroup limit less what is in use already),
threads follow the CPU limit but only as far as the memory pays for them (each thread
beyond the first holds memory outside DuckDB's buffer pool in proportion to what it
spills, so it costs buffer pool), spill goes to the profile's spill volume and stays
below its size. What a profile sets explicitly in platform.yaml wins over what is derived.

Every DuckDB connection lakeport opens goes through `connect()`, and dbt-duckdb gets
the same settings through lakeport's dbt-duckdb plugin (lakeport.dbt_duckdb_plugin).
"""

import os
import shutil
from pathlib import Path

from lakeport.cgroup_limits import ContainerLimits, cpu_threads, read_container_limits

# Re-exported: the settings and the connection they apply to live in a light module.
from lakeport.duckdb_connection import (  # noqa: F401
    RUN_SCRATCH_ENV,
    SETTINGS_ENV,
    DuckDBSettings,
    connect,
)
from lakeport.platform import Platform, ResourceProfile
from lakeport.profiles import SPILL_MOUNT_PATH
from lakeport.quantities import memory_bytes

# DuckDB's buffer pool gets this fraction of what the container has left; the rest is
# Python, dbt, Arrow buffers and DuckDB's own allocations outside its buffer manager.
DEFAULT_MEMORY_FRACTION = 0.8
# DuckDB's `memory_limit` bounds its buffer manager only. Measured with
# bench/memory_discipline.py (DuckDB 1.5, cgroup v1): with two threads, memory outside the
# buffer manager grew by ~40 MiB per GiB spilled at a fixed memory_limit, and runs at 8x
# the limit were OOM-killed; with one thread it stayed flat (anon peak = memory in use
# before + memory_limit). So every thread beyond the first is charged this much per GiB
# DuckDB may spill (max_temp_directory_size), taken off memory_limit ...
SPILL_OVERHEAD_PER_GIB_PER_EXTRA_THREAD = 40 << 20
# ... and a thread is only added while each keeps at least this much buffer pool.
# (DuckDB documents 125 MB per thread as the bare minimum; at that a spilling join +
# GROUP BY + ORDER BY failed with DuckDB's own out-of-memory error.)
MEMORY_PER_THREAD = 512 << 20
# The settings are derived before DuckDB is loaded (it is imported when a connection is
# opened), so what is in use then does not count DuckDB itself: importing it and opening a
# connection took 32 MiB, and a one-thread run spilling 5 GiB held ~25 MiB more outside
# its buffer pool than one spilling 1 GiB.
DUCKDB_OWN_MEMORY = 48 << 20
# DuckDB must stop spilling before the volume is full (an emptyDir over its sizeLimit
# gets the pod evicted).
SPILL_HEADROOM_FRACTION = 0.9
# Names the profile a run executes under, for processes that derive settings themselves.
PROFILE_ENV = "LAKEPORT_PROFILE"

_MiB = 1 << 20


def derive_duckdb_settings(
    profile: ResourceProfile,
    *,
    limits: ContainerLimits | None = None,
    spill_dir: str | Path | None = None,
    available_cpus: int | None = None,
    physical_memory: int | None = None,
) -> DuckDBSettings:
    """Settings for a process running under `profile`, inside the cgroup limits given
    (default: read from this process's own cgroup)."""
    limits = limits if limits is not None else read_container_limits()
    overrides = profile.duckdb
    available_cpus = available_cpus or len(os.sched_getaffinity(0))

    temp_directory = Path(spill_dir) if spill_dir is not None else default_spill_dir()
    if overrides.max_temp_directory_size is not None:
        max_temp = memory_bytes(overrides.max_temp_directory_size)
    else:
        max_temp = int(memory_bytes(profile.spill_volume_size) * SPILL_HEADROOM_FRACTION)
        if not _on_spill_volume(temp_directory):
            # A local directory shares its disk with everything else on the machine.
            max_temp = min(max_temp, int(_free_bytes(temp_directory) * SPILL_HEADROOM_FRACTION))
    # What each thread beyond the first may hold outside the buffer pool at a full spill.
    thread_reserve = int(SPILL_OVERHEAD_PER_GIB_PER_EXTRA_THREAD * max_temp / (1 << 30))

    if overrides.memory_limit is not None:
        pool, pool_source = memory_bytes(overrides.memory_limit), "profile duckdb.memoryLimit"
    else:
        fraction = overrides.memory_limit_fraction or DEFAULT_MEMORY_FRACTION
        if limits.memory is not None:
            # What other processes of the pod hold already (the run worker) is not DuckDB's.
            in_use = int(limits.memory.in_use or 0)
            # Never below an eighth of the limit: DuckDB then spills early rather than fails.
            budget = max(
                int(limits.memory.value) - in_use - DUCKDB_OWN_MEMORY,
                int(limits.memory.value) // 8,
            )
            where = (
                f"cgroup {limits.memory.source} less {_mib(in_use)} in use and "
                f"{_mib(DUCKDB_OWN_MEMORY)} for DuckDB itself"
            )
        else:
            # No container limit (one machine, no cgroup): the profile's limit is what the
            # platform engineer meant the run to use, if the machine has that much.
            budget = min(memory_bytes(profile.limits.memory), physical_memory or _physical_memory())
            where = "profile limits.memory (no cgroup memory limit)"
        pool = int(budget * fraction)
        pool_source = f"{fraction:g} x {_mib(budget)} from {where}"

    if overrides.threads is not None:
        threads, threads_source = overrides.threads, "profile duckdb.threads"
    else:
        cpu = cpu_threads(limits.cpu, available_cpus)
        threads_source = (
            f"cgroup {limits.cpu.source} ({limits.cpu.value:g} cores)"
            if limits.cpu
            else f"no cgroup CPU limit: {available_cpus} CPUs available"
        )
        threads = cpu
        # An explicit memoryLimit is DuckDB's whole pool; a derived one pays the spill
        # reserve of the extra threads out of itself.
        reserve = 0 if overrides.memory_limit is not None else thread_reserve
        while threads > 1 and pool - (threads - 1) * reserve < threads * MEMORY_PER_THREAD:
            threads -= 1
        if threads < cpu:
            threads_source += (
                f", capped at {threads}: each thread needs {_mib(MEMORY_PER_THREAD)} of "
                f"memory_limit ({_mib(pool)}"
                + (f" less {_mib(reserve)} spill reserve per extra thread" if reserve else "")
                + ")"
            )

    memory, memory_source = pool, pool_source
    if overrides.memory_limit is None and threads > 1:
        memory = pool - (threads - 1) * thread_reserve
        memory_source += (
            f", less {threads - 1} x {_mib(thread_reserve)} for threads beyond the first "
            f"({_mib(SPILL_OVERHEAD_PER_GIB_PER_EXTRA_THREAD)} outside the buffer pool per "
            f"GiB of max_temp_directory_size {_mib(max_temp)})"
        )
        # Never below the per-thread minimum of one thread (an explicit profile threads
        # can ask for more than the pool pays for).
        memory = max(memory, min(pool, MEMORY_PER_THREAD))

    return DuckDBSettings(
        memory_limit=_mib(memory),
        threads=threads,
        temp_directory=str(temp_directory),
        max_temp_directory_size=_mib(max_temp),
        memory_limit_source=memory_source,
        threads_source=threads_source,
    )


def default_spill_dir(platform: Platform | None = None) -> Path:
    """The spill volume in a run pod; the run's scratch dir (else `<dev.dataDir>/spill`)
    on one machine."""
    if Path(SPILL_MOUNT_PATH).is_dir():
        return Path(SPILL_MOUNT_PATH)
    if os.environ.get(RUN_SCRATCH_ENV):
        return Path(os.environ[RUN_SCRATCH_ENV]) / "spill"
    data_dir = platform.dev.data_dir if platform is not None else Platform().dev.data_dir
    return Path(data_dir).resolve() / "spill"


def settings_for_run(platform: Platform, profile_name: str | None = None) -> DuckDBSettings:
    """This process's settings: the run's (from SETTINGS_ENV) or derived for the profile."""
    text = os.environ.get(SETTINGS_ENV)
    if text:
        return DuckDBSettings.from_json(text)
    name = profile_name or os.environ.get(PROFILE_ENV)
    return derive_duckdb_settings(platform.profile(name), spill_dir=default_spill_dir(platform))


def _on_spill_volume(path: Path) -> bool:
    return str(path).startswith(SPILL_MOUNT_PATH)


def _free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _mib(value: int) -> str:
    return f"{max(1, value // _MiB)}MiB"
