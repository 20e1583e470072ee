"""Hostile structures from a runtime go through every consumer without breaking one.

Generated msgpack frames and JSON log lines — nested up to and past the depth limits, huge
integers, NaN and infinities, extension types, bin, lone surrogates, non-string map keys, empty
containers — are fed as a session feeds them: decoder -> masker -> transcript writer -> reader
-> ``show`` -> HTML. The only exception allowed is the decoder's documented ``ProtocolError``,
and a breach of a limit is reported with the rule naming it, never by quoting the input.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from supervisor_sim.protocol import (
    LIMITS,
    Line,
    ProtocolError,
    SecretsMasker,
    decode_request,
    packb,
    validate_body,
)
from supervisor_sim.supervision import Event, Violation
from supervisor_sim.supervision._logs import parse_log_line
from supervisor_sim.transcript import (
    TranscriptWriter,
    read_transcript,
    render_html,
    render_timeline,
)

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same examples on every run: this test never flakes
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FRAME_RULES = {
    "bad-msgpack",
    "frame-too-deep",
    "not-an-array",
    "too-few-elements",
    "bad-id",
    "bad-body",
    "bad-carrier",
}
SECRETS = ["hunter2-the-secret", "tok-0123456789", "pässwörd-ünicode"]
#: A string the frame builder swaps for a str whose bytes are a lone surrogate (not UTF-8).
SURROGATE_SLOT = "@@SURR@@"
#: A string the log-line builder swaps for a bare integer literal of the drawn length.
BIG_INT_SLOT = "@@BIGINT@@"

#: Strings the frame builder swaps for extension values msgpack's packer cannot write: negative
#: codes, timestamps (-1) of every size, valid or not, and out of datetime's range.
RAW_EXT = {
    "@@TS32@@": b"\xd6\xff\x00\x00\x00\x01",
    "@@TS64@@": b"\xd7\xff" + (5 << 34 | 1).to_bytes(8, "big"),
    "@@TS96@@": b"\xc7\x0c\xff"
    + (7).to_bytes(4, "big")
    + (-(2**40)).to_bytes(8, "big", signed=True),
    "@@TSFAR@@": b"\xc7\x0c\xff" + bytes(4) + (2**62).to_bytes(8, "big"),
    "@@TSBAD@@": b"\xd5\xff\x00\x01",
    "@@EXTNEG@@": b"\xd4\x80\x00",
}

# --- values ----------------------------------------------------------------------------------

PLAIN_TEXT = st.one_of(
    st.text(max_size=8),
    st.sampled_from([*SECRETS, "", "eyJhbGciOiJIUzI1NiJ9.e30.sig", "$ts"]),
).filter(lambda s: not any("\ud800" <= c <= "\udfff" for c in s))
#: Text with a lone surrogate one time in twelve (JSON can carry one; UTF-8 cannot).
TEXT = st.integers(0, 11).flatmap(
    lambda n: st.sampled_from(["\ud800", "a\udfffb"]) if n == 0 else PLAIN_TEXT
)

#: Map keys: never a secret (keys are not masked, in Airflow either), sensitive names included.
KEY_TEXT = st.one_of(
    st.text(max_size=8).filter(lambda s: not any("\ud800" <= c <= "\udfff" for c in s)),
    st.sampled_from(["", "$ts", "$map", "password", "api_token"]),
)
COMMON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    PLAIN_TEXT,
    st.binary(max_size=8),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=6)),
)
#: Scalars that make a frame undecodable (or decode to odd values): drawn one time in twelve.
RARE_SCALARS = st.sampled_from([SURROGATE_SLOT, *sorted(RAW_EXT)])
MSGPACK_SCALARS = st.integers(0, 11).flatmap(lambda n: RARE_SCALARS if n == 0 else COMMON_SCALARS)
MAP_KEYS = st.one_of(
    KEY_TEXT,
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.binary(max_size=4),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=3)),
)
MSGPACK_VALUES = st.recursive(
    MSGPACK_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(MAP_KEYS, children, max_size=4)
    ),
    max_leaves=12,
)

#: One level of nesting each: how a value can be wrapped once.
WRAPS = {
    "list": lambda v: [v],
    "str-key": lambda v: {"k": v},
    "int-key": lambda v: {1: v},  # the transcript stores it as {"$map": [[1, v]]}: 3 levels
    "tag-key": lambda v: {"$ts": v},  # a real map shaped like a tag: also wrapped in $map
    "mixed-keys": lambda v: {"a": v, 7: None},
    "empty-and": lambda v: [[], {}, v],
}
JSON_WRAPS = {k: WRAPS[k] for k in ("list", "str-key", "tag-key", "empty-and")}


def target_depths(limit: int) -> st.SearchStrategy[int | None]:
    """The depth to wrap a value up to: as drawn (None), at and around the limit, far past it."""
    return st.one_of(
        st.none(), st.integers(limit - 2, limit + 1), st.sampled_from([limit, 120, 400])
    )


def depth(value: Any) -> int:
    """Nesting of lists and dicts (a container is level 1), without recursion."""
    best = 0
    todo = [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, dict):
            best = max(best, d)
            todo.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            best = max(best, d)
            todo.extend((x, d + 1) for x in v)
    return best


def _bucket(levels: int | None) -> str:
    if levels is None:
        return "past msgpack's stack"
    limit = LIMITS.max_frame_depth
    return "at most 8" if levels <= 8 else "near the limit" if levels <= limit else "over the limit"


def wrapped(value: Any, shapes: list[str]) -> Any:
    for shape in shapes:
        value = WRAPS[shape](value)
    return value


@st.composite
def frames(draw: st.DrawFn) -> tuple[bytes, int | None, int | None]:
    """(payload, the depth of its structure or None when unknown, the id a reader can find)."""
    request_id = draw(
        st.sampled_from(["int"] * 6 + ["odd"]).flatmap(
            lambda k: st.integers(0, 2**31) if k == "int" else st.sampled_from([True, "7", None])
        )
    )
    if draw(st.integers(0, 7)) == 0:
        # Deeper than msgpack's own 1024-level stack: only the bytes can say it.
        levels = draw(st.sampled_from([1100, 100_000]))
        opener = draw(st.sampled_from([b"\x91", b"\x81\x01", b"\x81\xa1k"]))
        payload = b"\x93" + packb(request_id) + opener * levels + b"\xc0" + b"\xc0"
        return payload, None, request_id if type(request_id) is int else None
    value = draw(MSGPACK_VALUES)
    shapes = draw(st.lists(st.sampled_from(sorted(WRAPS)), min_size=1, max_size=3))
    target = draw(target_depths(LIMITS.max_frame_depth))
    body_type = draw(st.sampled_from(["SetXCom", "GetVariable", "MaskSecret", "NoSuchType"]))
    in_map = draw(st.integers(0, 4)) > 0
    if target is not None:  # envelope, body map, then the value's levels
        levels = target - depth(value) - (2 if in_map else 1)
        value = wrapped(value, [shapes[i % len(shapes)] for i in range(max(levels, 0))])
    if in_map:
        body: Any = {"type": body_type, "key": "k", "value": value}
    else:
        body = value  # a body that is not a map, or any map
    carrier = draw(
        st.sampled_from(["none"] * 5 + ["trace", "any"]).flatmap(
            lambda k: {
                "none": st.none(),
                "trace": st.just({"traceparent": "00-ab"}),
                "any": MSGPACK_VALUES,
            }[k]
        )
    )
    envelope = draw(st.sampled_from(["three"] * 6 + ["two", "one"]))
    frame = {"three": [request_id, body, carrier], "two": [request_id, body], "one": [body]}[
        envelope
    ]
    try:
        payload = packb(frame)
    except (ValueError, OverflowError, TypeError):
        # Deeper than msgpack's packer goes (511): spell the same structure as bytes instead.
        payload = _pack_deep(frame)
    # A str holding a lone surrogate's bytes (ED A0 80) is not UTF-8: bad-msgpack.
    payload = payload.replace(packb(SURROGATE_SLOT), b"\xa3\xed\xa0\x80")
    for slot, raw in RAW_EXT.items():
        payload = payload.replace(packb(slot), raw)
    first = frame[0]
    return payload, depth(frame), first if type(first) is int else None


def _pack_deep(value: Any) -> bytes:
    """msgpack for values nested past the packer's limit, written without recursion."""
    out = bytearray()
    todo: list[Any] = [("value", value)]
    while todo:
        what, v = todo.pop()
        if what == "raw":
            out += v
        elif isinstance(v, list):
            out += _array_header(len(v))
            todo.extend(("value", x) for x in reversed(v))
        elif isinstance(v, dict):
            out += _map_header(len(v))
            for k, x in reversed(list(v.items())):
                todo.append(("value", x))
                todo.append(("raw", packb(k)))
        else:
            out += packb(v)
    return bytes(out)


