"""DuckDB settings for a run, derived inside the run from its container's own limits.

DuckDB left alone takes 80% of the container's memory limit for itself and spills to
`.tmp` under the working directory. In a run pod it shares that limit with the Dagster
run worker and dbt's own Python, so together they go over it and the pod is OOMKilled;
and `.tmp` is not the sized spill volume. Here the memory limit is a fraction of what the
container has left when the run starts (its cgroup limit less what is in use already),
threads follow the CPU limit, spill goes to the profile's spill volume and stays below its
size. What a profile sets explicitly in platform.yaml wins over what is derived.

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

# The rest of the container's memory is Python, dbt, Arrow buffers and DuckDB's own
# allocations outside its buffer manager.
DEFAULT_MEMORY_FRACTION = 0.66
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

    if overrides.memory_limit is not None:
        memory = memory_bytes(overrides.memory_limit)
        memory_source = "profile duckdb.memoryLimit"
    else:
        fraction = overrides.memory_limit_fraction or DEFAULT_MEMORY_FRACTION
        if limits.memory is not None:
            # What other processes of the pod hold already (the run worker) is not DuckDB's.
            in_use = int(limits.memory.in_use or 0)
            # Never below an eighth of the limit: DuckDB then spills early rather than fails.
            budget = max(int(limits.memory.value) - in_use, int(limits.memory.value) // 8)
            where = f"cgroup {limits.memory.source} less {_mib(in_use)} in use"
        else:
            # No container limit (one machine, no cgroup): the profile's limit is what the
            # platform engineer meant the run to use, if the machine has that much.
            budget = min(memory_bytes(profile.limits.memory), physical_memory or _physical_memory())
            where = "profile limits.memory (no cgroup memory limit)"
        memory = int(budget * fraction)
        memory_source = f"{fraction:g} x {_mib(budget)} from {where}"

    if overrides.threads is not None:
        threads, threads_source = overrides.threads, "profile duckdb.threads"
    else:
        threads = cpu_threads(limits.cpu, available_cpus)
        threads_source = (
            f"cgroup {limits.cpu.source} ({limits.cpu.value:g} cores)"
            if limits.cpu
            else f"no cgroup CPU limit: {available_cpus} CPUs available"
        )

    temp_directory = Path(spill_dir) if spill_dir is not None else default_spill_dir()
    if overrides.max_temp_directory_size is not None:
        max_temp = memory_bytes(overrides.max_temp_directory_size)
    else:
        max_temp = int(memory_bytes(profile.spill_volume_size) * SPILL_HEADROOM_FRACTION)
        if not _on_spill_volume(temp_directory):
            # A local directory shares its disk with everything else on the machine.
            max_temp = min(max_temp, int(_free_bytes(temp_directory) * SPILL_HEADROOM_FRACTION))

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
