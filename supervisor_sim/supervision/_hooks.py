"""How a ``Session`` is told what to run (a ``Workload``) and where it may depart from Airflow
(``SessionHooks``).

A session is the same for every workload: it launches the runtime, accepts --comm and --logs
from the runtime's process tree, reads every channel, kills and reaps the process group. The
workload decides the rest, through the few methods below, called in this order::

    bind(session)                 once, when the session is made
    await begin()                 both connections accepted: the first frame's body (id 0)
    start_duties(nursery)         beside the channel readers, until the channels close
    await answer(body, id, seq)   for every valid request on --comm, in order
    await finish(exit_code)       the process exited and the channels are drained: final state

``TaskWorkload`` (a task try) and ``ParseWorkload`` (a DAG file parse) are the two Airflow has.

``SessionHooks`` are for the conformance kit (``supervisor-sim check``), which needs a session
that misbehaves on purpose and records what the journal does not hold. A session without hooks
never calls them, so the hot path pays nothing for their existence.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import trio

from ..protocol import Line
from ._dispatch import Reply

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["RuntimeSpec", "SessionHooks", "StartFailed", "Workload"]


class RuntimeSpec(Protocol):
    """What a session needs to start the runtime (``TaskSpec`` and ``ParseSpec`` have it)."""

    @property
    def runtime(self) -> Sequence[str]: ...
    @property
    def env(self) -> Mapping[str, str]: ...
    @property
    def cwd(self) -> str | None: ...


class StartFailed(Exception):
    """Raised by ``Workload.begin`` when the workload cannot start (Airflow: the ``/run`` call
    failed). The session records the message as the outcome's error, SIGKILLs the runtime's
    group (``kill_reason`` is the journal's reason for the signal) and reports no state."""

    def __init__(self, message: str, kill_reason: str = "the start call failed") -> None:
        super().__init__(message)
        self.kill_reason = kill_reason


class Workload(ABC):
    """What a session runs. Subclasses set ``spec``, ``ti_id`` and ``accepted_types``."""

    #: The runtime to start, its environment and working directory.
    spec: RuntimeSpec
    #: The task instance the outcome names.
    ti_id: str
    #: The request types accepted on --comm (names of the message catalogue); anything else
    #: fails validation and is answered (or, with ``airflow_strict``, dropped) by the session.
    accepted_types: tuple[str, ...]
    #: The session running this workload (set by ``bind``).
    session: Session

    def bind(self, session: Session) -> None:
        """Called once by the session being made; the session's api, config, journal and
        masker are ready, its child is not started yet."""
        self.session = session

    @abstractmethod
    async def begin(self) -> dict[str, Any]:
        """Both connections are accepted: do what comes before the first frame and return its
        body (sent with id 0). Raise ``StartFailed`` when the workload cannot start."""

    def start_duties(self, nursery: trio.Nursery) -> None:  # noqa: B027 (optional)
        """Start what runs beside the channel readers (a heartbeat); ``nursery`` is cancelled
        once the process has exited and its channels are drained. Nothing by default."""

    @abstractmethod
    async def answer(self, body: dict[str, Any], frame_id: int, cause: int) -> Reply:
        """The reply ``(body, error)`` to one valid request. ``cause`` is the journal seq of the
        request's frame record (HTTP exchanges made for it name it)."""

    @abstractmethod
    async def finish(self, exit_code: int | None) -> str:
        """The process has exited and its channels are drained: report the outcome and return
        the final state."""


class SessionHooks:
    """Where a session may depart from Airflow's supervisor on purpose, and what it lets an
    observer see that the journal does not hold. Each default is what a session without hooks
    does; ``bind`` gives the hooks their session before anything else is called."""

    session: Session

    def bind(self, session: Session) -> None:
        self.session = session

    def first_frame(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body of the first frame, as sent (the workload's, by default)."""
        return body

    def on_frame(self, payload: bytes, offset: int) -> None:
        """A frame was read from --comm (its payload and stream offset), before it is decoded."""

    async def answer(self, body: dict[str, Any], frame_id: int, cause: int) -> Reply | None:
        """A reply to a valid request instead of the workload's, or None to let it answer."""
        return None

    async def send(
        self, req_id: int, body: dict[str, Any] | None, error: dict[str, Any] | None
    ) -> None:
        """Send the reply to request ``req_id`` (also the first frame, with id 0). The default
        is the session's: a 3-element frame, recorded, then written."""
        await self.session.write_reply(req_id, body, error)

    def on_log_line(self, line: Line, source: str) -> None:
        """A line was read from ``source`` (logs, stdout or stderr), before it is parsed."""
