"""DuckDB's own out-of-memory error inside a dbt build: what it stopped is built again at a
smaller memory_limit, in the same op, before the run is called failed.

The cliff itself (a query that fails at one limit and completes at a smaller one) needs
gigabytes of data to reproduce and is measured by bench/memory_discipline.py. Here one
model stands for it: its SQL raises DuckDB's out-of-memory message through DuckDB's own
`error()` at exactly the first limit, and runs at any other. The second test is a real
out-of-memory error at every limit the op tries.
"""

import logging

import dagster as dg
import pytest
from support import demo
from support.demo import copy_project, postgres_instance, prepare, run_demo_job

from lakeport.duckdb_settings import OUT_OF_MEMORY_RETRY_FRACTIONS

MODEL = demo.INT_ORDERS_ENRICHED
DOWNSTREAM = demo.DOWNSTREAM_OF_INT_ORDERS_ENRICHED
DAILY = dg.AssetKey(["marts", "fct_orders"])
UPSTREAM_TABLE = dg.AssetKey(["marts", "fct_payments"])
FIRST_LIMIT_MIB = 600
# DuckDB 1.5.5's message for a full buffer pool (src/storage/standard_buffer_manager.cpp).
OUT_OF_MEMORY = (
    "Out of Memory Error: could not allocate block of size 256.0 KiB "
    "(599.8 MiB/600.0 MiB used)"
)


def _profiles(memory_limit_mib: int) -> str:
    """Both profiles the demo's job can run under (its mart asks for `large`), with one
    DuckDB memory limit."""
    profile = (f'{{requests: {{cpu: 500m, memory: 1Gi}}, limits: {{cpu: "1", memory: 2Gi}}, '
               f"duckdb: {{memoryLimit: {memory_limit_mib}Mi, threads: 1}}}}")
    return f"resourceProfiles: {{transform: {profile}, large: {profile}}}"


def _project(tmp_path, sql: str):
    project = copy_project(tmp_path / "dbt_project")
    model = project / "models/intermediate/int_orders_enriched.sql"
    model.write_text(model.read_text().rstrip("\n") + "\n" + sql)
    return prepare(project)


def _materializations(instance, run_id) -> dict[dg.AssetKey, dict]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    return {
        r.asset_key: {k: getattr(v, "value", v) for k, v in
                      r.event_log_entry.asset_materialization.metadata.items()}
        for r in records
    }


def _warnings(instance, run_id) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id)
            if e.level == logging.WARNING and "ran out of memory" in (e.user_message or "")]


@pytest.fixture
def platform_at(demo_platform_on_s3):
    return lambda mib: demo_platform_on_s3(_profiles(mib))


def test_a_model_out_of_memory_at_one_limit_is_built_again_at_a_smaller_one(
    tmp_path, platform_at, postgres_server, postgres_database
):
    from lakeport.catalog import load_catalog

    retry_limit = f"{int(FIRST_LIMIT_MIB * OUT_OF_MEMORY_RETRY_FRACTIONS[0])}MiB"
    project = _project(tmp_path, f"""where case
    when current_setting('memory_limit') = '{FIRST_LIMIT_MIB}.0 MiB'
    then error('{OUT_OF_MEMORY}') else true end
""")
    platform = platform_at(FIRST_LIMIT_MIB)
    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        result = run_demo_job(platform, project, instance)
        assert result.success
        materialized = _materializations(instance, result.run_id)
        assert {MODEL, UPSTREAM_TABLE} | DOWNSTREAM <= set(materialized)
        # fct_orders is daily-partitioned: its own op, which read the model from the
        # catalog and never ran out of memory.
        assert materialized[DAILY]["duckdb/memory_limit"] == f"{FIRST_LIMIT_MIB}MiB"
        # Built before the error at the first limit, the rest at the smaller one; each
        # materialization records the limit it was built under, and why.
        assert materialized[UPSTREAM_TABLE]["duckdb/memory_limit"] == f"{FIRST_LIMIT_MIB}MiB"
        for key in {MODEL} | DOWNSTREAM - {DAILY}:
            assert materialized[key]["duckdb/memory_limit"] == retry_limit, key
        assert materialized[MODEL]["duckdb/memory_limit_source"].endswith(
            f"after DuckDB ran out of memory at {FIRST_LIMIT_MIB}MiB")
        # What the smaller limit built is in the catalog, as the materialization says.
        table = load_catalog(platform).load_table(("intermediate", "int_orders_enriched"))
        assert str(table.current_snapshot().snapshot_id) == materialized[MODEL][
            "iceberg/snapshot_id"]
        assert materialized[MODEL]["dagster/row_count"] > 0
        (warning,) = _warnings(instance, result.run_id)
        assert f"memory_limit {FIRST_LIMIT_MIB}MiB building int_orders_enriched" in warning
        assert f"again at memory_limit {retry_limit}" in warning
        assert "skipped after it" in warning
        # The model's own tests ran in the rebuild.
        checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks["unique_int_orders_enriched_order_id"] is True
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_a_model_out_of_memory_at_every_limit_fails_naming_the_profile(
    tmp_path, platform_at, postgres_server, postgres_database
):
    # A 300 MB string aggregate: DuckDB cannot spill its state, at 100 MiB or less.
    project = _project(tmp_path, """cross join (
    select length(string_agg(repeat('x', 1000), ',')) as greedy from range(300000)
) as g
where g.greedy > 0
""")
    with postgres_instance(postgres_server, postgres_database, tmp_path / "home") as instance:
        result = run_demo_job(platform_at(100), project, instance)
        assert not result.success
        materialized = _materializations(instance, result.run_id)
        assert UPSTREAM_TABLE in materialized
        assert not ({MODEL} | DOWNSTREAM) & set(materialized)
        limits = ["100MiB"] + [f"{int(100 * f)}MiB" for f in OUT_OF_MEMORY_RETRY_FRACTIONS]
        warnings = _warnings(instance, result.run_id)
        assert len(warnings) == len(OUT_OF_MEMORY_RETRY_FRACTIONS)
        steps = list(zip(limits, limits[1:], strict=False))
        for warning, (tried, next_limit) in zip(warnings, steps, strict=True):
            assert f"at memory_limit {tried} building int_orders_enriched" in warning
            assert f"again at memory_limit {next_limit}" in warning
        failure = next(e for e in result.all_events if e.is_step_failure)
        message = str(failure.step_failure_data.error)
        assert "DuckDB ran out of the memory resource profile 'large' gives it" in message
        assert f"memory_limit {limits[-1]}" in message
        assert "Raise resourceProfiles.large.limits.memory" in message
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        # 100 MiB is under what DuckDB needs: the run was told so before dbt started,
        # naming the profile and the setting to raise.
        small = [e.user_message for e in instance.all_logs(result.run_id)
                 if e.level == logging.WARNING and "leaves DuckDB a memory_limit of 100MiB"
                 in (e.user_message or "")]
        assert small, "no warning about the small memory_limit"
        assert all("profile 'large'" in m and "raise the profile's duckdb.memoryLimit" in m
                   for m in small), small
