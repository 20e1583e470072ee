"""Properties over the whole catalogue: generated bodies are valid and survive the wire; junk
streams only ever produce ProtocolError."""

from __future__ import annotations

import functools
import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from supervisor_sim.protocol import (
    CATALOGUE,
    DEFINITIONS,
    TO_SUPERVISOR,
    TO_TASK,
    FrameDecoder,
    ProtocolError,
    _types as T,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    packb,
    validate_body,
)

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
FLOATS = st.floats(allow_nan=False)
ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)
AWARE_DATETIMES = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=ZONES
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INTS | FLOATS | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=6,
)


def strategy_for(t: T.Type) -> st.SearchStrategy[Any]:
    """Values of type ``t`` as Airflow's side would hand them to msgspec (python-mode dump)."""
    if isinstance(t, T.Model):
        return model_strategy(t.name)
    if isinstance(t, T.Ref):
        target = DEFINITIONS[t.name]
        return model_strategy(t.name) if isinstance(target, T.Model) else strategy_for(target)
    if isinstance(t, T.Const):
        return st.just(t.value)
    if isinstance(t, T.Enum):
        return st.sampled_from(t.values)
    if isinstance(t, T.AnyOf):
        return st.one_of([strategy_for(o) for o in t.options])
    if isinstance(t, T.ListOf):
        return st.lists(strategy_for(t.item), min_size=t.min_items or 0, max_size=3)
    if isinstance(t, T.TupleOf):
        return st.tuples(*(strategy_for(i) for i in t.items)).map(list)
    if isinstance(t, T.MapOf):
        return st.dictionaries(TEXT, strategy_for(t.value), max_size=3)
    if t is T.DATETIME:
        # Mostly timestamp extensions, sometimes RFC 3339 strings with an offset.
        return AWARE_DATETIMES | AWARE_DATETIMES.map(datetime.isoformat)
    if t is T.UUID:
        return st.uuids().map(str)
    if t is T.DURATION:
        return st.timedeltas()
    scalars = {
        T.STR: TEXT,
        T.PATH: TEXT,
        T.INT: INTS,
        T.FLOAT: FLOATS,
        T.BOOL: st.booleans(),
        T.NULL: st.none(),
        T.ANY: JSON_VALUES,
    }
    for scalar, strategy in scalars.items():
        if t == scalar:
            return strategy
    raise AssertionError(f"no strategy for field type {t!r}")


