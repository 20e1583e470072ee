"""Length-prefixed msgpack frames: the sans-IO decoder, the envelope decoders and the encoders."""

from __future__ import annotations

import itertools
import struct
import tracemalloc
from datetime import UTC, datetime

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from supervisor_sim.protocol import (
    FrameDecoder,
    ProtocolError,
    RawFrame,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    packb,
    validate_body,
)

GET_VARIABLE = {"key": "foo", "type": "GetVariable"}

#: GetVariable(key="foo") as request 1, exactly as Airflow 3.3's runtime writes it (3 elements).
GET_VARIABLE_FRAME = (
    bytes.fromhex("0000001d 93 01 82") + b"\xa3key\xa3foo" + b"\xa4type\xabGetVariable" + b"\xc0"
)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def _sample_stream() -> tuple[bytes, list[RawFrame]]:
    """A stream of several requests of different sizes, and the frames it must decode to."""
    bodies = [
        GET_VARIABLE,
        {"type": "SetXCom", "key": "k", "value": "x" * 300, "dag_id": "d", "run_id": "r",
         "task_id": "t"},
        {"type": "SucceedTask", "end_date": datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)},
        {"type": "MaskSecret", "value": ["s" * 70000]},
        None,
    ]  # fmt: skip
    stream = b""
    frames = []
    for i, body in enumerate(bodies):
        data = encode_request(i, body)
        frames.append(RawFrame(data[4:], len(stream)))
        stream += data
    return stream, frames


def _drain(decoder: FrameDecoder) -> tuple[list[RawFrame], list[ProtocolError]]:
    """Every frame and framing error currently available, stepping past errors."""
    frames: list[RawFrame] = []
    errors: list[ProtocolError] = []
    while True:
        try:
            frame = decoder.next_frame()
        except ProtocolError as exc:
            errors.append(exc)
            continue
        if frame is None:
            return frames, errors
        frames.append(frame)


def _feed_chunks(data: bytes, cuts: list[int]) -> tuple[list[RawFrame], list[ProtocolError]]:
    decoder = FrameDecoder()
    frames: list[RawFrame] = []
    errors: list[ProtocolError] = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for lo, hi in itertools.pairwise(bounds):
        decoder.feed(data[lo:hi])
        got, errs = _drain(decoder)
        frames += got
        errors += errs
    decoder.end_of_stream()
    return frames, errors


class TestChunking:
    def test_one_chunk_yields_every_frame_with_its_stream_offset(self):
        """A whole stream fed at once decodes to its frames, each with its header's offset."""
        stream, expected = _sample_stream()
        assert _feed_chunks(stream, []) == (expected, [])

    def test_one_byte_at_a_time_yields_identical_frames(self):
        """Feeding a stream one byte at a time yields exactly the frames one big chunk yields."""
        stream, expected = _sample_stream()
        decoder = FrameDecoder()
        frames: list[RawFrame] = []
        for i in range(len(stream)):
            decoder.feed(stream[i : i + 1])
            frames += _drain(decoder)[0]
        decoder.end_of_stream()
        assert frames == expected

    @settings(max_examples=60, deadline=None)
    @given(cuts=st.lists(st.integers(min_value=0, max_value=200_000), max_size=40))
    def test_random_chunkings_yield_identical_frames(self, cuts):
        """Any chunking of a stream yields the same frames, offsets included, and no error."""
        stream, expected = _sample_stream()
        assert _feed_chunks(stream, cuts) == (expected, [])

    def test_frame_straddling_chunk_boundaries_comes_out_once_complete(self):
        """A frame whose header and payload are split across chunks appears only when whole."""
        data = encode_request(1, GET_VARIABLE)
        decoder = FrameDecoder()
        decoder.feed(data[:2])  # half a header
        assert decoder.next_frame() is None
        decoder.feed(data[2:9])  # rest of header and a few payload bytes
        assert decoder.next_frame() is None
        assert decoder.buffered == 9
        decoder.feed(data[9:])
        assert decoder.next_frame() == RawFrame(data[4:], 0)
        assert decoder.next_frame() is None
        assert decoder.buffered == 0

    def test_many_frames_in_one_chunk_all_come_out(self):
        """A single chunk holding a thousand frames yields all of them in order."""
        chunk = b"".join(encode_request(i, {"type": "GetVariable", "key": f"k{i}"}) for i in
                         range(1000))  # fmt: skip
        decoder = FrameDecoder()
        decoder.feed(chunk)
        frames = list(decoder)
        assert [decode_request(f.payload).id for f in frames] == list(range(1000))
        assert decoder.buffered == 0

    def test_offsets_are_stream_offsets_across_many_frames(self):
        """Offsets keep counting from the first byte of the connection across many feeds."""
        datas = [encode_request(i, {"type": "GetVariable", "key": "k" * (i % 50)}) for i in
                 range(5000)]  # fmt: skip
        stream = b"".join(datas)
        assert len(stream) > 3 * 65536  # the decoder compacts its buffer on the way
        expected, pos = [], 0
        for d in datas:
            expected.append(pos)
            pos += len(d)
        for size in (7777, 100_000):
            decoder = FrameDecoder()
            offsets = []
            for lo in range(0, len(stream), size):
                decoder.feed(stream[lo : lo + size])
                offsets += [f.offset for f in decoder]
            assert offsets == expected
            assert decoder.offset == len(stream)

    def test_decoded_frame_keeps_the_offset_given_to_decode_request(self):
        """decode_request copies the frame's stream offset and raw payload into the result."""
        decoder = FrameDecoder()
        decoder.feed(encode_request(0, None) + encode_request(1, GET_VARIABLE))
        raw = list(decoder)[1]
        frame = decode_request(raw.payload, raw.offset)
        assert (frame.id, frame.body, frame.offset, frame.payload) == (
            1,
            GET_VARIABLE,
            raw.offset,
            raw.payload,
        )
        assert frame.type == "GetVariable"