def _array_header(n: int) -> bytes:
    return bytes([0x90 | n]) if n < 16 else b"\xdc" + n.to_bytes(2, "big")


def _map_header(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 16 else b"\xde" + n.to_bytes(2, "big")


# --- JSON log lines ---------------------------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.just(BIG_INT_SLOT),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(KEY_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def log_lines(draw: st.DrawFn) -> tuple[bytes, int | None, int]:
    """(line, the depth of its JSON or None when not JSON, the longest integer's digits)."""
    value = draw(JSON_VALUES)
    shapes = draw(st.lists(st.sampled_from(sorted(JSON_WRAPS)), min_size=1, max_size=3))
    target = draw(target_depths(LIMITS.max_log_depth))
    if target is not None:  # the record object, then the value's levels
        levels = target - depth(value) - 1
        value = wrapped(value, [shapes[i % len(shapes)] for i in range(max(levels, 0))])
    record: Any = {"level": draw(st.sampled_from(["info", "error", "bogus"])), "event": "e"}
    record["v"] = value
    if draw(st.integers(0, 3)) == 0:
        record["n"] = BIG_INT_SLOT
    if draw(st.integers(0, 5)) == 0:
        record = value  # not an object, or an object without level
    digits = draw(st.sampled_from([1, 19, LIMITS.max_int_digits, LIMITS.max_int_digits + 1, 5000]))
    text = json.dumps(record, ensure_ascii=draw(st.booleans()), allow_nan=True)
    text = text.replace(json.dumps(BIG_INT_SLOT), "-" + "9" * digits)
    longest = digits if BIG_INT_SLOT in json.dumps(record) else 0
    if draw(st.integers(0, 7)) == 0:
        # Past any parser's stack: a bracket wall.
        levels = draw(st.sampled_from([LIMITS.max_log_depth + 1, 100_000]))
        text = '{"level": "info", "event": "wall", "w": ' + "[" * levels + "]" * levels + "}"
        return text.encode(), levels + 1, 0
    data = text.encode("utf-8", "surrogatepass")  # raw lone surrogates: not UTF-8
    return data, depth(record), longest


# --- the pipeline ----------------------------------------------------------------------------


def _masker(many: bool) -> SecretsMasker:
    masker = SecretsMasker()
    for secret in SECRETS:
        masker.add(secret)
    if many:  # past the alternation: the trie masks
        masker.add([f"generated-secret-{i:04d}" for i in range(100)])
    return masker


def _frame_events(payload: bytes) -> tuple[list[Event], ProtocolError | None]:
    """The events a session emits for one request payload (supervision/_session.py)."""
    try:
        frame = decode_request(payload, 0)
    except ProtocolError as exc:
        data = {
            "direction": "in",
            "id": exc.request_id,
            "type": None,
            "body": None,
            "payload": payload,
            "offset": 0,
            "error": str(exc),
        }
        violation = Violation(exc.rule, f"{exc.message} (byte offset {exc.offset})", "-")
        return [
            Event("frame", 0.01, data, 1),
            Event("violation", 0.02, violation.as_dict(), 2),
        ], exc
    validate_body(frame.body)
    data = {
        "direction": "in",
        "id": frame.id,
        "type": frame.type,
        "body": frame.body,
        "payload": payload,
        "offset": 0,
        "elements": frame.elements,
        "context_carrier": frame.context_carrier,
    }
    return [Event("frame", 0.01, data, 1)], None


def _through_transcript(tmp: Path, events: list[Event], masker: SecretsMasker) -> None:
    """Write, read back, show and render: each must work on whatever the events hold."""
    path = tmp / f"t-{os.urandom(6).hex()}.jsonl"
    writer = TranscriptWriter(
        path,
        {"task": {"dag_id": "d", "task_id": "t"}, "runtime": ["x"]},
        redact=masker.redact,
        redact_bytes=lambda b: masker.redact(b.decode("utf-8", "replace")).encode(),
    )
    for e in events:
        writer(e)
    writer.close({"final_state": "success", "exit_code": 0})
    transcript = read_transcript(path)
    assert transcript.footer is not None and transcript.problems == []
    assert len(transcript.records) == len(events)
    assert render_timeline(transcript)
    assert "<html" in render_html(transcript)
    data = path.read_bytes()
    for secret in SECRETS:
        assert secret.encode() not in data, "a secret reached the transcript"
    path.unlink()


@SETTINGS
@given(frames(), st.booleans())
def test_hostile_frames_only_ever_raise_protocol_error(
    tmp_path_factory: pytest.TempPathFactory,
    frame: tuple[bytes, int | None, int | None],
    many_secrets: bool,
) -> None:
    """A frame is decoded or refused with ProtocolError, and then recorded, read and shown."""
    payload, structure_depth, readable_id = frame
    masker = _masker(many_secrets)
    events, error = _frame_events(payload)
    too_deep = structure_depth is None or structure_depth > LIMITS.max_frame_depth
    event(f"decoded (depth {_bucket(structure_depth)})" if error is None else error.rule)
    if error is None:
        assert not too_deep, "a frame deeper than the limit was let through"
        body = events[0].data["body"]
        masker.redact(body)
        masker.leaves_plain(body)
    else:
        assert error.rule in FRAME_RULES
        if error.rule == "frame-too-deep":
            assert too_deep
            assert error.request_id == readable_id
            assert str(LIMITS.max_frame_depth) in error.message or structure_depth is None
        for secret in SECRETS:
            assert secret not in error.message
    _through_transcript(tmp_path_factory.mktemp("frames"), events, masker)


@SETTINGS
@given(log_lines(), st.booleans())
def test_hostile_log_lines_are_kept_and_flagged(
    tmp_path_factory: pytest.TempPathFactory, line: tuple[bytes, int | None, int], many: bool
) -> None:
    """A log line is parsed or kept unparsed with a violation naming the limit it broke."""
    data, json_depth, digits = line
    masker = _masker(many)
    record, violations = parse_log_line(Line(data))
    rules = {v.rule for v in violations}
    event(f"depth {_bucket(json_depth)}: {sorted(rules) or 'parsed'}")
    assert json_depth is not None
    if json_depth > LIMITS.max_log_depth and "log-invalid-utf8" not in rules:
        assert "log-too-deep" in rules
    if "log-too-deep" in rules or "log-number-too-long" in rules:
        assert record["malformed"] is True
    if (
        digits > LIMITS.max_int_digits
        and json_depth <= LIMITS.max_log_depth
        and "log-invalid-utf8" not in rules
    ):
        assert rules & {"log-number-too-long", "log-not-json"}
    for v in violations:
        if v.rule in ("log-too-deep", "log-number-too-long"):
            assert data.decode("utf-8", "replace")[:30] not in v.message
    record = masker.redact(record)
    events = [Event("log", 0.01, {"source": "logs", "record": record}, 1)]
    events += [Event("violation", 0.02, v.as_dict(), 2 + i) for i, v in enumerate(violations)]
    _through_transcript(tmp_path_factory.mktemp("logs"), events, masker)


def test_show_summarises_a_map_with_bytes_keys(tmp_path: Path) -> None:
    """``show`` lists a decodable request whose value is a map with bytes keys."""
    payload = packb([1, {"type": "SetXCom", "key": "k", "value": {b"\x00": 1}}, None])
    events, error = _frame_events(payload)
    assert error is None
    path = tmp_path / "t.jsonl"
    writer = TranscriptWriter(path, {"runtime": ["x"]})
    for e in events:
        writer(e)
    writer.close({})
    assert render_timeline(read_transcript(path))


def _stack_depth() -> int:
    frame, n = sys._getframe(), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


def test_at_the_limits_every_consumer_needs_under_half_of_pythons_stack(tmp_path: Path) -> None:
    """The worst shapes at exactly the depth limits go through with half the default stack.

    A frame of maps with integer keys (3 JSON levels each in the transcript), a log line of
    tag-shaped maps (also 3), and an HTTP body holding NaN (so the HTML page walks every record
    to clean it): the deepest recursion per level each consumer has.
    """
    value: Any = float("nan")
    for _ in range(LIMITS.max_frame_depth - 2):  # the envelope and the body map are two levels
        value = {1: value}
    payload = packb([5, {"type": "SetXCom", "key": "k", "value": value}, None])
    line: Any = 1
    for _ in range(LIMITS.max_log_depth - 1):  # the record object is one level
        line = {"$ts": line}
    text = json.dumps({"level": "info", "event": "deep", **line}).encode()
    body: Any = [float("nan")]
    for _ in range(LIMITS.max_frame_depth):
        body = {"value": body}
    masker = _masker(many=True)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + limit // 2)
    try:
        events, error = _frame_events(payload)
        assert error is None
        record, violations = parse_log_line(Line(text))
        assert violations == [] and "malformed" not in record
        events.append(Event("log", 0.5, {"source": "logs", "record": masker.redact(record)}, 3))
        http = {
            "method": "GET",
            "path": "/execution/xcoms/d/r/t/k",
            "query": "",
            "status": 200,
            "error": None,
            "attempt": 1,
            "duration_s": 0.001,
            "cause": 1,
            "request_headers": {},
            "request_body": b"",
            "response_headers": {"content-type": "application/json"},
            "response_body": json.dumps(body).encode(),
        }
        events.append(Event("http", 0.6, http, 4))
        _through_transcript(tmp_path, events, masker)
    finally:
        sys.setrecursionlimit(limit)
