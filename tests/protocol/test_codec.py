"""Values on the wire: timestamps, UUIDs, durations, naive datetimes, the transcript JSON view."""

from __future__ import annotations

import enum
import json
import math
import struct
import uuid
from datetime import UTC, datetime, timedelta, timezone

import msgpack
import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from supervisor_sim.protocol import (
    ProtocolError,
    format_duration,
    from_jsonable,
    packb,
    parse_datetime,
    parse_duration,
    to_jsonable,
    unpackb,
    validate_body,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TS64_MAX = EPOCH + timedelta(seconds=2**34 - 1, microseconds=999_999)


def ts32(sec: int) -> bytes:
    return b"\xd6\xff" + struct.pack(">I", sec)


def ts64(sec: int, nsec: int) -> bytes:
    return b"\xd7\xff" + struct.pack(">Q", nsec << 34 | sec)


def ts96(sec: int, nsec: int) -> bytes:
    return b"\xc7\x0c\xff" + struct.pack(">Iq", nsec, sec)


class TestTimestampDecoding:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (ts32(0), EPOCH),
            (ts32(1_700_000_000), datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
            (ts32(2**32 - 1), datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC)),
            (ts64(1_700_000_000, 123_456_000), datetime(2023, 11, 14, 22, 13, 20, 123456, UTC)),
            (ts64(2**32 + 1, 0), datetime(2106, 2, 7, 6, 28, 17, tzinfo=UTC)),
            (ts64(2**34 - 1, 999_999_000), TS64_MAX),
            (ts96(-1, 500_000_000), datetime(1969, 12, 31, 23, 59, 59, 500000, UTC)),
            (ts96(-315_619_200, 0), datetime(1960, 1, 1, tzinfo=UTC)),
            (ts96(-62_135_596_800, 0), datetime(1, 1, 1, tzinfo=UTC)),
            (ts96(2**34 + 5, 1000), EPOCH + timedelta(seconds=2**34 + 5, microseconds=1)),
            (ts96(7_258_118_400, 0), datetime(2200, 1, 1, tzinfo=UTC)),
        ],
        ids=[
            "32-epoch", "32-2023", "32-max-2106", "64-micros", "64-after-2106", "64-max",
            "96-pre-1970-fraction", "96-1960", "96-year-1", "96-after-2514", "96-2200",
        ],
    )  # fmt: skip
    def test_all_three_sizes_decode_to_aware_utc_datetimes(self, raw, expected):
        """Timestamp ext -1 in its 32-, 64- and 96-bit forms decodes to the UTC-aware instant."""
        value = unpackb(raw)
        assert isinstance(value, datetime)
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
        assert value == expected
        assert value == msgspec.msgpack.decode(raw)

    @pytest.mark.parametrize(
        "nsec", [0, 1, 499, 500, 999, 123_456_789, 123_458_500, 999_999_499, 999_999_999]
    )
    @pytest.mark.parametrize("sec", [-1, 0, 1_700_000_000, 2**33])
    def test_nanoseconds_round_to_the_microsecond_msgspec_sees(self, sec, nsec):
        """Sub-microsecond timestamps (from Go, Rust, ...) decode to the instant msgspec decodes."""
        for raw in (ts96(sec, nsec), b"\x91" + ts96(sec, nsec), b"\x81\xa1t" + ts96(sec, nsec)):
            assert unpackb(raw) == msgspec.msgpack.decode(raw)
        if sec >= 0:
            assert unpackb(ts64(sec, nsec)) == msgspec.msgpack.decode(ts64(sec, nsec))

    def test_timestamps_nested_anywhere_decode(self):
        """Timestamps inside arrays, map values and map keys all become datetimes."""
        raw = b"\x92\x01\x82\xa1a\x91" + ts32(5) + ts32(6) + b"\xa1b"
        assert unpackb(raw) == [
            1,
            {"a": [EPOCH + timedelta(seconds=5)], EPOCH + timedelta(seconds=6): "b"},
        ]

    @pytest.mark.parametrize(
        "raw",
        [ts96(2**62, 0), ts96(-(2**62), 0), ts96(253_402_300_799, 999_999_999), ts64(5, 10**9)],
        ids=["far-future", "far-past", "rounds-past-9999", "nanoseconds-over-1e9"],
    )
    def test_unrepresentable_timestamps_are_protocol_errors(self, raw):
        """A timestamp outside years 1-9999, or with nanoseconds >= 1e9, is bad-msgpack."""
        with pytest.raises(ProtocolError) as info:
            unpackb(raw, offset=12)
        assert (info.value.rule, info.value.offset) == ("bad-msgpack", 12)


AWARE_DATETIMES = [
    datetime(2024, 1, 1, tzinfo=UTC),
    datetime(2024, 1, 1, 12, 30, 45, 123456, tzinfo=UTC),
    datetime(2024, 6, 1, 8, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1900, 1, 1, tzinfo=timezone(timedelta(hours=-8))),
    datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC),
    datetime(2106, 2, 7, 6, 28, 16, tzinfo=UTC),
    datetime(2300, 5, 5, 5, 5, 5, 5, tzinfo=UTC),
    datetime(2600, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
]


