"""What a run's DuckDB out-of-memory error means for the platform engineer who sized it.

DuckDB says "failed to offload data block ... (9.0 GiB/9.0 GiB used)" when its temp
directory reached `max_temp_directory_size`, and "could not allocate block" / "failed to
pin block" when its buffer pool is full of memory it cannot evict. Both name DuckDB
settings a lakeport user never sets: lakeport derives them from the run's resource
profile. So the run's failure says which profile, which of its fields and what size to
ask for instead. The messages are DuckDB 1.5.5's: src/storage/temporary_file_manager.cpp
(`IncreaseSizeOnDisk`) and src/storage/standard_buffer_manager.cpp (`EvictBlocksOrThrow`
callers).
"""

import math
import re

from lakeport.duckdb_connection import DuckDBSettings
from lakeport.platform import ResourceProfile
from lakeport.profiles import PROFILE_TAG
from lakeport.quantities import memory_bytes

# DuckDB's human-readable sizes, e.g. "8.9 GiB" (StringUtil::BytesToHumanReadableString).
_SIZE = r"([0-9.]+ [KMGTP]?i?B|[0-9]+ bytes)"
_SPILL_FULL = re.compile(
    r"failed to offload data block of size " + _SIZE + r" \(" + _SIZE + "/" + _SIZE + " used\\)"
)
_POOL_FULL = re.compile(
    r"(could not allocate block|failed to pin block|failed to allocate "
    r"data) of size " + _SIZE
)
_GiB = 1 << 30


def explain(
    message: str, profile_name: str, profile: ResourceProfile, settings: DuckDBSettings
) -> str | None:
    """A sentence for the run's failure when `message` is DuckDB running out of spill or of
    memory under this profile; None for any other error."""
    spill_volume_size = str(profile.spill_volume_size)
    if _SPILL_FULL.search(message):
        needed = spill_volume_needed(spill_volume_size)
        return (
            f"the run filled its spill volume: resource profile '{profile_name}' has "
            f"spillVolumeSize {spill_volume_size}, of which DuckDB may use "
            f"{settings.max_temp_directory_size} (max_temp_directory_size), and this run needed "
            f"more before it finished. Set resourceProfiles.{profile_name}.spillVolumeSize to "
            f"at least {needed}, or run it under a larger profile (tag {PROFILE_TAG})"
        )
    if is_out_of_memory(message):
        return (
            f"DuckDB ran out of the memory resource profile '{profile_name}' gives it "
            f"(memory_limit {settings.memory_limit}: {settings.memory_limit_source}; "
            f"{settings.threads} thread(s)) with nothing left it could spill. Raise "
            f"resourceProfiles.{profile_name}.limits.memory, or run it under a larger profile "
            f"(tag {PROFILE_TAG})"
        )
    return None


def is_out_of_memory(message: str) -> bool:
    """Whether `message` is DuckDB's own out-of-memory error (its buffer pool full of memory
    it could not evict), as opposed to its spill volume filling or any other error."""
    return _POOL_FULL.search(message) is not None and _SPILL_FULL.search(message) is None


def spill_volume_needed(spill_volume_size: str) -> str:
    """Twice the volume that filled, in whole GiB: the run stopped when it filled, so what
    it needs is only known to be more than that."""
    return f"{math.ceil(2 * memory_bytes(spill_volume_size) / _GiB)}Gi"
