"""The input limits: their bounds, and each breach refused with its rule at the point of entry.

Frames are checked by ``decode_request``, log lines by ``parse_log_line``; a breach names the
limit and never quotes the runtime's input. Masking scales with the number of secrets, and no
walk over a value recurses, however deep it is.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import sys
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from supervisor_sim.protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    LIMITS,
    Limits,
    Line,
    ProtocolError,
    SecretsMasker,
    _codec,
    _masking,
    decode_request,
    encode_request,
    packb,
    to_jsonable,
)
from supervisor_sim.protocol._limits import depth_exceeds
from supervisor_sim.protocol._lines import DEFAULT_MAX_LINE_LENGTH
from supervisor_sim.supervision._logs import parse_log_line

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SECRET = "hunter2-very-secret"


def nested(levels: int, leaf: Any = None, shape: str = "list") -> Any:
    value = leaf
    for _ in range(levels):
        value = [value] if shape == "list" else {"k": value} if shape == "map" else {1: value}
    return value


# --- the limits themselves ----------------------------------------------------------------


class TestLimits:
    def test_the_defaults_are_within_their_bounds(self) -> None:
        """Every default lies in its documented range, and the old constants are the defaults."""
        for field in dataclasses.fields(Limits):
            low, high = Limits.BOUNDS[field.name]
            assert low <= getattr(LIMITS, field.name) <= high, field.name
        assert DEFAULT_MAX_FRAME_SIZE == LIMITS.max_frame_size == 64 * 1024 * 1024
        assert DEFAULT_MAX_LINE_LENGTH == LIMITS.max_log_line == 1024 * 1024
        assert (LIMITS.max_frame_depth, LIMITS.max_log_depth, LIMITS.max_int_digits) == (
            64,
            64,
            640,
        )

    @pytest.mark.parametrize("name", sorted(Limits.BOUNDS))
    def test_a_value_outside_its_bounds_is_refused(self, name: str) -> None:
        """A limit below or above its range, or not an integer, is a ValueError naming it."""
        low, high = Limits.BOUNDS[name]
        for bad in (low - 1, high + 1, float(low), True if low > 1 else "1"):
            with pytest.raises(ValueError, match=name):
                Limits(**{name: bad})
        assert getattr(Limits(**{name: low}), name) == low

    def test_limits_are_frozen(self) -> None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            LIMITS.max_frame_depth = 1000  # type: ignore[misc]

    def test_depth_exceeds_follows_only_containers_and_any_depth(self) -> None:
        """The depth walk counts lists and dicts, and a 200,000-level value costs it no stack."""
        assert not depth_exceeds("x" * 100, 1)
        assert not depth_exceeds([], 1) and depth_exceeds([[]], 1)
        assert not depth_exceeds({"a": [1, {"b": 2}]}, 3) and depth_exceeds(
            {"a": [1, {"b": {}}]}, 3
        )
        assert depth_exceeds(nested(200_000), 64)
        assert not depth_exceeds([list(range(1000)) for _ in range(100)], 2)


# --- frames ------------------------------------------------------------------------------


def _request(value: Any, request_id: Any = 7) -> bytes:
    return packb([request_id, {"type": "SetXCom", "key": "k", "value": value}, None])


class TestFrameDepth:
    def test_a_frame_at_the_limit_decodes(self) -> None:
        """Envelope (1) + body (2) + 62 levels of value: exactly the 64-level limit."""
        frame = decode_request(_request(nested(62, 1)))
        assert frame.id == 7 and frame.body is not None
        assert not depth_exceeds([frame.id, frame.body], 64)

    @pytest.mark.parametrize("shape", ["list", "map", "int-key"])
    def test_one_level_more_is_refused_with_the_id_and_the_limit(self, shape: str) -> None:
        """One level over the limit: frame-too-deep, with the request's id so it gets an answer."""
        with pytest.raises(ProtocolError) as info:
            decode_request(_request(nested(63, SECRET, shape)), offset=40)
        err = info.value
        assert err.rule == "frame-too-deep"
        assert err.request_id == 7 and err.offset == 40
        assert "64" in err.message and "max_frame_depth" in err.message
        assert SECRET not in str(err)

    def test_the_limit_comes_from_the_limits_given(self) -> None:
        payload = _request(nested(20, 1))
        assert decode_request(payload).id == 7
        with pytest.raises(ProtocolError, match="frame-too-deep"):
            decode_request(payload, limits=Limits(max_frame_depth=16))

    @pytest.mark.parametrize("opener", [b"\x91", b"\x81\x01", b"\x81\xa1k"])
    def test_deeper_than_msgpacks_own_stack_is_still_too_deep_with_the_id(
        self, opener: bytes
    ) -> None:
        """200,000 levels: msgpack refuses them itself; the id is read from the bytes alone."""
        payload = b"\x93\xcd\x01\x00" + opener * 200_000 + b"\xc0\xc0"
        with pytest.raises(ProtocolError) as info:
            decode_request(payload)
        assert info.value.rule == "frame-too-deep"
        assert info.value.request_id == 256

    @pytest.mark.parametrize("first", [True, "7", None, 1.5])
    def test_no_id_is_made_up(self, first: Any) -> None:
        """A too-deep frame whose first element is not an integer carries no request id."""
        with pytest.raises(ProtocolError) as info:
            decode_request(_request(nested(70), first))
        assert info.value.request_id is None
        payload = b"\x93" + packb(first) + b"\x91" * 2000 + b"\xc0\xc0"
        with pytest.raises(ProtocolError) as info:
            decode_request(payload)
        assert info.value.rule == "frame-too-deep" and info.value.request_id is None

    def test_a_wide_shallow_frame_is_walked_and_accepted(self) -> None:
        """More containers than the depth limit (so the frame is walked), but shallow: decoded."""
        value = [{"i": i, "v": [i, {"w": [i]}]} for i in range(500)]
        assert decode_request(_request(value)).body["value"] == value  # type: ignore[index]

    def test_containers_are_counted_while_decoding(self) -> None:
        """The count bounds the depth, so a frame with few containers is never walked."""
        value, count = _codec.unpack_counted(encode_request(1, {"a": [[], {}], "b": [1]})[4:])
        assert count == 6  # the envelope, the body, [[], {}], [], {} and [1]
        assert value[1] == {"a": [[], {}], "b": [1]}

    def test_messages_describe_strings_without_quoting_them(self) -> None:
        """bad-id, bad-body and bad-carrier say what a value is, never what a string holds."""
        for payload in (
            packb([SECRET, {}]),
            packb([1, SECRET]),
            packb([1, {"type": "GetVariable", "key": "k"}, [SECRET]]),
        ):
            with pytest.raises(ProtocolError) as info:
                decode_request(payload)
            assert SECRET not in str(info.value)
        with pytest.raises(ProtocolError, match="got int 5"):
            decode_request(packb([1, 5]))


