-- Lifetime revenue per customer and country: the heavy aggregation of the demo.
select
    c.customer_id,
    c.country,
    sum(o.amount_paid)::decimal(18, 2) as lifetime_revenue,
    count(*) filter (where o.status = 'returned')::bigint as returned_orders
from {{ ref('stg_customers') }} as c
join {{ ref('int_orders_enriched') }} as o using (customer_id)
group by all
