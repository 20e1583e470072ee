"""Comparing two transcripts: two runs, or two runtimes on the same task.

Frames are grouped into exchanges (a frame the runtime sent with the replies the supervisor sent
to its id; a frame the supervisor sent unasked, such as StartupDetails, alone) and the two
sequences of exchanges are aligned as ``difflib`` aligns lines, by (direction, type, normalised
request) and then, where those differ, by (direction, type): a request one runtime made and the
other did not is one difference, and the exchanges after it are still compared with their
counterparts. Aligned exchanges are compared field by field after
normalising volatile values (timestamps, ids, pids). HTTP calls are compared as the multiset of
``METHOD path -> status`` with heartbeats left out; then the final states.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from typing import Any

from ..protocol import to_jsonable
from ._reader import Transcript, frame_body
from ._replay import normalise, run_substitutions

__all__ = ["Difference", "TranscriptDiff", "diff_transcripts"]

_ARROW = {"in": "runtime -> supervisor", "out": "supervisor -> runtime"}


@dataclass
class Difference:
    """One difference between transcript A and transcript B (docs/transcript.md, "Diff")."""

    #: "only-in-a", "only-in-b", "type", "field", "http", "final-state"
    kind: str
    text: str
    #: For frames: "in" (the runtime sent it) or "out" (the supervisor did).
    direction: str | None = None
    #: The frame's position among the frames of its direction in A and in B (0-based).
    a_index: int | None = None
    b_index: int | None = None
    #: The frame's message type (null for an empty ack; for "type": A's), or the HTTP call.
    type: str | None = None
    #: For "field": where in the frame ("body.key", "id", "error.detail").
    field: str | None = None
    #: The differing values (normalised, as tagged JSON; for "type" the two types; for "http"
    #: the counts).
    a: Any = None
    b: Any = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k in ("a", "b")}


@dataclass
class TranscriptDiff:
    details: list[Difference] = field(default_factory=list)

    @property
    def differences(self) -> list[str]:
        return [d.text for d in self.details]

    @property
    def equivalent(self) -> bool:
        return not self.details


def _js(value: Any) -> str:
    """A value (as ``to_jsonable`` made it) as JSON text (``null``, ``"a"``), shortened for a
    one-line message."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


class _Frame:
    """A frame of a transcript: the fields that align it, and its record, which is fetched from
    the transcript when it is compared (not kept: a transcript's records decoded take ~7x the
    bytes of the file)."""

    __slots__ = ("_at", "_frames", "dir", "error", "id", "index", "plain", "recorded_type")

    def __init__(
        self, frames: Sequence[dict[str, Any]], at: int, record: dict[str, Any], index: int
    ) -> None:
        self._frames = frames
        self._at = at  # among all the frames
        self.index = index  # among the frames of its direction
        self.dir: str = record["dir"]
        self.recorded_type: str | None = record.get("type")
        self.id: Any = record.get("id")
        #: Whether its body holds plain values only (no tag to decode), and it has an error.
        self.plain = _plain(record.get("body"))
        self.error = record.get("error") is not None

    @property
    def record(self) -> dict[str, Any]:
        return self._frames[self._at]

    @property
    def type(self) -> str:
        """The message type, as a sentence names it."""
        t = self.recorded_type
        if t is None:
            return "ack" if self.dir == "out" else "undecodable"
        return str(t)


def _sorted_json(value: Any) -> str:
    """``json.dumps(value, sort_keys=True)`` for a value decoded from JSON (and normalised), by
    the C encoder built once rather than on each call."""
    if _ENCODE_SORTED is not None:
        try:
            return "".join(_ENCODE_SORTED(value, 0))
        except (TypeError, ValueError, RecursionError):
            pass
    return json.dumps(value, sort_keys=True)


def _no_default(value: Any) -> Any:
    raise TypeError(type(value).__name__)


_make_encoder = getattr(json.encoder, "c_make_encoder", None)
#: (markers, default, string encoder, indent, key and item separators, sort_keys, skipkeys,
#: allow_nan) as ``json.dumps(value, sort_keys=True)`` has them, without the circular check.
_SORTED_ARGS = (None, _no_default, json.encoder.encode_basestring_ascii, None, ": ", ", ")
_ENCODE_SORTED = None if _make_encoder is None else _make_encoder(*_SORTED_ARGS, True, False, True)


