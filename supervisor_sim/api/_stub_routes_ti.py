"""Stub routes for a task instance's own lifecycle: ``/run``, ``/state``, ``/heartbeat``,
``/rtif``, ``/rendered-map-index`` and ``/skip-downstream`` (execution-api.md §6-§7)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ._store import StubStore, api_time, db_time
from ._stub_base import (
    _dag_run_body,
    _gone_ti,
    _HTTPError,
    _json,
    _loads,
    _no_content,
    _not_found_ti,
    _Request,
    _Response,
)
from ._tokens import TokenIssuer
from ._validation import (
    _MISSING,
    _datetime,
    _dict,
    _duration,
    _enum,
    _enum_literal,
    _Errors,
    _Field,
    _float,
    _int,
    _json_dict_or_str,
    _list_of,
    _model,
    _nested,
    _null_tolerated,
    _skip_tasks,
    _str,
)

_RUN_FIELDS = (
    _Field("state", _enum_literal("TaskInstanceState", "RUNNING", "running"), True),
    _Field("hostname", _str(), True),
    _Field("unixname", _str(), True),
    _Field("pid", _int(), True),
    _Field("start_date", _datetime(), True),
)
_HEARTBEAT_FIELDS = (_Field("hostname", _str(), True), _Field("pid", _int(), True))
_SKIP_FIELDS = (_Field("tasks", _skip_tasks, True),)

_TERMINAL = ("failed", "skipped", "removed", "upstream_failed")
_INTERMEDIATE = (
    "scheduled",
    "queued",
    "restarting",
    "up_for_retry",
    "up_for_reschedule",
    "deferred",
    "awaiting_input",
)
_RMI = _Field("rendered_map_index", _str(nullable=True))
_ASSET_PROFILE = _nested(
    (
        _Field("name", _str(nullable=True)),
        _Field("uri", _str(nullable=True)),
        _Field("type", _str(), True),
    )
)


def _intermediate(member: str) -> _Field:
    return _Field("state", _enum_literal("IntermediateTIState", member, member.lower()), True)


#: The members of ``TIStateUpdate``, in Airflow's declaration order: tag -> payload model.
_STATE_PAYLOADS: dict[str, tuple[_Field, ...]] = {
    "_terminal_": (
        _Field("state", _enum(*_TERMINAL), True),
        _Field("end_date", _datetime(), True),
        _RMI,
    ),
    "success": (
        _Field("state", _enum_literal("TerminalTIState", "SUCCESS", "success"), True),
        _Field("end_date", _datetime(), True),
        _Field("task_outlets", _list_of(_ASSET_PROFILE)),
        _Field("outlet_events", _list_of(_dict)),
        _RMI,
    ),
    "_other_": (_Field("state", _enum(*_INTERMEDIATE), True),),
    "deferred": (
        _intermediate("DEFERRED"),
        _Field("classpath", _str(), True),
        _Field("trigger_kwargs", _null_tolerated(_json_dict_or_str)),
        _Field("trigger_timeout", _duration(nullable=True)),
        _Field("queue", _str(nullable=True)),
        _Field("next_method", _str(), True),
        _Field("next_kwargs", _null_tolerated(_dict)),
        _RMI,
    ),
    "up_for_reschedule": (
        _intermediate("UP_FOR_RESCHEDULE"),
        _Field("reschedule_date", _datetime(), True),
        _Field("end_date", _datetime(), True),
    ),
    "awaiting_input": (
        _intermediate("AWAITING_INPUT"),
        _Field("timeout", _duration(nullable=True)),
        _Field("next_method", _str(), True),
        _Field("next_kwargs", _null_tolerated(_dict)),
        _RMI,
    ),
    "up_for_retry": (
        _intermediate("UP_FOR_RETRY"),
        _Field("end_date", _datetime(), True),
        _RMI,
        _Field("retry_delay_seconds", _float(nullable=True)),
        _Field("retry_reason", _str(nullable=True)),
    ),
}


def _state_update(body: Any, errors: _Errors) -> tuple[str, dict[str, Any]]:
    """Validate a PATCH .../state body against ``TIStateUpdate``: (tag, fields) of the member
    that takes it, or ("", {}) with the errors recorded.

    Airflow declares the union with ``Field(discriminator=<callable>)``, which pydantic does not
    honour (a callable discriminator needs ``Discriminator(...)``), so FastAPI validates it as a
    smart union of tagged members: the member that validates wins (valid payloads fit exactly
    one), and a body none takes gets the errors of every member, in declaration order, each
    located under its tag. A payload with only an intermediate ``state`` (e.g.
    ``{"state": "up_for_retry"}``) therefore lands in ``_other_``. A missing (or null) body is
    one ``missing`` error on ``["body"]``.
    """
    # shape verified against real Airflow in the differential test tier (issue 6)
    if body is _MISSING:
        errors.add("missing", ("body",), "Field required", None)
        return "", {}
    tried = _Errors()
    for tag, fields in _STATE_PAYLOADS.items():
        member = _Errors()
        validated = _model(body, fields, ("body", tag), member)
        if not member:
            return tag, validated
        tried.extend(member)
    errors.extend(tried)
    return "", {}


class TaskInstanceRoutes:
    """Handlers (``_h_*``) for the TI lifecycle routes; mixed into ``StubTransport``."""

    store: StubStore
    tokens: TokenIssuer | None

    def _h_ti_run(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        body = _model(req.body, _RUN_FIELDS, ("body",), req.errors)
        req.validated()
        ti = self.store.get_ti(ti_id)
        run = ti and self.store.get_dag_run(ti["dag_id"], ti["run_id"])
        if ti is None or run is None:
            raise _not_found_ti()
        previous = ti["state"]
        here = (body["hostname"], body["unixname"], body["pid"])
        duplicate = previous == "running" and (ti["hostname"], ti["unixname"], ti["pid"]) == here
        if not duplicate and previous not in ("queued", "restarting"):
            raise _HTTPError(
                409,
                {
                    "reason": "invalid_state",
                    "message": "TI was not in a state where it could be marked as running",
                    "previous_state": previous,
                },
            )
        resuming = bool(ti["next_kwargs"])
        columns: dict[str, Any] = {
            "state": "running",
            "hostname": body["hostname"],
            "unixname": body["unixname"],
            "pid": body["pid"],
            "end_date": None,
            "last_heartbeat_at": db_time(req.now),
            "retry_delay_seconds": None,
            "retry_reason": None,
        }
        if not resuming:  # a task resuming from deferral keeps its original start date
            columns["start_date"] = db_time(body["start_date"])
        self.store.update_ti(ti_id, **columns)
        context: dict[str, Any] = {
            "dag_run": _dag_run_body(run),
            "task_reschedule_count": self.store.count_reschedules(ti_id),
            "max_tries": ti["max_tries"],
            "variables": [],
            "connections": [],
        }
        if ti["next_method"]:
            context["next_method"] = ti["next_method"]
            context["next_kwargs"] = _loads(ti["next_kwargs"])
            context["xcom_keys_to_clear"] = []  # XComs are kept across a deferral
        else:
            context["xcom_keys_to_clear"] = self.store.xcom_keys_for(
                ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"]
            )
        context["should_retry"] = previous == "restarting" or (
            ti["max_tries"] != 0 and ti["try_number"] <= ti["max_tries"]
        )
        if ti["next_method"]:
            context["start_date"] = api_time(ti["start_date"])
        headers = {}
        if req.claims is not None and req.claims.get("scope") == "workload" and self.tokens:
            # The workload -> execution exchange (the middleware never refreshes workload).
            headers["Refreshed-API-Token"] = self.tokens.issue(ti_id, scope="execution")
        return _json(200, context, headers)

    def _h_ti_state(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        tag, body = _state_update(req.body, req.errors)
        req.validated()
        if tag == "success":
            _check_partition_keys(body.get("outlet_events") or [])
        ti = self.store.get_ti(ti_id)
        if ti is None:
            raise _not_found_ti()
        if body["state"] == ti["state"]:
            return _Response(200)  # a duplicate update: an empty 200, no content type
        if ti["state"] != "running":
            raise _HTTPError(
                409,
                {
                    "reason": "invalid_state",
                    "message": "TI was not in the running state so it cannot be updated",
                    "previous_state": ti["state"],
                },
            )
        self._apply_state(ti, tag, body, req.now)
        return _no_content()

    def _apply_state(
        self, ti: dict[str, Any], tag: str, body: dict[str, Any], now: datetime
    ) -> None:
        ti_id = ti["id"]
        end = db_time(body["end_date"]) if "end_date" in body else None
        # Terminal states and retries clear the deferral fields, as Airflow's update does.
        finished = {
            "state": body["state"],
            "end_date": end,
            "next_method": None,
            "next_kwargs": None,
        }
        if "rendered_map_index" in body:
            finished["rendered_map_index"] = body["rendered_map_index"]
        if tag in ("success", "_terminal_"):
            self.store.update_ti(ti_id, **finished)
            if tag == "success":
                # Asset events from the outlets, which a later task can read.
                self.store.register_outlet_events(
                    ti, body.get("task_outlets") or [], body.get("outlet_events") or [], now
                )
        elif tag == "up_for_retry":
            reason = body.get("retry_reason")
            self.store.retry_ti(
                ti_id,
                **finished,
                retry_delay_seconds=body.get("retry_delay_seconds"),
                retry_reason=reason[:500] if reason else None,
            )
        elif tag == "deferred":
            self.store.update_ti(
                ti_id,
                state="deferred",
                next_method=body["next_method"],
                next_kwargs=json.dumps(body.get("next_kwargs", {}), separators=(",", ":")),
                trigger_classpath=body["classpath"],
                trigger_kwargs=json.dumps(body.get("trigger_kwargs", {}), separators=(",", ":")),
                trigger_timeout=_opt_text(body.get("trigger_timeout")),
            )
        elif tag == "up_for_reschedule":
            self.store.reschedule_ti(
                ti_id,
                try_number=ti["try_number"],
                start=now,
                end=end or db_time(now),
                reschedule=db_time(body["reschedule_date"]),
            )
        elif tag == "awaiting_input":
            kwargs = body.get("next_kwargs")
            self.store.update_ti(
                ti_id,
                state="awaiting_input",
                next_method=body["next_method"],
                next_kwargs=None if kwargs is None else json.dumps(kwargs, separators=(",", ":")),
                trigger_timeout=_opt_text(body.get("timeout")),
            )
        else:
            # ``_other_`` (scheduled/queued/restarting): Airflow's transition builder raises on
            # this payload type and its catch-all marks the TI failed, still answering 204.
            self.store.update_ti(ti_id, state="failed", end_date=db_time(now))

    def _h_ti_heartbeat(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        body = _model(req.body, _HEARTBEAT_FIELDS, ("body",), req.errors)
        req.validated()
        if self.store.heartbeat(ti_id, body["hostname"], body["pid"], req.now):
            return _no_content()
        ti = self.store.get_ti(ti_id)
        if ti is None:
            raise _gone_ti() if self.store.in_history(ti_id) else _not_found_ti()
        if ti["hostname"] != body["hostname"] or ti["pid"] != body["pid"]:
            raise _HTTPError(
                409,
                {
                    "reason": "running_elsewhere",
                    "message": "TI is already running elsewhere",
                    # A TI that never ran has the hostname Airflow's TaskInstance() gives it,
                    # "" (the store keeps NULL for "never set"); its pid stays null.
                    # shape verified against real Airflow in the differential test tier (issue 6)
                    "current_hostname": "" if ti["hostname"] is None else ti["hostname"],
                    "current_pid": ti["pid"],
                },
            )
        raise _HTTPError(
            409,
            {
                "reason": "not_running",
                "message": "TI is no longer in the running state and task should terminate",
                "current_state": ti["state"],
            },
        )

    def _h_ti_rtif(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        if req.body is _MISSING:
            req.errors.add("missing", ("body",), "Field required", None)
        else:
            _dict(req.body, ("body",), req.errors)
        req.validated()
        if self.store.get_ti(ti_id) is None:
            # shape verified against real Airflow in the differential test tier (issue 6)
            raise _gone_ti() if self.store.in_history(ti_id) else _not_found_ti()
        self.store.set_rtif(ti_id, req.body)
        return _json(201, {"message": "Rendered task instance fields successfully set"})

    def _h_ti_rendered_map_index(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        if req.body is _MISSING:
            req.errors.add("missing", ("body",), "Field required", None)
        else:
            _str()(req.body, ("body",), req.errors)
        req.validated()
        if not req.body:
            raise _HTTPError(422, "rendered_map_index cannot be empty")
        if not self.store.update_ti(ti_id, rendered_map_index=req.body):
            raise _HTTPError(404, "Task Instance not found")
        return _no_content()

    def _h_ti_skip_downstream(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        body = _model(req.body, _SKIP_FIELDS, ("body",), req.errors)
        req.validated()
        ti = self.store.get_ti(ti_id)
        if ti is None:
            raise _not_found_ti()
        self.store.skip_tasks(ti["dag_id"], ti["run_id"], body["tasks"], req.now)
        return _no_content()


def _opt_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _check_partition_keys(outlet_events: list[dict[str, Any]]) -> None:
    for event in outlet_events:
        key = event.get("partition_key")
        if key is None:
            continue
        if not isinstance(key, str) or not key.strip():
            message = (
                f"partition_key in outlet event must not be empty or whitespace-only; got {key!r}."
            )
        elif len(key) > 250:  # ID_LEN
            message = (
                f"partition_key in outlet event must be at most 250 characters; got {len(key)}."
            )
        else:
            continue
        raise _HTTPError(422, {"reason": "invalid_partition_key", "message": message})
