"""A ``Session`` runs any ``Workload`` through the public hook API, and ``SessionHooks`` change
only what they say they change."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from _session_helpers import SCRIPTED

from supervisor_sim.api import ExecutionAPIClient, RetryPolicy, StubStore, StubTransport, stub_http
from supervisor_sim.protocol import Line, packb
from supervisor_sim.supervision import (
    Journal,
    Reply,
    Session,
    SessionHooks,
    StartFailed,
    SupervisorConfig,
    Workload,
    error_response,
)

CONFIG = SupervisorConfig(
    startup_timeout=10, kill_escalation_delay=0.5, socket_cleanup_timeout=2, comm_spin=0
)


@dataclass(frozen=True)
class Spec:
    runtime: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None


class Greeting(Workload):
    """A workload of no Airflow: it says hello, acks every Ping, and ends as ``greeted``."""

    accepted_types = ("GetVariable",)

    def __init__(self, spec: Spec, *, fail_start: bool = False) -> None:
        self.spec = spec
        self.ti_id = "greeting"
        self.calls: list[str] = []
        self.fail_start = fail_start

    def bind(self, session: Session) -> None:
        super().bind(session)
        self.calls.append("bind")

    async def begin(self) -> dict[str, Any]:
        self.calls.append("begin")
        assert self.session.child is not None and self.session.comm is not None
        if self.fail_start:
            raise StartFailed("no greeting today", kill_reason="the greeting failed")
        return {"type": "Hello", "to": "runtime"}

    def start_duties(self, nursery: trio.Nursery) -> None:
        self.calls.append("start_duties")

    async def answer(self, body: dict[str, Any], frame_id: int, cause: int) -> Reply:
        self.calls.append(f"answer {body['type']} {frame_id}")
        return {"type": "VariableResult", "key": body["key"], "value": "hi"}, None

    async def finish(self, exit_code: int | None) -> str:
        self.calls.append(f"finish {exit_code}")
        return "greeted"


async def _run(
    tmp_path: Path, steps: list[dict[str, Any]], workload: Greeting, hooks: Any = None
) -> tuple[Any, list[Any], dict[str, Any]]:
    out = tmp_path / "seen.json"
    workload.spec.env.update(SCRIPTED_STEPS=json.dumps(steps), SCRIPTED_OUT=str(out))
    journal = Journal()
    events: list[Any] = []
    journal.sinks.append(events.append)
    store = StubStore(":memory:")
    try:
        async with stub_http(StubTransport(store)) as http:
            api = ExecutionAPIClient(http, retry=RetryPolicy(attempts=1, timeout=5))
            session = Session(workload, api, config=CONFIG, journal=journal, hooks=hooks)
            with trio.fail_after(30):
                outcome = await session.run()
    finally:
        store.close()
    seen = json.loads(out.read_text()) if out.exists() else {}
    return outcome, events, seen


async def test_a_session_runs_a_workload_it_knows_nothing_about(tmp_path: Path) -> None:
    """The workload's first frame goes out as id 0, its accepted types decide what is valid, its
    answers are the replies and its final state is the outcome's; the calls come in order."""
    workload = Greeting(Spec(list(SCRIPTED)))
    steps = [
        {"send": {"type": "GetVariable", "key": "k"}},
        {"send": {"type": "GetConnection", "conn_id": "c"}},
        {"exit": 0},
    ]
    outcome, _, seen = await _run(tmp_path, steps, workload)
    assert (outcome.final_state, outcome.exit_code, outcome.started) == ("greeted", 0, True)
    assert outcome.ti_id == "greeting" and outcome.error is None
    assert seen["first"] == [0, {"type": "Hello", "to": "runtime"}, None]
    assert seen["replies"][0] == [0, {"type": "VariableResult", "key": "k", "value": "hi"}, None]
    # GetConnection is a real request type, but not one this workload accepts.
    assert seen["replies"][1][1] is None and seen["replies"][1][2]["type"] == "ErrorResponse"
    assert [v.rule for v in outcome.violations] == ["invalid-request:unknown-type"]
    assert workload.calls == ["bind", "begin", "start_duties", "answer GetVariable 0", "finish 0"]


async def test_a_workload_that_cannot_start_gets_its_runtime_killed(tmp_path: Path) -> None:
    """``StartFailed`` from ``begin``: the error is the outcome's, the group gets SIGKILL with the
    workload's reason, no frame is sent and no final state is asked for."""
    workload = Greeting(Spec(list(SCRIPTED)), fail_start=True)
    outcome, events, seen = await _run(tmp_path, [{"sleep": 30}], workload)
    assert (outcome.final_state, outcome.started, outcome.error) == (
        None,
        False,
        "no greeting today",
    )
    signals = [e.data for e in events if e.kind == "process" and e.data["event"] == "signal"]
    assert [(s["signal"], s["reason"]) for s in signals] == [("SIGKILL", "the greeting failed")]
    assert outcome.exit_code == -9
    assert not [e for e in events if e.kind == "frame"]
    assert workload.calls == ["bind", "begin"]
    assert seen.get("first") is None


class Recording(SessionHooks):
    """Hooks that rewrite the first frame, answer GetVariable 'mine' themselves, send every
    reply as a 2-element array, and record what they were shown."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, int]] = []
        self.lines: list[tuple[str, bytes]] = []

    def first_frame(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "rewritten": True}

    def on_frame(self, payload: bytes, offset: int) -> None:
        self.frames.append((offset, len(payload)))

    async def answer(self, body: dict[str, Any], frame_id: int, cause: int) -> Reply | None:
        if body.get("key") == "mine":
            return None, error_response("GENERIC_ERROR", {"message": "hooked"})
        return None

    async def send(
        self, req_id: int, body: dict[str, Any] | None, error: dict[str, Any] | None
    ) -> None:
        payload = packb([req_id, body] if error is None else [req_id, body, error])
        await self.session.write(len(payload).to_bytes(4, "big") + payload, req_id)

    def on_log_line(self, line: Line, source: str) -> None:
        self.lines.append((source, line.data))


async def test_hooks_change_the_first_frame_the_answers_and_the_replies(tmp_path: Path) -> None:
    """Each hook does its part and no more: the workload still answers what the hooks leave to
    it, and the hooks see every comm frame (offset, length) and every line before parsing."""
    workload = Greeting(Spec(list(SCRIPTED)))
    hooks = Recording()
    steps = [
        {"send": {"type": "GetVariable", "key": "k"}},
        {"send": {"type": "GetVariable", "key": "mine"}},
        {"log": '{"level": "info", "event": "x"}'},
        {"stdout": "out"},
        {"exit": 0},
    ]
    outcome, _, seen = await _run(tmp_path, steps, workload, hooks)
    assert outcome.final_state == "greeted"
    assert seen["first"] == [0, {"type": "Hello", "to": "runtime", "rewritten": True}]
    assert seen["replies"] == [
        [0, {"type": "VariableResult", "key": "k", "value": "hi"}],
        [
            1,
            None,
            {"type": "ErrorResponse", "error": "GENERIC_ERROR", "detail": {"message": "hooked"}},
        ],
    ]
    assert workload.calls[3:] == ["answer GetVariable 0", "finish 0"]
    assert [offset for offset, _ in hooks.frames] == [0, 4 + hooks.frames[0][1]]
    assert ("logs", b'{"level": "info", "event": "x"}') in hooks.lines
    assert ("stdout", b"out") in hooks.lines
