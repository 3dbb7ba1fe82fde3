-- Every payment, appended as it arrives: an incremental model. A run reads its table as
-- the Iceberg catalog has it (is_incremental() is true once it exists) and adds only the
-- payments after the newest one it holds.
{{ config(materialized='incremental', incremental_strategy='append') }}
select
    p.payment_id,
    p.order_id,
    o.customer_id,
    p.payment_method,
    p.amount
from {{ ref('stg_payments') }} as p
join {{ ref('stg_orders') }} as o using (order_id)
{% if is_incremental() %}
where p.payment_id > (select coalesce(max(payment_id), 0) from {{ this }})
{% endif %}