class TestOversizedFrames:
    def test_4gib_header_is_rejected_right_after_its_fourth_byte(self):
        """A 4 GiB length header raises frame-too-large as soon as its 4 bytes are in."""
        decoder = FrameDecoder()
        for byte in b"\xff\xff\xff":
            decoder.feed(bytes([byte]))
            assert decoder.next_frame() is None
        decoder.feed(b"\xff" + b"a little data")
        with pytest.raises(ProtocolError) as info:
            decoder.next_frame()
        assert info.value.rule == "frame-too-large"
        assert info.value.offset == 0
        assert str(2**32 - 1) in info.value.message
        assert decoder.buffered == 0
        assert decoder.next_frame() is None  # still discarding, not raising again

    def test_discarding_an_announced_payload_allocates_almost_nothing(self):
        """Feeding 5 MB of an oversized payload keeps the buffer empty and peak memory < 1 MB."""
        decoder = FrameDecoder()
        decoder.feed(b"\xff\xff\xff\xff" + b"x" * 10)
        with pytest.raises(ProtocolError, match="frame-too-large"):
            decoder.next_frame()
        chunk = b"\x00" * 65536
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            for _ in range(80):  # 5 MiB
                decoder.feed(chunk)
                assert decoder.next_frame() is None
                assert decoder.buffered == 0
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 1_000_000
        assert decoder.bytes_discarded == 10 + 80 * 65536

    def test_decoder_resynchronises_after_a_fully_sent_4gib_payload(self):
        """After the whole 4 GiB payload has been discarded, the next frame decodes normally."""
        length = 2**32 - 1
        decoder = FrameDecoder()
        decoder.feed(b"\xff\xff\xff\xff" + b"y" * 100)
        with pytest.raises(ProtocolError, match="frame-too-large"):
            decoder.next_frame()
        chunk = memoryview(bytes(1 << 20))
        remaining = length - 100
        tracemalloc.start()
        try:
            while remaining > len(chunk):
                decoder.feed(chunk)
                remaining -= len(chunk)
            assert decoder.next_frame() is None
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 1_000_000
        follow = encode_request(1, GET_VARIABLE)
        decoder.feed(bytes(chunk[:remaining]) + follow)
        frame = decoder.next_frame()
        assert frame == RawFrame(follow[4:], 4 + length)
        assert decode_request(frame.payload).body == GET_VARIABLE
        assert decoder.bytes_discarded == length
        decoder.end_of_stream()

    def test_oversized_frame_within_one_chunk_is_skipped_and_the_next_decoded(self):
        """With a small limit, an oversized frame is skipped and the frame after it decodes."""
        decoder = FrameDecoder(max_frame_size=16)
        big = _frame(b"z" * 100)
        small = encode_request(2, None)
        assert len(small) - 4 <= 16
        decoder.feed(big + small)
        frames, errors = _drain(decoder)
        assert [e.rule for e in errors] == ["frame-too-large"]
        assert errors[0].offset == 0
        assert frames == [RawFrame(small[4:], len(big))]

    def test_end_of_stream_while_discarding_is_a_truncated_frame(self):
        """EOF in the middle of a discarded payload reports truncated-frame with the shortfall."""
        decoder = FrameDecoder(max_frame_size=16)
        decoder.feed(_frame(b"z" * 100)[:50])
        _drain(decoder)
        with pytest.raises(ProtocolError) as info:
            decoder.end_of_stream()
        assert info.value.rule == "truncated-frame"
        assert "54 bytes short" in info.value.message

    def test_max_frame_size_outside_u32_range_is_refused(self):
        """The decoder refuses a limit that a u32 length header could never express."""
        with pytest.raises(ValueError):
            FrameDecoder(max_frame_size=0)
        with pytest.raises(ValueError):
            FrameDecoder(max_frame_size=2**32)


