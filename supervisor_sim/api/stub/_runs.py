"""Routes for DAG runs, DAGs and the task-instance read queries.

``dag-runs/*``, ``dags/{dag_id}``, ``task-instances/{count,states,breadcrumbs,previous/...}``,
``task-instances/{id}/previous-successful-dagrun``, ``.../validate-inlets-and-outlets`` and
``task-reschedules/{id}/start_date``, following ``airflow/api_fastapi/execution_api/routes``.
"""

from __future__ import annotations

from typing import Any

from ...protocol import DAG_RUN_STATES, TI_STATES
from ..store import StubStore, api_time
from ._bodies import dag_run_body
from ._http import HTTPError, Response, json_response, no_content
from ._request import Request
from ._validation import Field, boolean, instant, mapping, model, text

__all__ = [
    "dag_get",
    "dag_run_clear",
    "dag_run_count",
    "dag_run_get",
    "dag_run_previous",
    "dag_run_state",
    "dag_run_trigger",
    "reschedule_start",
    "ti_breadcrumbs",
    "ti_count",
    "ti_prev_successful",
    "ti_previous",
    "ti_states",
    "ti_validate_assets",
]

_TRIGGER_FIELDS = (
    Field("logical_date", instant(nullable=True)),
    Field("run_after", instant(nullable=True)),
    Field("conf", mapping),
    Field("reset_dag_run", boolean()),
    Field("partition_key", text(nullable=True)),
    Field("note", text(nullable=True)),
)


def _run_not_found(dag_id: str, run_id: str) -> HTTPError:
    return HTTPError(
        404,
        {
            "reason": "not_found",
            "message": f"Dag run with dag_id '{dag_id}' and run_id '{run_id}' was not found",
        },
    )


def _dag_not_found(dag_id: str) -> HTTPError:
    return HTTPError(
        404, {"reason": "not_found", "message": f"Dag with dag_id: '{dag_id}' not found"}
    )


# -- DAG runs ----------------------------------------------------------------------------------


def dag_run_get(store: StubStore, req: Request) -> Response:
    dag_id, run_id = req.params["dag_id"], req.params["run_id"]
    req.validated()
    run = store.dag_runs.get(dag_id, run_id)
    if run is None:
        raise _run_not_found(dag_id, run_id)
    return json_response(200, dag_run_body(run))


def dag_run_state(store: StubStore, req: Request) -> Response:
    dag_id, run_id = req.params["dag_id"], req.params["run_id"]
    req.validated()
    run = store.dag_runs.get(dag_id, run_id)
    if run is None:
        raise _run_not_found(dag_id, run_id)
    return json_response(200, {"state": run["state"]})


def dag_run_trigger(store: StubStore, req: Request) -> Response:
    dag_id, run_id = req.params["dag_id"], req.params["run_id"]
    body = model(req.body, _TRIGGER_FIELDS, ("body",), req.errors)
    req.validated()
    if not store.dags.is_known(dag_id):
        raise _dag_not_found(dag_id)
    # The new run inherits the triggering user of the calling task's run.
    parent = req.claims_ti()
    ti = store.tis.get(parent) if parent else None
    parent_run = ti and store.dag_runs.get(ti["dag_id"], ti["run_id"])
    created = store.dag_runs.trigger(
        dag_id,
        run_id,
        now=req.now,
        conf=body.get("conf", {}),
        logical_date=body.get("logical_date"),
        run_after=body.get("run_after"),
        note=body.get("note"),
        partition_key=body.get("partition_key"),
        triggering_user_name=parent_run["triggering_user_name"] if parent_run else None,
    )
    if not created:
        raise HTTPError(
            409,
            {
                "reason": "already_exists",
                "message": f"A run already exists for Dag '{dag_id}' with run_id '{run_id}'",
            },
        )
    return no_content()


def dag_run_clear(store: StubStore, req: Request) -> Response:
    dag_id, run_id = req.params["dag_id"], req.params["run_id"]
    req.validated()
    if not store.dags.is_known(dag_id):
        raise _dag_not_found(dag_id)
    if store.dag_runs.get(dag_id, run_id) is None:
        message = f"Dag run with run_id: '{run_id}' not found"
        raise HTTPError(404, {"reason": "not_found", "message": message})
    store.dag_runs.clear(dag_id, run_id)
    return no_content()


def dag_run_count(store: StubStore, req: Request) -> Response:
    dag_id = req.q_str("dag_id", required=True)
    logical_dates = req.q_datetimes("logical_dates")
    run_ids = req.q_list("run_ids")
    states = req.q_list("states")
    req.validated()
    assert dag_id is not None
    count = store.dag_runs.count(
        dag_id, logical_dates=logical_dates, run_ids=run_ids, states=states
    )
    return json_response(200, count)


def dag_run_previous(store: StubStore, req: Request) -> Response:
    dag_id = req.q_str("dag_id", required=True)
    logical_date = req.q_datetime("logical_date", required=True)
    state = req.q_enum("state", DAG_RUN_STATES)
    req.validated()
    assert dag_id is not None and logical_date is not None
    run = store.dag_runs.previous(dag_id, logical_date, state)
    return json_response(200, None if run is None else dag_run_body(run))


