"""Values on the wire: msgpack with Airflow's conventions, and a tagged JSON view for transcripts.

Airflow encodes bodies with msgspec after a pydantic ``model_dump()`` in python mode, so rich
values reach msgpack natively (protocol.md §1.5): aware datetimes become timestamp extension -1
in its smallest form, UUIDs canonical strings, timedeltas ISO-8601 durations built from D and S
units, enums their values. ``packb``/``unpackb`` reproduce exactly that.

What Airflow's supervisor sends on to the Execution API is JSON written by pydantic instead
(``model_dump_json``), which spells the same values differently: ``format_duration_json`` and
``format_datetime_json`` write them that way.
"""

from __future__ import annotations

import base64
import enum
import itertools
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import PurePath
from typing import Any

import msgpack

from ._errors import ProtocolError

__all__ = [
    "format_datetime_json",
    "format_duration",
    "format_duration_json",
    "from_jsonable",
    "packb",
    "parse_datetime",
    "parse_duration",
    "to_jsonable",
    "unpack_counted",
    "unpackb",
]


def format_duration(value: timedelta) -> str:
    """ISO-8601 duration the way msgspec writes it: only D and S units (``P1DT30.5S``)."""
    total_us = value.days * 86_400_000_000 + value.seconds * 1_000_000 + value.microseconds
    sign = "-" if total_us < 0 else ""
    total_us = abs(total_us)
    if not total_us:
        return "P0D"  # msgspec's spelling of a zero duration
    days, rem_us = divmod(total_us, 86_400_000_000)
    secs, micros = divmod(rem_us, 1_000_000)
    out = f"{sign}P"
    if days:
        out += f"{days}D"
    if secs or micros:
        frac = f".{micros:06d}".rstrip("0") if micros else ""
        out += f"T{secs}{frac}S"
    return out


def format_duration_json(value: timedelta) -> str:
    """ISO-8601 duration the way pydantic 2 writes a timedelta to JSON: the sign, then years of
    365 days, days, hours, minutes and seconds, each only when not zero (``PT10M``, ``P1Y35D``,
    ``-PT23H59M55S``, ``PT0S``)."""
    total_us = value.days * 86_400_000_000 + value.seconds * 1_000_000 + value.microseconds
    out = "-P" if total_us < 0 else "P"
    total_us = abs(total_us)
    if not total_us:
        return "PT0S"
    days, rem_us = divmod(total_us, 86_400_000_000)
    secs, micros = divmod(rem_us, 1_000_000)
    years, days = divmod(days, 365)
    if years:
        out += f"{years}Y"
    if days:
        out += f"{days}D"
    if secs or micros:
        hours, rem = divmod(secs, 3600)
        minutes, secs = divmod(rem, 60)
        out += "T"
        if hours:
            out += f"{hours}H"
        if minutes:
            out += f"{minutes}M"
        if secs or micros:
            frac = f".{micros:06d}".rstrip("0") if micros else ""
            out += f"{secs}{frac}S"
    return out


def format_datetime_json(value: datetime) -> str:
    """A datetime the way pydantic 2 writes it to JSON: ISO 8601, ``Z`` for a zero offset, any
    other offset as ``+HH:MM`` truncated to whole minutes, none for a naive datetime."""
    offset = value.utcoffset()
    text = value.replace(tzinfo=None).isoformat()
    if offset is None:
        return text
    seconds = offset.days * 86_400 + offset.seconds
    if seconds == 0:
        return text + "Z"
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(
    rf"^(?P<sign>[+-])?P(?:{_NUMBER}Y)?(?:{_NUMBER}M)?(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
    rf"(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration (Y, M, W, D, H, M, S units, in that order; a year is 365 days
    and a month 30, as pydantic counts them); ``ValueError`` names a bad one."""
    stripped = text.strip()
    m = _DURATION.match(stripped)
    if m is None or stripped.lstrip("+-") in ("P", "PT"):
        raise ValueError(f"not an ISO-8601 duration: {text!r}")
    years, months, weeks, days, hours, minutes, seconds = (float(g or 0) for g in m.groups()[1:])
    delta = timedelta(
        days=years * 365 + months * 30 + weeks * 7 + days,
        hours=hours,
        minutes=minutes,
        seconds=seconds,
    )
    return -delta if m.group("sign") == "-" else delta


def parse_datetime(text: str) -> datetime:
    """Parse an RFC 3339 / ISO-8601 instant; the result keeps whatever zone the text had."""
    return datetime.fromisoformat(text.strip().replace("z", "Z"))


def _default(obj: Any) -> Any:
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, datetime):
        # Only naive datetimes get here (msgpack handles aware ones): msgspec writes them as
        # ISO strings without an offset, and so do we, so that validation can flag them.
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return format_duration(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} on the wire: {obj!r}")


def packb(obj: Any) -> bytes:
    """Encode a value as Airflow's supervisor or runtime would put it on the wire."""
    # A Packer per call: Packer objects are not safe to share between tasks that interleave.
    return msgpack.packb(obj, use_bin_type=True, datetime=True, default=_default)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_Timestamp = msgpack.Timestamp
