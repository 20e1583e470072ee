"""The parse workload: a DAG file parsed by the runtime, as Airflow's DAG processor has it done
(docs/run-dag.md).

The first frame is ``[0, DagFileParseRequest]`` instead of StartupDetails; no ``/run``, no
heartbeats, no state calls. While parsing, the runtime may make the requests Airflow's DAG
processor serves (``PARSE_REQUESTS``); it answers with a ``DagFileParsingResult`` request,
acked, and exits. Everything else — launch, connect-back, channels, logs, violations,
transcripts — is the session's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Unpack

from ..api import ExecutionAPIClient
from ..protocol import TO_SUPERVISOR
from ._dispatch import Dispatcher, Reply, error_response
from ._hooks import Workload
from ._session import Session, SessionOptions
from ._violations import violation

__all__ = ["PARSE_REQUESTS", "ParseSession", "ParseSpec", "ParseWorkload"]

#: The task instance id a parse's requests name (there is none; Airflow's DAG processor has
#: no task instance either).
_NO_TI = "00000000-0000-0000-0000-000000000000"

#: Requests Airflow's DAG processor answers while a file is parsed.
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


class ParseWorkload(Workload):
    """A DAG file parse; ``result`` holds the runtime's DagFileParsingResult."""

    accepted_types = (*TO_SUPERVISOR, "DagFileParsingResult")
    spec: ParseSpec

    def __init__(self, spec: ParseSpec) -> None:
        self.spec = spec
        self.ti_id = _NO_TI
        self.result: dict[str, Any] | None = None

    def bind(self, session: Session) -> None:
        super().bind(session)
        self.journal = session.journal
        self.dispatcher = Dispatcher(session.api, self.ti_id)

    async def begin(self) -> dict[str, Any]:
        return {
            "file": self.spec.file,
            "bundle_path": self.spec.bundle_path,
            "bundle_name": self.spec.bundle_name,
            "callback_requests": list(self.spec.callback_requests),
            "type": "DagFileParseRequest",
        }

    async def answer(self, body: dict[str, Any], frame_id: int, cause: int) -> Reply:
        type_name = body["type"]
        if type_name == "DagFileParsingResult":
            if self.result is not None:
                self.journal.violation(
                    violation(
                        "duplicate-parsing-result",
                        "a second DagFileParsingResult was sent; the first one is kept",
                        frame_id=frame_id,
                    )
                )
            else:
                self.result = body
            return None, None
        if type_name in PARSE_REQUESTS:
            return await self.dispatcher.dispatch(body, cause=cause)
        self.journal.violation(
            violation(
                "not-a-parse-request",
                f"{type_name} is not served while a DAG file is parsed",
                frame_id=frame_id,
            )
        )
        return None, error_response(
            "GENERIC_ERROR", {"status_code": 400, "message": "Unhandled request"}
        )

    async def finish(self, exit_code: int | None) -> str:
        if self.result is None:
            if not self.spec.callback_requests:
                self.journal.violation(
                    violation(
                        "no-parsing-result",
                        "the runtime exited without sending DagFileParsingResult",
                    )
                )
            return "failed"
        return "parsed" if exit_code == 0 else "failed"


class ParseSession(Session):
    """Supervises one runtime through a DAG parse: a ``Session`` running a ``ParseWorkload``;
    ``result`` holds its DagFileParsingResult."""

    workload: ParseWorkload

    def __init__(
        self, spec: ParseSpec, api: ExecutionAPIClient, **options: Unpack[SessionOptions]
    ) -> None:
        super().__init__(ParseWorkload(spec), api, **options)

    @property
    def spec(self) -> ParseSpec:
        return self.workload.spec

    @property
    def result(self) -> dict[str, Any] | None:
        return self.workload.result