class TestTimestampEncoding:
    @pytest.mark.parametrize("value", AWARE_DATETIMES, ids=str)
    def test_aware_datetimes_encode_exactly_as_msgspec_does(self, value):
        """packb picks the same smallest timestamp form, byte for byte, as msgspec."""
        assert packb(value) == msgspec.msgpack.encode(value)
        assert unpackb(packb(value)) == value

    @pytest.mark.parametrize(
        ("value", "prefix"),
        [
            (datetime(2024, 1, 1, tzinfo=UTC), b"\xd6\xff"),
            (datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC), b"\xd7\xff"),
            (datetime(2200, 1, 1, tzinfo=UTC), b"\xd7\xff"),
            (datetime(1969, 1, 1, tzinfo=UTC), b"\xc7\x0c\xff"),
            (datetime(2600, 1, 1, tzinfo=UTC), b"\xc7\x0c\xff"),
        ],
        ids=["whole-seconds", "micros", "after-2106", "pre-1970", "after-2514"],
    )
    def test_smallest_form_is_chosen(self, value, prefix):
        """Whole seconds in u32 use ts32, other values within 34 bits ts64, the rest ts96."""
        assert packb(value).startswith(prefix)

    @settings(max_examples=200, deadline=None)
    @given(
        st.datetimes(
            min_value=datetime(2, 1, 1),
            max_value=datetime(9998, 12, 31),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3, minutes=-30))]),
        )
    )
    def test_any_aware_datetime_encodes_like_msgspec(self, value):
        """For any aware datetime, packb writes msgspec's bytes and decodes to the same instant."""
        assert packb(value) == msgspec.msgpack.encode(value)
        assert unpackb(packb(value)) == value


class TestOtherValues:
    def test_uuid_encodes_as_its_canonical_string(self):
        """A UUID travels as its canonical lowercase 8-4-4-4-12 string, as msgspec writes it."""
        value = uuid.UUID("0195E5C9-7D3A-7B5E-9A3B-1F2E3D4C5B6A")
        assert packb(value) == msgspec.msgpack.encode(value)
        assert unpackb(packb(value)) == "0195e5c9-7d3a-7b5e-9a3b-1f2e3d4c5b6a"

    @pytest.mark.parametrize(
        "value",
        [
            timedelta(0),
            timedelta(seconds=30),
            timedelta(hours=1),
            timedelta(days=1),
            timedelta(days=1, seconds=30, microseconds=500000),
            timedelta(days=400, microseconds=1),
            timedelta(microseconds=10),
            timedelta(seconds=-1),
            timedelta(days=-1),
            timedelta(days=-3, seconds=5),
            timedelta(microseconds=-1),
            timedelta.max,
            timedelta.min,
        ],
        ids=repr,
    )
    def test_timedelta_encodes_as_msgspec_iso_duration(self, value):
        """A timedelta becomes the same ISO-8601 duration string msgspec writes, and parses back."""
        ours = unpackb(packb(value))
        assert ours == msgspec.msgpack.decode(msgspec.msgpack.encode(value))
        assert ours == format_duration(value)
        assert parse_duration(ours) == value
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(ours), type=timedelta) == value

    @settings(max_examples=200, deadline=None)
    @given(st.timedeltas())
    def test_any_timedelta_encodes_like_msgspec_and_round_trips(self, value):
        """For any timedelta, format_duration matches msgspec and parse_duration inverts it."""
        text = format_duration(value)
        assert text == msgspec.msgpack.decode(msgspec.msgpack.encode(value))
        assert parse_duration(text) == value

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("PT3600S", timedelta(hours=1)),
            ("P1DT30.5S", timedelta(days=1, seconds=30.5)),
            ("PT1H30M", timedelta(minutes=90)),
            ("P2W", timedelta(weeks=2)),
            ("-PT1S", timedelta(seconds=-1)),
            ("P0D", timedelta(0)),
            ("P1Y35D", timedelta(days=400)),
            ("P1Y2M3W4DT5H6M7.5S", timedelta(days=365 + 60 + 21 + 4, seconds=18367.5)),
        ],
    )
    def test_parse_duration_accepts_iso_units(self, text, expected):
        """parse_duration reads Y (365 days), M (30 days), W, D, H, M and S units and a leading
        sign, as pydantic does."""
        assert parse_duration(text) == expected

    @pytest.mark.parametrize("text", ["", "P", "PT", "-P", "30S", "P1D1Y", "PT1.S", "bogus"])
    def test_parse_duration_rejects_non_durations(self, text):
        """parse_duration raises ValueError for text that is not an ISO duration it supports."""
        with pytest.raises(ValueError):
            parse_duration(text)

    def test_parse_datetime_keeps_the_zone(self):
        """parse_datetime reads RFC 3339 with Z or an offset into an aware datetime."""
        assert parse_datetime("2024-01-01T00:00:00Z") == datetime(2024, 1, 1, tzinfo=UTC)
        assert parse_datetime("2024-01-01T02:00:00+02:00") == datetime(2024, 1, 1, tzinfo=UTC)
        assert parse_datetime("2024-01-01T00:00:00").tzinfo is None

    def test_enum_members_encode_as_their_values(self):
        """An Enum member travels as its value, as msgspec writes it."""

        class State(enum.Enum):
            FAILED = "failed"

        assert packb(State.FAILED) == msgspec.msgpack.encode(State.FAILED)

    def test_unknown_objects_cannot_be_encoded(self):
        """packb refuses objects Airflow's encoder hook would also refuse."""
        with pytest.raises(TypeError):
            packb(object())


