"""Replay: a live session whose Execution API is the transcript.

``ReplayTransport`` is an httpx transport that answers each request with the recorded response
of the matching recorded request (matched by normalised request, consumed once, in recorded
order; heartbeats answered from the first recorded one, since their number depends on timing).
No network, no stub. ``FrameMatcher`` watches the frames the runtime sends now and compares each
with the one recorded at the same position, after normalising volatile fields, so the first
divergence is named precisely.
This module imports nothing from ``supervision``: the command line wires the two together.
"""

from __future__ import annotations

import base64
import json
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import httpx
import trio

from ..protocol import MASK
from ._reader import Transcript, frame_body

__all__ = [
    "Divergence",
    "FrameMatcher",
    "ReplayTransport",
    "diff_values",
    "normalise",
    "run_substitutions",
    "unmask",
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


def unmask(recorded: Any, actual: Any) -> Any:
    """``actual`` with every value that a redacted recording masked replaced by the recorded
    value: a recorded ``***`` stands for any secret, and a string with ``***`` in it for that
    string with any secrets in those places. What the mask hides cannot be compared, so only
    the rest of the value decides whether the frame is the same."""
    if isinstance(recorded, dict) and isinstance(actual, dict):
        return {k: unmask(recorded[k], v) if k in recorded else v for k, v in actual.items()}
    if isinstance(recorded, list) and isinstance(actual, list) and len(recorded) == len(actual):
        return [unmask(r, a) for r, a in zip(recorded, actual, strict=True)]
    if isinstance(recorded, str) and MASK in recorded and recorded != actual:
        if recorded == MASK:
            return recorded
        if isinstance(actual, str):
            pattern = ".+?".join(re.escape(part) for part in recorded.split(MASK))
            if re.fullmatch(pattern, actual, re.DOTALL):
                return recorded
    return actual


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
    #: "frame" (another frame than the recorded one), "extra-frame" (more frames than recorded),
    #: "recording-ends" (a frame past the end of a truncated recording: nothing to compare it
    #: with), "missing-frame" (the runtime ended before sending them all, or never started),
    #: "timeout" (it was still running when the replay's time was up), "http" (an API request
    #: the recording lacks), "final-state" (the run ended in another state than the recorded
    #: one).
    kind: str
    message: str
    differences: list[str] = field(default_factory=list)
    recorded: dict[str, Any] | None = None
    actual: dict[str, Any] | None = None
    nearest: list[str] = field(default_factory=list)

    def render(self) -> str:
        if self.kind == "recording-ends":  # not where the runtime differs: where the file does
            lines = [self.message]
        else:
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
    """A journal sink comparing the runtime's frames, in order, with the recorded ones.

    Without ``keep_going`` it reports the first divergence only: whatever the runtime sends
    after it (while the session is being stopped) is not compared."""

    def __init__(
        self,
        transcript: Transcript,
        *,
        keep_going: bool = False,
        on_divergence: Callable[[Divergence], None] | None = None,
        unmatched: Sequence[str] = (),
    ) -> None:
        self.recorded = transcript.frames("in")
        #: Why the recording is incomplete (``Transcript.truncated``), or None: what the runtime
        #: sends past the end of a truncated one cannot be compared with anything.
        self.truncated = transcript.truncated
        #: The API requests the recording could not answer so far (the replay transport's
        #: ``unmatched``, which grows as the run goes): named where the recording ends.
        self.unmatched = unmatched
        #: How many of them the frames compared so far caused (a frame reaches this sink after
        #: the API calls it caused: ``Journal.holding``).
        self._unmatched_before = 0
        self.keep_going = keep_going
        self.on_divergence = on_divergence
        self.position = 0
        self.divergences: list[Divergence] = []

    @property
    def stopped(self) -> bool:
        """Whether a divergence ended the comparison (never with ``keep_going``)."""
        return bool(self.divergences) and not self.keep_going

    def __call__(self, event: Any) -> None:
        if event.kind != "frame" or event.data.get("direction") != "in" or self.stopped:
            return
        actual_body = event.data.get("body")
        index = self.position
        self.position += 1
        if index >= len(self.recorded) and self.truncated:
            self._diverge(self._recording_ends(index, f"sent {event.data.get('type')}"))
            return
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
        self._unmatched_before = len(self.unmatched)
        rec = self.recorded[index]
        want = normalise(frame_body(rec))
        got = normalise(actual_body)
        if want != got and rec.get("raw_redacted"):
            got = unmask(want, got)
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

    def _where_it_ends(self) -> str:
        n = len(self.recorded)
        where = f"after runtime frame #{n - 1}" if n else "before the runtime's first frame"
        return f"the recording ends {where} (the transcript is truncated: no footer)"

    def _recording_ends(self, index: int, then: str) -> Divergence:
        """The runtime went on where a truncated recording ends: ``then`` says how."""
        # The calls of the recorded frames the recording holds no answer to (the cut fell
        # between a frame and its exchange); not those of this frame, which went past it.
        cut = self.unmatched[: self._unmatched_before]
        calls = f", and holds no answer to {', '.join(cut)}" if cut else ""
        return Divergence(
            index,
            "recording-ends",
            f"{self._where_it_ends()}{calls}; the runtime then {then}",
            nearest=[_describe(r) for r in self.recorded[-3:]],
        )

    def timed_out(self, seconds: float) -> None:
        """The replay's time ran out with the runtime still running (it is being stopped)."""
        if self.stopped:
            return
        self._diverge(
            Divergence(
                self.position,
                "timeout",
                f"the runtime was still running after {seconds:g}s (replay --timeout) and was "
                f"stopped; it had sent {self.position} of {len(self.recorded)} recorded frames",
            )
        )

    def finish(
        self,
        *,
        why: str | None = None,
        unmatched: Sequence[str] = (),
        final_state: str | None = None,
        recorded_state: str | None = None,
        started: bool = True,
    ) -> None:
        """Call after the session: recorded frames the runtime never sent are a divergence
        (``why``: the session's own account of how it ended; ``started``: whether the session
        started the task, which the recorded runtime did), and so is each API request the
        recording could not answer (``unmatched``), and another final state than the recorded
        one (``recorded_state``: None when the recording has none, a truncated one)."""
        ended = f" ({why})" if why else ""
        if not started and self.position == 0 and not self.stopped:
            # The recorded runtime connected (the recording holds the frames sent to it).
            first = self.recorded[0] if self.recorded else None
            sent = f" and sent {first.get('type')} first" if first else ""
            self._diverge(
                Divergence(
                    0,
                    "missing-frame",
                    f"the runtime did not start the task{': ' + why if why else ''}; the "
                    f"recorded one connected{sent}",
                    recorded=first,
                    nearest=[_describe(r) for r in self.recorded[:3]],
                )
            )
        elif self.position < len(self.recorded) and not self.stopped:
            missing = self.recorded[self.position]
            self._diverge(
                Divergence(
                    self.position,
                    "missing-frame",
                    f"the runtime stopped after {self.position} frames{ended}; the recording "
                    f"continues with {missing.get('type')}",
                    recorded=missing,
                    nearest=[
                        _describe(r) for r in self.recorded[self.position : self.position + 3]
                    ],
                )
            )
        cut = f"; {self._where_it_ends()}" if self.truncated else ""
        for request in unmatched:
            if self.stopped:
                break
            self._diverge(
                Divergence(
                    self.position,
                    "http",
                    f"the supervisor sent {request}, which the recording does not hold{cut}",
                )
            )
        if recorded_state is not None and final_state != recorded_state and not self.stopped:
            self._diverge(
                Divergence(
                    self.position,
                    "final-state",
                    f"the run ended in state {final_state}, the recorded one in {recorded_state}"
                    + (f" ({why})" if why else ""),
                )
            )

    def _diverge(self, divergence: Divergence) -> None:
        self.divergences.append(divergence)
        if self.on_divergence is not None:
            self.on_divergence(divergence)


def _query_key(query: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(parse_qsl(query, keep_blank_values=True)))


def _body_key(raw: bytes) -> Any:
    """A request body, normalised: the same for two bodies that differ in volatile values only."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return json.dumps(normalise(value), sort_keys=True)


def _recorded_body_key(request: dict[str, Any]) -> Any:
    """``_body_key`` of the body a recorded request sent."""
    if "json" in request:
        return json.dumps(normalise(request["json"]), sort_keys=True)
    if request.get("b64"):
        return _body_key(base64.b64decode(request["b64"]))
    return None


#: Request key: method, path, sorted query pairs, normalised body.
_Key = tuple[str, str, tuple[tuple[str, str], ...], Any]


class _Reply(NamedTuple):
    """An answer for the API client's in-process path: status, lower-case header pairs, body."""

    status: int
    headers: list[tuple[str, str]]
    content: bytes


class ReplayTransport(httpx.AsyncBaseTransport):
    """Answers HTTP requests from a transcript's recorded exchanges; never touches a network.

    The exchanges are indexed by normalised request, each key holding its exchanges in recorded
    order, so answering a request costs the same however long the recording is. It answers
    inside this process (give it to the API client as ``in_process``); with the fast pace it
    also has the client's lean entry point (``serve``: answered at once, no httpx objects), as
    the stub has."""

    def __init__(self, transcript: Transcript, *, pace: str = "fast") -> None:
        self.pace = pace
        self.unmatched: list[str] = []
        #: Nothing is ever injected here (the client's in-process path asks).
        self.faults: tuple[()] = ()
        if pace == "fast":
            self.serve = self._serve
        # Positions in the recording's HTTP records, not the records: the reader decodes a
        # record again when it is answered, so a long recording is not held decoded twice.
        self._http = transcript.http()
        self._exchanges: dict[_Key, deque[int]] = {}
        # Recorded bodies that a redacted recording masked, by method, path and query: a
        # request that matches none exactly may match one of these with its secrets unmasked.
        self._masked: dict[tuple[str, str, Any], list[tuple[Any, _Key]]] = {}
        self._heartbeat: int | None = None
        # A transcript of frames alone (``supervisor-sim proxy``: Airflow's HTTP calls were
        # not seen): the start call is answered from the recorded StartupDetails.
        self._run_context = None if self._http else _recorded_ti_context(transcript)
        # Heartbeats are answered in recorded order and the last one repeated after that, so a
        # 409 the run got (an injected fault, an outside event) ends the replay the same way.
        self._heartbeats: deque[int] = deque()
        for at, rec in enumerate(self._http):
            if rec.get("status") is None:
                continue
            if rec["path"].endswith("/heartbeat"):
                if self._heartbeat is None:
                    self._heartbeat = at
                if rec["method"] == "PUT":
                    self._heartbeats.append(at)
                    continue
            key = (
                rec["method"],
                rec["path"],
                _query_key(rec.get("query", "")),
                _recorded_body_key(rec.get("request") or {}),
            )
            queue = self._exchanges.get(key)
            if queue is None:
                queue = self._exchanges[key] = deque()
                recorded_json = (rec.get("request") or {}).get("json")
                if isinstance(key[3], str) and MASK in key[3] and recorded_json is not None:
                    self._masked.setdefault(key[:3], []).append((normalise(recorded_json), key))
            queue.append(at)

    def _unmasked(self, key: _Key, body: bytes) -> deque[int] | None:
        """The recorded exchanges whose masked body this request's body matches, if any."""
        candidates = self._masked.get(key[:3])
        if not candidates:
            return None
        try:
            got = normalise(json.loads(body))
        except ValueError:
            return None
        for recorded, recorded_key in candidates:
            queue = self._exchanges[recorded_key]
            if queue and unmask(recorded, got) == recorded:
                return queue
        return None

    def _answer(self, method: str, path: str, query: str, body: bytes) -> tuple[_Reply, float]:
        """The reply to one request, and how long the recorded API took to give it."""
        if method == "PUT" and path.endswith("/heartbeat"):
            if self._heartbeat is None:
                return _Reply(204, [], b""), 0.0
            beats = self._heartbeats
            at = beats.popleft() if len(beats) > 1 else beats[0] if beats else self._heartbeat
            return _reply(self._http[at]), 0.0
        key = (method, path, _query_key(query), _body_key(body))
        queue = self._exchanges.get(key) or (self._unmasked(key, body) if self._masked else None)
        if queue:
            rec = self._http[queue.popleft()]
            return _reply(rec), rec.get("duration_s") or 0.0
        if self._run_context is not None and method == "PATCH":
            if path.endswith("/run"):
                content = json.dumps(self._run_context, default=_iso).encode()
                return _Reply(200, [("content-type", "application/json")], content), 0.0
            if path.endswith("/state"):  # a terminal state: the frames already tell it
                return _Reply(204, [], b""), 0.0
        self.unmatched.append(f"{method} {path}" + (f"?{query}" if query else ""))
        reply = _Reply(
            599,
            [("content-type", "text/plain")],
            f"supervisor-sim replay: {method} {path} was not recorded".encode(),
        )
        return reply, 0.0

    def _serve(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], content: bytes
    ) -> _Reply:
        """The API client's in-process entry point (``path`` decoded, ``query`` encoded)."""
        return self._answer(method, path, query, content)[0]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        query = request.url.query.decode()
        reply, duration = self._answer(request.method, request.url.path, query, body)
        if self.pace == "recorded" and duration:
            await trio.sleep(duration)
        return httpx.Response(
            reply.status, request=request, headers=reply.headers, content=reply.content
        )


def _recorded_ti_context(transcript: Transcript) -> dict[str, Any] | None:
    """The ``ti_context`` of the recorded StartupDetails (None: there is none)."""
    for rec in transcript.frames("out"):
        if rec.get("type") == "StartupDetails":
            body = frame_body(rec)
            if isinstance(body, dict) and isinstance(body.get("ti_context"), dict):
                return dict(body["ti_context"])
            return None
    return None


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _reply(rec: dict[str, Any]) -> _Reply:
    resp = rec.get("response") or {}
    headers = [
        (k.lower(), v)
        for k, v in (resp.get("headers") or {}).items()
        if k.lower() not in _DROPPED_HEADERS
    ]
    if "json" in resp:
        content = json.dumps(resp["json"]).encode()
    elif resp.get("b64"):
        content = base64.b64decode(resp["b64"])
    else:
        content = b""
    return _Reply(rec["status"], headers, content)


#: Recorded response headers that describe the recorded bytes or the session, not this answer.
_DROPPED_HEADERS = frozenset(
    {"content-length", "content-encoding", "transfer-encoding", "refreshed-api-token"}
)
