select
    c.customer_id,
    c.customer_name,
    c.country,
    c.signed_up_on,
    min(o.order_date) as first_order_date,
    max(o.order_date) as last_order_date,
    count(o.order_id)::bigint as order_count
from {{ ref('stg_customers') }} as c
left join {{ ref('int_orders_enriched') }} as o using (customer_id)
group by all
