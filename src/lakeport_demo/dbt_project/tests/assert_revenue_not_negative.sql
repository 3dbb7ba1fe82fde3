-- Revenue can be zero (everything returned) but never negative.
select customer_id, lifetime_revenue
from {{ ref('mart_customer_revenue') }}
where lifetime_revenue < 0
