"""Runs inside the test cgroup: one big DuckDB aggregation, with lakeport's derived
settings or with DuckDB's defaults. Prints the settings used, then the result, as JSON."""

import json
import sys

import duckdb


def main(mode: str, spill_dir: str, groups: int) -> None:
    if mode == "lakeport":
        from lakeport.duckdb_settings import connect, derive_duckdb_settings
        from lakeport.platform import Platform

        settings = derive_duckdb_settings(Platform().profile(), spill_dir=spill_dir)
        connection = connect(settings)
        derived = json.loads(settings.to_json())
    else:
        connection = duckdb.connect()
        derived = None
    used = connection.execute(
        "select current_setting('memory_limit'), current_setting('temp_directory')"
    ).fetchone()
    print(json.dumps({"derived": derived, "memory_limit": used[0], "temp_directory": used[1]}))
    sys.stdout.flush()
    # One group per row: the hash table is far bigger than DuckDB's memory limit.
    row = connection.execute(
        f"select count(*), sum(c) from (select i, count(*) as c from range({groups}) t(i) "
        "group by i)"
    ).fetchone()
    print(json.dumps({"groups": row[0], "rows": int(row[1])}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
