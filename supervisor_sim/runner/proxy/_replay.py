"""Replaying a proxy transcript: the frames Airflow sent, since its HTTP calls were not seen.

A run-task transcript is replayed by answering the session's HTTP calls from the recorded
exchanges; a proxy transcript holds none, only the frames. So the session's hooks send the
recorded ``StartupDetails`` as the first frame and answer each request with the reply Airflow
gave to the request recorded at the same position (the runtime's frames are compared with the
recorded ones position by position all the same, by the ``FrameMatcher``). The workload still
sees every terminal message, so the final state is worked out as in any session; the few HTTP
calls it makes for them are answered by the replay transport (``ReplayTransport`` with a
transcript of frames alone).
"""

from __future__ import annotations

from typing import Any

from ...protocol import TERMINAL, from_jsonable
from ...supervision import Reply, SessionHooks
from ...transcript import Transcript

__all__ = ["ProxyReplayHooks", "is_proxy_transcript"]


def is_proxy_transcript(transcript: Transcript) -> bool:
    """Whether ``transcript`` was recorded by ``supervisor-sim proxy`` (frames, no HTTP)."""
    return isinstance(transcript.header.get("proxy"), dict) and not transcript.http()


class ProxyReplayHooks(SessionHooks):
    """Hooks giving a replayed runtime what Airflow gave it when the proxy recorded it."""

    def __init__(self, transcript: Transcript) -> None:
        frames = transcript.frames()
        self._startup: dict[str, Any] | None = None
        for record in frames:
            if record["dir"] == "in":
                break
            if record.get("type") in ("StartupDetails", "DagFileParseRequest"):
                self._startup = from_jsonable(record.get("body"))
                break
        # For the runtime's n-th recorded frame: the type it had and the reply Airflow sent
        # to it (the next frame out with its id), or None when Airflow never answered it.
        self._replies: list[tuple[Any, Reply | None]] = []
        waiting: dict[Any, int] = {}
        for record in frames:
            if record["dir"] == "in":
                waiting[record.get("id")] = len(self._replies)
                self._replies.append((record.get("type"), None))
            elif (index := waiting.pop(record.get("id"), None)) is not None:
                reply = (from_jsonable(record.get("body")), from_jsonable(record.get("error")))
                self._replies[index] = (self._replies[index][0], reply)
        self._position = 0
        self._current = 0

    def first_frame(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._startup if self._startup is not None else body

    def on_frame(self, payload: bytes, offset: int) -> None:
        # Every frame read counts, answered or not (Airflow drops an invalid one unanswered).
        self._current = self._position
        self._position += 1

    async def answer(self, body: dict[str, Any], frame_id: int, cause: int) -> Reply | None:
        index = self._current
        kind = body.get("type")
        reply: Reply | None = None
        if kind in TERMINAL:
            # The workload keeps the try's state from these; its reply gives way to Airflow's.
            reply = await self.session.workload.answer(body, frame_id, cause)
        recorded = self._replies[index] if index < len(self._replies) else None
        if recorded is None or recorded[0] != kind or recorded[1] is None:
            # Not what was recorded here: the frame matcher reports it; the session answers.
            return reply
        return recorded[1]
