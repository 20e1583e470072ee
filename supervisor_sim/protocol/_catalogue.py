"""The message catalogue: which bodies travel which way, what answers them, what ends a task.

Shapes (fields, types, required sets, forbidden extras) come from ``_schema`` (generated from
Airflow's own schema.json). This module adds what the schema cannot say: the unions
(``ToSupervisor`` / ``ToTask`` in Airflow's comms.py, and the DAG-parsing pair), which requests
are terminal, and what Airflow's supervisor replies to each request and through which HTTP call
(protocol.md §2.5, §3.2). docs/protocol.md is generated from this module and checked by a test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal

from ._schema import DEFINITIONS, SCHEMA_VERSION
from ._types import DATETIME, NAIVE_DATETIME, AnyOf, ListOf, Model, Problem, Type

__all__ = [
    "ACK",
    "CATALOGUE",
    "PARSE_MESSAGES",
    "PLAIN_DATETIME_FIELDS",
    "SCHEMA_VERSION",
    "TERMINAL",
    "TO_SUPERVISOR",
    "TO_TASK",
    "MessageSpec",
    "message",
    "validate_body",
]

Direction = Literal["to_supervisor", "to_task", "parse"]

#: The reply "type" of a request answered with an empty frame ``[id, nil, nil]``.
ACK = "ack"

# Airflow 1.3.2 comms.py, in declaration order.
TO_SUPERVISOR: tuple[str, ...] = (
    "AwaitInputTask", "ClearAssetStateStoreByName", "ClearAssetStateStoreByUri",
    "ClearTaskStateStore", "DeferTask", "DeleteAssetStateStoreByName",
    "DeleteAssetStateStoreByUri", "DeleteTaskStateStore", "DeleteXCom", "GetAssetByName",
    "GetAssetByUri", "GetAssetsByAlias", "GetAssetEventByAsset", "GetAssetEventByAssetAlias",
    "GetAssetStateStoreByName", "GetAssetStateStoreByUri", "GetConnection", "GetDagRun",
    "GetDagRunState", "GetDRCount", "GetDag", "GetPrevSuccessfulDagRun", "GetPreviousDagRun",
    "GetPreviousTI", "GetTaskRescheduleStartDate", "GetTaskStateStore", "GetTICount",
    "GetTaskBreadcrumbs", "GetTaskStates", "GetVariable", "GetVariableKeys", "GetXCom",
    "GetXComCount", "GetXComSequenceItem", "GetXComSequenceSlice", "PutVariable",
    "RescheduleTask", "RetryTask", "SetAssetStateStoreByName", "SetAssetStateStoreByUri",
    "SetRenderedFields", "SetRenderedMapIndex", "SetTaskStateStore", "SetXCom",
    "SkipDownstreamTasks", "SucceedTask", "ValidateInletsAndOutlets", "TaskState",
    "TriggerDagRun", "DeleteVariable", "ResendLoggingFD", "CreateHITLDetailPayload",
    "UpdateHITLDetail", "GetHITLDetailResponse", "MaskSecret",
)  # fmt: skip

TO_TASK: tuple[str, ...] = (
    "AssetResult", "AssetsByAliasResult", "AssetEventsResult", "AssetStateStoreResult",
    "ConnectionResult", "DagRunResult", "DagRunStateResult", "DRCount", "DagResult",
    "ErrorResponse", "PrevSuccessfulDagRunResult", "PreviousTIResult", "SentFDs",
    "StartupDetails", "TaskRescheduleStartDate", "TaskStateStoreResult", "TICount",
    "TaskBreadcrumbsResult", "TaskStatesResult", "VariableResult", "VariableKeysResult",
    "XComCountResponse", "XComResult", "XComSequenceIndexResult", "XComSequenceSliceResult",
    "InactiveAssetsResult", "CreateHITLDetailPayload", "HITLDetailRequestResult", "OKResponse",
    "PreviousDagRunResult",
)  # fmt: skip

#: DAG parsing (core's ToManager / ToDagProcessor): the first frame and the runtime's answer.
PARSE_MESSAGES: tuple[str, ...] = ("DagFileParseRequest", "DagFileParsingResult")

#: Requests that end a task try (protocol.md §2.6). SkipDownstreamTasks is deliberately absent.
TERMINAL: frozenset[str] = frozenset(
    {"SucceedTask", "TaskState", "RetryTask", "DeferTask", "RescheduleTask", "AwaitInputTask"}
)

_NOT_FOUND = "ErrorResponse"

# request type -> (reply types, the HTTP call Airflow's supervisor makes for it)
_REPLIES: dict[str, tuple[tuple[str, ...], str]] = {
    "SucceedTask": ((ACK,), "PATCH task-instances/{id}/state (success)"),
    "TaskState": ((ACK,), "none until exit, then PATCH task-instances/{id}/state"),
    "RetryTask": ((ACK,), "PATCH task-instances/{id}/state (up_for_retry)"),
    "DeferTask": ((ACK,), "PATCH task-instances/{id}/state (deferred)"),
    "RescheduleTask": ((ACK,), "PATCH task-instances/{id}/state (up_for_reschedule)"),
    "AwaitInputTask": ((ACK,), "PATCH task-instances/{id}/state (awaiting_input)"),
    "SkipDownstreamTasks": ((ACK,), "PATCH task-instances/{id}/skip-downstream"),
    "GetConnection": (("ConnectionResult", _NOT_FOUND), "GET connections/{conn_id}"),
    "GetVariable": (("VariableResult", _NOT_FOUND), "GET variables/{key}"),
    "GetVariableKeys": (("VariableKeysResult",), "GET variables/keys"),
    "PutVariable": ((ACK,), "PUT variables/{key}"),
    "DeleteVariable": (("OKResponse",), "DELETE variables/{key}"),
    "GetXCom": (("XComResult",), "GET xcoms/{dag_id}/{run_id}/{task_id}/{key}"),
    "GetXComCount": (("XComCountResponse",), "HEAD xcoms/{dag_id}/{run_id}/{task_id}/{key}"),
    "GetXComSequenceItem": (
        ("XComSequenceIndexResult", _NOT_FOUND),
        "GET xcoms/{dag_id}/{run_id}/{task_id}/{key}/item/{offset}",
    ),
    "GetXComSequenceSlice": (
        ("XComSequenceSliceResult",),
        "GET xcoms/{dag_id}/{run_id}/{task_id}/{key}/slice",
    ),
    "SetXCom": ((ACK,), "POST xcoms/{dag_id}/{run_id}/{task_id}/{key}"),
    "DeleteXCom": ((ACK,), "DELETE xcoms/{dag_id}/{run_id}/{task_id}/{key}"),
    "SetRenderedFields": ((ACK,), "PUT task-instances/{id}/rtif"),
    "SetRenderedMapIndex": ((ACK,), "PATCH task-instances/{id}/rendered-map-index"),
    "ValidateInletsAndOutlets": (
        ("InactiveAssetsResult",),
        "GET task-instances/{ti_id}/validate-inlets-and-outlets",
    ),
    "GetAssetByName": (("AssetResult", _NOT_FOUND), "GET assets/by-name?name="),
    "GetAssetByUri": (("AssetResult", _NOT_FOUND), "GET assets/by-uri?uri="),
    "GetAssetsByAlias": (("AssetsByAliasResult",), "GET assets/by-alias?alias_name="),
    "GetAssetEventByAsset": (("AssetEventsResult",), "GET asset-events/by-asset"),
    "GetAssetEventByAssetAlias": (("AssetEventsResult",), "GET asset-events/by-asset-alias"),
    "GetPrevSuccessfulDagRun": (
        ("PrevSuccessfulDagRunResult",),
        "GET task-instances/{id}/previous-successful-dagrun",
    ),
    "GetPreviousDagRun": (("PreviousDagRunResult",), "GET dag-runs/previous"),
    "GetPreviousTI": (("PreviousTIResult",), "GET task-instances/previous/{dag_id}/{task_id}"),
    "GetTaskRescheduleStartDate": (
        ("TaskRescheduleStartDate",),
        "GET task-reschedules/{ti_id}/start_date",
    ),
    "GetTICount": (("TICount",), "GET task-instances/count"),
    "GetTaskStates": (("TaskStatesResult",), "GET task-instances/states"),
    "GetTaskBreadcrumbs": (("TaskBreadcrumbsResult",), "GET task-instances/breadcrumbs"),
    "GetDRCount": (("DRCount",), "GET dag-runs/count"),
    "GetDagRun": (("DagRunResult",), "GET dag-runs/{dag_id}/{run_id}"),
    "GetDagRunState": (("DagRunStateResult",), "GET dag-runs/{dag_id}/{run_id}/state"),
    "GetDag": (("DagResult",), "GET dags/{dag_id}"),
    "TriggerDagRun": (("OKResponse", _NOT_FOUND), "POST dag-runs/{dag_id}/{run_id}"),
    "GetTaskStateStore": (("TaskStateStoreResult", _NOT_FOUND), "GET store/ti/{ti_id}/{key}"),
    "SetTaskStateStore": (("OKResponse",), "PUT store/ti/{ti_id}/{key}"),
    "DeleteTaskStateStore": (("OKResponse",), "DELETE store/ti/{ti_id}/{key}"),
    "ClearTaskStateStore": (("OKResponse",), "DELETE store/ti/{ti_id}"),
    "GetAssetStateStoreByName": (
        ("AssetStateStoreResult", _NOT_FOUND),
        "GET store/asset/by-name/value",
    ),
    "GetAssetStateStoreByUri": (
        ("AssetStateStoreResult", _NOT_FOUND),
        "GET store/asset/by-uri/value",
    ),
    "SetAssetStateStoreByName": (("OKResponse",), "PUT store/asset/by-name/value"),
    "SetAssetStateStoreByUri": (("OKResponse",), "PUT store/asset/by-uri/value"),
    "DeleteAssetStateStoreByName": (("OKResponse",), "DELETE store/asset/by-name/value"),
    "DeleteAssetStateStoreByUri": (("OKResponse",), "DELETE store/asset/by-uri/value"),
    "ClearAssetStateStoreByName": (("OKResponse",), "DELETE store/asset/by-name/clear"),
    "ClearAssetStateStoreByUri": (("OKResponse",), "DELETE store/asset/by-uri/clear"),
    "CreateHITLDetailPayload": (("HITLDetailRequestResult",), "POST hitlDetails/{ti_id}"),
    "UpdateHITLDetail": (
        ("error slot: Unhandled request",),
        "none: only the triggerer handles it",
    ),
    "GetHITLDetailResponse": (
        ("error slot: Unhandled request",),
        "none: only the triggerer handles it",
    ),
    "MaskSecret": ((ACK,), "none: registers the value with the supervisor's secrets masker"),
    "ResendLoggingFD": (("SentFDs",), "none: passes a new logs fd with SCM_RIGHTS (fork mode)"),
    "DagFileParsingResult": ((ACK,), "none: the DAG processor stores the result"),
}


#: Fields Airflow declares as a plain ``datetime``, not ``AwareDatetime``, so pydantic takes a
#: naive value there. schema.json says ``format: date-time`` for both, so the generated shapes
#: cannot tell them apart; tests/protocol/test_airflow_models_accept.py reads them off task-sdk's
#: and core's own models.
PLAIN_DATETIME_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "TaskState": ("end_date",),
        "StartupDetails": ("start_date",),
        "LazyDeserializedDAG": ("last_loaded",),
    }
)


def _naive_ok(t: Type) -> Type:
    if t == DATETIME:
        return NAIVE_DATETIME
    if isinstance(t, AnyOf):
        return AnyOf(tuple(_naive_ok(o) for o in t.options))
    if isinstance(t, ListOf):
        return ListOf(_naive_ok(t.item), t.min_items)
    return t


def _with_plain_datetimes() -> Mapping[str, Any]:
    """``DEFINITIONS`` with the ``PLAIN_DATETIME_FIELDS`` taking naive datetimes."""
    models = dict(DEFINITIONS)
    for name, names in PLAIN_DATETIME_FIELDS.items():
        model = models[name]
        assert isinstance(model, Model), name
        fields = tuple(
            replace(f, type=_naive_ok(f.type)) if f.name in names else f for f in model.fields
        )
        models[name] = replace(model, fields=fields)
    return MappingProxyType(models)


#: The shapes validation uses: the generated ones, with what schema.json cannot say.
MODELS: Mapping[str, Any] = _with_plain_datetimes()


@dataclass(frozen=True)
class MessageSpec:
    """Everything the catalogue knows about one message type."""

    name: str
    model: Model
    direction: Direction
    terminal: bool = False
    replies: tuple[str, ...] = ()
    http: str = ""

    @property
    def forbid_extra(self) -> bool:
        return self.model.forbid_extra

    def validate(self, body: Any) -> list[Problem]:
        return validate_body(body, self.name)


def _build() -> Mapping[str, MessageSpec]:
    specs: dict[str, MessageSpec] = {}
    for direction, names in (
        ("to_task", TO_TASK),
        ("to_supervisor", TO_SUPERVISOR),
        ("parse", PARSE_MESSAGES),
    ):
        for name in names:
            model = MODELS[name]
            assert isinstance(model, Model), name
            replies, http = _REPLIES.get(name, ((), ""))
            # CreateHITLDetailPayload is in both unions; as a request it is "to_supervisor".
            specs[name] = MessageSpec(
                name=name,
                model=model,
                direction=direction,  # type: ignore[arg-type]
                terminal=name in TERMINAL,
                replies=replies,
                http=http,
            )
    return MappingProxyType(specs)


#: Every message type by name. Nested types (DagRun, TaskInstance, ...) are in ``_schema``.
CATALOGUE: Mapping[str, MessageSpec] = _build()


def message(name: str) -> MessageSpec:
    """The catalogue entry for ``name``; ``KeyError`` names the unknown type."""
    return CATALOGUE[name]


def validate_body(body: Any, expected: str | tuple[str, ...] | None = None) -> list[Problem]:
    """Check a decoded body as Airflow's pydantic union would; return every problem found.

    ``expected`` names the union (a tuple of type names, such as ``TO_SUPERVISOR``) or a single
    type. An empty list means Airflow's supervisor would accept the body.
    """
    if not isinstance(body, Mapping):
        kind = "nil" if body is None else type(body).__name__
        return [Problem("body", "not-a-map", f"a message body must be a map, got {kind}")]
    allowed = (expected,) if isinstance(expected, str) else expected
    type_name = body.get("type")
    if "type" not in body:
        return [
            Problem(
                "body.type",
                "missing-type",
                "every body needs a 'type' key naming its message class",
            )
        ]
    if not isinstance(type_name, str):
        return [Problem("body.type", "wrong-type", f"'type' must be a string, got {type_name!r}")]
    if type_name not in CATALOGUE or (allowed is not None and type_name not in allowed):
        where = "" if allowed is None else " here"
        return [
            Problem(
                "body.type",
                "unknown-type",
                f"{type_name!r} is not a message type Airflow accepts{where}",
            )
        ]
    problems: list[Problem] = []
    CATALOGUE[type_name].model.check(body, type_name, problems, MODELS)
    return problems
