"""The state vocabulary (``protocol.TI_STATES`` and friends) is Airflow's, defined once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from supervisor_sim.protocol import (
    DAG_RUN_STATES,
    DEFINITIONS,
    FINISHED_DAG_RUN_STATES,
    INTERMEDIATE_TI_STATES,
    TERMINAL_NON_SUCCESS_TI_STATES,
    TERMINAL_TI_STATES,
    TI_STATES,
    UNFINISHED_DAG_RUN_STATES,
)
from supervisor_sim.protocol._types import Enum

AIRFLOW_PYTHON = Path(__file__).resolve().parents[2] / ".cache" / "airflow-venv" / "bin" / "python"


def test_ti_and_dag_run_states_are_the_generated_schema_enums() -> None:
    """TI_STATES and DAG_RUN_STATES are the schema's TaskInstanceState and DagRunState, in
    their declaration order (pydantic's error messages list them in that order)."""
    ti_state, dag_run_state = DEFINITIONS["TaskInstanceState"], DEFINITIONS["DagRunState"]
    assert isinstance(ti_state, Enum) and isinstance(dag_run_state, Enum)
    assert ti_state.values == TI_STATES
    assert dag_run_state.values == DAG_RUN_STATES


def test_every_ti_state_is_terminal_intermediate_or_running() -> None:
    """Terminal, intermediate and ``running`` partition the TI states, and the subsets hold
    only known states."""
    assert not set(TERMINAL_TI_STATES) & set(INTERMEDIATE_TI_STATES)
    assert {*TERMINAL_TI_STATES, *INTERMEDIATE_TI_STATES, "running"} == set(TI_STATES)
    assert set(TERMINAL_NON_SUCCESS_TI_STATES) == set(TERMINAL_TI_STATES) - {"success"}
    assert {*FINISHED_DAG_RUN_STATES, *UNFINISHED_DAG_RUN_STATES} == set(DAG_RUN_STATES)
    assert not set(FINISHED_DAG_RUN_STATES) & set(UNFINISHED_DAG_RUN_STATES)


_ORACLE = """
import json
from airflow.api_fastapi.execution_api.datamodels.taskinstance import TerminalStateNonSuccess
from airflow.utils.state import DagRunState, IntermediateTIState, State, TaskInstanceState
from airflow.utils.state import TerminalTIState

values = lambda enum: [member.value for member in enum]
print(json.dumps({
    "ti": values(TaskInstanceState),
    "terminal": values(TerminalTIState),
    "terminal_non_success": values(TerminalStateNonSuccess),
    "intermediate": values(IntermediateTIState),
    "dag_run": values(DagRunState),
    "finished_dag_run": sorted(s.value for s in State.finished_dr_states),
    "unfinished_dag_run": sorted(s.value for s in State.unfinished_dr_states),
}))
"""


@pytest.mark.contract
def test_the_sets_are_airflows_own() -> None:
    """Each tuple equals Airflow 3.3's enum (``airflow.utils.state``, the Execution API's
    ``TerminalStateNonSuccess``) member for member, in order."""
    if not AIRFLOW_PYTHON.exists():
        pytest.skip(f"no Airflow venv at {AIRFLOW_PYTHON} (tools/airflow_venv.sh builds it)")
    proc = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", _ORACLE], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    airflow = json.loads(proc.stdout.splitlines()[-1])
    assert list(TI_STATES) == airflow["ti"]
    assert list(TERMINAL_TI_STATES) == airflow["terminal"]
    assert list(TERMINAL_NON_SUCCESS_TI_STATES) == airflow["terminal_non_success"]
    assert list(INTERMEDIATE_TI_STATES) == airflow["intermediate"]
    assert list(DAG_RUN_STATES) == airflow["dag_run"]
    assert sorted(FINISHED_DAG_RUN_STATES) == airflow["finished_dag_run"]
    assert sorted(UNFINISHED_DAG_RUN_STATES) == airflow["unfinished_dag_run"]
