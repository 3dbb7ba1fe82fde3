"""The benchmarks at a tiny size: they still run and write well-formed results.

Benchmarks are not tests (bench/, `make bench`); these only keep them working. No timing
is asserted: the machine's load decides timings. What is asserted is behaviour: every
benchmark did the work it claims to time, and lakeport's DuckDB settings, derived inside
a real memory cgroup, let a spilling transform finish instead of being OOM-killed.
"""

import json

import pytest

from bench import (
    codelocation_load,
    memory_discipline,
    orchestration_overhead,
    single_mart_run,
    table_history,
)
from bench.cgroup import CgroupUnavailable, limited_cgroup
from lakeport.duckdb_settings import DEFAULT_MEMORY_FRACTION

MiB = 1 << 20


def _load(path):
    document = json.loads(path.read_text())
    for key in ("benchmark", "timestamp", "machine", "parameters", "targets"):
        assert key in document, key
    machine = document["machine"]
    assert machine["cpu_count"] >= 1
    assert machine["memory_bytes"] > 0
    assert machine["versions"]["duckdb"] and machine["versions"]["dagster"]
    for name, target in document["targets"].items():
        assert isinstance(target["pass"], bool), name
        assert target["target"], name
    return document


def _cgroups_or_skip():
    try:
        with limited_cgroup("bench-probe", 64 * MiB):
            pass
    except CgroupUnavailable as exc:
        pytest.skip(f"memory cgroups unavailable here: {exc}")


def test_memory_discipline_smoke(tmp_path):
    _cgroups_or_skip()
    output = tmp_path / "memory_discipline.json"
    limit_mib = 768
    # 0.75x the limit is more than DuckDB's derived memory_limit (0.8 x the limit less the
    # child's own Python): it must spill. Both workloads: generated inputs, and inputs
    # read from an Iceberg catalog on a real S3 endpoint with the mart published back, and
    # the same mart built by lakeport's dbt op in a real Dagster run that starts dbt.
    assert memory_discipline.main([
        "--sizes", str(limit_mib), "--factors", "0.75", "--catalog-factors", "0.75",
        "--configs", "lakeport", "--workloads", "generated,catalog,dbt_run",
        "--output", str(output),
    ]) == 0
    document = _load(output)
    assert document["benchmark"] == "memory_discipline"
    assert document["parameters"]["profile"]["limits_memory"] == f"{limit_mib}Mi"
    runs = {run["workload"]: run for run in document["runs"]}
    assert sorted(runs) == ["catalog", "dbt_run", "generated"]
    for workload, run in runs.items():
        assert run["config"] == "lakeport"
        assert run["outcome"] == "ok", (workload, run)
        assert run["oom_kills"] == 0
        checks = run["result_checks"]
        assert checks["matched_rows"] == checks["expected_matched_rows"], workload
        assert checks["groups"] > 0
        # The child derived its memory_limit from the cgroup it ran in (not from the
        # profile's limit), and DuckDB ran with it (not with 80% of the cgroup).
        derived = run["lakeport_settings"]
        assert "cgroup" in derived["duckdb/memory_limit_source"], derived
        derived_mib = int(derived["duckdb/memory_limit"].removesuffix("MiB"))
        assert 0 < derived_mib <= limit_mib * DEFAULT_MEMORY_FRACTION
        if workload == "dbt_run":
            # Derived by the op, which left room for the dbt process it then started.
            assert "for dbt's process" in derived["duckdb/memory_limit_source"], derived
            assert run["duckdb_settings"]["memory_limit"] == f"{derived_mib}MiB"
        else:
            assert run["duckdb_settings"]["memory_limit"] == f"{derived_mib:.1f} MiB"
        assert run["spill_peak_bytes"] > 0, workload
        assert 0 < run["kernel_peak_bytes"] <= limit_mib * MiB
        assert 0 < run["anon_peak_bytes"] <= limit_mib * MiB
    assert document["targets"]["lakeport_never_oom_killed"]["pass"] is True


