"""``StubStore``: the stub's state, one SQLite database composed of one part per table group.

Each part (``tis``, ``dag_runs``, ``dags``, ``xcoms``, ``variables``, ``connections``,
``assets``, ``state_stores``, ``hitl``) is a plain class over the one shared ``Database``
(connection, lock, short transactions) and lives in the module of its tables, with their
schema and their seeding. There are no mixins: a part that must write another's table inside
its own transaction (preparing a try creates its DAG run) calls that module's function on the
open connection. ``StubStore`` itself holds what a scheduler or a test does to the whole store
(seed fixtures, queue a try) and a few reads and writes of everyday use; the Execution API's
routes use the parts.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from .._fixtures import Fixtures
from . import _assets, _hitl, _runs, _state_stores, _tasks, _variables, _xcoms
from ._common import db_time, utcnow
from ._database import Database

__all__ = ["StubStore"]


class StubStore:
    """SQLite-backed state of the embedded Execution API stub.

    ``path`` is a file (kept between processes, so ``run-task a`` then ``run-task b`` can pass an
    XCom; two processes may share it) or ``":memory:"``.
    """

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = str(path)
        self.db = db = Database(
            self.path,
            (
                _variables.SCHEMA,
                _xcoms.SCHEMA,
                _runs.SCHEMA,
                _tasks.SCHEMA,
                _assets.SCHEMA,
                _state_stores.SCHEMA,
                _hitl.SCHEMA,
            ),
        )
        self.tis = _tasks.TaskInstances(db)
        self.dag_runs = _runs.DagRuns(db)
        self.dags = _runs.Dags(db)
        self.xcoms = _xcoms.XComs(db)
        self.variables = _variables.Variables(db)
        self.connections = _variables.Connections(db)
        self.assets = _assets.Assets(db)
        self.state_stores = _state_stores.StateStores(db)
        self.hitl = _hitl.HITLDetails(db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> StubStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what a scheduler does -----------------------------------------------------------------

    def seed(self, fixtures: Fixtures) -> None:
        """Write what the fixtures name: variables, connections, XComs, DAG-run defaults, DAGs,
        assets, aliases, asset events and existing runs with their task instances.

        An entry is written when it is new or has changed since it was last seeded; otherwise
        the stored row is left alone, so what tasks wrote (an XCom pushed over a seeded one, a
        variable they set or deleted) survives the re-seed every ``run-task`` does. Re-seeding
        the same fixtures is a no-op and never duplicates rows.
        """
        now = db_time(utcnow())
        with self.db.tx() as db:
            _variables.seed(db, fixtures)
            _xcoms.seed(db, fixtures, now)
            _runs.seed_dag_run_defaults(db, fixtures, now)
            # Declared assets first: a DAG's inlets and outlets only fill in unknown ones.
            _assets.seed_assets(db, fixtures)
            _runs.seed_dags(db, fixtures)
            _assets.seed_aliases_and_events(db, fixtures, now)
            _runs.seed_runs(db, fixtures, now)

    def prepare_task_instance(
        self,
        dag_id: str,
        task_id: str,
        *,
        run_id: str | None = None,
        map_index: int = -1,
        max_tries: int = 0,
        queue: str = "default",
        try_number: int | None = None,
        dag_run_conf: dict[str, Any] | None = None,
        logical_date: datetime | None = None,
    ) -> _tasks.TaskInstanceRecord:
        """Make a ``queued`` try of the task ready for ``/run``, as a scheduler would (see
        ``TaskInstances.prepare``)."""
        return self.tis.prepare(
            dag_id,
            task_id,
            run_id=run_id,
            map_index=map_index,
            max_tries=max_tries,
            queue=queue,
            try_number=try_number,
            dag_run_conf=dag_run_conf,
            logical_date=logical_date,
        )

    # -- everyday reads and writes -------------------------------------------------------------

    def get_ti(self, ti_id: str) -> dict[str, Any] | None:
        """The live TI row with this id, or None (archived ids are only in ti_history)."""
        return self.tis.get(ti_id)

    def get_ti_state(self, ti_id: str) -> str | None:
        return self.tis.state(ti_id)

    def get_dag_run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        return self.dag_runs.get(dag_id, run_id)

    def get_xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1
    ) -> Any:
        """The decoded value of one XCom, or None when there is none."""
        return self.xcoms.get(dag_id, run_id, task_id, key, map_index)

    def set_variable(self, key: str, value: str | None, description: str | None = None) -> None:
        self.variables.set(key, value, description)