# --- log lines -----------------------------------------------------------------------------


def _parse(text: str | bytes, limits: Limits = LIMITS) -> tuple[dict[str, Any], list[str]]:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    record, violations = parse_log_line(Line(data), limits)
    return record, [v.rule for v in violations]


def _line_with(value: str) -> str:
    return '{"level": "info", "event": "e", "secret": "' + SECRET + '", "v": ' + value + "}"


class TestLogLines:
    def test_a_line_at_the_depth_limit_is_parsed(self) -> None:
        """The record object (1) and 63 levels of arrays: exactly the limit."""
        record, rules = _parse(_line_with("[" * 63 + "]" * 63))
        assert rules == [] and "malformed" not in record

    @pytest.mark.parametrize("levels", [64, 500, 100_000])
    def test_deeper_lines_are_kept_unparsed_with_log_too_deep(self, levels: int) -> None:
        """~500 levels crashed the masker, ~100k json.loads: both now stop before parsing."""
        text = _line_with("[" * levels + "]" * levels)
        record, rules = _parse(text)
        assert rules == ["log-too-deep"]
        assert record == {"level": "info", "event": text, "malformed": True}

    def test_the_violation_names_the_limit_and_does_not_quote_the_line(self) -> None:
        _, violations = parse_log_line(Line(_line_with("[" * 70 + "]" * 70).encode()))
        (v,) = violations
        assert "64" in v.message and "max_log_depth" in v.message
        assert SECRET not in v.message and '"event"' not in v.message
        assert "Malformed json log line" in v.airflow

    def test_brackets_inside_strings_do_not_count(self) -> None:
        """Strings (with escaped quotes and backslashes) may hold any number of brackets."""
        filler = '"' + "[{" * 200 + '\\"\\\\' + "]}" * 5 + '"'
        record, rules = _parse(_line_with(f"[{filler}, {filler}]"))
        assert rules == [] and record["v"][0].startswith("[{[{")

    def test_an_unterminated_string_does_not_hide_brackets(self) -> None:
        """A line that is not JSON stays not JSON: the scan never makes it parse."""
        _, rules = _parse('{"level": "info", "event": "' + "[" * 100)
        assert rules == ["log-not-json"]
        _, rules = _parse('{"level": "info", "v": ' + "[" * 100 + '"\\')
        assert rules in (["log-too-deep"], ["log-not-json"])

    def test_a_hostile_escape_run_is_scanned_once(self) -> None:
        """500,000 escaped quotes, in a string before a wall of brackets, or all one unterminated
        string (where a scan retrying at each quote would take hours): one pass each."""
        text = '["' + '\\"' * 500_000 + '", ' + "[" * 100 + "]" * 100 + "]"
        _, rules = _parse(text)
        assert rules == ["log-too-deep"]
        _, rules = _parse('\\"' * 500_000 + "[" * 100)  # all of it one unterminated string
        assert rules == ["log-not-json"]

    @pytest.mark.parametrize(
        ("digits", "rules"),
        [(19, []), (640, []), (641, ["log-number-too-long"]), (5000, ["log-number-too-long"])],
    )
    def test_integers_past_the_digit_limit_are_refused(self, digits: int, rules: list[str]) -> None:
        """5,000 digits raised AttributeError ('ValueError' has no 'msg'); now a violation."""
        record, got = _parse(_line_with("-" + "9" * digits))
        assert got == rules
        if not rules:
            assert record["v"] == -int("9" * digits)

    def test_digit_runs_in_strings_and_floats_are_fine(self) -> None:
        record, rules = _parse(_line_with('"' + "7" * 5000 + '"'))
        assert rules == [] and len(record["v"]) == 5000
        record, rules = _parse(_line_with("1" + "0" * 5000 + ".5"))
        assert rules == [] and record["v"] == float("inf")

    def test_a_lower_interpreter_limit_is_not_a_crash(self) -> None:
        """With int()'s own limit below max_int_digits, the line is simply not JSON."""
        old = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(640)
        try:
            record, rules = _parse(_line_with("9" * 1000), Limits(max_int_digits=4300))
        finally:
            sys.set_int_max_str_digits(old)
        assert rules == ["log-not-json"] and record["malformed"] is True

    def test_the_digit_limit_comes_from_the_limits_given(self) -> None:
        _, rules = _parse(_line_with("9" * 30), Limits(max_int_digits=20))
        assert rules == ["log-number-too-long"]


