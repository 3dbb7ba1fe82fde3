-- Generated customers: deterministic, so every run and every test sees the same data.
select
    i as id,
    'customer_' || i as name,
    ['DE', 'FR', 'NL', 'US', 'GB'][1 + (hash(i) % 5)::integer] as country,
    date '2020-01-01' + (hash(i * 7) % 1500)::integer as signed_up_on
from range(1, greatest({{ raw_rows() }} // 10, 1) + 1) as t(i)