# -- DAGs --------------------------------------------------------------------------------------


def dag_get(store: StubStore, req: Request) -> Response:
    dag_id = req.params["dag_id"]
    req.validated()
    dag = store.dags.get(dag_id)
    if dag is None:
        message = f"The Dag with dag_id: `{dag_id}` was not found"
        raise HTTPError(404, {"reason": "not_found", "message": message})
    return json_response(200, dag)


# -- task-instance queries ---------------------------------------------------------------------


def _ti_filters(req: Request) -> dict[str, Any]:
    return {
        "map_index": req.q_int("map_index", None),
        "task_ids": req.q_list("task_ids"),
        "logical_dates": req.q_datetimes("logical_dates"),
        "run_ids": req.q_list("run_ids"),
    }


def _group_tis(
    store: StubStore, dag_id: str, group_id: str, filters: dict[str, Any]
) -> list[dict[str, Any]]:
    """``_get_group_tasks``: the TIs of a task group's tasks (same run/date/index filters)."""
    if not store.dags.is_known(dag_id):
        raise HTTPError(
            404,
            {"reason": "not_found", "message": f"The Dag with ID: `{dag_id}` was not found"},
        )
    tasks = store.dags.task_group_tasks(dag_id, group_id)
    if tasks is None:
        raise HTTPError(
            404,
            {
                "reason": "not_found",
                "message": f"Task group {group_id} not found in DAG {dag_id}",
            },
        )
    if not tasks:
        return []
    return store.tis.find(dag_id, **{**filters, "task_ids": list(tasks)})


def ti_count(store: StubStore, req: Request) -> Response:
    dag_id = req.q_str("dag_id", required=True)
    filters = _ti_filters(req)
    group_id = req.q_str("task_group_id")
    states = req.q_list("states")
    req.validated()
    assert dag_id is not None
    pairs = None
    if group_id:
        group = _group_tis(store, dag_id, group_id, filters)
        # No TI of the group yet: Airflow looks for the group id as a task id instead.
        pairs = [(t["task_id"], t["map_index"]) for t in group] or [(group_id, -1)]
    count = len(store.tis.find(dag_id, **filters, states=states, pairs=pairs))
    return json_response(200, count)


def ti_states(store: StubStore, req: Request) -> Response:
    dag_id = req.q_str("dag_id", required=True)
    filters = _ti_filters(req)
    group_id = req.q_str("task_group_id")
    req.validated()
    assert dag_id is not None
    results = store.tis.find(dag_id, **filters)
    if group_id:
        group = _group_tis(store, dag_id, group_id, filters)
        results = results + group if filters["task_ids"] else group
    states: dict[str, dict[str, Any]] = {}
    for ti in results:
        name = ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}_{ti['map_index']}"
        states.setdefault(ti["run_id"], {})[name] = ti["state"]
    return json_response(200, {"task_states": states})


def ti_breadcrumbs(store: StubStore, req: Request) -> Response:
    dag_id = req.q_str("dag_id", required=True)
    run_id = req.q_str("run_id", required=True)
    req.validated()
    assert dag_id is not None and run_id is not None
    return json_response(200, {"breadcrumbs": store.tis.breadcrumbs(dag_id, run_id)})


def ti_previous(store: StubStore, req: Request) -> Response:
    dag_id, task_id = req.params["dag_id"], req.params["task_id"]
    logical_date = req.q_datetime("logical_date")
    map_index = req.q_int("map_index", -1)
    state = req.q_enum("state", TI_STATES)
    req.validated()
    found = store.tis.previous(
        dag_id,
        task_id,
        before=logical_date,
        map_index=-1 if map_index is None else map_index,
        state=state,
    )
    return json_response(200, found)


def ti_prev_successful(store: StubStore, req: Request) -> Response:
    ti_id = req.ti_id()
    req.validated()
    run = store.dag_runs.previous_successful(ti_id)
    keys = ("data_interval_start", "data_interval_end", "start_date", "end_date")
    return json_response(200, {k: api_time(run[k]) if run else None for k in keys})


def ti_validate_assets(store: StubStore, req: Request) -> Response:
    ti_id = req.ti_id()
    req.validated()
    ti = store.tis.get(ti_id)
    if ti is None:
        raise HTTPError(404, {"reason": "not_found", "message": "Task Instance not found"})
    declared = set(store.dags.task_assets(ti["dag_id"], ti["task_id"]))
    inactive = sorted(declared - store.assets.active_keys(declared))
    return json_response(
        200,
        {"inactive_assets": [{"name": n, "uri": u, "type": "Asset"} for n, u in inactive]},
    )


def reschedule_start(store: StubStore, req: Request) -> Response:
    ti_id = req.ti_id()
    # ``try_number`` is not a parameter of the route: Airflow ignores it.
    req.validated()
    return json_response(200, api_time(store.tis.first_reschedule_start(ti_id)))
