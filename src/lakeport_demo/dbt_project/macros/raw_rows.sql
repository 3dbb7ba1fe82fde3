{# The raw volume knob: --vars '{raw_rows: N}' or LAKEPORT_DEMO_RAW_ROWS. #}
{% macro raw_rows() -%}
    {{ env_var('LAKEPORT_DEMO_RAW_ROWS', var('raw_rows')) | int }}
{%- endmacro %}
