"""The hot path's JSON shortcuts give exactly what the ``json`` module calls they replace."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from supervisor_sim.api._client import APIResponse, ResponseHeaders, _dumps
from supervisor_sim.api.stub._http import encode_json

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_values = st.recursive(
    _leaves,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
    max_leaves=12,
)


def _parsed(content: bytes) -> object:
    return APIResponse("GET", "/x", 200, ResponseHeaders({}), content).json()


def _outcome(call, arg) -> tuple[str, object]:
    try:
        return "ok", call(arg)
    except Exception as exc:  # the same exception type is part of "the same"
        return type(exc).__name__, str(exc)


@given(_values)
def test_stub_encoder_writes_what_json_dumps_writes(value: object) -> None:
    """The stub's prebuilt encoder renders any JSON value as FastAPI's json.dumps call does."""
    expected = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    assert encode_json(value) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [1, {"a": float("-inf")}]])
def test_stub_encoder_refuses_what_json_refuses(value: object) -> None:
    """A value json.dumps(allow_nan=False) refuses is refused with the same error."""
    with pytest.raises(ValueError, match="Out of range float values"):
        encode_json(value)


@given(
    st.recursive(
        _leaves | st.floats(),
        lambda kids: (
            st.lists(kids, max_size=4)
            | st.dictionaries(
                st.text() | st.integers() | st.booleans() | st.none(), kids, max_size=4
            )
        ),
        max_leaves=12,
    )
)
def test_request_bodies_are_what_json_dumps_writes(value: object) -> None:
    """The client encodes a request body as json.dumps(body, separators=(",", ":")) does."""
    assert _dumps(value) == json.dumps(value, separators=(",", ":"))


def test_request_body_encoder_refuses_what_json_refuses() -> None:
    """A value json.dumps cannot encode fails with its TypeError."""
    with pytest.raises(TypeError, match="not JSON serializable"):
        _dumps({"a": object()})


@given(_values)
def test_response_json_reads_what_json_loads_reads(value: object) -> None:
    """A body the API could send decodes to what json.loads makes of it."""
    content = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert _parsed(content) == json.loads(content)


@pytest.mark.parametrize(
    "content",
    [
        b'{"a": 1}  ',  # trailing whitespace: json.loads's own path
        b'{"a": 1} x',  # trailing text
        b'{"a": ',  # truncated
        b"[NaN, Infinity]",
        b'"\\ud800"',
        b'{"s": "\\ud83d\\ude00"}',
        b"\xef\xbb\xbf[1]",  # a UTF-8 byte-order mark
        "[1]".encode("utf-16"),
        "[1]".encode("utf-16-le"),
        b"[\xff]",  # not UTF-8
        b"",
        b"  [1]",
        b"[1.0e400]",
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_response_json_matches_json_loads_on_odd_bodies(content: bytes) -> None:
    """Odd bodies give json.loads's value or json.loads's error, whichever it gives."""
    assert _outcome(_parsed, content) == _outcome(json.loads, content)