_MSGPACK_STACK = 1024  # msgpack's C unpacker keeps at most this many open containers


def _ts(value: Any) -> Any:
    # msgspec rounds a timestamp's nanoseconds to the nearest microsecond (half up); msgpack's
    # own datetime conversion truncates, so convert here to see the instant Airflow sees.
    if type(value) is _Timestamp:
        micros = value.seconds * 1_000_000 + (value.nanoseconds + 500) // 1000
        return _EPOCH + timedelta(microseconds=micros)
    return value


def _ts_list(items: list[Any]) -> list[Any]:
    for item in items:
        if type(item) is _Timestamp:
            return [_ts(i) for i in items]
    return items


def _ts_map(mapping: dict[Any, Any]) -> dict[Any, Any]:
    for k, v in mapping.items():
        if type(k) is _Timestamp or type(v) is _Timestamp:
            return {_ts(k): _ts(v) for k, v in mapping.items()}
    return mapping


def unpackb(payload: bytes, *, offset: int = 0) -> Any:
    """Decode one msgpack payload; any malformation becomes a ``ProtocolError`` at ``offset``."""
    return _unpack(payload, offset, _ts_list, _ts_map)


def unpack_counted(payload: bytes, *, offset: int = 0) -> tuple[Any, int]:
    """``unpackb``, and how many arrays and maps the payload holds: a bound on its depth that
    costs one counter step per container, so only a payload with more containers than the depth
    limit has to be walked (``depth_exceeds``)."""
    containers = 0

    def lists(items: list[Any]) -> list[Any]:
        nonlocal containers
        containers += 1
        for item in items:
            if type(item) is _Timestamp:
                return [_ts(i) for i in items]
        return items

    def maps(mapping: dict[Any, Any]) -> dict[Any, Any]:
        nonlocal containers
        containers += 1
        for k, v in mapping.items():
            if type(k) is _Timestamp or type(v) is _Timestamp:
                return {_ts(k): _ts(v) for k, v in mapping.items()}
        return mapping

    value = _unpack(payload, offset, lists, maps, too_deep="frame-too-deep")
    return value, containers


