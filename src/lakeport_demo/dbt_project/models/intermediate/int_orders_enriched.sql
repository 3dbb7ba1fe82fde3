-- Orders with what was paid for them.
with paid as (
    select order_id, sum(amount) as amount_paid, count(*) as payment_count
    from {{ ref('stg_payments') }}
    group by order_id
)
select
    o.order_id,
    o.customer_id,
    o.order_date,
    o.status,
    coalesce(p.amount_paid, 0)::decimal(18, 2) as amount_paid,
    coalesce(p.payment_count, 0)::bigint as payment_count
from {{ ref('stg_orders') }} as o
left join paid as p using (order_id)
