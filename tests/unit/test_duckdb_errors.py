"""A run's DuckDB out-of-memory error names the profile field to change."""

from lakeport.config import parse_platform
from lakeport.duckdb_connection import DuckDBSettings
from lakeport.duckdb_errors import explain, spill_volume_needed

# DuckDB 1.5.5's own messages, as two runs of bench/memory_discipline.py at a 1 GiB pod
# limit recorded them (bench/results/memory_discipline_1gib.json, 2026-11-22).
SPILL_FULL = (
    "Out of Memory Error: failed to offload data block of size 256.0 KiB (8.9 GiB/9.0 GiB "
    "used).\nThis limit was set by the 'max_temp_directory_size' setting."
)
POOL_FULL = (
    "Out of Memory Error: could not allocate block of size 256.0 KiB (751.8 MiB/752.0 MiB used)"
)
PLATFORM = parse_platform("resourceProfiles: {transform: {spillVolumeSize: 10Gi}}")
SETTINGS = DuckDBSettings(
    memory_limit="752MiB", threads=1, temp_directory="/spill",
    max_temp_directory_size="9216MiB",
    memory_limit_source="0.8 x 940MiB from cgroup memory.max", threads_source="x",
)


def test_a_full_spill_volume_names_the_profile_and_a_size_that_would_do():
    message = explain(
        f"dbt build failed: {SPILL_FULL}", "transform", PLATFORM.profile("transform"), SETTINGS
    )
    assert message is not None
    assert "resource profile 'transform'" in message
    assert "spillVolumeSize 10Gi" in message and "9216MiB" in message
    assert "resourceProfiles.transform.spillVolumeSize to at least 20Gi" in message


def test_a_full_buffer_pool_names_the_memory_it_had():
    message = explain(POOL_FULL, "large", PLATFORM.profile("large"), SETTINGS)
    assert message is not None
    assert "resource profile 'large'" in message
    assert "memory_limit 752MiB" in message and "0.8 x 940MiB" in message
    assert "resourceProfiles.large.limits.memory" in message
    assert "spillVolumeSize" not in message


def test_other_errors_are_left_alone():
    assert explain(
        "Binder Error: column x not found", "transform", PLATFORM.profile(), SETTINGS
    ) is None


def test_the_size_asked_for_is_whole_gibibytes_above_the_volume():
    assert spill_volume_needed("10Gi") == "20Gi"
    assert spill_volume_needed("1500Mi") == "3Gi"


def test_only_a_full_buffer_pool_is_out_of_memory():
    from lakeport.duckdb_errors import is_out_of_memory

    assert is_out_of_memory(POOL_FULL)
    assert is_out_of_memory("Out of Memory Error: failed to allocate data of size 64.0 MiB "
                            "(64.0 MiB/100.0 MiB used)")
    # The spill volume filling is not helped by a smaller memory limit.
    assert not is_out_of_memory(SPILL_FULL)
    assert not is_out_of_memory('Binder Error: column "no_such_column" not found')