class TestNaiveDatetimes:
    @pytest.mark.parametrize(
        "value",
        [
            datetime(2024, 1, 1),
            datetime(2024, 1, 1, 1, 2, 3, 120000),
            datetime(1960, 1, 1, 0, 0, 1),
        ],
        ids=str,
    )
    def test_naive_datetime_encodes_as_an_iso_string_without_offset(self, value):
        """A naive datetime is written as msgspec writes it: an ISO string with no offset."""
        assert packb(value) == msgspec.msgpack.encode(value)
        text = unpackb(packb(value))
        assert text == value.isoformat()
        assert not text.endswith("Z") and "+" not in text

    def test_validation_flags_a_naive_datetime_that_went_over_the_wire(self):
        """The string a naive end_date turns into is flagged as naive-datetime by validation."""
        body = unpackb(packb({"type": "SucceedTask", "end_date": datetime(2024, 1, 1)}))
        problems = validate_body(body, "SucceedTask")
        assert [(p.path, p.rule) for p in problems] == [("SucceedTask.end_date", "naive-datetime")]


JSONABLE_VALUES = {
    "aware-datetime": datetime(2024, 1, 1, 12, 0, 0, 5, tzinfo=UTC),
    "offset-datetime": datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))),
    "naive-datetime": datetime(2024, 1, 1, 12),
    "pre-1970": datetime(1901, 1, 1, tzinfo=UTC),
    "bytes": b"\x00\xff binary",
    "ext": msgpack.ExtType(5, b"\x01\x02"),
    "int-keys": {1: "a", 2: ["b"]},
    "mixed-keys": {"a": 1, None: 2, 3.5: 3, (1, 2): 4},
    "tag-lookalike": {"$ts": "not a timestamp"},
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "tuple": (1, "two", None),
    "nested": {
        "type": "StartupDetails",
        "ti": {"id": "0195e5c9-7d3a-7b5e-9a3b-1f2e3d4c5b6a", "map_index": -1},
        "start_date": datetime(2024, 1, 1, tzinfo=UTC),
        "list": [b"x", [msgpack.ExtType(1, b""), {"deep": [math.inf, {2: None}]}]],
        "big": 2**64 - 1,
        "negative": -(2**63),
        "float": 1.5,
        "bool": True,
        "unicode": "ünï ✓",
    },
}


def _same(a, b) -> bool:
    """Equality that treats nan as equal to nan and checks datetime zones are preserved."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, datetime):
        return isinstance(b, datetime) and a == b and (a.tzinfo is None) == (b.tzinfo is None)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    return type(a) is type(b) and a == b


class TestJsonable:
    @pytest.mark.parametrize("value", list(JSONABLE_VALUES.values()), ids=list(JSONABLE_VALUES))
    def test_to_jsonable_round_trips_through_json_text(self, value):
        """to_jsonable output survives json.dumps/loads and from_jsonable restores the value."""
        text = json.dumps(to_jsonable(value), allow_nan=False)
        assert _same(value, from_jsonable(json.loads(text)))

    def test_aware_datetimes_are_written_in_utc_with_z(self):
        """An aware datetime becomes a {"$ts": "...Z"} tag holding its UTC instant."""
        value = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
        assert to_jsonable(value) == {"$ts": "2024-01-01T10:00:00Z"}

    def test_plain_json_values_pass_through_untouched(self):
        """Strings, numbers, bools, nil, lists and string-keyed maps are left as they are."""
        value = {"a": [1, 2.5, "x", None, True, {"b": {}}]}
        assert to_jsonable(value) == value
        assert from_jsonable(value) == value

    def test_decoded_frames_round_trip(self):
        """A decoded wire value with timestamps, bin and ext round-trips through the JSON view."""
        wire = [
            1,
            {"type": "X", "when": datetime(2024, 1, 1, tzinfo=UTC), "b": b"\x01", 7: None},
            msgpack.ExtType(3, b"z"),
        ]
        decoded = unpackb(packb(wire))
        assert _same(decoded, from_jsonable(json.loads(json.dumps(to_jsonable(decoded)))))

    @settings(max_examples=100, deadline=None)
    @given(
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(min_value=-(2**63), max_value=2**64 - 1)
            | st.floats()
            | st.text()
            | st.binary(max_size=8)
            | st.datetimes(timezones=st.just(UTC)),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text() | st.integers(), children, max_size=4)
            ),
            max_leaves=20,
        )
    )
    def test_any_decoded_value_round_trips(self, value):
        """Any value msgpack can decode survives to_jsonable -> JSON text -> from_jsonable."""
        text = json.dumps(to_jsonable(value), allow_nan=False)
        assert _same(value, from_jsonable(json.loads(text)))
