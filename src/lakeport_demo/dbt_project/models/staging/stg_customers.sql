select
    id as customer_id,
    name as customer_name,
    country,
    signed_up_on
from {{ source('raw', 'raw_customers') }}
