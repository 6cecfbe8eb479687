{#-
  The session timeout in minutes: var session_timeout_minutes, which every run
  passes from SESSION_TIMEOUT_MINUTES (orchestration.resources.settings_dbt_vars).
  No default here (the setting's is the one): a run without it fails.
-#}
{% macro session_timeout_minutes() -%}
    {%- set minutes = var('session_timeout_minutes', none) -%}
    {%- if minutes is none and execute -%}
        {{ exceptions.raise_compiler_error(
            "dbt var session_timeout_minutes is missing: pass --vars from "
            ~ "orchestration.resources.settings_dbt_vars (setting SESSION_TIMEOUT_MINUTES)") }}
    {%- endif -%}
    {{ return((minutes or 0) | int) }}
{%- endmacro %}