class TestZeroLengthAndTruncation:
    def test_zero_length_frame_is_reported_at_its_offset_and_decoding_continues(self):
        """A zero-length frame raises zero-length-frame at its offset; the next frame decodes."""
        first = encode_request(0, GET_VARIABLE)
        after = encode_request(1, None)
        decoder = FrameDecoder()
        decoder.feed(first + b"\x00\x00\x00\x00" + after)
        frames, errors = _drain(decoder)
        assert [(e.rule, e.offset) for e in errors] == [("zero-length-frame", len(first))]
        assert frames == [RawFrame(first[4:], 0), RawFrame(after[4:], len(first) + 4)]
        decoder.end_of_stream()

    def test_truncated_payload_at_end_of_stream_names_the_bytes_that_arrived(self):
        """EOF inside a payload raises truncated-frame saying how many payload bytes arrived."""
        decoder = FrameDecoder()
        ok = encode_request(0, None)
        decoder.feed(ok + _frame(b"0123456789")[:7])
        assert len(list(decoder)) == 1
        with pytest.raises(ProtocolError) as info:
            decoder.end_of_stream()
        assert info.value.rule == "truncated-frame"
        assert info.value.offset == len(ok)
        assert "3 of 10 payload bytes" in info.value.message

    def test_truncated_header_at_end_of_stream_names_the_bytes_that_arrived(self):
        """EOF inside a length header raises truncated-frame saying 2 of 4 header bytes came."""
        decoder = FrameDecoder()
        decoder.feed(b"\x00\x00")
        assert decoder.next_frame() is None
        with pytest.raises(ProtocolError) as info:
            decoder.end_of_stream()
        assert info.value.rule == "truncated-frame"
        assert "2 of 4 length-header bytes" in info.value.message

    def test_clean_end_of_stream_raises_nothing(self):
        """EOF right after a complete frame is not an error."""
        decoder = FrameDecoder()
        decoder.feed(encode_request(0, None))
        list(decoder)
        decoder.end_of_stream()


def _request_error(payload: bytes, offset: int = 0) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_request(payload, offset)
    return info.value


