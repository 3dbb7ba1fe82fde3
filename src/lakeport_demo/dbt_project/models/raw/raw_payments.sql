-- One payment per order, a second one for every fifth order; amounts in cents.
select
    row_number() over (order by order_id, seq) as id,
    order_id,
    ['card', 'bank_transfer', 'voucher'][1 + (hash(order_id + seq) % 3)::integer] as method,
    (100 + hash(order_id * 13 + seq) % 20000)::bigint as amount_cents
from (
    select i as order_id, 1 as seq from range(1, {{ raw_rows() }} + 1) as t(i)
    union all
    select i as order_id, 2 as seq from range(5, {{ raw_rows() }} + 1, 5) as t(i)
)
