"""Stub routes for the task state store and Human-in-the-loop details (execution-api.md §7-§8).

``store/ti/{id}[/{key}]`` (Airflow 3.3's ``task_state_store.py``: values are scoped to the
TI's DAG, run, task and map index, so they survive a retry's new TI id) and ``hitlDetails/{id}``
(``hitl.py``).
"""

from __future__ import annotations

import json
from typing import Any

from ._store import StubStore, api_time, db_time
from ._stub_base import _HTTPError, _json, _no_content, _Request, _Response
from ._validation import (
    _bool,
    _datetime,
    _dict,
    _Field,
    _list_of,
    _model,
    _nested,
    _state_value,
    _str,
    _uuid,
)

_TI_STORE_PUT_FIELDS = (
    _Field("value", _state_value, True),
    # A plain ``datetime | None`` on the server: a naive value is taken as UTC.
    _Field("expires_at", _datetime(nullable=True, naive_ok=True)),
)
_HITL_USER = _nested((_Field("id", _str(), True), _Field("name", _str(), True)), forbid_extra=False)
#: Core's ``HITLDetailRequest``: a plain model, so the SDK's extra ``type`` key is ignored; but
#: ``multiple``, ``params`` and ``assigned_users`` are not nullable there.
_HITL_CREATE_FIELDS = (
    _Field("ti_id", _uuid, True),
    _Field("options", _list_of(_str(), min_length=1), True),
    _Field("subject", _str(), True),
    _Field("body", _str(nullable=True)),
    _Field("defaults", _list_of(_str(), nullable=True)),
    _Field("multiple", _bool()),
    _Field("params", _dict),
    _Field("assigned_users", _list_of(_HITL_USER)),
)
_HITL_UPDATE_FIELDS = (
    _Field("ti_id", _uuid, True),
    _Field("chosen_options", _list_of(_str(), min_length=1), True),
    _Field("params_input", _dict),
)


class StoreRoutes:
    """Handlers (``_h_*``) for the task state store and HITL details."""

    store: StubStore

    # -- task state store --------------------------------------------------------------------

    def _ti_scope(
        self, req: _Request, body_fields: tuple[_Field, ...] = ()
    ) -> tuple[tuple[str, str, str, int], dict[str, Any]]:
        """The store scope of the path's TI (404 when it is gone) and the validated body."""
        ti_id = req.ti_id()
        if "key" in req.params:
            req.path_str("key")
        body = _model(req.body, body_fields, ("body",), req.errors) if body_fields else {}
        req.validated()
        ti = self.store.get_ti(ti_id)
        if ti is None:
            raise _HTTPError(
                404, {"reason": "not_found", "message": f"Task instance {ti_id} not found"}
            )
        return (ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"]), body

    def _h_ti_store_get(self, req: _Request) -> _Response:
        scope, _ = self._ti_scope(req)
        key = req.params["key"]
        value = self.store.get_task_state(scope, key, req.now)
        if value is None:
            raise _HTTPError(
                404,
                {"reason": "not_found", "message": f"Task state store key {key!r} not found"},
            )
        return _json(200, {"value": json.loads(value)})

    def _h_ti_store_put(self, req: _Request) -> _Response:
        scope, body = self._ti_scope(req, _TI_STORE_PUT_FIELDS)
        self.store.set_task_state(
            scope, req.params["key"], json.dumps(body["value"]), body.get("expires_at"), req.now
        )
        return _no_content()

    def _h_ti_store_delete(self, req: _Request) -> _Response:
        scope, _ = self._ti_scope(req)
        self.store.delete_task_state(scope, req.params["key"])
        return _no_content()

    def _h_ti_store_clear(self, req: _Request) -> _Response:
        scope, _ = self._ti_scope(req)
        self.store.delete_task_state(scope)
        return _no_content()

    # -- Human in the loop -------------------------------------------------------------------

    def _h_hitl_create(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        body = _model(req.body, _HITL_CREATE_FIELDS, ("body",), req.errors, forbid_extra=False)
        req.validated()
        return _json(201, self.store.upsert_hitl_detail(ti_id, body, req.now))

    def _h_hitl_update(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        body = _model(req.body, _HITL_UPDATE_FIELDS, ("body",), req.errors, forbid_extra=False)
        req.validated()
        row = self._hitl_row(ti_id)
        if row["responded_at"] is not None:
            raise _HTTPError(
                409,
                f"Human-in-the-loop detail for Task Instance with id {ti_id} already exists.",
            )
        self.store.respond_hitl_detail(
            ti_id, body["chosen_options"], body.get("params_input", {}), db_time(req.now)
        )
        return _json(200, _hitl_response(self._hitl_row(ti_id)))

    def _h_hitl_get(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        req.validated()
        return _json(200, _hitl_response(self._hitl_row(ti_id)))

    def _hitl_row(self, ti_id: str) -> dict[str, Any]:
        row = self.store.get_hitl_detail(ti_id)
        if row is None:
            raise _HTTPError(
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
