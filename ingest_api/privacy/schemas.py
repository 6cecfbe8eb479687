"""The privacy routes' answers and operations, declared (the OpenAPI document is generated from them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from ingest_api.admin.schemas import PAGING, admin_operation
from ingest_api.declarations import WINDOW, Page, Response, Timestamp, path, query
from ingest_api.privacy.routes import ACTIONS, AUDIT_LOG, PERSONS
from ingest_api.validation import MAX_ID_LENGTH


class Erasure(msgspec.Struct):
    distinct_id: str
    person_distinct_id: str
    distinct_ids: list[str]
    deleted: Annotated[dict[str, int], Meta(description="Rows deleted, per table.")]
    aggregate_buckets_queued: int
    audit_id: UUID


class PersonExport(msgspec.Struct):
    distinct_id: str
    person_distinct_id: str
    distinct_ids: list[str]
    exported_at: Timestamp
    audit_id: UUID
    person: dict[str, Any] | None
    merged_ids: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    events: list[dict[str, Any]]
    rejected_events: Annotated[
        list[dict[str, Any]],
        Meta(description="Dead letters; each payload as `payload_text` (UTF-8) or `payload_base64`."),
    ]


DistinctId = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
DISTINCT_ID = path(
    "distinct_id",
    DistinctId,
    "Any id of the person (the identified id, or an id merged into it); a slash is sent as %2F.",
)
_PERSONS = f"{PERSONS}/{{distinct_id}}/"

OPERATIONS = (
    admin_operation(
        "delete",
        _PERSONS,
        "adminErasePerson",
        "Erase every row of a person (events, sessions, person, merged ids, dead letters); queues the aggregates' rebuild",
        Response(200, "Erased (also when nothing was found): the rows deleted per table.", Erasure),
        params=(DISTINCT_ID,),
    ),
    admin_operation(
        "get",
        f"{_PERSONS}export/",
        "adminExportPerson",
        "All the data of a person as one JSON document (streamed)",
        Response(200, "The person's data.", PersonExport),
        params=(DISTINCT_ID,),
    ),
    admin_operation(
        "get",
        f"{AUDIT_LOG}/",
        "adminAuditLog",
        "Erasures and exports, newest first",
        Response(200, "A page of audit rows.", Page),
        params=(
            query("action", Literal[ACTIONS]),
            query("distinct_id", Annotated[str, Meta(max_length=MAX_ID_LENGTH)]),
            *WINDOW,
            *PAGING,
        ),
    ),
)
