-- One row per order, built one day at a time: a run for a daily partition sets
-- LAKEPORT_PARTITION_START/END (end exclusive) and replaces exactly that day; without
-- them (a dbt build by hand) every day is built.
{{ config(materialized='incremental', unique_key='order_id', incremental_strategy='delete+insert') }}
select
    order_id,
    customer_id,
    order_date,
    status,
    amount_paid,
    status = 'returned' as is_returned
from {{ ref('int_orders_enriched') }}
where order_date >= date '{{ env_var("LAKEPORT_PARTITION_START", "1900-01-01") }}'
  and order_date < date '{{ env_var("LAKEPORT_PARTITION_END", "2999-01-01") }}'
