"""Replay: a live session whose Execution API is the transcript.

``ReplayTransport`` is an httpx transport that answers each request with the recorded response
of the matching recorded request (consumed once, in recorded order; heartbeats answered from the
first recorded one, since their number depends on timing). No network, no stub. ``FrameMatcher``
watches the frames the runtime sends now and compares each with the one recorded at the same
position, after normalising volatile fields, so the first divergence is named precisely.
This module imports nothing from ``supervision``: the command line wires the two together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import trio

from ._reader import Transcript, frame_body

__all__ = [
    "Divergence",
    "FrameMatcher",
    "ReplayTransport",
    "diff_values",
    "normalise",
    "run_substitutions",
]

#: Keys whose values change from run to run and never make two frames differ.
VOLATILE_KEYS = frozenset({
    "end_date", "start_date", "timestamp", "hostname", "pid", "unixname", "last_heartbeat_at",
    "correlation-id", "created", "reschedule_date", "elapsed", "duration",
})  # fmt: skip
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def normalise(
    value: Any,
    ignore: frozenset[str] = VOLATILE_KEYS,
    subs: dict[str, str] | None = None,
) -> Any:
    """Replace volatile values (timestamps, ids, pids, ports) with placeholders; ``subs`` maps
    run-specific strings (a run id, a TI id) to names, inside longer strings too."""
    if isinstance(value, dict):
        if set(value) == {"$ts"}:
            return "<datetime>"
        return {
            k: ("<volatile>" if k in ignore else normalise(v, ignore, subs))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [normalise(v, ignore, subs) for v in value]
    if hasattr(value, "isoformat"):
        return "<datetime>"
    if isinstance(value, str):
        for old, new in (subs or {}).items():
            if old in value:
                value = value.replace(old, new)
        if _UUID.match(value):
            return "<uuid>"
    return value


def run_substitutions(header: dict[str, Any]) -> dict[str, str]:
    """The identifiers that differ between two runs of the same task, named."""
    task = header.get("task", {})
    ti = task.get("ti", {})
    subs = {str(ti.get("id") or ""): "<ti_id>", str(task.get("run_id") or ""): "<run_id>"}
    return {k: v for k, v in subs.items() if k}


def diff_values(recorded: Any, actual: Any, path: str = "") -> list[str]:
    """Field-level differences, one sentence each: 'body.key: recorded 'a', now 'b''."""
    if isinstance(recorded, dict) and isinstance(actual, dict):
        out: list[str] = []
        for k in recorded:
            if k not in actual:
                out.append(f"{path}.{k}: recorded {recorded[k]!r}, now missing")
            else:
                out.extend(diff_values(recorded[k], actual[k], f"{path}.{k}"))
        for k in actual:
            if k not in recorded:
                out.append(f"{path}.{k}: not recorded, now {actual[k]!r}")
        return out
    if isinstance(recorded, list) and isinstance(actual, list):
        out = []
        if len(recorded) != len(actual):
            out.append(f"{path}: recorded {len(recorded)} items, now {len(actual)}")
        for i, (a, b) in enumerate(zip(recorded, actual, strict=False)):
            out.extend(diff_values(a, b, f"{path}[{i}]"))
        return out
    if recorded != actual:
        return [f"{path or 'value'}: recorded {recorded!r}, now {actual!r}"]
    return []


@dataclass
class Divergence:
    """Where a replayed run stopped matching its transcript."""

    index: int  # position among the runtime's frames (0-based)
    kind: str  # "frame", "missing-frame", "extra-frame", "http"
    message: str
    differences: list[str] = field(default_factory=list)
    recorded: dict[str, Any] | None = None
    actual: dict[str, Any] | None = None
    nearest: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"divergence at runtime frame #{self.index}: {self.message}"]
        lines += [f"    {d}" for d in self.differences]
        if self.nearest:
            lines.append("  nearest recorded frames:")
            lines += [f"    {n}" for n in self.nearest]
        return "\n".join(lines)


def _describe(record: dict[str, Any] | None) -> str:
    if record is None:
        return "(none)"
    body = record.get("body")
    summary = json.dumps(normalise(body), sort_keys=True)[:100] if body is not None else ""
    return f"#{record.get('id')} {record.get('type')} {summary}"


class FrameMatcher:
    """A journal sink comparing the runtime's frames, in order, with the recorded ones."""

    def __init__(
        self,
        transcript: Transcript,
        *,
        keep_going: bool = False,
        on_divergence: Callable[[Divergence], None] | None = None,
    ) -> None:
        self.recorded = transcript.frames("in")
        self.keep_going = keep_going
        self.on_divergence = on_divergence
        self.position = 0
        self.divergences: list[Divergence] = []

    def __call__(self, event: Any) -> None:
        if event.kind != "frame" or event.data.get("direction") != "in":
            return
        actual_body = event.data.get("body")
        index = self.position
        self.position += 1
        if index >= len(self.recorded):
            self._diverge(
                Divergence(
                    index,
                    "extra-frame",
                    f"the runtime sent {event.data.get('type')} but the "
                    f"recording has only {len(self.recorded)} runtime frames",
                    actual={"type": event.data.get("type")},
                    nearest=[_describe(r) for r in self.recorded[-3:]],
                )
            )
            return
        rec = self.recorded[index]
        want = normalise(frame_body(rec))
        got = normalise(actual_body)
        if want != got:
            diffs = diff_values(want, got, "body")
            lo = max(0, index - 1)
            nearest = [
                (">" if i == index else " ") + f" [{i}] " + _describe(r)
                for i, r in enumerate(self.recorded[lo : index + 2], start=lo)
            ]
            self._diverge(
                Divergence(
                    index,
                    "frame",
                    f"recorded {rec.get('type')} (id {rec.get('id')}), the runtime now sent "
                    f"{event.data.get('type')} (id {event.data.get('id')})",
                    differences=diffs,
                    recorded=rec,
                    actual={"type": event.data.get("type"), "body": actual_body},
                    nearest=nearest,
                )
            )

    def finish(self) -> None:
        """Call after the session: recorded frames the runtime never sent are a divergence."""
        if self.position < len(self.recorded) and not (self.divergences and not self.keep_going):
            missing = self.recorded[self.position]
            self._diverge(
                Divergence(
                    self.position,
                    "missing-frame",
                    f"the runtime stopped after {self.position} frames; the recording continues "
                    f"with {missing.get('type')}",
                    recorded=missing,
                    nearest=[
                        _describe(r) for r in self.recorded[self.position : self.position + 3]
                    ],
                )
            )

    def _diverge(self, divergence: Divergence) -> None:
        self.divergences.append(divergence)
        if self.on_divergence is not None:
            self.on_divergence(divergence)


