"""The transcript writer's fast paths write exactly the bytes of the general path.

The reference below is the writer as it was before the fast paths (json.dumps of a dict built
with SecretsMasker.redact and to_jsonable, one line per record), kept verbatim so that any
difference in records, keys, values or redaction shows up as a byte difference. Generated events
mix plain values with everything the fast paths must hand over: sensitive keys, registered
secrets (also ones JSON escapes), JWT-shaped strings, tuples, non-str keys, tag-shaped maps,
datetimes, bytes, NaN, decode errors and HTTP bodies that are not compact UTF-8 JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from supervisor_sim.protocol import SecretsMasker, packb, to_jsonable
from supervisor_sim.protocol._codec import jsonable_as_is
from supervisor_sim.supervision import Event
from supervisor_sim.transcript import TranscriptWriter, read_transcript

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- the reference: the writer before the fast paths, verbatim ----------------------------------

_SECRET_HEADERS = {"authorization", "refreshed-api-token", "cookie", "set-cookie"}
_TAGS = frozenset({"$ts", "$bytes", "$ext", "$map", "$float", "$tuple"})


def _ref_b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def reference_to_jsonable(value: Any) -> Any:
    import math

    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"$float": repr(value)}
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return {"$ts": value.isoformat().replace("+00:00", "Z")}
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, msgpack.ExtType):
        return {"$ext": [value.code, base64.b64encode(value.data).decode()]}
    if isinstance(value, list):
        return [reference_to_jsonable(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [reference_to_jsonable(v) for v in value]}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value) and not (
            len(value) == 1 and next(iter(value)) in _TAGS
        ):
            return {k: reference_to_jsonable(v) for k, v in value.items()}
        return {
            "$map": [[reference_to_jsonable(k), reference_to_jsonable(v)] for k, v in value.items()]
        }
    return {"$repr": repr(value)}


class ReferenceRecords:
    """The records of the old ``TranscriptWriter.__call__``, as JSON lines."""

    def __init__(
        self,
        redact: Callable[[Any], Any] | None,
        redact_bytes: Callable[[bytes], bytes] | None,
    ) -> None:
        self._redact = redact
        self._redact_bytes = redact_bytes

    def line(self, event: Any, *, strict: bool = True) -> str:
        data = dict(event.data)
        record: dict[str, Any] = {"record": event.kind, "seq": event.seq, "t": event.t}
        if event.kind == "frame":
            record.update(self._frame(data))
        elif event.kind == "http":
            record.update(self._http(data))
        elif event.kind == "log":
            record.update(
                source=data["source"], line=reference_to_jsonable(self._clean(data["record"]))
            )
        else:
            record.update(reference_to_jsonable(self._clean(data)))
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        if strict:
            line.encode("utf-8")  # the old writer's UTF-8 file refused lone surrogates here
        return line

    def _clean(self, value: Any) -> Any:
        return self._redact(value) if self._redact is not None else value

    def _frame(self, d: dict[str, Any]) -> dict[str, Any]:
        body = d.get("body")
        error = d.get("error")
        payload: bytes = d.get("payload") or b""
        out: dict[str, Any] = {"dir": d["direction"], "id": d.get("id"), "type": d.get("type")}
        carrier = d.get("context_carrier")
        clean_body = self._clean(body)
        clean_error = self._clean(error)
        clean_carrier = self._clean(carrier)  # a context carrier is redacted too
        if self._redact is not None and (
            clean_body != body or clean_error != error or clean_carrier != carrier
        ):
            if d["direction"] == "out":
                payload = packb([d.get("id"), clean_body, clean_error])
            else:
                payload = packb([d.get("id"), clean_body, clean_carrier])
            out["raw_redacted"] = True
        out["body"] = reference_to_jsonable(clean_body)
        if error is not None:
            out["error"] = reference_to_jsonable(clean_error)
        out["raw"] = _ref_b64(payload)
        out["len"] = len(payload)
        for key, value in (
            ("offset", d.get("offset")),
            ("elements", d.get("elements")),
            ("context_carrier", clean_carrier),
        ):
            if value is not None:
                out[key] = reference_to_jsonable(value)
        if d.get("error") and isinstance(d.get("error"), str):
            out["decode_error"] = d["error"]
            out.pop("error", None)
        return out

    def _http(self, d: dict[str, Any]) -> dict[str, Any]:
        def headers(h: Mapping[str, str] | None) -> dict[str, str]:
            h = dict(h or {})
            if self._redact is not None:
                for k in list(h):
                    if k.lower() in _SECRET_HEADERS:
                        h[k] = "***"
            return h

        def body(raw: bytes | None) -> dict[str, Any]:
            raw = raw or b""
            if not raw:
                return {}
            try:
                return {"json": self._clean(json.loads(raw))}
            except ValueError:
                if self._redact_bytes is not None:
                    raw = self._redact_bytes(raw)
                return {"b64": _ref_b64(raw)}

        return {
            "method": d["method"],
            "path": d["path"],
            "query": d.get("query") or "",
            "status": d.get("status"),
            "error": d.get("error"),
            "attempt": d.get("attempt", 1),
            "duration_s": d.get("duration_s"),
            "cause": d.get("cause"),
            "request": {
                "headers": headers(d.get("request_headers")),
                **body(d.get("request_body")),
            },
            "response": {
                "headers": headers(d.get("response_headers")),
                **body(d.get("response_body")),
            },
        }


def reference_redact(secrets: set[str], value: Any, name: str | None = None) -> Any:
    """SecretsMasker.redact as it was, over a given set of registered secrets."""
    import re

    from supervisor_sim.protocol._masking import MASK, is_sensitive_name

    if name is not None and is_sensitive_name(name) and value not in (None, "", [], {}):
        return MASK
    if isinstance(value, str):
        if secrets:
            ordered = sorted(secrets, key=len, reverse=True)
            value = re.compile("|".join(re.escape(s) for s in ordered)).sub(MASK, value)
        if "eyJ" in value:
            value = re.sub(r"eyJ[.A-Za-z0-9\-_]*", "eyJ***", value)
        return value
    if isinstance(value, Mapping):
        return {
            k: reference_redact(secrets, v, k if isinstance(k, str) else None)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [reference_redact(secrets, v) for v in value]
    return value


# --- generated values ----------------------------------------------------------------------------

SECRET_POOL = [
    "s3cret-pw",
    "tok-very-secret-123",
    'quo"ted-secret',
    "back\\slash-secret",
    "line\nbreak-secret",
    "ünïcödé-sëcret",
    "***-stars-***",
    "12345",
    "airflow",  # never registered: Airflow does not mask the word "airflow"
    "abc",  # shorter than the default min_length
]
KEY_POOL = [
    "type", "key", "value", "conn_id", "extra", "login", "host", "event", "level", "timestamp",
    "password", "token", "Authorization", "api_key", "my_secret", "proxies", "PASSWD",
    "access_token_x", "\u212aeyfile_dict",  # Kelvin sign: lower() gives "keyfile_dict"
    "$ts", "$map", "$tuple", "$bytes", "$float", "$ext", "$x", "$", "", "ключ", 'k"q',
]  # fmt: skip

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
STRINGS = st.one_of(
    TEXT,
    st.sampled_from(SECRET_POOL),
    st.builds(lambda a, s, b: a + s + b, TEXT, st.sampled_from(SECRET_POOL), TEXT),
    st.sampled_from(["eyJhbGciOiJIUzI1NiJ9.e30.sig", "Bearer eyJabc.def", "eyJ", "xeyJ***"]),
    st.sampled_from(["", "***", "bench-value", "hello-from-var"]),
)
KEYS = st.one_of(st.sampled_from(KEY_POOL), TEXT)


class StrKey(str):
    """A str subclass key (an enum member would be one)."""


ODD_KEYS = st.one_of(
    st.integers(-3, 3), st.none(), st.booleans(), st.builds(StrKey, st.sampled_from(KEY_POOL))
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),  # NaN and infinities included
    STRINGS,
    st.just(0),
    st.just([]),
    st.just({}),
)
RICH_LEAVES = st.one_of(
    LEAVES,
    st.datetimes(timezones=st.just(UTC)),
    st.binary(max_size=6),
    st.builds(msgpack.ExtType, st.integers(1, 5), st.binary(max_size=4)),
)


def _values(leaves: st.SearchStrategy[Any], odd: bool) -> st.SearchStrategy[Any]:
    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        options = [
            st.lists(children, max_size=3),
            st.dictionaries(KEYS, children, max_size=4),
        ]
        if odd:
            options += [
                st.lists(children, max_size=3).map(tuple),
                st.dictionaries(ODD_KEYS, children, max_size=2),
            ]
        return st.one_of(*options)

    return st.recursive(leaves, extend, max_leaves=10)


PLAINISH = _values(LEAVES, odd=False)
VALUES = st.one_of(PLAINISH, _values(RICH_LEAVES, odd=True))
BODIES = st.one_of(st.dictionaries(KEYS, VALUES, max_size=5), st.none(), VALUES)


def _json_bytes(value: Any, style: int) -> bytes:
    if style == 0:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    if style == 1:
        return json.dumps(value).encode()  # spaces, \\u escapes
    if style == 2:
        return b"\xef\xbb\xbf" + json.dumps(value).encode()  # a UTF-8 BOM
    if style == 3:
        return json.dumps(value).encode("utf-16-le")
    return json.dumps(value, separators=(",", ":")).encode() + b"\n "  # trailing whitespace


JSONABLE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), STRINGS),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(KEYS, c, max_size=4)),
    max_leaves=10,
)
HTTP_BODIES = st.one_of(
    st.builds(_json_bytes, JSONABLE, st.integers(0, 4)),
    st.builds(_json_bytes, st.dictionaries(KEYS, JSONABLE, max_size=4), st.just(0)),
    st.binary(max_size=12),
    st.sampled_from(
        [
            b"",
            b"{",
            b"[1] [2]",
            b'{"a":1}x',
            b"{\x00",
            b"[\xff]",
            b'"eyJabc.def"',
            b"null",
            b'{"a":"\\ud800"}',
            b"[NaN, -Infinity]",
            b'{"a":1,"a":2}',
            b'{"password":"pw"}',
        ]
    ),
    st.builds(lambda s: ("raw " + s).encode(), st.sampled_from(SECRET_POOL)),
)
HEADER_NAMES = st.sampled_from(
    [
        "host", "authorization", "Authorization", "refreshed-api-token", "Cookie", "set-cookie",
        "content-type", "correlation-id", "x-token", "AUTHORIZATION",
    ]
)  # fmt: skip
HEADERS = st.one_of(st.none(), st.dictionaries(HEADER_NAMES, STRINGS, max_size=5))
SCALARS = st.one_of(st.none(), st.integers(-5, 2**40), st.floats(), TEXT, st.booleans())


@st.composite
def events(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from(["frame", "frame", "http", "log", "process", "note", "violation"]))
    seq = draw(st.one_of(st.integers(0, 2**40), SCALARS))
    t = draw(st.one_of(st.floats(0, 1e6), SCALARS))
    data: dict[str, Any]
    if kind == "frame":
        error = draw(st.one_of(st.none(), BODIES, STRINGS))
        data = {
            "direction": draw(st.sampled_from(["in", "out"])),
            "id": draw(st.one_of(st.integers(0, 2**32), SCALARS)),
            "type": draw(st.one_of(st.sampled_from(["GetVariable", "VariableResult"]), SCALARS)),
            "body": draw(BODIES),
            "payload": draw(st.binary(max_size=12)),
        }
        if draw(st.booleans()):
            data["error"] = error
        for key in ("offset", "elements"):
            if draw(st.booleans()):
                data[key] = draw(st.one_of(st.integers(0, 2**40), SCALARS, VALUES))
        if draw(st.booleans()):
            data["context_carrier"] = draw(st.one_of(st.none(), BODIES))
    elif kind == "http":
        data = {
            "method": draw(st.sampled_from(["GET", "PATCH", "PUT"])),
            "path": draw(st.one_of(st.just("/execution/variables/v"), TEXT)),
            "query": draw(st.one_of(st.just(""), st.none(), TEXT)),
            "status": draw(st.one_of(st.sampled_from([200, 204, 404]), SCALARS)),
            "error": draw(st.one_of(st.none(), STRINGS)),
            "attempt": draw(st.one_of(st.integers(1, 3), SCALARS)),
            "duration_s": draw(st.one_of(st.floats(0, 1), SCALARS)),
            "cause": draw(st.one_of(st.integers(0, 99), st.just("heartbeat"), SCALARS)),
            "request_headers": draw(HEADERS),
            "request_body": draw(HTTP_BODIES),
            "response_headers": draw(HEADERS),
            "response_body": draw(HTTP_BODIES),
        }
        if draw(st.booleans()):
            del data["attempt"]
    elif kind == "log":
        data = {
            "source": draw(st.sampled_from(["logs", "stdout", "stderr"])),
            "record": draw(st.one_of(st.dictionaries(KEYS, VALUES, max_size=5), VALUES)),
        }
    else:
        data = draw(st.dictionaries(KEYS, VALUES, max_size=5))
    return Event(kind, t, data, seq)  # type: ignore[arg-type]


@st.composite
def maskers(draw: st.DrawFn) -> SecretsMasker:
    masker = SecretsMasker(min_length=draw(st.sampled_from([5, 5, 5, 1, 0])))
    for secret in draw(st.lists(st.one_of(st.sampled_from(SECRET_POOL), TEXT), max_size=4)):
        masker.add(secret)
    return masker


# --- the properties ------------------------------------------------------------------------------


def _record_lines(path: Path) -> list[str]:
    """Every line between the header and the footer, each with its newline."""
    lines = path.read_bytes().decode("utf-8").split("\n")
    assert lines[-1] == ""
    return [line + "\n" for line in lines[1:-2]]


def _write_both(
    tmp_path: Path,
    evs: list[Event],
    redact: Callable[[Any], Any] | None,
    redact_bytes: Callable[[bytes], bytes] | None,
) -> tuple[list[str], list[str]]:
    path = tmp_path / f"t{os.urandom(4).hex()}.jsonl"
    writer = TranscriptWriter(path, {"runtime": ["x"]}, redact=redact, redact_bytes=redact_bytes)
    reference = ReferenceRecords(redact, redact_bytes)
    expected = []
    for ev in evs:
        try:
            expected.append(reference.line(ev))
        except UnicodeEncodeError:
            # The old writer raised on a lone surrogate; the new one writes it as its JSON escape.
            text = reference.line(ev, strict=False)
            expected.append(re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text))
        except (TypeError, ValueError) as exc:
            # The old writer raised here (a value JSON cannot hold): so must the new one, and
            # write nothing.
            with pytest.raises(type(exc)):
                writer(ev)
            continue
        writer(ev)
    writer.close({"final_state": "success"})
    # The file ends with a footer whose digest matches (read_transcript would also check each
    # record's shape, which these generated values need not have).
    data = path.read_bytes()
    before, footer_line = data[:-1].rsplit(b"\n", 1)
    footer = json.loads(footer_line)
    assert footer["record"] == "footer"
    assert footer["sha256"] == hashlib.sha256(before + b"\n").hexdigest()
    got = _record_lines(path)
    path.unlink()
    return got, expected


def _masker_bytes(masker: SecretsMasker) -> Callable[[bytes], bytes]:
    # As supervisor_sim.runner._supervise.supervise wires it.
    return lambda b: masker.redact(b.decode("utf-8", "replace")).encode()


@SETTINGS
@given(st.lists(events(), min_size=1, max_size=6), maskers())
def test_fast_paths_write_the_bytes_of_the_reference(
    tmp_path_factory: pytest.TempPathFactory, evs: list[Event], masker: SecretsMasker
) -> None:
    """With a SecretsMasker (fast paths on), no redaction, and an unknown redactor: same lines."""
    tmp = tmp_path_factory.mktemp("speed")
    got, expected = _write_both(tmp, evs, masker.redact, _masker_bytes(masker))
    assert got == expected
    got, expected = _write_both(tmp, evs, None, None)
    assert got == expected
    got, expected = _write_both(tmp, evs, lambda v: masker.redact(v), None)
    assert got == expected


@SETTINGS
@given(VALUES, maskers())
def test_redact_is_unchanged(value: Any, masker: SecretsMasker) -> None:
    """SecretsMasker.redact masks exactly what it masked before."""
    assert repr(masker.redact(value)) == repr(reference_redact(masker._secrets, value))


@SETTINGS
@given(st.one_of(VALUES, BODIES), maskers())
def test_leaves_plain_is_a_proof(value: Any, masker: SecretsMasker) -> None:
    """When leaves_plain says so, redacting and tagging the value changes nothing at all."""
    if masker.leaves_plain(value):
        redacted = reference_redact(masker._secrets, value)
        assert redacted == value
        assert repr(redacted) == repr(value)  # same types, too
        encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        assert encode(reference_to_jsonable(redacted)) == encode(value)


@SETTINGS
@given(PLAINISH)
def test_leaves_plain_accepts_clean_plain_data(value: Any) -> None:
    """With no secret known, plain data without sensitive keys, JWTs or tags takes the fast path."""
    text = json.dumps(value, ensure_ascii=False)
    masker = SecretsMasker()
    clean = reference_redact(set(), value) == value and "eyJ" not in text and "$" not in text
    nan = "NaN" in text or "Infinity" in text
    if clean and not nan and repr(reference_redact(set(), value)) == repr(value):
        assert masker.leaves_plain(value)


@SETTINGS
@given(st.one_of(VALUES, BODIES, PLAINISH))
def test_jsonable_as_is_is_a_proof(value: Any) -> None:
    """When jsonable_as_is says so, to_jsonable gives the value back (same types)."""
    if jsonable_as_is(value):
        assert repr(reference_to_jsonable(value)) == repr(value)
        assert reference_to_jsonable(value) == value


@SETTINGS
@given(st.one_of(VALUES, BODIES))
def test_to_jsonable_is_unchanged(value: Any) -> None:
    assert repr(to_jsonable(value)) == repr(reference_to_jsonable(value))
    assert type(to_jsonable(value)) is type(reference_to_jsonable(value))


@SETTINGS
@given(HTTP_BODIES)
def test_a_body_is_parsed_as_json_loads_parses_it(raw: bytes) -> None:
    """The writer's own parsing of HTTP bodies gives json.loads's value, or its error (b64)."""
    writer = TranscriptWriter.__new__(TranscriptWriter)  # only the body encoder is used
    writer._plain = None
    writer._redact = None
    writer._redact_bytes = None
    try:
        value = json.loads(raw)
    except ValueError:
        expected = ',"b64":"' + base64.b64encode(raw).decode() + '"'
    else:
        expected = ',"json":' + json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if raw:
        assert writer._body_json(raw) == expected


def test_str_subclass_and_enum_keys_are_kept() -> None:
    masker = SecretsMasker()
    value = {StrKey("type"): "x", "password": "pw-secret"}
    assert masker.redact(value) == {"type": "x", "password": "***"}
    assert not masker.leaves_plain(value)


# --- the round trip the benchmark measures takes the fast paths ----------------------------------


def _round_trip_events() -> list[Event]:
    frame_in = Event(
        "frame",
        0.041111,
        {
            "direction": "in",
            "id": 3,
            "type": "GetVariable",
            "body": {"type": "GetVariable", "key": "bench_var"},
            "payload": packb([3, {"type": "GetVariable", "key": "bench_var"}, None]),
            "offset": 78,
            "elements": 3,
            "context_carrier": None,
        },
        14,
    )
    http = Event(
        "http",
        0.041342,
        {
            "method": "GET",
            "path": "/execution/variables/bench_var",
            "query": "",
            "status": 200,
            "error": None,
            "attempt": 1,
            "duration_s": 0.000143,
            "cause": 14,
            "request_headers": {
                "host": "stub.invalid",
                "airflow-api-version": "2026-06-30",
                "correlation-id": "01a226a6-9793-7237-ae20-b3a860ff7305",
                "accept": "application/json",
                "authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
            },
            "request_body": b"",
            "response_headers": {"content-type": "application/json", "content-length": "41"},
            "response_body": b'{"key":"bench_var","value":"bench-value"}',
        },
        15,
    )
    body = {"key": "bench_var", "value": "bench-value", "type": "VariableResult"}
    frame_out = Event(
        "frame",
        0.041397,
        {
            "direction": "out",
            "id": 3,
            "type": "VariableResult",
            "body": body,
            "error": None,
            "payload": packb([3, body, None]),
        },
        16,
    )
    return [frame_in, http, frame_out]


def test_a_get_variable_round_trip_takes_the_fast_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No general-path record (and no redacting copy) for the three records of a round trip,
    with or without secrets known; the bytes are the reference's."""
    for secrets in ([], ["s3cret-pw", "another-secret"]):
        masker = SecretsMasker()
        for s in secrets:
            masker.add(s)
        evs = _round_trip_events()
        with monkeypatch.context() as m:

            def no_general(self: Any, event: Any) -> str:
                raise AssertionError(f"general path taken for {event.kind}")

            def no_redact(value: Any, name: Any = None) -> Any:
                raise AssertionError("redacting copy made")

            m.setattr(TranscriptWriter, "_general_line", no_general)
            writer = TranscriptWriter(tmp_path / "rt.jsonl", {}, redact=masker.redact)
            m.setattr(masker, "redact", no_redact)
            for ev in evs:
                writer(ev)
            writer.close()
        got = _record_lines(tmp_path / "rt.jsonl")
        ref = ReferenceRecords(SecretsMasker().redact, None)
        assert got == [ref.line(ev) for ev in evs]
        assert "eyJhbGci" not in "".join(got) and '"authorization":"***"' in got[1]


