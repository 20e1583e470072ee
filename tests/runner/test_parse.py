"""parse: the DAG-parsing workload, and serialized DAGs checked against Airflow's schema."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from _cli import ROOT, cli
from _session_helpers import SCRIPTED

from supervisor_sim.protocol._dags import dag_structure, load_schema, validate_serialized_dag
from supervisor_sim.transcript import read_transcript

CORE_VERSION = "3.3.2"


def _parse(tmp: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    proc = cli(
        "parse",
        "--state",
        str(tmp / "s.sqlite"),
        "--transcript",
        str(tmp / "p.jsonl"),
        "--json",
        "-q",
        *args,
        cwd=tmp,
        env=env,
    )
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def test_reference_bundle_parses_into_schema_valid_dags(tmp_path: Path):
    """The reference runtime answers DagFileParseRequest with DAGs valid against the schema."""
    status, result = _parse(tmp_path)
    assert status == 0, result
    assert result["valid"] and result["parsed"]
    dag = next(d for d in result["dags"] if d["dag_id"] == "example_dag")
    assert dag["problems"] == []
    assert dag["tasks"]["push_xcom"]["downstream"] == ["pull_xcom"]
    t = read_transcript(tmp_path / "p.jsonl")
    assert t.frames("out")[0]["type"] == "DagFileParseRequest"
    assert t.frames("in")[-1]["type"] == "DagFileParsingResult"
    assert t.http() == []  # parsing makes no task-instance calls


def test_broken_serialized_dag_gives_a_precise_schema_error(tmp_path: Path):
    """A DAG without fileloc and with a non-boolean catchup is rejected, naming both paths."""
    status, result = _parse(tmp_path, env={"REFERENCE_PARSE_BREAK": "example_dag"})
    assert status == 1
    problems = next(d for d in result["dags"] if d["dag_id"] == "example_dag")["problems"]
    assert "$.dag: 'fileloc' is a required property" in problems
    assert "$.dag.catchup: 'yes' is not of type 'boolean'" in problems


def test_operator_fields_are_checked_inside_tasks():
    """A task missing what Airflow's deserializer reads is reported at its own path; a task
    holding only its id is valid, as it is for Airflow (docs/fidelity.md)."""
    mapped = {"task_id": "m", "_is_mapped": True, "task_type": "T", "_task_module": "mod"}
    data = {
        "__version": 3,
        "dag": {
            "dag_id": "d",
            "fileloc": "/f",
            "tasks": [
                {"__type": "operator", "__var": {"task_id": "t", "downstream_task_ids": ["x"]}},
                {"__type": "operator", "__var": mapped},
            ],
        },
    }
    problems = validate_serialized_dag(data)
    assert problems == [
        "$.dag.tasks[0].__var.downstream_task_ids[0]: 'x' is not a task of this DAG",
        "$.dag.tasks[1].__var: a mapped task needs '_disallow_kwargs_override'",
        "$.dag.tasks[1].__var: a mapped task needs '_expand_input_attr'",
    ]
    data["dag"]["tasks"] = data["dag"]["tasks"][:1]
    del data["dag"]["tasks"][0]["__var"]["downstream_task_ids"]
    assert validate_serialized_dag(data) == []


def test_requests_a_parser_may_not_make_get_an_error_and_a_violation(tmp_path: Path):
    """GetDagRun while parsing is answered 'Unhandled request' and flagged."""
    out = tmp_path / "seen.json"
    result_body = {"type": "DagFileParsingResult", "fileloc": "/f", "serialized_dags": []}
    steps = [
        {"send": {"type": "GetDagRun", "dag_id": "d", "run_id": "r"}},
        {"send": {"type": "GetVariable", "key": "peer_var"}},
        {"send": result_body},
    ]
    runtime = " ".join(SCRIPTED)
    proc = cli(
        "parse",
        "/f",
        "--runtime",
        runtime,
        "--state",
        str(tmp_path / "s.sqlite"),
        "--no-transcript",
        "--json",
        "-q",
        cwd=tmp_path,
        env={"SCRIPTED_STEPS": json.dumps(steps), "SCRIPTED_OUT": str(out)},
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    seen = json.loads(out.read_text())
    assert seen["first"][1]["type"] == "DagFileParseRequest"
    assert seen["replies"][0][2]["error"] == "GENERIC_ERROR"
    assert seen["replies"][0][2]["detail"]["message"] == "Unhandled request"
    assert seen["replies"][1][1]["type"] == "VariableResult"
    assert seen["replies"][2] == [2, None, None]
    assert [v["rule"] for v in result["violations"]] == ["not-a-parse-request"]
    assert result["parsed"] and proc.returncode == 0


def test_mapped_tasks_are_read_from_the_serialized_form():
    """An operator with _is_mapped and an XComArg expand input maps over that task."""
    data = {
        "dag": {
            "dag_id": "d",
            "tasks": [
                {"__type": "operator", "__var": {"task_id": "src", "downstream_task_ids": ["m"]}},
                {
                    "__type": "operator",
                    "__var": {
                        "task_id": "m",
                        "_is_mapped": True,
                        "expand_input": {
                            "type": "dict-of-lists",
                            "value": {
                                "__type": "dict",
                                "__var": {
                                    "x": {
                                        "__type": "xcomref",
                                        "__var": {"task_id": "src", "key": "return_value"},
                                    }
                                },
                            },
                        },
                    },
                },
            ],
        }
    }
    s = dag_structure(data)
    assert s.tasks["m"].mapped_over == "src"
    assert s.tasks["m"].upstream == ["src"]
    assert s.order() == ["src", "m"]


@pytest.mark.contract
def test_vendored_schema_is_airflow_core_3_3_2s():
    """The vendored supervisor_sim/protocol/_data/serialized_dag_schema.json is byte-identical to
    the core wheel's."""
    cache = ROOT / ".cache" / f"airflow-core-{CORE_VERSION}"
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("apache_airflow_core-*.whl"))
    if not wheels:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                f"apache-airflow-core=={CORE_VERSION}",
                "-d",
                str(cache),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        wheels = sorted(cache.glob("apache_airflow_core-*.whl"))
        if not wheels:
            pytest.fail(
                f"could not download apache-airflow-core=={CORE_VERSION}:\n{proc.stderr[-2000:]}",
                pytrace=False,
            )
    with zipfile.ZipFile(wheels[0]) as zf:
        theirs = zf.read("airflow/serialization/schema.json")
    ours = (ROOT / "supervisor_sim/protocol/_data/serialized_dag_schema.json").read_bytes()
    assert ours == theirs
    assert load_schema()["$id"] == "https://airflow.apache.com/schemas/serialized-dags.json"
