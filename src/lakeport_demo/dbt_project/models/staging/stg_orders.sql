select
    id as order_id,
    customer_id,
    ordered_on as order_date,
    status
from {{ ref('raw_orders') }}