class TestDecodeRequest:
    def test_three_element_request_decodes(self):
        """[id, body, carrier] decodes into id, body and context carrier."""
        carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        frame = decode_request(packb([5, GET_VARIABLE, carrier]))
        assert (frame.id, frame.body, frame.context_carrier, frame.elements) == (
            5,
            GET_VARIABLE,
            carrier,
            3,
        )

    def test_two_element_request_decodes_without_carrier(self):
        """The 2-element [id, body] form of older runtimes decodes with no carrier."""
        frame = decode_request(packb([5, GET_VARIABLE]))
        assert (frame.body, frame.context_carrier, frame.elements) == (GET_VARIABLE, None, 2)

    def test_extra_trailing_elements_are_ignored(self):
        """Elements past the third are ignored, as msgspec ignores them."""
        frame = decode_request(packb([5, GET_VARIABLE, None, "extra", 1]))
        assert (frame.id, frame.body, frame.elements) == (5, GET_VARIABLE, 5)

    def test_map_payload_is_not_an_array(self):
        """A payload holding a map instead of an array is rejected as not-an-array."""
        err = _request_error(packb(GET_VARIABLE), offset=40)
        assert (err.rule, err.offset) == ("not-an-array", 40)
        assert "map" in err.message

    def test_one_element_request_has_too_few_elements(self):
        """A request [id] without its body is rejected as too-few-elements."""
        assert _request_error(packb([1])).rule == "too-few-elements"

    def test_string_id_is_a_bad_id(self):
        """A request whose id is a string is rejected as bad-id."""
        assert _request_error(packb(["1", GET_VARIABLE])).rule == "bad-id"

    def test_bool_id_is_a_bad_id(self):
        """A bool is not an integer id, even though Python thinks True == 1."""
        assert _request_error(packb([True, GET_VARIABLE])).rule == "bad-id"

    def test_list_body_is_a_bad_body_carrying_the_request_id(self):
        """A body that is a list is rejected as bad-body, with the readable request id attached."""
        err = _request_error(packb([7, ["GetVariable", "foo"]]))
        assert (err.rule, err.request_id) == ("bad-body", 7)

    def test_non_map_carrier_is_a_bad_carrier(self):
        """A context carrier that is not a map or nil is rejected, naming the request id."""
        err = _request_error(packb([8, GET_VARIABLE, "traceparent"]))
        assert (err.rule, err.request_id) == ("bad-carrier", 8)

    def test_invalid_msgpack_is_bad_msgpack(self):
        """The never-used msgpack byte 0xc1 is rejected as bad-msgpack."""
        assert _request_error(b"\xc1").rule == "bad-msgpack"

    def test_trailing_bytes_after_the_array_are_bad_msgpack(self):
        """Stray bytes after the array inside a payload are rejected as bad-msgpack."""
        err = _request_error(packb([1, GET_VARIABLE, None]) + b"\x00\x01")
        assert err.rule == "bad-msgpack"
        assert "2 stray bytes" in err.message

    def test_protocol_error_str_names_rule_and_offset(self):
        """str(ProtocolError) starts with the rule and ends with the byte offset."""
        err = _request_error(b"\xc1", offset=123)
        assert str(err).startswith("bad-msgpack: ")
        assert str(err).endswith("(at byte offset 123)")


class TestDecodeResponse:
    @pytest.mark.parametrize(
        ("value", "body", "error"),
        [
            ([3], None, None),
            ([3, GET_VARIABLE], GET_VARIABLE, None),
            ([3, None, {"type": "ErrorResponse", "error": "API_SERVER_ERROR", "detail": None}],
             None, {"type": "ErrorResponse", "error": "API_SERVER_ERROR", "detail": None}),
            ([3, GET_VARIABLE, None, "future", 4], GET_VARIABLE, None),
        ],
        ids=["ack-1", "result-2", "error-3", "extras-5"],
    )  # fmt: skip
    def test_response_shapes_airflow_may_send_decode(self, value, body, error):
        """[id], [id, body], [id, body, error] and longer arrays all decode; extras are ignored."""
        frame = decode_response(packb(value))
        assert (frame.id, frame.body, frame.error, frame.elements) == (3, body, error, len(value))

    def test_empty_response_array_has_too_few_elements(self):
        """A response [] without even an id is rejected as too-few-elements."""
        with pytest.raises(ProtocolError, match="too-few-elements"):
            decode_response(packb([]))

    def test_non_map_error_slot_is_bad_error(self):
        """An error slot that is neither a map nor nil is rejected as bad-error."""
        with pytest.raises(ProtocolError) as info:
            decode_response(packb([4, None, "boom"]))
        assert (info.value.rule, info.value.request_id) == ("bad-error", 4)

    def test_response_type_comes_from_body_or_error(self):
        """ResponseFrame.type is the body's type, else the error's type, else None."""
        assert decode_response(packb([1, {"type": "OKResponse", "ok": True}])).type == "OKResponse"
        assert decode_response(packb([1, None, {"type": "ErrorResponse"}])).type == "ErrorResponse"
        assert decode_response(packb([1])).type is None


