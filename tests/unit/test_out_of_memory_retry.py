"""What a dbt build stopped by DuckDB's own out-of-memory error builds again, and at what
memory limit (lakeport.dbt_assets.out_of_memory_nodes, duckdb_settings)."""

import pytest

from lakeport.dbt_assets import out_of_memory_nodes
from lakeport.duckdb_connection import DuckDBSettings
from lakeport.duckdb_settings import OUT_OF_MEMORY_RETRY_FRACTIONS, with_smaller_memory_limit

OOM = "Out of Memory Error: could not allocate block of size 256.0 KiB (261.8 MiB/262.0 MiB used)"
MANIFEST = {"nodes": {
    f"model.shop.{name}": {"name": name, "resource_type": "model"}
    for name in ("stg_orders", "int_orders", "mart")
} | {"test.shop.unique_mart_id": {"name": "unique_mart_id", "resource_type": "test"}}}


def _results(**statuses):
    """run_results.json as dbt 1.11 writes it (schema v6), one result per node."""
    return {"results": [
        {"unique_id": unique_id, "status": status,
         "message": OOM if status == "error" else None}
        for unique_id, status in statuses.items()
    ]}


def test_the_out_of_memory_node_and_what_dbt_skipped_after_it_are_built_again():
    again = out_of_memory_nodes(_results(**{
        "model.shop.stg_orders": "success", "model.shop.int_orders": "error",
        "model.shop.mart": "skipped", "test.shop.unique_mart_id": "skipped",
    }), MANIFEST)
    assert again is not None
    assert again.failed == ("int_orders",)
    assert again.skipped == ("mart", "unique_mart_id")
    assert again.unique_ids == (
        "model.shop.int_orders", "model.shop.mart", "test.shop.unique_mart_id")
    assert again.done == ("model.shop.stg_orders",)


@pytest.mark.parametrize("other", [
    {"test.shop.unique_mart_id": "fail"},  # a failing test: what it skipped stays skipped
    {"model.shop.stg_orders": "error-not-oom"},  # bad SQL beside the out-of-memory error
])
def test_nothing_is_built_again_when_anything_else_failed(other):
    statuses = {"model.shop.int_orders": "error", "model.shop.mart": "skipped"}
    results = _results(**statuses)
    for unique_id, status in other.items():
        if status == "error-not-oom":
            results["results"].append({"unique_id": unique_id, "status": "error",
                                       "message": "Binder Error: no_such_column"})
        else:
            results["results"].append({"unique_id": unique_id, "status": status,
                                       "message": "Got 3 results, configured to fail if != 0"})
    assert out_of_memory_nodes(results, MANIFEST) is None


def test_a_build_that_succeeded_has_nothing_to_build_again():
    assert out_of_memory_nodes(_results(**{"model.shop.mart": "success"}), MANIFEST) is None


SETTINGS = DuckDBSettings(
    memory_limit="262MiB", threads=1, temp_directory="/spill", max_temp_directory_size="9GiB",
    memory_limit_source="0.8 x 328MiB from cgroup memory.max", threads_source="x",
)


def test_a_smaller_limit_is_a_fraction_of_the_run_s_and_says_why():
    smaller = with_smaller_memory_limit(SETTINGS, 0.9)
    assert smaller.memory_limit == "235MiB"
    assert smaller.memory_limit_source == (
        "0.9 x 262MiB (0.8 x 328MiB from cgroup memory.max), after DuckDB ran out of memory "
        "at 262MiB")
    assert (smaller.threads, smaller.temp_directory) == (SETTINGS.threads, SETTINGS.temp_directory)


def test_the_retry_limits_only_ever_shrink():
    assert all(0 < f < 1 for f in OUT_OF_MEMORY_RETRY_FRACTIONS)
    assert list(OUT_OF_MEMORY_RETRY_FRACTIONS) == sorted(OUT_OF_MEMORY_RETRY_FRACTIONS,
                                                         reverse=True)
    with pytest.raises(ValueError, match="fraction in"):
        with_smaller_memory_limit(SETTINGS, 1.1)
