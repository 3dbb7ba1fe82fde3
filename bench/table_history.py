"""Benchmark 5 — what a table's history costs each write: one small table rewritten run
after run, as a scheduled model's table is, and the time of each write as its snapshots
pile up.

Three writers, each on a table of its own in the same SQL catalog on a real S3 endpoint
(moto's server), taking turns a window of writes at a time so that they share the
machine's state:

- lakeport: `lakeport.iceberg_publish.publish`, on a table with Iceberg's default
  retention (five days, so nothing written here expires: its history grows as a table's
  does over its first five days);
- lakeport_retention: the same, on a table whose `history.expire.*` properties keep its
  newest 20 snapshots only (what the default does to a table written for more than five
  days): its history stays bounded;
- pyiceberg: pyiceberg's own `Table.overwrite` of the same rows, the same replacing write
  without lakeport's transaction.

Each write replaces the table's 1,000 rows (a delete snapshot and an append: two
snapshots a write). Printed per window: the median wall and CPU time of a write, and how
many snapshots each table had after it.

    python -m bench.table_history                       # 300 writes each, windows of 50
    python -m bench.table_history --writes 20 --window 10   # smoke size
"""

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import code_under_test, finish, local_s3, median, print_table

NAME = "table_history"
WAREHOUSE_BUCKET = "bench-history"
ROWS = 1000
KEEP_SNAPSHOTS = 20
CONFIGS = ("lakeport", "lakeport_retention", "pyiceberg")
# Targets. With retention a write costs about what it did when the table was young; and
# at the deepest history lakeport's write costs at most half of pyiceberg's own.
FLAT_RATIO_TARGET = 1.5
VERSUS_PYICEBERG_TARGET = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=300, help="writes per table")
    parser.add_argument("--window", type=int, default=50, help="writes per window")
    parser.add_argument("--keep", type=int, default=KEEP_SNAPSHOTS,
                        help="snapshots the retention table keeps")
    parser.add_argument("--output", type=Path, help="default: bench/results/table_history.json")
    args = parser.parse_args(argv)

    code = code_under_test()
    workdir = Path(tempfile.mkdtemp(prefix="lakeport-bench-history-"))
    try:
        with local_s3(WAREHOUSE_BUCKET) as s3:
            windows = _measure(args, workdir, s3.endpoint)
    finally:
        if not os.environ.get("LAKEPORT_BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
    return _report(args, windows, code)


def _measure(args, workdir: Path, s3_endpoint: str) -> list[dict]:
    """The writes, window by window: each window's figures per writer."""
    import duckdb

    from lakeport.catalog import load_catalog
    from lakeport.config import parse_platform
    from lakeport.iceberg_publish import publish, query_rows

    windows: list[dict] = []
    platform = parse_platform(
        f"dev: {{dataDir: '{workdir / 'data'}'}}\n"
        f"catalog: {{type: sql, warehouse: 's3://{WAREHOUSE_BUCKET}/'}}\n"
        f"objectStorage: {{endpoint: '{s3_endpoint}', pathStyle: true}}\n")
    catalog = load_catalog(platform)
    connection = duckdb.connect()
    connection.execute(
        f"create table t as select range as id, 'row ' || range as label, "
        f"range * 1.5 as amount, date '2026-01-01' + (range % 28)::int as day "
        f"from range({ROWS})")
    rows = query_rows(connection, "select * from t")

    def lakeport_write(name):
        publish(catalog, ("history", name), rows)

    def pyiceberg_write(name):
        catalog.load_table(("history", name)).overwrite(rows().read_all())

    writers = {"lakeport": lakeport_write, "lakeport_retention": lakeport_write,
               "pyiceberg": pyiceberg_write}
    # Each table is created by lakeport's first write (so all three have its
    # properties), and the retention table is then told to keep its newest few.
    for config in CONFIGS:
        publish(catalog, ("history", config), rows)
    with catalog.load_table(("history", "lakeport_retention")).transaction() as change:
        change.set_properties({"history.expire.max-snapshot-age-ms": "1",
                               "history.expire.min-snapshots-to-keep": str(args.keep)})

    done = 0
    while done < args.writes:
        count = min(args.window, args.writes - done)
        for config in CONFIGS:
            walls, cpus = [], []
            for _ in range(count):
                wall, cpu = time.perf_counter(), time.process_time()
                writers[config](config)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            table = catalog.load_table(("history", config))
            windows.append({
                "config": config, "writes_before": done, "writes": count,
                "snapshots_after": len(table.snapshots()),
                "rows_after": table.scan().to_arrow().num_rows,
                "median_wall_seconds": median(walls), "median_cpu_seconds": median(cpus),
            })
        done += count
        print(f"  {done}/{args.writes} writes: " + ", ".join(
            f"{w['config']} {w['median_wall_seconds'] * 1000:.0f} ms "
            f"({w['snapshots_after']} snapshots)" for w in windows[-len(CONFIGS):]),
            flush=True)
    return windows


def _report(args, windows: list[dict], code: dict) -> int:
    def window(config, index):
        return [w for w in windows if w["config"] == config][index]

    print_table(
        ["writes", *[f"{c} wall / cpu (snapshots)" for c in CONFIGS]],
        [[f"{w['writes_before'] + 1}-{w['writes_before'] + w['writes']}",
          *[f"{window(c, i)['median_wall_seconds'] * 1000:.0f} / "
            f"{window(c, i)['median_cpu_seconds'] * 1000:.0f} ms "
            f"({window(c, i)['snapshots_after']})" for c in CONFIGS]]
         for i, w in enumerate(x for x in windows if x["config"] == CONFIGS[0])])

    first, last = window("lakeport_retention", 0), window("lakeport_retention", -1)
    flat_ratio = last["median_wall_seconds"] / first["median_wall_seconds"]
    versus = (window("lakeport", -1)["median_wall_seconds"]
              / window("pyiceberg", -1)["median_wall_seconds"])
    complete = all(w["rows_after"] == ROWS for w in windows)
    targets = {
        "complete": {"target": f"every table holds its {ROWS} rows after each window",
                     "value": complete, "pass": complete},
        "retention_keeps_writes_flat": {
            "target": f"with retention, the last window's median write <= "
                      f"{FLAT_RATIO_TARGET}x the first's",
            "value": round(flat_ratio, 2), "pass": flat_ratio <= FLAT_RATIO_TARGET},
        "lakeport_versus_pyiceberg_at_depth": {
            "target": f"at the deepest history, lakeport's median write <= "
                      f"{VERSUS_PYICEBERG_TARGET}x pyiceberg's Table.overwrite",
            "value": round(versus, 2), "pass": versus <= VERSUS_PYICEBERG_TARGET},
    }
    payload = {
        "parameters": {"writes": args.writes, "window": args.window, "rows": ROWS,
                       "retention_keeps": args.keep, "catalog": "sql", "s3": "moto"},
        "windows": windows,
    }
    return finish(NAME, payload, targets, args.output, code)


if __name__ == "__main__":
    raise SystemExit(main())
