"""Stub routes for DAG runs, DAGs and the task-instance read queries (execution-api.md §7-§8).

``dag-runs/*``, ``dags/{dag_id}``, ``task-instances/{count,states,breadcrumbs,previous/...}``,
``task-instances/{id}/previous-successful-dagrun``, ``.../validate-inlets-and-outlets`` and
``task-reschedules/{id}/start_date``, following ``airflow/api_fastapi/execution_api/routes``.
"""

from __future__ import annotations

from typing import Any

from ._fixtures import RUN_STATES, TI_STATES
from ._store import StubStore, api_time
from ._stub_base import _dag_run_body, _HTTPError, _json, _no_content, _Request, _Response
from ._validation import _bool, _datetime, _dict, _Field, _model, _str

_TRIGGER_FIELDS = (
    _Field("logical_date", _datetime(nullable=True)),
    _Field("run_after", _datetime(nullable=True)),
    _Field("conf", _dict),
    _Field("reset_dag_run", _bool()),
    _Field("partition_key", _str(nullable=True)),
    _Field("note", _str(nullable=True)),
)


def _run_not_found(dag_id: str, run_id: str) -> _HTTPError:
    return _HTTPError(
        404,
        {
            "reason": "not_found",
            "message": f"Dag run with dag_id '{dag_id}' and run_id '{run_id}' was not found",
        },
    )


def _dag_not_found(dag_id: str) -> _HTTPError:
    return _HTTPError(
        404, {"reason": "not_found", "message": f"Dag with dag_id: '{dag_id}' not found"}
    )


