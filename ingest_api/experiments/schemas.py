"""The experiment admin bodies and operations, declared (the OpenAPI document is generated from them).

Bodies are judged by experiments/definition.py, which names every problem at once in `fields`; these types
take their limits from its constants.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from ingest_api.admin.experiments import EXPERIMENTS
from ingest_api.admin.schemas import PAGING, admin_operation, resource_operations
from ingest_api.declarations import PositiveId, Response, Timestamp, path, query
from ingest_api.experiments.definition import (
    MAX_DESCRIPTION_LENGTH,
    MAX_EVENT_LENGTH,
    MAX_NAME_LENGTH,
    MAX_SECONDARY,
)

EventName = Annotated[str, Meta(min_length=1, max_length=MAX_EVENT_LENGTH)]


class ExperimentDefinition(msgspec.Struct, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
    flag_key: Annotated[str, Meta(description="Key of an existing feature flag.")]
    goal_event: Annotated[EventName, Meta(description="The conversion event.")]
    start_at: Timestamp
    end_at: Annotated[Timestamp, Meta(description="After start_at; the window is [start_at, end_at).")]
    description: Annotated[str, Meta(max_length=MAX_DESCRIPTION_LENGTH)] | None = None
    control_variant: (
        Annotated[
            str,
            Meta(
                description="A variant of the flag (default `control` if the flag has one); for a boolean flag "
                "`false` (`control` is accepted)."
            ),
        ]
        | None
    ) = None
    secondary_events: Annotated[list[EventName], Meta(max_length=MAX_SECONDARY)] | None = None


class ExpectedVariant(msgspec.Struct):
    key: str
    expected_percentage: float


class Experiment(msgspec.Struct, kw_only=True):
    id: int
    name: str
    description: str
    flag_key: str
    control_variant: str
    goal_event: str
    secondary_events: list[str]
    variants: Annotated[
        list[ExpectedVariant],
        Meta(description="The flag's variants and expected split, copied from the flag at each save."),
    ]
    start_at: Timestamp
    end_at: Timestamp
    created_at: Timestamp
    updated_at: Timestamp


class ExperimentResults(msgspec.Struct):
    experiment_id: int
    computed_at: Annotated[Timestamp | None, Meta(description="null until the pipeline has computed them.")]
    results: Annotated[
        list[dict[str, Any]], Meta(description="Rows of analytics.agg_experiment_results (docs/analytics.md).")
    ]


EXPERIMENT_ID = path("experiment_id", PositiveId)
_ONE = f"{EXPERIMENTS}/{{experiment_id}}/"

OPERATIONS = (
    *resource_operations(
        f"{EXPERIMENTS}/",
        EXPERIMENT_ID,
        ("Experiment", "Experiments"),
        ExperimentDefinition,
        Experiment,
        {
            "list": "All experiments",
            "create": "Create an experiment",
            "get": "One experiment",
            "replace": "Replace an experiment's definition",
            "update": "Change some fields of an experiment",
            "delete": "Delete an experiment",
        },
        list_params=(*PAGING, query("flag_key")),
    ),
    admin_operation(
        "get",
        f"{_ONE}results/",
        "adminExperimentResults",
        "Per-variant results of an experiment, as last computed by the pipeline",
        Response(200, type=ExperimentResults),
        params=(EXPERIMENT_ID,),
    ),
)