def test_a_secret_in_a_round_trip_is_still_redacted(tmp_path: Path) -> None:
    """Once the value is a known secret, the records hold *** and the frame's raw bytes are an
    encoding of the redacted body (raw_redacted), as before."""
    masker = SecretsMasker()
    masker.add("bench-value")
    writer = TranscriptWriter(tmp_path / "s.jsonl", {}, redact=masker.redact)
    for ev in _round_trip_events():
        writer(ev)
    writer.close()
    text = (tmp_path / "s.jsonl").read_text()
    assert "bench-value" not in text
    out = json.loads(text.split("\n")[3])
    assert out["raw_redacted"] is True and out["body"]["value"] == "***"
    assert msgpack.unpackb(base64.b64decode(out["raw"]))[1]["value"] == "***"


# --- durability: every record is in the kernel when the sink returns ----------------------------


def test_each_record_is_in_the_file_when_the_sink_returns(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    writer = TranscriptWriter(path, {}, redact=SecretsMasker().redact)
    for n, ev in enumerate(_round_trip_events() * 3, start=2):
        writer(ev)
        with open(path, "rb") as f:  # another open file: sees only what reached the kernel
            lines = f.read().split(b"\n")
        assert len(lines) == n + 1 and lines[-1] == b""
    writer.close()


def test_sigkill_loses_no_record(tmp_path: Path) -> None:
    """A supervisor killed with SIGKILL right after a record leaves every record in the file."""
    path = tmp_path / "k.jsonl"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_transcript_speedpaths import _round_trip_events
        from supervisor_sim.protocol import SecretsMasker
        from supervisor_sim.transcript import TranscriptWriter
        w = TranscriptWriter({str(path)!r}, {{}}, redact=SecretsMasker().redact)
        for ev in _round_trip_events() * 5:
            w(ev)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    t = read_transcript(path)
    assert t.truncated is not None  # no footer: the run was cut short...
    assert len(t.records) == 15  # ...but all 15 records are there
    assert [r["record"] for r in t.records[:3]] == ["frame", "http", "frame"]


def test_repeated_headers_with_new_correlation_ids_are_written_as_the_reference(
    tmp_path: Path,
) -> None:
    """Header maps seen before (their text reused) still get each call's own correlation id,
    and headers that hold the writer's placeholder text are written exactly too."""
    masker = SecretsMasker()
    base = _round_trip_events()[1]
    evs = []
    for i, cid in enumerate(["a", "b", "\x00correlation-id\x00", 'é"\\', "a"]):
        data = dict(base.data)
        data["request_headers"] = {**data["request_headers"], "correlation-id": cid}
        data["response_headers"] = {
            "content-type": "application/json",
            "correlation-id": cid,
            "x-other": "\x00correlation-id\x00" if i == 3 else "x",
        }
        evs.append(Event("http", base.t, data, base.seq + i))
    for redact, redact_bytes in ((masker.redact, _masker_bytes(masker)), (None, None)):
        got, expected = _write_both(tmp_path, evs, redact, redact_bytes)
        assert got == expected
        assert len({json.loads(line)["request"]["headers"]["correlation-id"] for line in got}) == 4
