{#- Every row has column >= other_column (e.g. wau >= dau). -#}
{% test not_less_than(model, column_name, other_column) %}
select *
from {{ model }}
where {{ column_name }} < {{ other_column }}
{% endtest %}
