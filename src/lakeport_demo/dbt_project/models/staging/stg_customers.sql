select
    id as customer_id,
    name as customer_name,
    country,
    signed_up_on
from {{ ref('raw_customers') }}
