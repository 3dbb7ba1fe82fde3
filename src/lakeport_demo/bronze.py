"""The demo's bronze layer: raw exports as Python assets writing Iceberg tables.

The data is generated (deterministically, so every run and every test sees the same
rows) by DuckDB, which streams it into the catalog through lakeport's IcebergTables: the
generator never holds a table in memory, so the size knob can go far past the run's
memory limit. The dbt project reads these tables as the source `raw`
(dbt_project/models/staging/_sources.yml); the asset keys are the tables' identifiers, so
the lineage runs Python bronze -> dbt staging -> intermediate -> marts.

Size: LAKEPORT_DEMO_RAW_ROWS orders (default 5000); customers are a tenth of that,
payments one per order plus one for every fifth.
"""

import os

import dagster as dg

from lakeport.automation import table_condition
from lakeport.dbt_assets import DEFAULT_RETRY_POLICY
from lakeport.lakehouse_io import IcebergTables

RAW_ROWS_ENV = "LAKEPORT_DEMO_RAW_ROWS"
DEFAULT_RAW_ROWS = 5000
# Orders are spread over this many days, ending yesterday.
HISTORY_DAYS = 90
OWNER = "team:platform"


def raw_rows() -> int:
    text = os.environ.get(RAW_ROWS_ENV, str(DEFAULT_RAW_ROWS))
    try:
        rows = int(text)
    except ValueError:
        rows = -1
    if rows < 1:
        raise ValueError(f"{RAW_ROWS_ENV}={text!r}: must be a whole number of orders, 1 or more")
    return rows


def customers_sql(rows: int) -> str:
    return f"""
select
    i as id,
    'customer_' || i as name,
    ['DE', 'FR', 'NL', 'US', 'GB'][1 + (hash(i) % 5)::integer] as country,
    date '2020-01-01' + (hash(i * 7) % 1500)::integer as signed_up_on
from range(1, greatest({rows} // 10, 1) + 1) as t(i)
"""


def orders_sql(rows: int) -> str:
    return f"""
select
    i as id,
    1 + (hash(i) % greatest({rows} // 10, 1))::bigint as customer_id,
    current_date - 1 - (hash(i * 31) % {HISTORY_DAYS})::integer as ordered_on,
    ['placed', 'shipped', 'completed', 'returned'][1 + (hash(i * 17) % 4)::integer] as status
from range(1, {rows} + 1) as t(i)
"""


def payments_sql(rows: int) -> str:
    # Ids follow the order and the payment's place in it, so more orders add payments
    # with higher ids and keep every earlier payment as it was.
    return f"""
select
    order_id * 2 + seq - 2 as id,
    order_id,
    ['card', 'bank_transfer', 'voucher'][1 + (hash(order_id + seq) % 3)::integer] as method,
    (100 + hash(order_id * 13 + seq) % 20000)::bigint as amount_cents
from (
    select i as order_id, 1 as seq from range(1, {rows} + 1) as t(i)
    union all
    select i as order_id, 2 as seq from range(5, {rows} + 1, 5) as t(i)
)
"""


def _bronze_asset(name: str, sql, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", name],
        group_name="raw",
        description=description,
        owners=[OWNER],
        kinds={"python", "iceberg"},
        metadata={"lakeport/iceberg_table": f"raw.{name}"},
        # A nightly export: rebuilt on the tables' cron by the automation sensors.
        automation_condition=table_condition(),
        # The catalog or S3 may blip: retried as the dbt models are.
        retry_policy=DEFAULT_RETRY_POLICY,
    )
    def bronze(context: dg.AssetExecutionContext, lakehouse: dg.ResourceParam[IcebergTables]):
        with lakehouse.session(context) as session:
            return session.write(("raw", name), sql(raw_rows()))

    return bronze


BRONZE_ASSETS = [
    _bronze_asset("raw_customers", customers_sql, "Customers as the shop's database exports them."),
    _bronze_asset("raw_orders", orders_sql, "Orders as exported by the shop."),
    _bronze_asset("raw_payments", payments_sql, "Payments as exported by the payment provider."),
]