@dataclass(slots=True)
class _Exchange:
    """A frame and the replies to it (or a frame the supervisor sent unasked, alone)."""

    first: _Frame
    replies: list[_Frame] = field(default_factory=list)
    #: The HTTP calls the runtime's frame caused (``METHOD path -> status``).
    http: list[str] = field(default_factory=list)

    #: The runtime's request as normalised JSON ("" for a frame the supervisor sent unasked).
    content: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.first.dir, self.first.type)


def _exchanges(t: Transcript) -> tuple[list[_Exchange], list[str]]:
    """The exchanges in order, and the HTTP calls no frame caused (start, exit; heartbeats are
    left out: their number depends on timing)."""
    out: list[_Exchange] = []
    waiting: dict[Any, _Exchange] = {}  # frame id -> the runtime's request not yet answered
    by_seq: dict[int, _Exchange] = {}
    counts = {"in": 0, "out": 0}
    subs = run_substitutions(t.header)
    texts: dict[str, str] = {}
    frames = t.frames()
    for at, r in enumerate(frames):
        direction = r["dir"]
        frame = _Frame(frames, at, r, counts[direction])
        counts[direction] += 1
        if direction == "in":
            # The tagged body: JSON whatever the message held (bytes keys, datetimes).
            content = _sorted_json(normalise(r.get("body"), subs=subs))
            content = texts.setdefault(content, content)  # one string for many equal requests
            exchange = _Exchange(frame, content=content)
            waiting[r.get("id")] = exchange
            by_seq[r["seq"]] = exchange
            out.append(exchange)
        elif (asked := waiting.get(r.get("id"))) is not None:
            asked.replies.append(frame)
        else:
            out.append(_Exchange(frame))
    unasked: list[str] = []
    paths: dict[str, str] = {}  # recorded -> normalised (most calls repeat a few paths)
    statuses: dict[Any, str] = {}
    for r in t.http():
        recorded = r["path"]
        if recorded.endswith("/heartbeat"):
            continue
        path = paths.get(recorded)
        if path is None:
            path = paths[recorded] = "/".join(
                "<uuid>" if len(p) == 36 and p.count("-") == 4 else p
                for p in normalise(recorded, subs=subs).split("/")
            )
        status = r.get("status")
        shown = statuses.get(status) if type(status) is int else None
        if shown is None:
            shown = _js(status)
            if type(status) is int:
                statuses[status] = shown
        call = f"{r['method']} {path} -> {shown}"
        call = texts.setdefault(call, call)
        cause = r.get("cause")
        caused_by = by_seq.get(cause) if type(cause) is int else None
        (caused_by.http if caused_by is not None else unasked).append(call)
    return out, unasked


def _id_key(frame: _Frame) -> Any:
    """What two frames' ids must share. A runtime numbers its requests, so a request one run
    made and the other did not shifts every later id by one: compared is each id's distance from
    the frame's position, which stays the same. A reply's id is its request's (it is paired by
    it), so only unasked frames and requests are compared at all."""
    frame_id = frame.id
    if frame.dir == "in" and type(frame_id) is int:
        return frame_id - frame.index
    return frame_id


#: JSON values that hold no tagged value (``{"$ts": ...}``) and are their own decoding.
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _plain(body: Any) -> bool:
    """Whether ``body`` is its own decoding: none, or an object of plain values (most are)."""
    return body is None or (
        type(body) is dict and len(body) > 1 and _PLAIN.issuperset(map(type, body.values()))
    )


def _body(record: dict[str, Any]) -> Any:
    """``frame_body(record)``, without the walk for a body of plain values."""
    body = record.get("body")
    return body if _plain(body) else frame_body(record)