class TestEncoding:
    def test_get_variable_request_has_the_exact_bytes_airflow_writes(self):
        """GetVariable(key="foo") as request 1 is the 0x1d-byte payload [1, {key, type}, nil]."""
        # protocol.md §1.2 shows a 2-element array of length 28; Airflow's runtime actually
        # writes the trailing nil carrier too (msgspec keeps it), hence 29 = 0x1d bytes.
        assert encode_request(1, GET_VARIABLE) == GET_VARIABLE_FRAME

    def test_get_variable_bytes_match_protocol_md_modulo_the_third_element(self):
        """protocol.md's 2-element example differs from ours only in length, array size, nil."""
        doc = bytes.fromhex(
            "0000001c 92 01 82 a3 6b6579 a3 666f6f a4 74797065 ab 4765745661726961626c65"
        )
        ours = encode_request(1, GET_VARIABLE)
        assert ours == b"\x00\x00\x00\x1d" + b"\x93" + doc[5:] + b"\xc0"
        assert decode_request(doc[4:]).body == decode_request(ours[4:]).body == GET_VARIABLE

    def test_empty_ack_has_the_exact_bytes_airflow_writes(self):
        """The empty ack to request 1 is 00 00 00 04 93 01 c0 c0."""
        assert encode_response(1) == bytes.fromhex("00000004 93 01 c0 c0")

    def test_body_keys_keep_their_order(self):
        """Body keys are written in the order the mapping gives them."""
        data = encode_request(1, {"type": "GetVariable", "key": "foo"})
        assert data[7:13] == b"\xa4type\xab"

    @pytest.mark.parametrize(
        "data",
        [
            encode_request(0, None),
            encode_request(1, GET_VARIABLE),
            encode_request(2, GET_VARIABLE, {"traceparent": "00-a-b-01"}),
            encode_response(0),
            encode_response(1, {"type": "OKResponse", "ok": True}),
            encode_response(2, None, {"type": "ErrorResponse", "error": "GENERIC_ERROR"}),
        ],
    )
    def test_encoders_always_write_three_element_arrays(self, data):
        """encode_request and encode_response always write [id, x, y], never a shorter array."""
        (length,) = struct.unpack(">I", data[:4])
        assert length == len(data) - 4
        value = msgpack.unpackb(data[4:], raw=False, timestamp=3)
        assert data[4] == 0x93
        assert len(value) == 3

    def test_error_reply_puts_the_error_in_the_third_slot(self):
        """An error reply decodes as [id, nil, error]."""
        err = {"error": "API_SERVER_ERROR", "detail": {"status_code": 500}, "type": "ErrorResponse"}
        frame = decode_response(encode_response(3, error=err)[4:])
        assert (frame.id, frame.body, frame.error) == (3, None, err)


def _nested(depth: int) -> bytes:
    return b"\x91" * depth + b"\xc0"


#: Payloads that are malformed in some way a hostile or buggy peer could produce.
MALFORMED = {
    "empty": b"",
    "nil": b"\xc0",
    "int": b"\x05",
    "reserved-byte": b"\xc1",
    "truncated-array": b"\x93\x01",
    "truncated-str": b"\x93\x01\x81\xa4typ",
    "invalid-utf8-value": b"\x92\x01\x81\xa4type\xa2\xff\xfe",
    "invalid-utf8-key": b"\x92\x01\x81\xa2\xc3\x28\xc0",
    "invalid-utf8-id": b"\x92\xa2\xff\xfe\xc0",
    "deep-arrays": b"\x92\x01" + _nested(200_000),
    "deep-maps": b"\x92\x01" + b"\x81\xa1k" * 200_000 + b"\xc0",
    "ext-body": b"\x92\x01\xd4\x05\x00",
    "ext-id": b"\x92\xd4\x05\x00\xc0",
    "timestamp-id": b"\x92\xd6\xff\x00\x00\x00\x01\xc0",
    "bad-timestamp-size": b"\x92\x01\x81\xa1t\xd5\xff\x00\x00",
    "bad-timestamp-nanoseconds": b"\x92\x01\x81\xa1t\xd7\xff"
    + (2**30 - 1 << 34).to_bytes(8, "big"),
    "timestamp-beyond-9999": b"\x92\x01\x81\xa1t\xc7\x0c\xff" + struct.pack(">Iq", 0, 2**62),
    "timestamp-before-1": b"\x92\x01\x81\xa1t\xc7\x0c\xff" + struct.pack(">Iq", 0, -(2**40)),
    "array-key": b"\x92\x01\x81\x91\x01\x02",
    "map-key": b"\x92\x01\x81\x81\x01\x02\x03",
    "huge-array-header": b"\xdd\xff\xff\xff\xff",
    "huge-map-header": b"\x92\x01\xdf\xff\xff\xff\xff",
    "huge-str-header": b"\x92\x01\xdb\xff\xff\xff\xff",
    "huge-bin-header": b"\x92\x01\xc6\xff\xff\xff\xff",
    "huge-ext-header": b"\x92\x01\xc9\xff\xff\xff\xff\x05",
    "float-id": b"\x92\xcb" + struct.pack(">d", 1.0) + b"\xc0",
    "nil-id": b"\x92\xc0\xc0",
    "str-body": b"\x92\x01\xa3abc",
    "bin-body": b"\x92\x01\xc4\x01a",
    "int-body": b"\x92\x01\x05",
    "trailing": b"\x92\x01\xc0\xc0",
}

