-- Generated orders over the last `history_days` days, ending yesterday.
select
    i as id,
    1 + (hash(i) % greatest({{ raw_rows() }} // 10, 1))::bigint as customer_id,
    current_date - 1 - (hash(i * 31) % {{ var('history_days') }})::integer as ordered_on,
    ['placed', 'shipped', 'completed', 'returned'][1 + (hash(i * 17) % 4)::integer] as status
from range(1, {{ raw_rows() }} + 1) as t(i)
