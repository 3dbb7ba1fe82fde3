select
    id as order_id,
    customer_id,
    ordered_on as order_date,
    status
from {{ source('raw', 'raw_orders') }}