@functools.cache
def model_strategy(name: str, *, message: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies of model ``name``: required keys always, optional keys sometimes.

    As a message body the ``type`` key is always present, since it is the union discriminator.
    """
    model = DEFINITIONS[name]
    assert isinstance(model, T.Model), name
    required = {
        f.name: strategy_for(f.type)
        for f in model.fields
        if f.required or (message and f.name == "type")
    }
    optional = {f.name: strategy_for(f.type) for f in model.fields if f.name not in required}
    return st.fixed_dictionaries(required, optional=optional)


def wire_view(value: Any) -> Any:
    """What the other side decodes: durations as msgspec's ISO strings, tuples as arrays."""
    if isinstance(value, timedelta):
        return msgspec.msgpack.decode(msgspec.msgpack.encode(value))
    if isinstance(value, dict):
        return {k: wire_view(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [wire_view(v) for v in value]
    return value


def assert_aware_utc(value: Any) -> None:
    if isinstance(value, datetime):
        assert value.utcoffset() == timedelta(0), value
    elif isinstance(value, dict):
        for v in value.values():
            assert_aware_utc(v)
    elif isinstance(value, list):
        for v in value:
            assert_aware_utc(v)


def only_frame(data: bytes) -> tuple[bytes, int]:
    decoder = FrameDecoder()
    decoder.feed(data)
    frames = list(decoder)
    decoder.end_of_stream()
    assert len(frames) == 1
    return frames[0].payload, frames[0].offset


RESPONSE_NAMES = sorted(set(TO_TASK) | {"DagFileParseRequest"})


class TestGeneratedBodies:
    @pytest.mark.parametrize("name", sorted(CATALOGUE))
    @SETTINGS
    @given(data=st.data(), request_id=st.integers(min_value=0, max_value=2**63 - 1))
    def test_generated_body_is_valid_and_survives_a_request_frame(self, name, data, request_id):
        """Any body built from a message's model validates and decodes back equal as a request."""
        body = data.draw(model_strategy(name, message=True), label="body")
        assert validate_body(body, name) == []
        payload, offset = only_frame(encode_request(request_id, body))
        frame = decode_request(payload, offset)
        assert frame.id == request_id
        assert frame.type == name
        assert frame.context_carrier is None
        assert frame.body == wire_view(body)
        assert_aware_utc(frame.body)
        assert validate_body(frame.body, name) == []

    @pytest.mark.parametrize("name", RESPONSE_NAMES)
    @SETTINGS
    @given(data=st.data(), request_id=st.integers(min_value=0, max_value=2**63 - 1))
    def test_generated_reply_survives_a_response_frame(self, name, data, request_id):
        """Any supervisor-to-task body decodes back equal from encode_response's frame."""
        body = data.draw(model_strategy(name, message=True), label="body")
        payload, offset = only_frame(encode_response(request_id, body))
        frame = decode_response(payload, offset)
        assert (frame.id, frame.error, frame.elements) == (request_id, None, 3)
        assert frame.body == wire_view(body)
        assert validate_body(frame.body, name) == []

    @SETTINGS
    @given(data=st.data())
    def test_error_response_survives_the_error_slot(self, data):
        """Any ErrorResponse body decodes back equal from the error slot."""
        error = data.draw(model_strategy("ErrorResponse", message=True))
        frame = decode_response(encode_response(9, None, error)[4:])
        assert (frame.body, frame.error) == (None, wire_view(error))

    @pytest.mark.parametrize("name", sorted(CATALOGUE))
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def test_validation_of_junk_fields_reports_and_never_raises(self, name, data):
        """Any values under a message's field names give Problems, never an exception."""
        model = CATALOGUE[name].model
        keys = st.sampled_from([f.name for f in model.fields] + ["extra", 7])
        junk = st.dictionaries(keys, JSON_VALUES | AWARE_DATETIMES | st.binary(max_size=4))
        body = {**data.draw(junk), "type": name}
        for problem in validate_body(body, TO_SUPERVISOR):
            assert str(problem) == f"{problem.path}: {problem.message}"


def _frame_like(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


MSGPACK_PAYLOADS = st.recursive(
    st.none() | st.booleans() | INTS | FLOATS | TEXT | st.binary(max_size=6) | AWARE_DATETIMES,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(TEXT | INTS, c, max_size=3),
    max_leaves=10,
).map(packb)

PIECES = st.one_of(
    st.binary(max_size=40),  # raw junk
    st.binary(max_size=40).map(_frame_like),  # a well-framed junk payload
    MSGPACK_PAYLOADS.map(_frame_like),  # a well-framed msgpack value of any shape
    st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=20)).map(
        lambda t: t[0].to_bytes(4, "big") + t[1]  # any length header at all
    ),
    st.just(b"\x00\x00\x00\x00"),  # zero-length frame
)


class TestArbitraryStreams:
    @settings(max_examples=300, deadline=None)
    @given(
        pieces=st.lists(PIECES, max_size=12),
        cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
        max_frame_size=st.sampled_from([8, 64, 2**26]),
    )
    def test_any_byte_stream_in_any_chunking_raises_only_protocol_errors(
        self, pieces, cuts, max_frame_size
    ):
        """Feeding any bytes in any chunks yields frames or ProtocolErrors and always ends."""
        stream = b"".join(pieces)
        bounds = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
        chunks = [stream[lo:hi] for lo, hi in itertools.pairwise(bounds)]
        decoder = FrameDecoder(max_frame_size=max_frame_size)
        steps = 0
        limit = len(stream) + len(chunks) + 10  # every frame or error consumes >= 4 bytes
        for chunk in chunks:
            decoder.feed(chunk)
            while True:
                steps += 1
                assert steps <= limit, "the decoder stopped making progress"
                try:
                    raw = decoder.next_frame()
                except ProtocolError as exc:
                    assert exc.offset is not None and 0 <= exc.offset < len(stream)
                    continue
                if raw is None:
                    break
                assert len(raw.payload) <= max_frame_size
                for decode in (decode_request, decode_response):
                    try:
                        frame = decode(raw.payload, raw.offset)
                    except ProtocolError as exc:
                        assert exc.offset == raw.offset
                    else:
                        validate_body(frame.body, TO_SUPERVISOR)
        try:
            decoder.end_of_stream()
        except ProtocolError as exc:
            assert exc.rule == "truncated-frame"
        assert decoder.offset == len(stream)