# --- masking -------------------------------------------------------------------------------


def reference_redact(secrets: set[str], value: Any, name: str | None = None) -> Any:
    """SecretsMasker.redact as it was: recursive, one longest-first alternation."""
    if name is not None and _masking.is_sensitive_name(name) and value not in (None, "", [], {}):
        return _masking.MASK
    if isinstance(value, str):
        if secrets:
            ordered = sorted(secrets, key=len, reverse=True)
            value = re.compile("|".join(re.escape(s) for s in ordered)).sub("***", value)
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


ALPHABET = "ab*é\n$"
SECRETS = st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=6), max_size=120)
TEXTS = st.text(alphabet=ALPHABET + "eyJ", max_size=40)
VALUES = st.recursive(
    st.one_of(TEXTS, st.integers(), st.none(), st.floats(allow_nan=False), st.binary(max_size=3)),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(
            st.one_of(TEXTS, st.sampled_from(["password", "token", "api_key"]), st.integers()),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@SETTINGS
@given(SECRETS, VALUES, st.sampled_from([1, 3]))
def test_redact_masks_exactly_what_the_alternation_masked(
    secrets: list[str], value: Any, min_length: int
) -> None:
    """Alternation (few secrets) or trie (many), iterative walk: the old recursive result."""
    masker = SecretsMasker(min_length=min_length)
    for secret in secrets:
        masker.add(secret)
    assert repr(masker.redact(value)) == repr(reference_redact(masker._secrets, value))
    if masker.leaves_plain(value):
        assert reference_redact(masker._secrets, value) == value


@SETTINGS
@given(SECRETS, TEXTS)
def test_the_trie_finds_what_the_alternation_finds(secrets: list[str], text: str) -> None:
    """Same leftmost-longest matches, past the alternation's threshold or not."""
    few = SecretsMasker(min_length=1)
    many = SecretsMasker(min_length=1)
    for secret in secrets:
        few.add(secret)
        many.add(secret)
    filler = [f"#{i:03d}#" for i in range(70)]  # never in TEXTS: they only force the trie
    many.add(filler)
    assert many._trie is not None
    if few._trie is None and few._secrets:
        assert few._redact_str(text) == many._redact_str(text)
        found = few._secret_pattern().search(text)  # type: ignore[union-attr]
        assert many._trie_search is not None
        span = many._trie_search(text)
        assert span == (None if found is None else found.span())


def test_the_empty_secret_keeps_the_alternations_behaviour() -> None:
    """min_length=0 lets "" in: it masks between characters, however many secrets there are."""
    masker = SecretsMasker(min_length=0)
    masker.add([""] + [f"secret-{i:03d}" for i in range(100)])
    secrets = masker._secrets
    assert masker.redact("ab secret-007") == reference_redact(secrets, "ab secret-007")
    assert not masker.leaves_plain({"a": "b"})


def test_adding_ten_thousand_secrets_compiles_the_alternation_a_bounded_number_of_times() -> None:
    """Each new secret used to recompile one pattern of all of them: quadratic. Now at most
    one compilation per secret up to the threshold, and none after."""
    masker = SecretsMasker()
    patterns = []
    for i in range(10_000):
        masker.add(f"secret-{i:05d}-x")
        assert masker.redact(f"log line with secret-{i:05d}-x in it") == "log line with *** in it"
        if masker._pattern is not None and (not patterns or patterns[-1] is not masker._pattern):
            patterns.append(masker._pattern)
    assert len(patterns) <= _masking._REGEX_MAX
    assert len(masker) == 10_000


def test_walks_are_iterative() -> None:
    """redact, add and leaves_plain take a 9,000-level value (past Python's stack) unharmed."""
    masker = SecretsMasker()
    masker.add(nested(9_000, SECRET, "map"))
    deep = nested(9_000, f"x {SECRET} y", "list")
    out = masker.redact(deep)
    for _ in range(9_000):
        out = out[0]
    assert out == "x *** y"
    assert not masker.leaves_plain(deep)


def test_a_cycle_is_an_error_not_a_hang() -> None:
    """Only a Python caller can build one; the walk stops with RecursionError, as it used to."""
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    masker = SecretsMasker()
    with pytest.raises(RecursionError):
        masker.redact(cyclic)
    with pytest.raises(RecursionError):
        masker.add(cyclic)


# --- tagged JSON -----------------------------------------------------------------------------

TAGS = {"$ts", "$bytes", "$ext", "$map", "$float", "$tuple"}


def reference_to_jsonable(value: Any) -> Any:
    """to_jsonable's general path, which converted tag-keyed and mixed-key maps twice."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value - value == 0 else {"$float": repr(value)}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [reference_to_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value) and not (
            len(value) == 1 and next(iter(value)) in TAGS
        ):
            return {k: reference_to_jsonable(v) for k, v in value.items()}
        return {
            "$map": [[reference_to_jsonable(k), reference_to_jsonable(v)] for k, v in value.items()]
        }
    raise AssertionError(value)


MAPS = st.recursive(
    st.one_of(st.integers(), st.text(max_size=3), st.binary(max_size=2), st.floats()),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.one_of(st.sampled_from(sorted(TAGS)), st.text(max_size=2), st.integers()),
            children,
            max_size=3,
        )
    ),
    max_leaves=15,
)


@SETTINGS
@given(MAPS)
def test_to_jsonable_is_unchanged_for_tag_keyed_and_mixed_key_maps(value: Any) -> None:
    assert repr(to_jsonable(value)) == repr(reference_to_jsonable(value))


@pytest.mark.parametrize("shape", ["tag", "mixed"])
def test_to_jsonable_converts_each_value_once(monkeypatch: pytest.MonkeyPatch, shape: str) -> None:
    """{"$ts": {"$ts": ...}} 40 deep took 2**40 steps (a runtime could hang the supervisor)."""
    value: Any = 1
    for _ in range(40):
        value = {"$ts": value} if shape == "tag" else {"a": value, 1: 0}
    calls = 0
    real = _codec.to_jsonable

    def counting(v: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(v)

    monkeypatch.setattr(_codec, "to_jsonable", counting)
    counting(value)
    assert calls <= 3 * 41
