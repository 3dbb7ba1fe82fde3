"""DuckDB settings derived from cgroup limits, on fake /proc + /sys/fs/cgroup trees."""

from pathlib import Path

import duckdb
import pytest

from lakeport.cgroup_limits import ContainerLimits, Limit, cpu_threads, read_container_limits
from lakeport.config import parse_platform
from lakeport.dbt_assets import COPY_ROOM_NEEDED
from lakeport.duckdb_settings import (
    DEFAULT_MEMORY_FRACTION,
    DUCKDB_OWN_MEMORY,
    MAX_MEMORY_PER_THREAD,
    MIN_MEMORY_PER_THREAD,
    MULTI_THREAD_MEMORY_FRACTION,
    RUN_WORKER_DUCKDB_MEMORY,
    DuckDBSettings,
    connect,
    dbt_build_memory,
    derive_duckdb_settings,
    room_beside_duckdb,
    small_memory_limit_warning,
)
from lakeport.quantities import memory_bytes

MiB = 1 << 20
GiB = 1 << 30

V2_MOUNTINFO = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V1_MOUNTINFO = (
    "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
)


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def v2_tree(root: Path, cgroup: str, files: dict[str, str]) -> Path:
    write(root, "proc/self/mountinfo", V2_MOUNTINFO)
    write(root, "proc/self/cgroup", f"0::{cgroup}\n")
    for relative, text in files.items():
        write(root, f"sys/fs/cgroup/{relative}", text)
    return root


def v1_tree(root: Path, memory_path: str, cpu_path: str, files: dict[str, str]) -> Path:
    write(root, "proc/self/mountinfo", V1_MOUNTINFO)
    write(
        root,
        "proc/self/cgroup",
        f"4:memory:{memory_path}\n2:cpu,cpuacct:{cpu_path}\n0::/\n",
    )
    for relative, text in files.items():
        write(root, f"sys/fs/cgroup/{relative}", text)
    return root


def profile(duckdb_overrides: str = "", memory: str = "2Gi", spill: str = "10Gi"):
    platform = parse_platform(
        f"""
resourceProfiles:
  transform:
    requests: {{cpu: 500m, memory: 1Gi}}
    limits: {{cpu: "2", memory: {memory}}}
    spillVolumeSize: {spill}
    {duckdb_overrides}
"""
    )
    return platform.profile("transform")


# --- reading limits -------------------------------------------------------------------------


def test_cgroup_v2_memory_max_and_cpu_max(tmp_path):
    root = v2_tree(
        tmp_path, "/", {"memory.max": f"{3 * GiB}\n", "cpu.max": "150000 100000\n"}
    )
    limits = read_container_limits(root)
    assert limits.memory == Limit(3 * GiB, "/sys/fs/cgroup/memory.max")
    assert limits.cpu.value == 1.5
    assert cpu_threads(limits.cpu, available_cpus=8) == 2


def test_memory_in_use_excludes_reclaimable_file_cache(tmp_path):
    v2 = v2_tree(
        tmp_path / "v2",
        "/",
        {
            "memory.max": f"{GiB}",
            "memory.current": f"{400 * MiB}",
            "memory.stat": f"anon {250 * MiB}\ninactive_file {100 * MiB}\n",
        },
    )
    assert read_container_limits(v2).memory.in_use == 300 * MiB
    v1 = v1_tree(
        tmp_path / "v1",
        "/",
        "/",
        {
            "memory/memory.limit_in_bytes": f"{GiB}",
            "memory/memory.usage_in_bytes": f"{200 * MiB}",
            "memory/memory.stat": f"cache {90 * MiB}\ntotal_inactive_file {50 * MiB}\n",
        },
    )
    assert read_container_limits(v1).memory.in_use == 150 * MiB