def first_int(payload: bytes) -> int | None:
    """The first element of a payload that starts with a msgpack array, when it is an integer
    (a frame's id), read without decoding the rest; None otherwise."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(payload))
    unpacker.feed(payload)
    try:
        if unpacker.read_array_header() < 1:
            return None
        first = unpacker.unpack()
    except Exception:  # any failure to read it means: no id
        return None
    return first if type(first) is int else None


def _unpack(
    payload: bytes,
    offset: int,
    list_hook: Callable[[list[Any]], Any],
    object_hook: Callable[[dict[Any, Any]], Any],
    *,
    too_deep: str = "bad-msgpack",
) -> Any:
    try:
        return _ts(
            msgpack.unpackb(
                payload,
                raw=False,
                timestamp=0,
                strict_map_key=False,
                list_hook=list_hook,
                object_hook=object_hook,
            )
        )
    except msgpack.ExtraData as exc:
        raise ProtocolError(
            "bad-msgpack",
            f"{len(payload) - len(exc.extra)} bytes of msgpack followed by "
            f"{len(exc.extra)} stray bytes",
            offset=offset,
        ) from None
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            "bad-msgpack", f"a string is not valid UTF-8 ({exc.reason})", offset=offset
        ) from None
    except OverflowError:
        # A timestamp extension outside datetime's range (years 1-9999).
        raise ProtocolError(
            "bad-msgpack", "a timestamp lies outside the years 1-9999", offset=offset
        ) from None
    except msgpack.StackError:
        raise ProtocolError(
            too_deep,
            f"the payload nests arrays and maps deeper than msgpack's own "
            f"{_MSGPACK_STACK}-level stack",
            offset=offset,
        ) from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, ValueError) and "incomplete" in reason.lower():
            reason = "the payload ends in the middle of a msgpack value"
        raise ProtocolError(
            "bad-msgpack", f"payload is not valid msgpack: {reason}", offset=offset
        ) from None


# --- tagged JSON, for transcripts -------------------------------------------------------------
# Values JSON cannot hold are wrapped in single-key maps whose key starts with "$". A real map
# that happens to have such a shape is itself wrapped in {"$map": [[k, v], ...]}.

_TAGS = frozenset({"$ts", "$bytes", "$ext", "$map", "$float", "$tuple"})


def to_jsonable(value: Any) -> Any:
    """A JSON-safe view of a decoded value that ``from_jsonable`` turns back into the value."""
    # Exact types first (the bulk of every body), then the general checks below.
    t = type(value)
    if t is str or t is int or value is None or t is bool:
        return value
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                break
            out[k] = to_jsonable(v)
        else:
            if len(out) != 1 or next(iter(out)) not in _TAGS:
                return out
        # Every value is converted once: converting them again below would double the work at
        # each level, and a runtime can nest such maps (``{"$ts": {"$ts": ...}}``) at will.
        return _map_view(value, out)
    elif t is list:
        return [to_jsonable(v) for v in value]
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
        return [to_jsonable(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [to_jsonable(v) for v in value]}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value) and not (
            len(value) == 1 and next(iter(value)) in _TAGS
        ):
            return {k: to_jsonable(v) for k, v in value.items()}
        return {"$map": [[to_jsonable(k), to_jsonable(v)] for k, v in value.items()]}
    return {"$repr": repr(value)}


def _map_view(value: dict[Any, Any], done: dict[str, Any]) -> dict[str, Any]:
    """``to_jsonable`` of a ``dict`` whose leading ``str``-keyed values are converted in ``done``
    (a non-``str`` key stopped the conversion, or the map is one tag-keyed pair)."""
    pairs: list[list[Any]] = [[k, v] for k, v in done.items()]  # to_jsonable(k) is k
    for k, v in itertools.islice(value.items(), len(done), None):
        pairs.append([to_jsonable(k), to_jsonable(v)])
    if all(isinstance(k, str) for k in value) and not (
        len(value) == 1 and next(iter(value)) in _TAGS
    ):
        return {k: v for k, v in pairs}  # str subclasses as keys: a plain map, as below
    return {"$map": pairs}


def jsonable_as_is(value: Any) -> bool:
    """Whether ``to_jsonable(value)`` is ``value`` itself, made again: only ``dict`` with ``str``
    keys, ``list``, ``str``, ``int``, ``bool``, ``None`` and finite ``float`` (exact types), and
    no one-key map whose key is a tag. ``False`` only means "convert it"."""
    t = type(value)
    if t is dict:
        if len(value) == 1 and next(iter(value)) in _TAGS:
            return False
        for k, v in value.items():
            if type(k) is not str:
                return False
            t = type(v)
            if not (
                t is str
                or t is int
                or v is None
                or t is bool
                or (t is float and math.isfinite(v))
                or ((t is dict or t is list) and jsonable_as_is(v))
            ):
                return False
        return True
    if t is list:
        return all(jsonable_as_is(v) for v in value)
    return (
        t is str or t is int or value is None or t is bool or (t is float and math.isfinite(value))
    )


def from_jsonable(value: Any) -> Any:
    """Invert ``to_jsonable``."""
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag in _TAGS:
            _check_tag(tag, inner)
        if tag == "$ts":
            return parse_datetime(inner)
        if tag == "$bytes":
            return base64.b64decode(inner)
        if tag == "$ext":
            return msgpack.ExtType(inner[0], base64.b64decode(inner[1]))
        if tag == "$float":
            return float(inner)
        if tag == "$tuple":
            return tuple(from_jsonable(v) for v in inner)
        if tag == "$map":
            return {_hashable(from_jsonable(k)): from_jsonable(v) for k, v in inner}
    return {k: from_jsonable(v) for k, v in value.items()}


#: What each tag holds, as a reader of a hand-edited transcript needs to hear it.
_TAG_SHAPES = {
    "$ts": (str, "an RFC 3339 string"),
    "$bytes": (str, "base64 text"),
    "$float": (str, "a float's text (nan, inf, -inf)"),
    "$ext": (list, "[code, base64 text]"),
    "$tuple": (list, "an array"),
    "$map": (list, "an array of [key, value] pairs"),
}


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, as a message names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _check_tag(tag: str, inner: Any) -> None:
    """A tag's value has the shape ``to_jsonable`` gives it, or a ``ValueError`` that says so
    (not whatever a wrong type makes the decoding raise: ``'int' object has no attribute``)."""
    kind, shape = _TAG_SHAPES[tag]
    ok = isinstance(inner, kind)
    if ok and tag == "$ext":
        ok = (
            len(inner) == 2
            and isinstance(inner[0], int)
            and not isinstance(inner[0], bool)
            and isinstance(inner[1], str)
        )
    elif ok and tag == "$map":
        ok = all(isinstance(pair, list) and len(pair) == 2 for pair in inner)
    if not ok:
        shown = json_type(inner)
        if isinstance(inner, kind):  # the right type, the wrong shape: show it
            text = json.dumps(inner, default=repr)
            shown = text if len(text) <= 60 else text[:57] + "..."
        raise ValueError(f'"{tag}" must hold {shape}, not {shown}')


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def json_encoder(*, ensure_ascii: bool, allow_nan: bool) -> Callable[[Any], str]:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=..., allow_nan=...)`` as one
    function, with json's C encoder made once: ``json.dumps`` makes one per call, which costs
    three times what encoding a small answer does. No circular-reference check: what the API
    layers encode is built from decoded frames, parsed JSON and SQLite rows, which cannot hold
    a cycle."""
    plain = json.JSONEncoder(
        ensure_ascii=ensure_ascii, allow_nan=allow_nan, separators=(",", ":")
    ).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C encoder
        return plain
    strings = (
        json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    )
    # Arguments: markers, default, string encoder, indent, key and item separators, sort_keys,
    # skipkeys, allow_nan.
    chunks = make(
        None, json.JSONEncoder().default, strings, None, ":", ",", False, False, allow_nan
    )
    join = "".join

    def encode(value: Any) -> str:
        return join(chunks(value, 0))

    return encode
