"""The memory and CPU limits of the container (cgroup) this process runs in.

Read from the kernel's own files, the way the container runtime set them: cgroup v2
`memory.max` / `cpu.max`, cgroup v1 `memory.limit_in_bytes` / `cpu.cfs_quota_us` +
`cpu.cfs_period_us`. The process's cgroup comes from /proc/self/cgroup and the
hierarchy's mount point from /proc/self/mountinfo, so this works with and without a
cgroup namespace (Kubernetes, Docker, a hand-made cgroup). A limit set on a parent
cgroup binds the child too, so the tightest limit on the path up to the mount wins.

`root` re-roots every path, so tests can hand in a fake file tree.
"""

import math
from dataclasses import dataclass
from pathlib import Path

# cgroup v1 reports "no limit" as a huge page-aligned number (2^63 rounded down).
_V1_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class Limit:
    value: float
    # The file the value came from: recorded as metadata so a run says why it got what.
    source: str
    # Memory only: what the cgroup holds already (not counting reclaimable file cache),
    # e.g. the Dagster run worker that shares the pod with DuckDB.
    in_use: float | None = None


@dataclass(frozen=True)
class ContainerLimits:
    memory: Limit | None  # bytes
    cpu: Limit | None  # cores (quota / period)


@dataclass(frozen=True)
class _Hierarchy:
    version: int
    mount_point: str
    mount_root: str
    controllers: frozenset[str]


def read_container_limits(root: str | Path = "/") -> ContainerLimits:
    """The tightest memory and CPU limits that apply to this process; None where unlimited."""
    root = Path(root)
    try:
        hierarchies = _mounted_hierarchies(root)
        memberships = _memberships(root)
    except OSError:
        return ContainerLimits(memory=None, cpu=None)  # no /proc to read: nothing applies
    memory, cpu = [], []
    for hierarchy in hierarchies:
        cgroup_path = _path_in(hierarchy, memberships)
        if cgroup_path is None:
            continue
        for directory in _dirs_up_to_mount(root, hierarchy, cgroup_path):
            if hierarchy.version == 2:
                memory += _v2_memory(directory, root)
                cpu += _v2_cpu(directory, root)
            else:
                if "memory" in hierarchy.controllers:
                    memory += _v1_memory(directory, root)
                if "cpu" in hierarchy.controllers:
                    cpu += _v1_cpu(directory, root)
    return ContainerLimits(
        memory=min(memory, key=lambda limit: limit.value, default=None),
        cpu=min(cpu, key=lambda limit: limit.value, default=None),
    )


def cpu_threads(limit: Limit | None, available_cpus: int) -> int:
    """Whole threads for a CPU limit: 1.5 cores -> 2 threads, never more than the CPUs seen."""
    if limit is None:
        return max(1, available_cpus)
    return max(1, min(available_cpus, math.ceil(limit.value)))


def own_cgroup_directories(root: str | Path = "/") -> dict[str, Path]:
    """Controller ("memory", "cpu"; "" for the v2 unified hierarchy) -> the directory of
    this process's own cgroup in its mounted hierarchy. `lakeport.dev.cgroups` makes run
    cgroups below these. Raises OSError when /proc cannot be read."""
    root = Path(root)
    memberships = _memberships(root)
    directories = {}
    for hierarchy in _mounted_hierarchies(root):
        cgroup_path = _path_in(hierarchy, memberships)
        if cgroup_path is None:
            continue
        own = _dirs_up_to_mount(root, hierarchy, cgroup_path)[0]
        for key in ([""] if hierarchy.version == 2 else sorted(hierarchy.controllers)):
            directories[key] = own
    return directories


# --- /proc parsing ----------------------------------------------------------------------------


def _mounted_hierarchies(root: Path) -> list[_Hierarchy]:
    lines = (root / "proc/self/mountinfo").read_text().splitlines()
    hierarchies = []
    for line in lines:
        # "<id> <parent> <maj:min> <root> <mount point> <opts> [optional...] - <fstype>
        #  <source> <super options>"
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype, super_options = tail[0], tail[2]
        if fstype == "cgroup2":
            hierarchies.append(_Hierarchy(2, _unescape(fields[4]), fields[3], frozenset()))
        elif fstype == "cgroup":
            controllers = frozenset(super_options.split(",")) & {"memory", "cpu"}
            if controllers:
                hierarchies.append(_Hierarchy(1, _unescape(fields[4]), fields[3], controllers))
    return hierarchies


def _memberships(root: Path) -> dict[str, str]:
    """Controller name (or "" for the v2 unified hierarchy) -> this process's cgroup path."""
    lines = (root / "proc/self/cgroup").read_text().splitlines()
    paths = {}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy_id, controllers, path = parts
        if hierarchy_id == "0" and controllers == "":
            paths[""] = path
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


def _path_in(hierarchy: _Hierarchy, memberships: dict[str, str]) -> str | None:
    if hierarchy.version == 2:
        return memberships.get("")
    for controller in sorted(hierarchy.controllers):
        if controller in memberships:
            return memberships[controller]
    return None


def _dirs_up_to_mount(root: Path, hierarchy: _Hierarchy, cgroup_path: str) -> list[Path]:
    # Without a cgroup namespace the mount's root is a prefix of the path we are in
    # (e.g. /docker/<id>); with one, both are "/".
    relative = cgroup_path
    if hierarchy.mount_root != "/" and relative.startswith(hierarchy.mount_root):
        relative = relative[len(hierarchy.mount_root):]
    mount = root / hierarchy.mount_point.lstrip("/")
    parts = [p for p in relative.split("/") if p]
    return [mount.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace(
        "\\134", "\\"
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _shown(path: Path, root: Path) -> str:
    return "/" + str(path.relative_to(root)).lstrip("/")


def _v2_memory(directory: Path, root: Path) -> list[Limit]:
    text = _read(directory / "memory.max")
    if text is None or text == "max":
        return []
    in_use = _in_use(directory, "memory.current", "inactive_file")
    return [Limit(float(int(text)), _shown(directory / "memory.max", root), in_use)]


def _v2_cpu(directory: Path, root: Path) -> list[Limit]:
    text = _read(directory / "cpu.max")
    if text is None:
        return []
    quota, _, period = text.partition(" ")
    if quota == "max":
        return []
    return [Limit(int(quota) / int(period or 100000), _shown(directory / "cpu.max", root))]


def _v1_memory(directory: Path, root: Path) -> list[Limit]:
    text = _read(directory / "memory.limit_in_bytes")
    if text is None or int(text) >= _V1_UNLIMITED:
        return []
    in_use = _in_use(directory, "memory.usage_in_bytes", "total_inactive_file")
    return [Limit(float(int(text)), _shown(directory / "memory.limit_in_bytes", root), in_use)]


def _in_use(directory: Path, usage_file: str, reclaimable_key: str) -> float | None:
    usage = _read(directory / usage_file)
    if usage is None:
        return None
    reclaimable = 0
    for line in (_read(directory / "memory.stat") or "").splitlines():
        key, _, value = line.partition(" ")
        if key == reclaimable_key:
            reclaimable = int(value)
    return float(max(0, int(usage) - reclaimable))


def _v1_cpu(directory: Path, root: Path) -> list[Limit]:
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    if quota is None or period is None or int(quota) <= 0:
        return []
    return [Limit(int(quota) / int(period), _shown(directory / "cpu.cfs_quota_us", root))]