def test_cgroup_v2_unlimited_is_none(tmp_path):
    root = v2_tree(tmp_path, "/", {"memory.max": "max\n", "cpu.max": "max 100000\n"})
    assert read_container_limits(root) == ContainerLimits(memory=None, cpu=None)


def test_cgroup_v2_nested_path_takes_the_tightest_ancestor(tmp_path):
    # A pod's container cgroup seen without a cgroup namespace: the pod-level parent is
    # the binding limit.
    root = v2_tree(
        tmp_path,
        "/kubepods/pod1/ctr",
        {
            "kubepods/memory.max": f"{16 * GiB}",
            "kubepods/pod1/memory.max": f"{1 * GiB}",
            "kubepods/pod1/ctr/memory.max": "max",
        },
    )
    limits = read_container_limits(root)
    assert limits.memory.value == GiB
    assert limits.memory.source == "/sys/fs/cgroup/kubepods/pod1/memory.max"


def test_cgroup_v1_limit_in_bytes_and_cfs_quota(tmp_path):
    root = v1_tree(
        tmp_path,
        "/docker/abc",
        "/docker/abc",
        {
            "memory/docker/abc/memory.limit_in_bytes": f"{512 * MiB}\n",
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
            "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "250000\n",
            "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        },
    )
    limits = read_container_limits(root)
    source = "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"
    assert limits.memory == Limit(512 * MiB, source)
    assert limits.cpu.value == 2.5
    assert cpu_threads(limits.cpu, available_cpus=2) == 2  # never more than the CPUs there are


def test_cgroup_v1_unlimited_quota_and_huge_limit_are_none(tmp_path):
    root = v1_tree(
        tmp_path,
        "/",
        "/",
        {
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
            "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
            "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        },
    )
    assert read_container_limits(root) == ContainerLimits(memory=None, cpu=None)


def test_v1_mount_root_prefix_is_stripped(tmp_path):
    # Without a cgroup namespace a v1 mount's root can be the container's own cgroup.
    write(
        tmp_path,
        "proc/self/mountinfo",
        "35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
    )
    write(tmp_path, "proc/self/cgroup", "4:memory:/docker/abc\n")
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", f"{GiB}")
    assert read_container_limits(tmp_path).memory.value == GiB


def test_no_proc_files_means_no_limits(tmp_path):
    assert read_container_limits(tmp_path) == ContainerLimits(memory=None, cpu=None)


# --- deriving settings ----------------------------------------------------------------------


def _threads_window(memory: int) -> tuple[int, int]:
    fewest = max(1, -(-memory // MAX_MEMORY_PER_THREAD))
    return fewest, max(fewest, memory // MIN_MEMORY_PER_THREAD)


def test_memory_already_in_use_in_the_pod_is_left_alone(tmp_path):
    # The Dagster run worker holds 312 MiB of a 1 GiB pod: DuckDB gets a share of the rest
    # (two threads' share: one thread's 0.8 of it would be over MAX_MEMORY_PER_THREAD).
    limits = ContainerLimits(Limit(GiB, "/sys/fs/cgroup/memory.max", in_use=312 * MiB), None)
    settings = derive_duckdb_settings(profile(), limits=limits, spill_dir=tmp_path)
    left = 712 * MiB - DUCKDB_OWN_MEMORY  # and what DuckDB itself will hold once loaded
    assert left * DEFAULT_MEMORY_FRACTION > MAX_MEMORY_PER_THREAD
    assert settings.memory_limit == f"{int(left * MULTI_THREAD_MEMORY_FRACTION) // MiB}MiB"
    assert "less 312MiB in use" in settings.memory_limit_source
    # A pod that is nearly full still gives DuckDB an eighth of the limit to spill from,
    # on one thread.
    full = ContainerLimits(Limit(GiB, "m", in_use=GiB), None)
    settings = derive_duckdb_settings(profile(), limits=full, spill_dir=tmp_path)
    assert settings.memory_limit == f"{int(GiB / 8 * DEFAULT_MEMORY_FRACTION) // MiB}MiB"
    assert settings.threads == 1


def test_a_small_pod_runs_one_thread_with_the_default_fraction(tmp_path):
    # A 512 MiB pod with 85 MiB in use and 2 cores: 0.8 x 379 MiB fits one thread's window,
    # and two would have less than MIN_MEMORY_PER_THREAD each.
    limits = ContainerLimits(Limit(512 * MiB, "m", in_use=85 * MiB), Limit(2, "c"))
    settings = derive_duckdb_settings(profile(), limits=limits, spill_dir=tmp_path)
    left = 427 * MiB - DUCKDB_OWN_MEMORY
    assert settings.memory_limit == f"{int(left * DEFAULT_MEMORY_FRACTION) // MiB}MiB"
    assert settings.threads == 1
    assert "kept between 1 and 1" in settings.threads_source
    assert "cgroup c (2 cores)" in settings.threads_source


def test_threads_keep_each_threads_memory_inside_the_window(tmp_path):
    # Pods from 1 to 8 GiB, with 2 and with 16 cores: the memory limit is the multi-thread
    # fraction of what is left, and no thread gets more than MAX_MEMORY_PER_THREAD of it
    # (DuckDB 1.5 then fails a spilling aggregate) or less than MIN_MEMORY_PER_THREAD.
    for gib in (1, 2, 4, 8):
        for cores in (2, 16):
            limits = ContainerLimits(Limit(gib * GiB, "m", in_use=0), Limit(cores, "c"))
            settings = derive_duckdb_settings(
                profile(memory=f"{gib}Gi"), limits=limits, spill_dir=tmp_path,
                available_cpus=cores,
            )
            memory = int((gib * GiB - DUCKDB_OWN_MEMORY) * MULTI_THREAD_MEMORY_FRACTION)
            assert settings.memory_limit == f"{memory // MiB}MiB", (gib, cores)
            fewest, most = _threads_window(memory)
            assert settings.threads == min(max(cores, fewest), most), (gib, cores)
            per_thread = memory / settings.threads
            assert MIN_MEMORY_PER_THREAD <= per_thread <= MAX_MEMORY_PER_THREAD, (gib, cores)
    # The measured points: a 1 GiB pod runs 2 threads, a 2 GiB pod 4, with 2 cores.
    for gib, threads in ((1, 2), (2, 4)):
        limits = ContainerLimits(Limit(gib * GiB, "m", in_use=0), Limit(2, "c"))
        assert derive_duckdb_settings(
            profile(memory=f"{gib}Gi"), limits=limits, spill_dir=tmp_path
        ).threads == threads


def test_memory_is_the_multi_thread_fraction_of_the_cgroup_limit(tmp_path):
    limits = ContainerLimits(Limit(3 * GiB, "/sys/fs/cgroup/memory.max"), Limit(2, "cpu.max"))
    settings = derive_duckdb_settings(
        profile(), limits=limits, spill_dir=tmp_path, available_cpus=8
    )
    memory = int((3 * GiB - DUCKDB_OWN_MEMORY) * MULTI_THREAD_MEMORY_FRACTION)
    assert settings.memory_limit == f"{memory // MiB}MiB"
    # Two cores, but 1966 MiB on two threads is over the window: six threads.
    assert settings.threads == _threads_window(memory)[0] == 6
    assert settings.temp_directory == str(tmp_path)
    assert "cgroup /sys/fs/cgroup/memory.max" in settings.memory_limit_source
    assert settings.memory_limit_source.startswith(f"{MULTI_THREAD_MEMORY_FRACTION:g} x ")


def test_profile_fraction_and_explicit_values_win(tmp_path):
    limits = ContainerLimits(Limit(4 * GiB, "m"), Limit(4, "c"))
    fraction = derive_duckdb_settings(
        profile("duckdb: {memoryLimitFraction: 0.5}"), limits=limits, spill_dir=tmp_path
    )
    # The profile's fraction is the memory limit whatever the threads; threads follow it.
    half = (4 * GiB - DUCKDB_OWN_MEMORY) // 2
    assert fraction.memory_limit == f"{half // MiB}MiB"
    assert fraction.threads == _threads_window(half)[0]
    assert fraction.memory_limit_source.startswith(
        f"0.5 x {(4 * GiB - DUCKDB_OWN_MEMORY) // MiB}MiB"
    )
    explicit = derive_duckdb_settings(
        profile("duckdb: {memoryLimit: 700Mi, threads: 3, maxTempDirectorySize: 5Gi}"),
        limits=limits,
        spill_dir=tmp_path,
    )
    assert (explicit.memory_limit, explicit.threads, explicit.max_temp_directory_size) == (
        "700MiB",
        3,
        "5120MiB",
    )
    assert explicit.memory_limit_source == "profile duckdb.memoryLimit"


def test_explicit_threads_and_memory_limit_still_win(tmp_path):
    small = ContainerLimits(Limit(512 * MiB, "m", in_use=85 * MiB), Limit(2, "c"))
    # threads: 2 is kept however little memory there is, and takes the multi-thread share.
    settings = derive_duckdb_settings(
        profile("duckdb: {threads: 2}"), limits=small, spill_dir=tmp_path
    )
    assert settings.threads == 2
    assert settings.threads_source == "profile duckdb.threads"
    left = 427 * MiB - DUCKDB_OWN_MEMORY
    assert settings.memory_limit == f"{int(left * MULTI_THREAD_MEMORY_FRACTION) // MiB}MiB"
    # An explicit memoryLimit is DuckDB's whole pool; threads keep inside the window of it.
    limits = ContainerLimits(Limit(8 * GiB, "m"), Limit(4, "c"))
    for memory_limit, threads in (("300Mi", 1), ("700Mi", 2), ("1Gi", 4), ("2Gi", 6)):
        settings = derive_duckdb_settings(
            profile(f"duckdb: {{memoryLimit: {memory_limit}}}", memory="8Gi"), limits=limits,
            spill_dir=tmp_path, available_cpus=4,
        )
        assert settings.memory_limit == f"{memory_bytes(memory_limit) // MiB}MiB"
        assert settings.threads == threads, memory_limit
        assert memory_bytes(memory_limit) / threads <= MAX_MEMORY_PER_THREAD


def test_temp_directory_size_stays_below_the_spill_volume(tmp_path):
    settings = derive_duckdb_settings(
        profile(spill="1Gi"), limits=ContainerLimits(None, None), spill_dir=tmp_path
    )
    assert settings.max_temp_directory_size == f"{int(GiB * 0.9) // MiB}MiB"


def test_without_any_limit_the_profile_limit_bounded_by_the_machine_is_used(tmp_path):
    unlimited = ContainerLimits(None, None)
    settings = derive_duckdb_settings(
        profile(memory="2Gi"), limits=unlimited, spill_dir=tmp_path, available_cpus=6,
        physical_memory=64 * GiB,
    )
    # 6 CPUs: the multi-thread share of 2 GiB, on as many threads as its window allows.
    memory = int(2 * GiB * MULTI_THREAD_MEMORY_FRACTION)
    assert settings.memory_limit == f"{memory // MiB}MiB"
    assert settings.threads == min(max(6, _threads_window(memory)[0]), _threads_window(memory)[1])
    assert "profile limits.memory" in settings.memory_limit_source
    small_machine = derive_duckdb_settings(
        profile(memory="8Gi"), limits=unlimited, spill_dir=tmp_path, physical_memory=GiB
    )
    # A 1 GiB machine: 0.8 of it is over one thread's window, so the multi-thread share.
    assert small_machine.memory_limit == (
        f"{int(GiB * MULTI_THREAD_MEMORY_FRACTION) // MiB}MiB"
    )


def test_settings_reach_a_duckdb_connection_and_round_trip(tmp_path):
    settings = derive_duckdb_settings(
        profile("duckdb: {memoryLimit: 300Mi, threads: 1}"),
        limits=ContainerLimits(None, None),
        spill_dir=tmp_path / "spill",
    )
    assert DuckDBSettings.from_json(settings.to_json()) == settings
    with connect(settings) as connection:
        row = connection.execute(
            "select current_setting('memory_limit'), current_setting('threads'), "
            "current_setting('temp_directory')"
        ).fetchone()
    assert row == ("300.0 MiB", 1, str(tmp_path / "spill"))
    assert (tmp_path / "spill").is_dir()


def test_invalid_memory_setting_is_rejected_by_duckdb():
    # Guards the format we emit: DuckDB must parse "<n>MiB" (a typo would raise here).
    with duckdb.connect() as connection:
        connection.execute("SET memory_limit = '123MiB'")
        with pytest.raises(duckdb.Error):
            connection.execute("SET memory_limit = '123 bananas'")


def test_dbt_process_is_reserved_beside_duckdb(tmp_path):
    # A 1 GiB pod whose run worker holds 250 MiB, building 600 nodes of a 600-node manifest
    # (bench/orchestration_overhead.py's 200 models): dbt's process, measured at 188-192
    # MiB there with DuckDB's library (32 MiB, counted in DUCKDB_OWN_MEMORY), and the run
    # worker's own DuckDB (RUN_WORKER_DUCKDB_MEMORY) are taken from DuckDB's budget before
    # its share is.
    dbt = dbt_build_memory(600, 600)
    assert 180 * MiB <= dbt + 32 * MiB - RUN_WORKER_DUCKDB_MEMORY <= 200 * MiB
    assert dbt_build_memory(3000, 3) < dbt_build_memory(3000, 3000)
    limits = ContainerLimits(Limit(GiB, "m", in_use=250 * MiB), Limit(2, "c"))
    alone = derive_duckdb_settings(profile(), limits=limits, spill_dir=tmp_path)
    settings = derive_duckdb_settings(profile(), limits=limits, spill_dir=tmp_path, beside=dbt)
    budget = GiB - 250 * MiB - DUCKDB_OWN_MEMORY - dbt
    fraction = (DEFAULT_MEMORY_FRACTION if budget * DEFAULT_MEMORY_FRACTION
                <= MAX_MEMORY_PER_THREAD else MULTI_THREAD_MEMORY_FRACTION)
    assert settings.memory_limit == f"{int(budget * fraction) // MiB}MiB"
    assert memory_bytes(settings.memory_limit[:-1]) < memory_bytes(alone.memory_limit[:-1])
    assert f"and {dbt // MiB}MiB for dbt's process" in settings.memory_limit_source
    # Without a cgroup, from the profile's limit.
    settings = derive_duckdb_settings(profile(memory="2Gi"), limits=ContainerLimits(None, None),
                                      spill_dir=tmp_path, physical_memory=64 * GiB, beside=dbt)
    assert settings.memory_limit == (
        f"{int((2 * GiB - dbt) * MULTI_THREAD_MEMORY_FRACTION) // MiB}MiB")
    assert f"less {dbt // MiB}MiB for dbt's process" in settings.memory_limit_source


def _pod(memory_mib: int):
    """A profile whose requests and limits are both `memory_mib`."""
    return parse_platform(
        f"resourceProfiles: {{transform: {{requests: {{cpu: 500m, memory: {memory_mib}Mi}}, "
        f"limits: {{cpu: '2', memory: {memory_mib}Mi}}}}}}").profile("transform")


def test_a_pod_too_small_for_duckdb_beside_dbt_is_warned_about(tmp_path):
    dbt = dbt_build_memory(600, 600)

    def warning(memory_mib: int) -> str | None:
        limits = ContainerLimits(Limit(memory_mib * MiB, "m", in_use=250 * MiB), Limit(2, "c"))
        settings = derive_duckdb_settings(_pod(memory_mib), limits=limits, spill_dir=tmp_path,
                                          beside=dbt)
        said = small_memory_limit_warning("transform", _pod(memory_mib), settings,
                                          limits=limits, beside=dbt)
        assert said is None or f"memory_limit of {settings.memory_limit}" in said
        return said

    said = warning(512)
    assert said is not None
    assert "profile 'transform' (limits.memory 512Mi)" in said
    assert "for dbt's process" in said
    # The limit it names gives DuckDB what it needs; 2 GiB is plenty.
    needed = int(said.rsplit("limits.memory ", 1)[1].split("Mi")[0])
    assert needed > 512
    assert warning(needed) is None
    assert warning(2048) is None


def test_room_beside_duckdb_decides_where_tables_are_copied_while_dbt_runs(tmp_path):
    # What a pod has beside the run worker, DuckDB's memory_limit, DuckDB's own memory and
    # dbt's process: where the copies' writers must fit while dbt runs.
    dbt = dbt_build_memory(600, 600)

    def room(limit: int, in_use: int) -> int:
        limits = ContainerLimits(Limit(limit, "m", in_use=in_use), Limit(2, "c"))
        settings = derive_duckdb_settings(profile(), limits=limits, spill_dir=tmp_path,
                                          beside=dbt)
        duckdb_limit = memory_bytes(settings.memory_limit.removesuffix("B"))
        # More than one thread: what the derivation left them outside the pool is theirs.
        threads_share = 0 if settings.threads == 1 else int(
            duckdb_limit / MULTI_THREAD_MEMORY_FRACTION
            * (DEFAULT_MEMORY_FRACTION - MULTI_THREAD_MEMORY_FRACTION))
        assert room_beside_duckdb(profile(), settings, limits=limits, beside=dbt) == (
            limit - in_use - DUCKDB_OWN_MEMORY - duckdb_limit - dbt - threads_share)
        return room_beside_duckdb(profile(), settings, limits=limits, beside=dbt)

    # A 512 MiB pod keeps writing after dbt; so does a 1 GiB pod whose DuckDB runs two
    # threads (what is left beside its memory_limit is the second thread's) ...
    assert room(512 * MiB, 250 * MiB) < COPY_ROOM_NEEDED
    assert room(GiB, 150 * MiB) < COPY_ROOM_NEEDED
    # ... and pods of 2 GiB and more copy.
    assert COPY_ROOM_NEEDED <= room(2 * GiB, 250 * MiB) < room(4 * GiB, 250 * MiB)
    # An explicit memory_limit that leaves no room says so.
    limits = ContainerLimits(Limit(2 * GiB, "m", in_use=250 * MiB), None)
    explicit = profile("duckdb: {memoryLimit: 1700Mi}")
    settings = derive_duckdb_settings(explicit, limits=limits, spill_dir=tmp_path)
    assert room_beside_duckdb(explicit, settings, limits=limits) < 0
    # Without a cgroup limit, the profile's limits.memory bounded by the machine.
    settings = derive_duckdb_settings(profile(memory="4Gi"), limits=ContainerLimits(None, None),
                                      spill_dir=tmp_path, physical_memory=64 * GiB)
    memory = memory_bytes(settings.memory_limit.removesuffix("B"))
    assert settings.threads > 1
    assert room_beside_duckdb(
        profile(memory="4Gi"), settings, limits=ContainerLimits(None, None),
        physical_memory=64 * GiB,
    ) == 4 * GiB - DUCKDB_OWN_MEMORY - memory - int(
        memory / MULTI_THREAD_MEMORY_FRACTION
        * (DEFAULT_MEMORY_FRACTION - MULTI_THREAD_MEMORY_FRACTION))
