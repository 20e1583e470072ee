"""Routes for the task state store and Human-in-the-loop details.

``store/ti/{id}[/{key}]`` (Airflow 3.3's ``task_state_store.py``: values are scoped to the
TI's DAG, run, task and map index, so they survive a retry's new TI id) and ``hitlDetails/{id}``
(``hitl.py``).
"""

from __future__ import annotations

import json
from typing import Any

from ..store import StubStore, api_time, db_time
from ._http import HTTPError, Response, json_response, no_content
from ._request import Request
from ._validation import (
    STR,
    Field,
    boolean,
    instant,
    list_of,
    mapping,
    model,
    nested,
    state_value,
    text,
    uuid_text,
)

__all__ = [
    "hitl_create",
    "hitl_get",
    "hitl_update",
    "ti_store_clear",
    "ti_store_delete",
    "ti_store_get",
    "ti_store_put",
]

_TI_STORE_PUT_FIELDS = (
    Field("value", state_value, True),
    # A plain ``datetime | None`` on the server: a naive value is taken as UTC.
    Field("expires_at", instant(nullable=True, naive_ok=True)),
)
_HITL_USER = nested((Field("id", STR, True), Field("name", STR, True)), forbid_extra=False)
#: Core's ``HITLDetailRequest``: a plain model, so the SDK's extra ``type`` key is ignored; but
#: ``multiple``, ``params`` and ``assigned_users`` are not nullable there.
_HITL_CREATE_FIELDS = (
    Field("ti_id", uuid_text, True),
    Field("options", list_of(STR, min_length=1), True),
    Field("subject", STR, True),
    Field("body", text(nullable=True)),
    Field("defaults", list_of(STR, nullable=True)),
    Field("multiple", boolean()),
    Field("params", mapping),
    Field("assigned_users", list_of(_HITL_USER)),
)
_HITL_UPDATE_FIELDS = (
    Field("ti_id", uuid_text, True),
    Field("chosen_options", list_of(STR, min_length=1), True),
    Field("params_input", mapping),
)


# -- task state store --------------------------------------------------------------------------


def _ti_scope(
    store: StubStore, req: Request, body_fields: tuple[Field, ...] = ()
) -> tuple[tuple[str, str, str, int], dict[str, Any]]:
    """The store scope of the path's TI (404 when it is gone) and the validated body."""
    ti_id = req.ti_id()
    if "key" in req.params:
        req.path_str("key")
    body = model(req.body, body_fields, ("body",), req.errors) if body_fields else {}
    req.validated()
    ti = store.tis.get(ti_id)
    if ti is None:
        raise HTTPError(404, {"reason": "not_found", "message": f"Task instance {ti_id} not found"})
    return (ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"]), body


def ti_store_get(store: StubStore, req: Request) -> Response:
    scope, _ = _ti_scope(store, req)
    key = req.params["key"]
    value = store.state_stores.get_task(scope, key, req.now)
    if value is None:
        raise HTTPError(
            404,
            {"reason": "not_found", "message": f"Task state store key {key!r} not found"},
        )
    return json_response(200, {"value": json.loads(value)})


def ti_store_put(store: StubStore, req: Request) -> Response:
    scope, body = _ti_scope(store, req, _TI_STORE_PUT_FIELDS)
    store.state_stores.set_task(
        scope, req.params["key"], json.dumps(body["value"]), body.get("expires_at"), req.now
    )
    return no_content()


def ti_store_delete(store: StubStore, req: Request) -> Response:
    scope, _ = _ti_scope(store, req)
    store.state_stores.delete_task(scope, req.params["key"])
    return no_content()


def ti_store_clear(store: StubStore, req: Request) -> Response:
    scope, _ = _ti_scope(store, req)
    store.state_stores.delete_task(scope)
    return no_content()


# -- Human in the loop -------------------------------------------------------------------------


def hitl_create(store: StubStore, req: Request) -> Response:
    ti_id = req.ti_id()
    body = model(req.body, _HITL_CREATE_FIELDS, ("body",), req.errors, forbid_extra=False)
    req.validated()
    return json_response(201, store.hitl.upsert(ti_id, body, req.now))


def hitl_update(store: StubStore, req: Request) -> Response:
    ti_id = req.ti_id()
    body = model(req.body, _HITL_UPDATE_FIELDS, ("body",), req.errors, forbid_extra=False)
    req.validated()
    row = _hitl_row(store, ti_id)
    if row["responded_at"] is not None:
        raise HTTPError(
            409,
            f"Human-in-the-loop detail for Task Instance with id {ti_id} already exists.",
        )
    store.hitl.respond(
        ti_id, body["chosen_options"], body.get("params_input", {}), db_time(req.now)
    )
    return json_response(200, _hitl_response(_hitl_row(store, ti_id)))


def hitl_get(store: StubStore, req: Request) -> Response:
    ti_id = req.ti_id()
    req.validated()
    return json_response(200, _hitl_response(_hitl_row(store, ti_id)))


def _hitl_row(store: StubStore, ti_id: str) -> dict[str, Any]:
    row = store.hitl.get(ti_id)
    if row is None:
        raise HTTPError(
            404,
            {
                "reason": "not_found",
                "message": "HITLDetail not found. This happens most likely due to clearing "
                "task instance before receiving response.",
            },
        )
    return row


def _hitl_response(row: dict[str, Any]) -> dict[str, Any]:
    """``HITLDetailResponse.from_hitl_detail_orm``."""
    responded_by = json.loads(row["responded_by"]) if row["responded_by"] else None
    return {
        "response_received": row["responded_at"] is not None,
        "responded_by_user": responded_by,
        "responded_at": api_time(row["responded_at"]),
        "chosen_options": json.loads(row["chosen_options"]) if row["chosen_options"] else [],
        "params_input": json.loads(row["params_input"] or "{}"),
    }