def test_codelocation_load_smoke(tmp_path):
    output = tmp_path / "codelocation_load.json"
    assert codelocation_load.main(["--models", "8", "--runs", "1", "--output", str(output)]) == 0
    document = _load(output)
    assert document["project"]["models"] == 8
    for config in ("lakeport", "plain"):
        summary = document["summary"][config]
        assert summary["median_wall_seconds"] > 0
        assert summary["assets"] == 8
        assert summary["asset_checks"] == document["project"]["tests"]
    assert "lakehouse_job" in document["summary"]["lakeport"]["jobs"]
    assert document["ratio"] > 0
    assert document["targets"]["complete"]["pass"] is True


@pytest.mark.parametrize("catalog", ["fresh", "existing"])
def test_orchestration_overhead_smoke(tmp_path, catalog):
    output = tmp_path / "orchestration_overhead.json"
    assert orchestration_overhead.main(
        ["--models", "4", "--runs", "1", "--raw-rows", "10", "--catalog", catalog,
         "--output", str(output)]
    ) == 0
    document = _load(output)
    assert document["parameters"]["catalog"] == catalog
    [lakeport] = document["lakeport"]
    [bare] = document["bare"]
    assert lakeport["success"] is True
    assert lakeport["run_storage"] == "PooledPostgresRunStorage"
    # Events of the run really went to Postgres (read back through the instance).
    assert lakeport["events_stored"] > lakeport["materializations"] > 0
    assert bare["nodes_ok"] == bare["nodes"] > 0
    assert document["summary"]["ratio"] > 0
    assert document["targets"]["complete"]["pass"] is True
    # The run split into phases from its own event log, the op's as the op logged them.
    phases = lakeport["phases"]
    assert {"before_step", "scratch", "dbt", "publish", "rest"} <= set(phases)
    assert phases["tables_written"] > 0
    assert all(phases[name] >= 0 for name in ("before_step", "scratch", "dbt", "publish"))
    assert sum(v for k, v in phases.items() if k != "tables_written") == pytest.approx(
        lakeport["execute_seconds"])


def test_single_mart_run_smoke(tmp_path):
    import os

    output = tmp_path / "single_mart_run.json"
    before = dict(os.environ)
    assert single_mart_run.main(["--raw-rows", "2000", "--runs", "1", "--output", str(output)]) == 0
    # It runs inside this process: its database path and keys once leaked into everything
    # pytest started after it (lakeport dev's runs all shared one scratch file).
    assert dict(os.environ) == before
    document = _load(output)
    sides = {run["side"]: run for run in document["runs"]}
    assert set(sides) == {"catalog", "local"}
    # Both built the same mart: 2000 orders make 200 customers, each with a row.
    assert sides["catalog"]["mart_rows"] == sides["local"]["mart_rows"] == 200
    assert document["targets"]["same_result"]["pass"] is True
    assert document["summary"]["ratio"] > 0


def test_table_history_smoke(tmp_path):
    output = tmp_path / "table_history.json"
    assert table_history.main(
        ["--writes", "6", "--window", "3", "--keep", "4", "--output", str(output)]) == 0
    document = _load(output)
    windows = document["windows"]
    assert [w["config"] for w in windows] == list(table_history.CONFIGS) * 2
    # Every window's writes replaced the rows, and each table's history is what its
    # retention says: two snapshots a write without it (1 + 2 x 6 = 13), the newest 4
    # with it.
    assert all(w["rows_after"] == table_history.ROWS for w in windows)
    last = {w["config"]: w for w in windows[-3:]}
    assert last["lakeport"]["snapshots_after"] == last["pyiceberg"]["snapshots_after"] == 13
    assert last["lakeport_retention"]["snapshots_after"] == 4
    assert all(w["median_wall_seconds"] > 0 for w in windows)
    assert document["targets"]["complete"]["pass"] is True