def _value_diffs(a: Any, b: Any, path: str) -> list[tuple[str, Any, Any]]:
    """(path, A's value, B's value) for each differing leaf."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[tuple[str, Any, Any]] = []
        for k in a:
            if k not in b:
                out.append((f"{path}.{k}", a[k], None))
            else:
                out.extend(_value_diffs(a[k], b[k], f"{path}.{k}"))
        out.extend((f"{path}.{k}", None, b[k]) for k in b if k not in a)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out.extend(_value_diffs(x, y, f"{path}[{i}]"))
        return out
    return [] if a == b else [(path, a, b)]


#: Above this many pairs of differing exchanges, aligning them (quadratic in the worst case, as
#: when every request is the same) gives way to pairing them by position.
_ALIGN_LIMIT = 4_000_000

_Opcode = tuple[str, int, int, int, int]


def _opcodes(a: list[Any], b: list[Any]) -> list[_Opcode]:
    """``SequenceMatcher.get_opcodes`` for ``a`` and ``b``, the common head and tail taken off
    first (two runs of one task usually share nearly everything), the rest aligned only when it
    is small enough."""
    head = 0
    while head < len(a) and head < len(b) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < len(a) - head and tail < len(b) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    ea, eb = len(a) - tail, len(b) - tail
    out: list[_Opcode] = [("equal", 0, head, 0, head)] if head else []
    if ea > head or eb > head:
        if (ea - head) * (eb - head) <= _ALIGN_LIMIT:
            matcher = SequenceMatcher(None, a[head:ea], b[head:eb], autojunk=False)
            out += [
                (op, i1 + head, i2 + head, j1 + head, j2 + head)
                for op, i1, i2, j1, j2 in matcher.get_opcodes()
            ]
        else:
            out.append(("replace", head, ea, head, eb))
    if tail:
        out.append(("equal", ea, len(a), eb, len(b)))
    return out


class _Differ:
    def __init__(self, a: Transcript, b: Transcript) -> None:
        self.subs = (run_substitutions(a.header), run_substitutions(b.header))
        self.out: list[Difference] = []

    def frames(self, ea: list[_Exchange], eb: list[_Exchange]) -> None:
        """Align by type and content first, so that a request one side lacks cannot shift its
        neighbours onto each other; what differs in content is then aligned by type alone."""
        keys_a = [(*e.key, e.content) for e in ea]
        keys_b = [(*e.key, e.content) for e in eb]
        for op, i1, i2, j1, j2 in _opcodes(keys_a, keys_b):
            if op == "equal":
                for x, y in zip(ea[i1:i2], eb[j1:j2], strict=True):
                    self.exchange(x, y)
            else:
                self.by_type(ea[i1:i2], eb[j1:j2])

    def by_type(self, ea: list[_Exchange], eb: list[_Exchange]) -> None:
        for op, i1, i2, j1, j2 in _opcodes([e.key for e in ea], [e.key for e in eb]):
            if op == "equal":
                for x, y in zip(ea[i1:i2], eb[j1:j2], strict=True):
                    self.exchange(x, y)
                continue
            paired = min(i2 - i1, j2 - j1) if op == "replace" else 0
            for x, y in zip(ea[i1 : i1 + paired], eb[j1 : j1 + paired], strict=True):
                if x.key == y.key:  # paired by position: too many to align
                    self.exchange(x, y)
                else:
                    self.retyped(x.first, y.first)
            for x in ea[i1 + paired : i2]:
                self.alone(x, "a")
            for y in eb[j1 + paired : j2]:
                self.alone(y, "b")

    def exchange(self, x: _Exchange, y: _Exchange) -> None:
        fx, fy = x.first, y.first
        # Two requests of plain values (no tag to decode) whose normalised JSON is the same have
        # the same normalised body ("NaN" left out: it is not equal to itself).
        same = fx.dir == "in" and fx.plain and fy.plain and x.content == y.content
        self.frame(fx, fy, same_body=same and "NaN" not in x.content)
        if x.http != y.http:
            where = f"{self._where(x.first, y.first, x.first.dir)} {x.first.type}"
            self.out += _http_diffs(x.http, y.http, f"{where}: ")
        for rx, ry in zip(x.replies, y.replies, strict=False):
            if rx.type != ry.type:
                self.retyped(rx, ry, reply_to=x.first.type)
            else:
                self.frame(rx, ry, reply_to=x.first.type)
        for extra, side in ((x.replies[len(y.replies) :], "a"), (y.replies[len(x.replies) :], "b")):
            for r in extra:
                self.alone(_Exchange(r), side, reply_to=x.first.type)

    def _where(self, fa: _Frame | None, fb: _Frame | None, direction: str) -> str:
        ends = [f"A#{fa.index}" if fa else "", f"B#{fb.index}" if fb else ""]
        return f"{_ARROW[direction]} frame {'/'.join(e for e in ends if e)}"

    def frame(
        self, fa: _Frame, fb: _Frame, reply_to: str | None = None, *, same_body: bool = False
    ) -> None:
        """The differences of two aligned frames (``same_body``: their bodies are known to be
        the same once normalised)."""
        sa, sb = self.subs
        found: list[tuple[str, Any, Any]] = []
        if reply_to is None and _id_key(fa) != _id_key(fb):
            found.append(("id", fa.id, fb.id))
        if not (same_body and not fa.error and not fb.error):
            ra, rb = fa.record, fb.record
            body_a, body_b = normalise(_body(ra), subs=sa), normalise(_body(rb), subs=sb)
            if body_a != body_b:  # (equal values have no differing leaf)
                found += _value_diffs(body_a, body_b, "body")
            error_a, error_b = ra.get("error"), rb.get("error")
            if error_a is not None or error_b is not None:
                found += _value_diffs(
                    normalise(frame_body({"body": error_a}), subs=sa),
                    normalise(frame_body({"body": error_b}), subs=sb),
                    "error",
                )
        what = fa.type + (f" (reply to {reply_to})" if reply_to else "")
        where = self._where(fa, fb, fa.dir)
        for path, va, vb in found:
            va, vb = to_jsonable(va), to_jsonable(vb)
            self.out.append(
                Difference(
                    "field",
                    f"{where} {what}: {path}: {_js(va)} in A, {_js(vb)} in B",
                    direction=fa.dir,
                    a_index=fa.index,
                    b_index=fb.index,
                    type=fa.recorded_type,
                    field=path,
                    a=va,
                    b=vb,
                )
            )

    def retyped(self, fa: _Frame, fb: _Frame, reply_to: str | None = None) -> None:
        to = f" (reply to {reply_to})" if reply_to else ""
        direction = fa.dir
        ta, tb = fa.recorded_type, fb.recorded_type
        if direction != fb.dir:
            for frame, side in ((fa, "a"), (fb, "b")):
                self.alone(_Exchange(frame), side, reply_to=reply_to)
            return
        self.out.append(
            Difference(
                "type",
                f"{self._where(fa, fb, direction)}{to}: type {_js(ta)} in A, {_js(tb)} in B",
                direction=direction,
                a_index=fa.index,
                b_index=fb.index,
                type=ta,
                a=ta,
                b=tb,
            )
        )

    def alone(self, x: _Exchange, side: str, reply_to: str | None = None) -> None:
        f = x.first
        direction = f.dir
        where = self._where(f if side == "a" else None, f if side == "b" else None, direction)
        replies = ", ".join(r.type for r in x.replies)
        answered = f", answered {replies}" if replies else ""
        to = f" (reply to {reply_to})" if reply_to else ""
        self.out.append(
            Difference(
                f"only-in-{side}",
                f"{where}: only in {side.upper()}: {f.type}{to} (id {_js(f.id)}){answered}",
                direction=direction,
                a_index=f.index if side == "a" else None,
                b_index=f.index if side == "b" else None,
                type=f.recorded_type,
            )
        )


def _http_diffs(ca: list[str], cb: list[str], where: str = "") -> list[Difference]:
    counter_a, counter_b = Counter(ca), Counter(cb)
    if counter_a == counter_b:
        return [Difference("http", f"{where}http: the same calls in a different order")]
    return [
        Difference(
            "http",
            f"{where}http {call}: {counter_a[call]} in A, {counter_b[call]} in B",
            type=call,
            a=counter_a[call],
            b=counter_b[call],
        )
        for call in sorted(set(counter_a) | set(counter_b))
        if counter_a[call] != counter_b[call]
    ]


def diff_transcripts(a: Transcript, b: Transcript) -> TranscriptDiff:
    ea, unasked_a = _exchanges(a)
    eb, unasked_b = _exchanges(b)
    if _proxied(a) or _proxied(b):
        # A proxy recording has no HTTP calls (Airflow's supervisor made them, unseen): the
        # other side's are not differences.
        for exchange in (*ea, *eb):
            exchange.http.clear()
        unasked_a, unasked_b = [], []
    differ = _Differ(a, b)
    differ.frames(ea, eb)
    out = differ.out
    if unasked_a != unasked_b:
        out += _http_diffs(unasked_a, unasked_b)
    state_a, state_b = (a.footer or {}).get("final_state"), (b.footer or {}).get("final_state")
    if state_a != state_b:
        out.append(
            Difference(
                "final-state",
                f"final state: {_js(state_a)} in A, {_js(state_b)} in B",
                a=state_a,
                b=state_b,
            )
        )
    return TranscriptDiff(out)


def _proxied(t: Transcript) -> bool:
    """Whether ``t`` was recorded by ``supervisor-sim proxy`` (frames only, no HTTP calls)."""
    return isinstance(t.header.get("proxy"), dict) and not t.http()
