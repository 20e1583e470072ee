"""DAG parsing: the second workload a runtime binary serves (protocol.md §7).

The first frame is ``[0, DagFileParseRequest]`` instead of StartupDetails; no ``/run``, no
heartbeats, no state calls. While parsing, the runtime may make the requests Airflow's DAG
processor serves (§7.2); it answers with a ``DagFileParsingResult`` request, acked, and exits.
Everything else — launch, connect-back, channels, logs, violations, transcripts — is the task
session's, reused through its hook points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from ..api import ExecutionAPIClient
from ..protocol import TO_SUPERVISOR
from ._config import SupervisorConfig
from ._dispatch import error_response
from ._events import Journal, Violation
from ._process import ChildProcess
from ._session import TaskOutcome, TaskSession, TaskSpec

__all__ = ["PARSE_REQUESTS", "ParseSession", "ParseSpec"]

#: Requests Airflow's DAG processor answers while a file is parsed (protocol.md §7.2).
PARSE_REQUESTS = frozenset({
    "GetConnection", "GetVariable", "GetVariableKeys", "PutVariable", "DeleteVariable",
    "GetTaskStates", "GetTICount", "GetPrevSuccessfulDagRun", "GetPreviousDagRun",
    "GetPreviousTI", "GetXCom", "GetXComCount", "GetXComSequenceItem", "GetXComSequenceSlice",
    "MaskSecret",
})  # fmt: skip


@dataclass(frozen=True)
class ParseSpec:
    """What to parse and with which runtime."""

    file: str
    runtime: Sequence[str]
    bundle_path: str = field(default_factory=lambda: str(Path.cwd()))
    bundle_name: str = "dags-folder"
    callback_requests: Sequence[Mapping[str, Any]] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None


class ParseSession(TaskSession):
    """Supervises one runtime through a DAG parse; ``result`` holds its DagFileParsingResult."""

    accepted_types = (*TO_SUPERVISOR, "DagFileParsingResult")

    def __init__(
        self,
        spec: ParseSpec,
        api: ExecutionAPIClient,
        *,
        config: SupervisorConfig | None = None,
        journal: Journal | None = None,
    ) -> None:
        task_spec = TaskSpec(
            ti={"id": "00000000-0000-0000-0000-000000000000"},
            runtime=spec.runtime,
            env=spec.env,
            cwd=spec.cwd,
        )
        super().__init__(task_spec, api, config=config, journal=journal)
        self.parse_spec = spec
        self.result: dict[str, Any] | None = None

    async def _begin(
        self, comm: trio.SocketStream, child: ChildProcess, outcome: TaskOutcome
    ) -> bool:
        body = {
            "file": self.parse_spec.file,
            "bundle_path": self.parse_spec.bundle_path,
            "bundle_name": self.parse_spec.bundle_name,
            "callback_requests": list(self.parse_spec.callback_requests),
            "type": "DagFileParseRequest",
        }
        await self._send(comm, 0, body, None)
        return True

    def _duties(self, io: trio.Nursery, child: ChildProcess) -> None:
        pass  # the DAG processor does not heartbeat

    async def _answer(self, body: dict[str, Any], frame_id: int, cause: Any) -> Any:
        type_name = body["type"]
        if type_name == "DagFileParsingResult":
            if self.result is not None:
                self.journal.violation(
                    Violation(
                        "duplicate-parsing-result",
                        "a second DagFileParsingResult was sent; the first one is kept",
                        "Airflow's DAG processor stores whichever result it reads last",
                        frame_id=frame_id,
                    )
                )
            else:
                self.result = body
            return None, None
        if type_name in PARSE_REQUESTS:
            return await self.dispatcher.dispatch(body, cause=cause)
        self.journal.violation(
            Violation(
                "not-a-parse-request",
                f"{type_name} is not served while a DAG file is parsed",
                "Airflow's DAG processor answers with an error frame: GENERIC_ERROR "
                "'Unhandled request'",
                frame_id=frame_id,
            )
        )
        return None, error_response(
            "GENERIC_ERROR", {"status_code": 400, "message": "Unhandled request"}
        )

    async def _report_final_state(self, exit_code: int | None) -> str:
        if self.result is None:
            if not self.parse_spec.callback_requests:
                self.journal.violation(
                    Violation(
                        "no-parsing-result",
                        "the runtime exited without sending DagFileParsingResult",
                        "Airflow records the file as failed to parse (no DAGs, no import errors)",
                    )
                )
            return "failed"
        return "parsed" if exit_code == 0 else "failed"