#: Payloads that are odd but still decode: the envelope is sound and validation judges the body.
ODD_BUT_DECODABLE = {
    "int-keys": (b"\x92\x01\x82\x01\x02\xa4type\xabGetVariable", {1: 2, "type": "GetVariable"}),
    "nil-key": (b"\x92\x01\x81\xc0\x01", {None: 1}),
    "ext-value": (
        b"\x92\x01\x82\xa4type\xaaMaskSecret\xa5value\xd4\x05\x00",
        {"type": "MaskSecret", "value": msgpack.ExtType(5, b"\x00")},
    ),
    "huge-id": (b"\x92\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xc0", None),
    "negative-id": (b"\x92\xd3\x80\x00\x00\x00\x00\x00\x00\x00\xc0", None),
}


class TestOnlyProtocolErrors:
    @pytest.mark.parametrize("payload", list(MALFORMED.values()), ids=list(MALFORMED))
    def test_malformed_request_raises_only_protocol_error(self, payload):
        """decode_request turns every malformed payload into a ProtocolError and nothing else."""
        with pytest.raises(ProtocolError) as info:
            decode_request(payload, offset=99)
        assert info.value.offset == 99
        assert info.value.rule in {
            "bad-msgpack",
            "frame-too-deep",
            "not-an-array",
            "too-few-elements",
            "bad-id",
            "bad-body",
        }

    @pytest.mark.parametrize("payload", list(MALFORMED.values()), ids=list(MALFORMED))
    def test_malformed_response_raises_only_protocol_error(self, payload):
        """decode_response refuses every malformed payload with a ProtocolError naming the rule."""
        with pytest.raises(ProtocolError) as info:
            decode_response(payload, offset=7)
        assert info.value.offset == 7
        assert info.value.rule in {"bad-msgpack", "not-an-array", "bad-id", "bad-body"}

    @pytest.mark.parametrize(
        ("payload", "body"),
        list(ODD_BUT_DECODABLE.values()),
        ids=list(ODD_BUT_DECODABLE),
    )
    def test_odd_but_well_formed_envelopes_decode_and_validate_without_crashing(
        self, payload, body
    ):
        """Non-string keys, ext values and extreme ids decode; validation reports, never raises."""
        frame = decode_request(payload)
        assert frame.body == body
        problems = validate_body(frame.body, "MaskSecret" if frame.type == "MaskSecret" else None)
        assert all(isinstance(str(p), str) for p in problems)

    def test_non_string_keys_on_a_forbid_model_are_reported_as_unknown_fields(self):
        """An int key on SucceedTask is an unknown field, not a crash."""
        body = {"type": "SucceedTask", "end_date": datetime(2024, 1, 1, tzinfo=UTC), 3: "x"}
        frame = decode_request(encode_request(1, body)[4:])
        assert [p.rule for p in validate_body(frame.body)] == ["unknown-field"]

    def test_deeply_nested_response_is_bad_msgpack(self):
        """A body nested 200,000 arrays deep is refused as bad-msgpack, not a RecursionError."""
        with pytest.raises(ProtocolError, match="bad-msgpack"):
            decode_response(b"\x92\x01" + _nested(200_000))
