"""Runs inside the test cgroup, as a run pod's worker would: builds one mart whose
upstream is an Iceberg table far larger than the cgroup's memory, reading it from the
catalog through lakeport's scratch (a DuckDB view over iceberg_scan) with the DuckDB
settings lakeport derives from this cgroup, and writes the mart back through the catalog.
Prints the settings, then the result, as JSON lines.

    catalog_mart_worker.py PLATFORM_FILE SCRATCH_DIR
"""

import contextlib
import json
import sys
from pathlib import Path

from lakeport.catalog import load_catalog
from lakeport.config import load_platform
from lakeport.duckdb_connection import connect
from lakeport.duckdb_s3 import configure_s3
from lakeport.duckdb_settings import derive_duckdb_settings
from lakeport.iceberg_publish import publish, query_rows
from lakeport.run_scratch import Relation, ScratchPlan, fill_scratch

UPSTREAM = Relation("raw", "big_orders")
MART = Relation("marts", "big_customer_revenue")
MART_SQL = f"""
create table {MART.sql} as
select customer_id, count(*) as orders, sum(amount) as revenue,
       count(distinct amount) as distinct_amounts
from {UPSTREAM.sql}
group by customer_id
"""


def main(platform_file: str, scratch_dir: str) -> None:
    platform = load_platform(Path(platform_file))
    scratch = Path(scratch_dir)
    settings = derive_duckdb_settings(platform.profile(), spill_dir=scratch / "spill")
    print(json.dumps(json.loads(settings.to_json())), flush=True)
    catalog = load_catalog(platform)
    plan = ScratchPlan(from_catalog={"source.test.raw.big_orders": UPSTREAM})
    with contextlib.closing(connect(settings, scratch / "lakehouse.duckdb")) as connection:
        configure_s3(connection, platform)
        fill_scratch(connection, catalog, plan)
        connection.execute(f'create schema if not exists "{MART.schema}"')
        connection.execute(MART_SQL)
        result = publish(
            catalog, MART.identifier, query_rows(connection, f"select * from {MART.sql}")
        )
    print(json.dumps({"rows": result.row_count, "snapshot_id": result.snapshot_id}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
