"""Routes of a task instance's own lifecycle: ``/run``, ``/state``, ``/heartbeat``, ``/rtif``,
``/rendered-map-index`` and ``/skip-downstream``, following Airflow 3.3's
``execution_api/routes/task_instances.py``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ...protocol import INTERMEDIATE_TI_STATES, TERMINAL_NON_SUCCESS_TI_STATES
from ..store import StubStore, api_time, db_time
from ._bodies import dag_run_body, loads
from ._http import (
    HTTPError,
    Response,
    gone_ti,
    json_response,
    no_content,
    not_found_ti,
)
from ._request import Request
from ._validation import (
    DATETIME,
    INT,
    MISSING,
    STR,
    Errors,
    Field,
    duration,
    json_dict_or_str,
    list_of,
    literal_member,
    mapping,
    model,
    nested,
    null_tolerated,
    number,
    one_of,
    skip_tasks,
    text,
)

__all__ = [
    "ti_heartbeat",
    "ti_rendered_map_index",
    "ti_rtif",
    "ti_run",
    "ti_skip_downstream",
    "ti_state",
]

_RUN_FIELDS = (
    Field("state", literal_member("TaskInstanceState", "RUNNING", "running"), True),
    Field("hostname", STR, True),
    Field("unixname", STR, True),
    Field("pid", INT, True),
    Field("start_date", DATETIME, True),
)
_HEARTBEAT_FIELDS = (Field("hostname", STR, True), Field("pid", INT, True))
_SKIP_FIELDS = (Field("tasks", skip_tasks, True),)

_RMI = Field("rendered_map_index", text(nullable=True))
_ASSET_PROFILE = nested(
    (
        Field("name", text(nullable=True)),
        Field("uri", text(nullable=True)),
        Field("type", STR, True),
    )
)


def _intermediate(member: str) -> Field:
    return Field("state", literal_member("IntermediateTIState", member, member.lower()), True)


#: The members of ``TIStateUpdate``, in Airflow's declaration order: tag -> payload model.
_STATE_PAYLOADS: dict[str, tuple[Field, ...]] = {
    "_terminal_": (
        Field("state", one_of(*TERMINAL_NON_SUCCESS_TI_STATES), True),
        Field("end_date", DATETIME, True),
        _RMI,
    ),
    "success": (
        Field("state", literal_member("TerminalTIState", "SUCCESS", "success"), True),
        Field("end_date", DATETIME, True),
        Field("task_outlets", list_of(_ASSET_PROFILE)),
        Field("outlet_events", list_of(mapping)),
        _RMI,
    ),
    "_other_": (Field("state", one_of(*INTERMEDIATE_TI_STATES), True),),
    "deferred": (
        _intermediate("DEFERRED"),
        Field("classpath", STR, True),
        Field("trigger_kwargs", null_tolerated(json_dict_or_str)),
        Field("trigger_timeout", duration(nullable=True)),
        Field("queue", text(nullable=True)),
        Field("next_method", STR, True),
        Field("next_kwargs", null_tolerated(mapping)),
        _RMI,
    ),
    "up_for_reschedule": (
        _intermediate("UP_FOR_RESCHEDULE"),
        Field("reschedule_date", DATETIME, True),
        Field("end_date", DATETIME, True),
    ),
    "awaiting_input": (
        _intermediate("AWAITING_INPUT"),
        Field("timeout", duration(nullable=True)),
        Field("next_method", STR, True),
        Field("next_kwargs", null_tolerated(mapping)),
        _RMI,
    ),
    "up_for_retry": (
        _intermediate("UP_FOR_RETRY"),
        Field("end_date", DATETIME, True),
        _RMI,
        Field("retry_delay_seconds", number(nullable=True)),
        Field("retry_reason", text(nullable=True)),
    ),
}


def _state_update(body: Any, errors: Errors) -> tuple[str, dict[str, Any]]:
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
    # shape verified against real Airflow in the differential test tier
    if body is MISSING:
        errors.add("missing", ("body",), "Field required", None)
        return "", {}
    tried = Errors()
    for tag, fields in _STATE_PAYLOADS.items():
        member = Errors()
        validated = model(body, fields, ("body", tag), member)
        if not member:
            return tag, validated
        tried.extend(member)
    errors.extend(tried)
    return "", {}


def ti_run(store: StubStore, req: Request) -> Response:
    ti_id = req.ti_id()
    body = model(req.body, _RUN_FIELDS, ("body",), req.errors)
    req.validated()
    ti = store.tis.get(ti_id)
    run = ti and store.dag_runs.get(ti["dag_id"], ti["run_id"])
    if ti is None or run is None:
        raise not_found_ti()
    previous = ti["state"]
    here = (body["hostname"], body["unixname"], body["pid"])
    duplicate = previous == "running" and (ti["hostname"], ti["unixname"], ti["pid"]) == here
    if not duplicate and previous not in ("queued", "restarting"):
        raise HTTPError(
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
    store.tis.update(ti_id, **columns)
    context: dict[str, Any] = {
        "dag_run": dag_run_body(run),
        "task_reschedule_count": store.tis.count_reschedules(ti_id),
        "max_tries": ti["max_tries"],
        "variables": [],
        "connections": [],
    }
    if ti["next_method"]:
        context["next_method"] = ti["next_method"]
        context["next_kwargs"] = loads(ti["next_kwargs"])
        context["xcom_keys_to_clear"] = []  # XComs are kept across a deferral
    else:
        context["xcom_keys_to_clear"] = store.xcoms.keys_for(
            ti["dag_id"], ti["run_id"], ti["task_id"], ti["map_index"]
        )
    context["should_retry"] = previous == "restarting" or (
        ti["max_tries"] != 0 and ti["try_number"] <= ti["max_tries"]
    )
    if ti["next_method"]:
        context["start_date"] = api_time(ti["start_date"])
    # A workload token is exchanged for an execution token (the middleware never refreshes
    # workload tokens).
    workload = req.claims is not None and req.claims.get("scope") == "workload"
    return json_response(200, context, issue_token_for=ti_id if workload else None)


def ti_state(store: StubStore, req: Request) -> Response:
    ti_id = req.ti_id()
    tag, body = _state_update(req.body, req.errors)
    req.validated()
    if tag == "success":
        _check_partition_keys(body.get("outlet_events") or [])
    ti = store.tis.get(ti_id)
    if ti is None:
        raise not_found_ti()
    if body["state"] == ti["state"]:
        return Response(200)  # a duplicate update: an empty 200, no content type
    if ti["state"] != "running":
        raise HTTPError(
            409,
            {
                "reason": "invalid_state",
                "message": "TI was not in the running state so it cannot be updated",
                "previous_state": ti["state"],
            },
        )
    _apply_state(store, ti, tag, body, req.now)
    return no_content()


def _apply_state(
    store: StubStore, ti: dict[str, Any], tag: str, body: dict[str, Any], now: datetime
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
        store.tis.update(ti_id, **finished)
        if tag == "success":
            # Asset events from the outlets, which a later task can read.
            store.assets.register_outlet_events(
                ti, body.get("task_outlets") or [], body.get("outlet_events") or [], now
            )
    elif tag == "up_for_retry":
        reason = body.get("retry_reason")
        store.tis.retry(
            ti_id,
            **finished,
            retry_delay_seconds=body.get("retry_delay_seconds"),
            retry_reason=reason[:500] if reason else None,
        )
    elif tag == "deferred":
        store.tis.update(
            ti_id,
            state="deferred",
            next_method=body["next_method"],
            next_kwargs=json.dumps(body.get("next_kwargs", {}), separators=(",", ":")),
            trigger_classpath=body["classpath"],
            trigger_kwargs=json.dumps(body.get("trigger_kwargs", {}), separators=(",", ":")),
            trigger_timeout=_opt_text(body.get("trigger_timeout")),
        )
    elif tag == "up_for_reschedule":
        store.tis.reschedule(
            ti_id,
            try_number=ti["try_number"],
            start=now,
            end=end or db_time(now),
            reschedule=db_time(body["reschedule_date"]),
        )
    elif tag == "awaiting_input":
        kwargs = body.get("next_kwargs")
        store.tis.update(
            ti_id,
            state="awaiting_input",
            next_method=body["next_method"],
            next_kwargs=None if kwargs is None else json.dumps(kwargs, separators=(",", ":")),
            trigger_timeout=_opt_text(body.get("timeout")),
        )
    else:
        # ``_other_`` (scheduled/queued/restarting): Airflow's transition builder raises on
        # this payload type and its catch-all marks the TI failed, still answering 204.
        store.tis.update(ti_id, state="failed", end_date=db_time(now))


def ti_heartbeat(store: StubStore, req: Request) -> Response:
    ti_id = req.ti_id()
    body = model(req.body, _HEARTBEAT_FIELDS, ("body",), req.errors)
    req.validated()
    if store.tis.heartbeat(ti_id, body["hostname"], body["pid"], req.now):
        return no_content()
    ti = store.tis.get(ti_id)
    if ti is None:
        raise gone_ti() if store.tis.in_history(ti_id) else not_found_ti()
    if ti["hostname"] != body["hostname"] or ti["pid"] != body["pid"]:
        raise HTTPError(
            409,
            {
                "reason": "running_elsewhere",
                "message": "TI is already running elsewhere",
                # A TI that never ran has the hostname Airflow's TaskInstance() gives it, ""
                # (the store keeps NULL for "never set"); its pid stays null.
                # shape verified against real Airflow in the differential test tier
                "current_hostname": "" if ti["hostname"] is None else ti["hostname"],
                "current_pid": ti["pid"],
            },
        )
    raise HTTPError(
        409,
        {
            "reason": "not_running",
            "message": "TI is no longer in the running state and task should terminate",
            "current_state": ti["state"],
        },
    )


def ti_rtif(store: StubStore, req: Request) -> Response:
    ti_id = req.ti_id()
    if req.body is MISSING:
        req.errors.add("missing", ("body",), "Field required", None)
    else:
        mapping(req.body, ("body",), req.errors)
    req.validated()
    if store.tis.get(ti_id) is None:
        # shape verified against real Airflow in the differential test tier
        raise gone_ti() if store.tis.in_history(ti_id) else not_found_ti()
    store.tis.set_rtif(ti_id, req.body)
    return json_response(201, {"message": "Rendered task instance fields successfully set"})


def ti_rendered_map_index(store: StubStore, req: Request) -> Response:
    ti_id = req.ti_id()
    if req.body is MISSING:
        req.errors.add("missing", ("body",), "Field required", None)
    else:
        STR(req.body, ("body",), req.errors)
    req.validated()
    if not req.body:
        raise HTTPError(422, "rendered_map_index cannot be empty")
    if not store.tis.update(ti_id, rendered_map_index=req.body):
        raise HTTPError(404, "Task Instance not found")
    return no_content()


def ti_skip_downstream(store: StubStore, req: Request) -> Response:
    ti_id = req.ti_id()
    body = model(req.body, _SKIP_FIELDS, ("body",), req.errors)
    req.validated()
    ti = store.tis.get(ti_id)
    if ti is None:
        raise not_found_ti()
    store.tis.skip(ti["dag_id"], ti["run_id"], body["tasks"], req.now)
    return no_content()


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
        raise HTTPError(422, {"reason": "invalid_partition_key", "message": message})