class RunRoutes:
    """Handlers (``_h_*``) for DAG runs, DAGs and TI queries; mixed into ``StubTransport``."""

    store: StubStore

    # -- DAG runs ----------------------------------------------------------------------------

    def _h_dag_run_get(self, req: _Request) -> _Response:
        dag_id, run_id = req.params["dag_id"], req.params["run_id"]
        req.validated()
        run = self.store.get_dag_run(dag_id, run_id)
        if run is None:
            raise _run_not_found(dag_id, run_id)
        return _json(200, _dag_run_body(run))

    def _h_dag_run_state(self, req: _Request) -> _Response:
        dag_id, run_id = req.params["dag_id"], req.params["run_id"]
        req.validated()
        run = self.store.get_dag_run(dag_id, run_id)
        if run is None:
            raise _run_not_found(dag_id, run_id)
        return _json(200, {"state": run["state"]})

    def _h_dag_run_trigger(self, req: _Request) -> _Response:
        dag_id, run_id = req.params["dag_id"], req.params["run_id"]
        body = _model(req.body, _TRIGGER_FIELDS, ("body",), req.errors)
        req.validated()
        if not self.store.dag_is_known(dag_id):
            raise _dag_not_found(dag_id)
        # The new run inherits the triggering user of the calling task's run.
        parent = req.claims_ti()
        ti = self.store.get_ti(parent) if parent else None
        parent_run = ti and self.store.get_dag_run(ti["dag_id"], ti["run_id"])
        created = self.store.trigger_dag_run(
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
            raise _HTTPError(
                409,
                {
                    "reason": "already_exists",
                    "message": f"A run already exists for Dag '{dag_id}' with run_id '{run_id}'",
                },
            )
        return _no_content()

    def _h_dag_run_clear(self, req: _Request) -> _Response:
        dag_id, run_id = req.params["dag_id"], req.params["run_id"]
        req.validated()
        if not self.store.dag_is_known(dag_id):
            raise _dag_not_found(dag_id)
        if self.store.get_dag_run(dag_id, run_id) is None:
            message = f"Dag run with run_id: '{run_id}' not found"
            raise _HTTPError(404, {"reason": "not_found", "message": message})
        self.store.clear_dag_run(dag_id, run_id)
        return _no_content()

    def _h_dag_run_count(self, req: _Request) -> _Response:
        dag_id = req.q_str("dag_id", required=True)
        logical_dates = req.q_datetimes("logical_dates")
        run_ids = req.q_list("run_ids")
        states = req.q_list("states")
        req.validated()
        assert dag_id is not None
        count = self.store.count_dag_runs(
            dag_id, logical_dates=logical_dates, run_ids=run_ids, states=states
        )
        return _json(200, count)

    def _h_dag_run_previous(self, req: _Request) -> _Response:
        dag_id = req.q_str("dag_id", required=True)
        logical_date = req.q_datetime("logical_date", required=True)
        state = req.q_enum("state", RUN_STATES)
        req.validated()
        assert dag_id is not None and logical_date is not None
        run = self.store.previous_dag_run(dag_id, logical_date, state)
        return _json(200, None if run is None else _dag_run_body(run))

    # -- DAGs --------------------------------------------------------------------------------

    def _h_dag_get(self, req: _Request) -> _Response:
        dag_id = req.params["dag_id"]
        req.validated()
        dag = self.store.get_dag(dag_id)
        if dag is None:
            message = f"The Dag with dag_id: `{dag_id}` was not found"
            raise _HTTPError(404, {"reason": "not_found", "message": message})
        return _json(200, dag)

    # -- task-instance queries ---------------------------------------------------------------

    def _ti_filters(self, req: _Request) -> dict[str, Any]:
        return {
            "map_index": req.q_int("map_index", None),
            "task_ids": req.q_list("task_ids"),
            "logical_dates": req.q_datetimes("logical_dates"),
            "run_ids": req.q_list("run_ids"),
        }

    def _group_tis(
        self, dag_id: str, group_id: str, filters: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """``_get_group_tasks``: the TIs of a task group's tasks (same run/date/index filters)."""
        if not self.store.dag_is_known(dag_id):
            raise _HTTPError(
                404,
                {"reason": "not_found", "message": f"The Dag with ID: `{dag_id}` was not found"},
            )
        tasks = self.store.task_group_tasks(dag_id, group_id)
        if tasks is None:
            raise _HTTPError(
                404,
                {
                    "reason": "not_found",
                    "message": f"Task group {group_id} not found in DAG {dag_id}",
                },
            )
        if not tasks:
            return []
        return self.store.find_task_instances(dag_id, **{**filters, "task_ids": list(tasks)})

    def _h_ti_count(self, req: _Request) -> _Response:
        dag_id = req.q_str("dag_id", required=True)
        filters = self._ti_filters(req)
        group_id = req.q_str("task_group_id")
        states = req.q_list("states")
        req.validated()
        assert dag_id is not None
        pairs = None
        if group_id:
            group = self._group_tis(dag_id, group_id, filters)
            # No TI of the group yet: Airflow looks for the group id as a task id instead.
            pairs = [(t["task_id"], t["map_index"]) for t in group] or [(group_id, -1)]
        count = len(self.store.find_task_instances(dag_id, **filters, states=states, pairs=pairs))
        return _json(200, count)

    def _h_ti_states(self, req: _Request) -> _Response:
        dag_id = req.q_str("dag_id", required=True)
        filters = self._ti_filters(req)
        group_id = req.q_str("task_group_id")
        req.validated()
        assert dag_id is not None
        results = self.store.find_task_instances(dag_id, **filters)
        if group_id:
            group = self._group_tis(dag_id, group_id, filters)
            results = results + group if filters["task_ids"] else group
        states: dict[str, dict[str, Any]] = {}
        for ti in results:
            name = ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}_{ti['map_index']}"
            states.setdefault(ti["run_id"], {})[name] = ti["state"]
        return _json(200, {"task_states": states})

    def _h_ti_breadcrumbs(self, req: _Request) -> _Response:
        dag_id = req.q_str("dag_id", required=True)
        run_id = req.q_str("run_id", required=True)
        req.validated()
        assert dag_id is not None and run_id is not None
        return _json(200, {"breadcrumbs": self.store.breadcrumbs(dag_id, run_id)})

    def _h_ti_previous(self, req: _Request) -> _Response:
        dag_id, task_id = req.params["dag_id"], req.params["task_id"]
        logical_date = req.q_datetime("logical_date")
        map_index = req.q_int("map_index", -1)
        state = req.q_enum("state", TI_STATES)
        req.validated()
        found = self.store.previous_task_instance(
            dag_id,
            task_id,
            before=logical_date,
            map_index=-1 if map_index is None else map_index,
            state=state,
        )
        return _json(200, found)

    def _h_ti_prev_successful(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        req.validated()
        run = self.store.previous_successful_run(ti_id)
        keys = ("data_interval_start", "data_interval_end", "start_date", "end_date")
        return _json(200, {k: api_time(run[k]) if run else None for k in keys})

    def _h_ti_validate_assets(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        req.validated()
        ti = self.store.get_ti(ti_id)
        if ti is None:
            raise _HTTPError(404, {"reason": "not_found", "message": "Task Instance not found"})
        declared = set(self.store.task_assets(ti["dag_id"], ti["task_id"]))
        inactive = sorted(declared - self.store.active_asset_keys(declared))
        return _json(
            200,
            {"inactive_assets": [{"name": n, "uri": u, "type": "Asset"} for n, u in inactive]},
        )

    def _h_reschedule_start(self, req: _Request) -> _Response:
        ti_id = req.ti_id()
        # ``try_number`` is not a parameter of the route: Airflow ignores it.
        req.validated()
        return _json(200, api_time(self.store.first_reschedule_start(ti_id)))
