"""DuckDB settings for a run, derived inside the run from its container's own limits.

DuckDB left alone takes 80% of the container's memory limit for itself and spills to
`.tmp` under the working directory. In a run pod it shares that limit with the Dagster
run worker and dbt's own Python, so together they go over it and the pod is OOMKilled;
and `.tmp` is not the sized spill volume. Here the memory limit is a fraction of what the
container has left when the run starts (its cgroup limit less what is in use already),
smaller when DuckDB runs more than one thread; threads are as many as keep each thread's
share of the memory limit inside a window where DuckDB 1.5 completes a spilling
aggregate (within it, as many as the CPU limit gives); spill goes to the profile's spill
volume and stays below its size. What a profile sets explicitly in platform.yaml wins
over what is derived.

Every DuckDB connection lakeport opens goes through `connect()`, and dbt-duckdb gets
the same settings through lakeport's dbt-duckdb plugin (lakeport.dbt_duckdb_plugin).
"""

import dataclasses
import math
import os
import shutil
from collections.abc import Iterator
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

# DuckDB's buffer pool gets this fraction of what the container has left when it runs on
# one thread; the rest is Python, dbt, Arrow buffers and DuckDB's own allocations outside
# its buffer manager (measured with bench/memory_discipline.py, DuckDB 1.5.5, cgroup v1:
# one thread spilling 5 GiB held ~100 MiB outside its pool, DuckDB itself included) ...
DEFAULT_MEMORY_FRACTION = 0.8
# ... and this fraction on more than one: every thread beyond the first held memory
# outside the pool in proportion to what it spilled (outside the pool: 211 MiB for two
# threads spilling 12 GiB in a 1 GiB pod, 243 MiB for four spilling 11 GiB in 2 GiB).
MULTI_THREAD_MEMORY_FRACTION = 0.65
# Threads are chosen so that each has this much of memory_limit at most ... Measured with
# bench/memory_discipline.py (a join, a GROUP BY with string aggregates and an ORDER BY,
# spilling): DuckDB 1.5.5 failed with its own out-of-memory error ("could not allocate
# block") whenever memory_limit per thread was 500 MiB or more (500, 600 and 752 MiB on one
# thread, 1223 MiB on two) and completed at 342 MiB or less (342 MiB on one thread, 600 on
# two, 1223 on four). More memory per thread failing where less completes is the
# duckdb/duckdb#14132 class: aggregate state memory is never spilled, and each thread's
# finalize hash table is sized from memory_limit / threads, not from what is free
# (src/execution/radix_partitioned_hashtable.cpp, RadixHTLocalSourceState::Finalize and
# RadixPartitionedHashTable::MaxThreads at v1.5.5).
MAX_MEMORY_PER_THREAD = 352 << 20
# ... and at least this much: two threads at 128 MiB each failed the same way (DuckDB
# documents 125 MB per thread as the bare minimum). Between the two the CPU limit decides.
MIN_MEMORY_PER_THREAD = 256 << 20
# The settings are derived before DuckDB is loaded (it is imported when a connection is
# opened), so what is in use then does not count DuckDB itself: importing it and opening a
# connection took 32 MiB, and a one-thread run spilling 5 GiB held ~25 MiB more outside
# its buffer pool than one spilling 1 GiB. Reading its input through iceberg_scan from S3
# holds more: at memory_limit 294 MiB on one thread, a join + aggregate over two Iceberg
# tables on S3 held 75-82 MiB outside the pool, the same query over local Parquet 47 MiB
# (bench/memory_discipline.py's catalog workload). Of the difference, 10-24 MiB is the
# Parquet reader's prefetch of remote row groups (extension/parquet/parquet_reader.cpp,
# ShouldAndCanPrefetch at v1.5.5), which is kept: it saves object-store round trips.
# It grows with what is spilled: at 8x a 512 MiB pod (5.4 GiB spilled, memory_limit
# 282 MiB) the same query held 92 MiB outside the pool, and with 80 MiB kept here the run
# peaked at 94% of the pod; with 104 MiB at 87-90% in two runs (the generated workload
# at 83-84%). DuckDB's own out-of-memory error is not monotonic in memory_limit, so a
# smaller limit can fail where a larger one completes (catalog 4x failed at 262 MiB and
# completed at 282): README, Benchmarks, holds the measured cliffs.
DUCKDB_OWN_MEMORY = 104 << 20
# dbt's own process, which a dbt op starts after it has derived the settings, holds this
# beside DuckDB (dbt_build_memory). Measured: peak anonymous memory of `dbt build`
# (dbt-core 1.11.16, dbt-duckdb 1.11.1, lakeport's target and plugin, memory_limit 64 MiB)
# sampled every 20 ms, on bench/dbt_project_gen.py's projects, 2026-12-07: 127 MiB building
# all 30 nodes of a 10-model project, 188-192 MiB all 600 of 200 models, 432-437 MiB all
# 3,000 of 1,000 models, and 192 MiB one model and its tests of those 3,000. dbt loads the
# whole manifest whatever it selects, and keeps every node it runs (its result, compiled
# SQL) until it exits: 124 MiB + 23 KiB a manifest node + 84 KiB a node built fits all
# four within 3%. Of the 124, DuckDB's library (32 MiB) is in DUCKDB_OWN_MEMORY already.
DBT_PROCESS_BASE = 96 << 20
DBT_PROCESS_PER_MANIFEST_NODE = 24 << 10
DBT_PROCESS_PER_BUILT_NODE = 84 << 10
# ... and the run worker grows by this after the settings are derived, opening DuckDB to
# fill the scratch before dbt starts: 178 -> 210 MiB in bench/memory_discipline.py's
# dbt_run workload at 512 MiB, sampled per process from /proc (2026-12-07).
RUN_WORKER_DUCKDB_MEMORY = 32 << 20
# Below this memory_limit a run is warned (dbt_assets): DuckDB documents 125 MB per thread
# as what it needs, and a query over more data than it holds may stop with its own
# out-of-memory error.
DUCKDB_SMALLEST_MEMORY_LIMIT = 128 << 20
# DuckDB's own out-of-memory error is not monotonic in memory_limit: its sort and its hash
# aggregate size their runs and partitions from the memory they hold at that moment
# (SortGlobalSinkState::TryIncreaseReservation, src/common/sort/sort.cpp, and
# RadixHTConfig::ExternalRadixBits, src/execution/radix_partitioned_hashtable.cpp, at
# v1.5.5), so a query that fails at one limit can complete at a nearby smaller one. A dbt
# build whose only errors are that one builds what failed again at these fractions of the
# run's limit, in turn (lakeport.dbt_assets). Smaller, never larger: more than the derived
# limit would take the pod over its own. Measured with bench/memory_discipline.py at a
# 512 MiB pod, one thread: the generated workload at 8x failed at 313 and 324 MiB and
# completed at 282-300 MiB; the catalog workload at 4x failed at 260-262 MiB and completed
# at 234 MiB (0.9x) and 210 MiB (0.8x), both inside 76% of the pod.
OUT_OF_MEMORY_RETRY_FRACTIONS = (0.9, 0.8)
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
    beside: int = 0,
) -> DuckDBSettings:
    """Settings for a process running under `profile`, inside the cgroup limits given
    (default: read from this process's own cgroup). `beside`: bytes that processes started
    after this (dbt_build_memory) will hold beside DuckDB."""
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

    cpu = cpu_threads(limits.cpu, available_cpus)
    cpu_source = (
        f"cgroup {limits.cpu.source} ({limits.cpu.value:g} cores)"
        if limits.cpu
        else f"no cgroup CPU limit: {available_cpus} CPUs available"
    )
    if overrides.memory_limit is not None:
        memory = memory_bytes(overrides.memory_limit)
        memory_source = "profile duckdb.memoryLimit"
    else:
        budget, where = _budget(profile, limits, physical_memory, beside)
        fraction = overrides.memory_limit_fraction or DEFAULT_MEMORY_FRACTION
        memory = int(budget * fraction)
        if overrides.memory_limit_fraction is None and (
            (overrides.threads or 1) > 1 or memory > MAX_MEMORY_PER_THREAD
        ):
            # More than one thread: each holds memory outside the pool as it spills.
            fraction = MULTI_THREAD_MEMORY_FRACTION
            memory = int(budget * fraction)
        memory_source = f"{fraction:g} x {_mib(budget)} from {where}"

    if overrides.threads is not None:
        threads, threads_source = overrides.threads, "profile duckdb.threads"
    else:
        fewest = max(1, math.ceil(memory / MAX_MEMORY_PER_THREAD))
        most = max(fewest, memory // MIN_MEMORY_PER_THREAD)
        threads = min(max(cpu, fewest), most)
        threads_source = (
            f"{cpu_source}, kept between {fewest} and {most} so that each thread has "
            f"{_mib(MIN_MEMORY_PER_THREAD)} to {_mib(MAX_MEMORY_PER_THREAD)} of memory_limit "
            f"({_mib(memory)})"
        )

    return DuckDBSettings(
        memory_limit=_mib(memory),
        threads=threads,
        temp_directory=str(temp_directory),
        max_temp_directory_size=_mib(max_temp),
        memory_limit_source=memory_source,
        threads_source=threads_source,
    )


def memory_limit_attempts(settings: DuckDBSettings) -> Iterator[DuckDBSettings]:
    """The settings to build with, in turn, while DuckDB's own out-of-memory error stops
    the build: the run's, then each of OUT_OF_MEMORY_RETRY_FRACTIONS of its limit."""
    yield settings
    for fraction in OUT_OF_MEMORY_RETRY_FRACTIONS:
        yield with_smaller_memory_limit(settings, fraction)


def with_smaller_memory_limit(settings: DuckDBSettings, fraction: float) -> DuckDBSettings:
    """`settings` with `fraction` of their memory limit, for a build DuckDB's own
    out-of-memory error stopped (see OUT_OF_MEMORY_RETRY_FRACTIONS)."""
    if not 0 < fraction < 1:
        raise ValueError(f"a smaller memory limit needs a fraction in (0, 1), not {fraction}")
    memory = int(_memory_limit_bytes(settings) * fraction)
    return dataclasses.replace(
        settings,
        memory_limit=_mib(memory),
        memory_limit_source=(
            f"{fraction:g} x {settings.memory_limit} ({settings.memory_limit_source}), after "
            f"DuckDB ran out of memory at {settings.memory_limit}"
        ),
    )


def room_beside_duckdb(
    profile: ResourceProfile,
    settings: DuckDBSettings,
    *,
    limits: ContainerLimits | None = None,
    physical_memory: int | None = None,
    beside: int = 0,
) -> int:
    """Bytes the run has beside what is in use now, DuckDB's memory_limit, what DuckDB
    holds outside it and `beside` (dbt's process, as the settings were derived with):
    where anything else running beside DuckDB must fit. DuckDB on more than one thread
    holds more outside its pool as it spills, so the share the derivation leaves for that
    (the difference between DEFAULT_ and MULTI_THREAD_MEMORY_FRACTION) is not counted.
    Read from this process's cgroup like the settings were."""
    limits = limits if limits is not None else read_container_limits()
    if limits.memory is not None:
        total = int(limits.memory.value) - int(limits.memory.in_use or 0)
    else:
        total = min(memory_bytes(profile.limits.memory), physical_memory or _physical_memory())
    memory = _memory_limit_bytes(settings)
    threads_share = 0
    if settings.threads > 1:
        threads_share = int(memory / MULTI_THREAD_MEMORY_FRACTION
                            * (DEFAULT_MEMORY_FRACTION - MULTI_THREAD_MEMORY_FRACTION))
    return total - DUCKDB_OWN_MEMORY - memory - beside - threads_share


def small_memory_limit_warning(
    profile_name: str,
    profile: ResourceProfile,
    settings: DuckDBSettings,
    *,
    limits: ContainerLimits | None = None,
    beside: int = 0,
) -> str | None:
    """What to tell a run whose DuckDB gets less than DUCKDB_SMALLEST_MEMORY_LIMIT: the
    profile, what it leaves DuckDB and why, and the setting that would give DuckDB that
    much (derived as the settings were, from this process's cgroup unless `limits` is
    given). None when DuckDB has enough."""
    memory = _memory_limit_bytes(settings)
    if memory >= DUCKDB_SMALLEST_MEMORY_LIMIT:
        return None
    said = (f"profile {profile_name!r} (limits.memory {profile.limits.memory}) leaves DuckDB "
            f"a memory_limit of {settings.memory_limit} ({settings.memory_limit_source}); "
            f"DuckDB needs about {_mib(DUCKDB_SMALLEST_MEMORY_LIMIT)}, so a model over more "
            f"data than that may stop with DuckDB's out-of-memory error")
    if profile.duckdb.memory_limit is not None:
        return f"{said}: raise the profile's duckdb.memoryLimit"
    limits = limits if limits is not None else read_container_limits()
    held = beside
    if limits.memory is not None:
        held += int(limits.memory.in_use or 0) + DUCKDB_OWN_MEMORY
    fraction = profile.duckdb.memory_limit_fraction or DEFAULT_MEMORY_FRACTION
    step = 128 * _MiB
    needed = math.ceil((held + DUCKDB_SMALLEST_MEMORY_LIMIT / fraction) / step) * step
    return f"{said}: give the profile limits.memory {needed // _MiB}Mi or more"


def _memory_limit_bytes(settings: DuckDBSettings) -> int:
    """memory_limit in bytes: the derivation always writes it in MiB (`_mib`)."""
    if not settings.memory_limit.endswith("MiB"):
        raise ValueError(f"memory_limit {settings.memory_limit!r} is not in MiB")
    return int(memory_bytes(settings.memory_limit.removesuffix("B")))


def _budget(profile: ResourceProfile, limits: ContainerLimits, physical_memory: int | None,
            beside: int):
    """The memory DuckDB's share is taken from, and where that figure comes from."""
    reserved = f"{_mib(beside)} for dbt's process and the worker's DuckDB" if beside else ""
    if limits.memory is not None:
        # What other processes of the pod hold already (the run worker) is not DuckDB's,
        # nor what dbt's process will hold beside it.
        in_use = int(limits.memory.in_use or 0)
        # Never below an eighth of the limit: DuckDB then spills early rather than fails.
        budget = max(
            int(limits.memory.value) - in_use - DUCKDB_OWN_MEMORY - beside,
            int(limits.memory.value) // 8,
        )
        return budget, (
            f"cgroup {limits.memory.source} less {_mib(in_use)} in use, "
            f"{_mib(DUCKDB_OWN_MEMORY)} for DuckDB itself"
            + (f" and {reserved}" if reserved else "")
        )
    # No container limit (one machine, no cgroup): the profile's limit is what the
    # platform engineer meant the run to use, if the machine has that much; dbt's process
    # is part of the run.
    total = min(memory_bytes(profile.limits.memory), physical_memory or _physical_memory())
    budget = max(total - beside, total // 8)
    return budget, "profile limits.memory (no cgroup memory limit)" + (
        f" less {reserved}" if reserved else "")


def dbt_build_memory(manifest_nodes: int, built_nodes: int) -> int:
    """What a dbt op adds beside DuckDB after it derives the settings: dbt's own process,
    in a build of `built_nodes` nodes of a manifest of `manifest_nodes`, and the run
    worker's own DuckDB (measured: DBT_PROCESS_BASE, RUN_WORKER_DUCKDB_MEMORY)."""
    return (DBT_PROCESS_BASE + manifest_nodes * DBT_PROCESS_PER_MANIFEST_NODE
            + built_nodes * DBT_PROCESS_PER_BUILT_NODE + RUN_WORKER_DUCKDB_MEMORY)


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