def _query_key(query: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(parse_qsl(query, keep_blank_values=True)))


def _body_key(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.dumps(normalise(json.loads(raw)), sort_keys=True)
    except ValueError:
        return raw


class ReplayTransport(httpx.AsyncBaseTransport):
    """Answers HTTP requests from a transcript's recorded exchanges; never touches a network."""

    #: Served inside this process: ExecutionAPIClient calls it without AsyncClient.
    in_process = True

    def __init__(self, transcript: Transcript, *, pace: str = "fast") -> None:
        self.pace = pace
        self.unmatched: list[str] = []
        self._exchanges: list[dict[str, Any]] = [
            r for r in transcript.http() if r.get("status") is not None
        ]
        self._used = [False] * len(self._exchanges)
        self._heartbeat = next(
            (r for r in self._exchanges if r["path"].endswith("/heartbeat")), None
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        path = request.url.path
        if path.endswith("/heartbeat") and request.method == "PUT":
            return self._response(self._heartbeat, request, default_status=204)
        key = (request.method, path, _query_key(request.url.query.decode()), _body_key(body))
        for i, rec in enumerate(self._exchanges):
            if self._used[i]:
                continue
            req = rec.get("request", {})
            rec_body = json.dumps(req["json"]).encode() if "json" in req else b""
            rec_key = (
                rec["method"],
                rec["path"],
                _query_key(rec.get("query", "")),
                _body_key(rec_body),
            )
            if rec_key == key:
                self._used[i] = True
                if self.pace == "recorded" and rec.get("duration_s"):
                    await trio.sleep(rec["duration_s"])
                return self._response(rec, request)
        self.unmatched.append(f"{request.method} {path}?{request.url.query.decode()}")
        return httpx.Response(
            599,
            request=request,
            headers={"content-type": "text/plain"},
            content=f"supervisor-sim replay: {request.method} {path} was not recorded".encode(),
        )

    @staticmethod
    def _response(
        rec: dict[str, Any] | None, request: httpx.Request, default_status: int = 204
    ) -> httpx.Response:
        if rec is None:
            return httpx.Response(default_status, request=request)
        resp = rec.get("response", {})
        headers = {
            k: v
            for k, v in resp.get("headers", {}).items()
            if k.lower()
            not in (
                "content-length",
                "content-encoding",
                "transfer-encoding",
                "refreshed-api-token",
            )
        }
        if "json" in resp:
            content = json.dumps(resp["json"]).encode()
        elif "b64" in resp:
            import base64

            content = base64.b64decode(resp["b64"])
        else:
            content = b""
        return httpx.Response(rec["status"], request=request, headers=headers, content=content)
