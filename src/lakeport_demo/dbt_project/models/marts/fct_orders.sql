-- One row per order, built one day at a time: a run for a daily partition passes
-- min_date/max_date and replaces exactly that day.
{{ config(materialized='incremental', unique_key='order_id', incremental_strategy='delete+insert') }}
select
    order_id,
    customer_id,
    order_date,
    status,
    amount_paid,
    status = 'returned' as is_returned
from {{ ref('int_orders_enriched') }}
where order_date >= date '{{ var("min_date") }}'
  and order_date < date '{{ var("max_date") }}'
