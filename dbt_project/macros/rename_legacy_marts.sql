{#-
  Run at the start of every dbt invocation (dbt_project.yml on-run-start; `eventtrack up` runs one
  before the schedules start). An install from before the marts got their agg_ prefix (issue 14)
  keeps its tables: each old table is renamed to its new name, with its indexes, and a view keeps
  the old name readable until dbt builds the deprecated view of marts/deprecated. A no-op on a
  fresh install and once done (the old name is then a view, or the new table already exists).
  funnel_results is not renamed: its table is now declared differently (agg_funnel_results); the
  daily sessions_and_staging run replaces it and refills agg_funnel_results in the same run.
-#}
{% macro rename_legacy_marts() -%}
{%- set marts_schema = 'analytics' -%}  {#- the marts' +schema in dbt_project.yml #}
{%- set renamed = ['active_users_daily', 'retention_daily', 'retention_weekly', 'experiment_results', 'experiment_variant_counts'] -%}
do $$
declare
    old_name text;
    index_name text;
begin
    foreach old_name in array array[{% for name in renamed %}'{{ name }}'{{ ", " if not loop.last }}{% endfor %}] loop
        if to_regclass(format('%I.%I', '{{ marts_schema }}', 'agg_' || old_name)) is null
           and exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace
                       where n.nspname = '{{ marts_schema }}' and c.relname = old_name and c.relkind = 'r') then
            execute format('alter table %I.%I rename to %I', '{{ marts_schema }}', old_name, 'agg_' || old_name);
            for index_name in
                select c.relname from pg_index i join pg_class c on c.oid = i.indexrelid
                where i.indrelid = format('%I.%I', '{{ marts_schema }}', 'agg_' || old_name)::regclass
                  and starts_with(c.relname, old_name || '_')
            loop
                execute format('alter index %I.%I rename to %I', '{{ marts_schema }}', index_name, 'agg_' || index_name);
            end loop;
            execute format('create view %I.%I as select * from %I.%I',
                           '{{ marts_schema }}', old_name, '{{ marts_schema }}', 'agg_' || old_name);
        end if;
    end loop;
end $$
{%- endmacro %}
