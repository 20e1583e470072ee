"""Pydantic 2's lax coercions of plain values: one core for every check that must agree with it.

Airflow validates with pydantic in lax (python) mode twice over: the supervisor validates the
msgpack-decoded bodies of the comm protocol, and the Execution API (FastAPI) validates request
bodies and query strings. ``protocol``'s catalogue checks and the stub's request validation
both use these functions, so they accept exactly the same values. What they accept was read
off pydantic 2.14 itself (tests/protocol/test_lax_contract.py runs the table against it), in
particular around whitespace: an int or float string may be surrounded by whitespace, a bool,
datetime or duration string may not.

Each ``lax_*`` returns the coerced value or raises ``LaxError`` carrying pydantic's error
``type``, message and context, which the stub puts into its 422 details as they are.

Known differences, all rare on the wire: ``bytes`` are refused where pydantic would decode them
to str, int or float; durations take only ISO 8601 units in their order (Y, M, W, D, H, M, S;
pydantic also takes them in any order, and ``[-][d day[s], ]HH:MM:SS``); an unparseable
datetime string gets one of two reasons ("input is too short" or "invalid datetime format"), an
unparseable duration string one ("invalid duration format"), where pydantic names the exact one.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from ._codec import parse_duration

__all__ = [
    "LaxError",
    "lax_bool",
    "lax_datetime",
    "lax_duration",
    "lax_float",
    "lax_int",
    "lax_str",
]


class LaxError(ValueError):
    """A value pydantic's lax mode refuses: its error ``type``, ``message`` and ``ctx``."""

    def __init__(self, type_: str, message: str, ctx: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        self.ctx = ctx


def lax_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise LaxError("string_type", "Input should be a valid string")


#: An integer string after stripping: ASCII digits, single underscores between them (as
#: Python's ``int`` takes them), and optionally a fraction of zeros ("5.00" is 5, "5." is not).
_INT_TEXT = re.compile(r"([+-]?[0-9](?:_?[0-9])*)(?:\.0+)?", re.ASCII)


def lax_int(v: Any) -> int:
    if type(v) is int:
        return v
    if isinstance(v, int):  # a bool, or an int subclass: pydantic takes True/False as 1/0
        return int(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise LaxError("finite_number", "Input should be a finite number")
        if v.is_integer():
            return int(v)
        raise LaxError(
            "int_from_float", "Input should be a valid integer, got a number with a fractional part"
        )
    if isinstance(v, str):
        m = _INT_TEXT.fullmatch(v.strip())
        if m is not None:
            return int(m.group(1))
        raise LaxError(
            "int_parsing", "Input should be a valid integer, unable to parse string as an integer"
        )
    raise LaxError("int_type", "Input should be a valid integer")


def lax_float(v: Any) -> float:
    if type(v) is float:
        return v
    if isinstance(v, (int, float)):  # a bool too
        return float(v)
    if isinstance(v, str):
        text = v.strip()
        # Python's float() reads what pydantic reads (underscores, inf, nan, exponents), but
        # also non-ASCII digits, which pydantic refuses.
        if text.isascii():
            try:
                return float(text)
            except ValueError:
                pass
        raise LaxError(
            "float_parsing", "Input should be a valid number, unable to parse string as a number"
        )
    raise LaxError("float_type", "Input should be a valid number")


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_BOOL_PARSING = "Input should be a valid boolean, unable to interpret input"


def lax_bool(v: Any) -> bool:
    if v is True or v is False:
        return v
    if isinstance(v, str):
        lowered = v.lower()  # case-insensitive, but no whitespace around it
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise LaxError("bool_parsing", _BOOL_PARSING)
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer()):
        if v == 0 or v == 1:
            return bool(v)
        raise LaxError("bool_parsing", _BOOL_PARSING)
    raise LaxError("bool_type", "Input should be a valid boolean")


#: RFC 3339 as pydantic (speedate) reads it: a date, or a date and time with ``T``, ``t`` or a
#: space between; seconds, a fraction (``.`` or ``,``) and the offset are optional.
_ISO_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?)?",
    re.ASCII,
)
#: A unix timestamp as text: seconds, optionally signed, optionally with a fraction.
_TIMESTAMP_TEXT = re.compile(r"[+-]?\d+(?:\.\d*)?", re.ASCII)
#: Above this many seconds a timestamp is taken as milliseconds.
_MS_WATERSHED = 2e10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def lax_datetime(v: Any) -> datetime:
    """A ``datetime``: as is, from unix seconds (or milliseconds), or from RFC 3339 text.

    The result is naive when the text has no offset: whether that is allowed is the field's
    business (Airflow's ``UtcDateTime`` is an ``AwareDatetime``).
    """
    if isinstance(v, datetime):
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise LaxError("datetime_type", "Input should be a valid datetime")
    if isinstance(v, str):
        m = _ISO_DATETIME.fullmatch(v)
        if m is not None:
            return _iso(v, m)
        if _TIMESTAMP_TEXT.fullmatch(v) is None:
            reason = "input is too short" if len(v) < 10 else "invalid datetime format"
            raise LaxError(
                "datetime_from_date_parsing",
                f"Input should be a valid datetime or date, {reason}",
                {"error": reason},
            )
        v = float(v)
    return _from_timestamp(v)


def _iso(text: str, m: re.Match[str]) -> datetime:
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = m.groups()
    tz: timezone | None = None
    if zulu:
        tz = UTC
    elif sign:
        if int(off_h) > 23 or int(off_m) > 59:
            raise _bad_datetime(text)
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    micro = int(fraction[:6].ljust(6, "0")) if fraction else 0  # truncated, as speedate does
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=tz,
        )
    except ValueError:
        raise _bad_datetime(text) from None


def _bad_datetime(text: str) -> LaxError:
    reason = "input is too short" if len(text) < 10 else "invalid datetime format"
    return LaxError(
        "datetime_from_date_parsing",
        f"Input should be a valid datetime or date, {reason}",
        {"error": reason},
    )


def _from_timestamp(stamp: float) -> datetime:
    try:
        if abs(stamp) > _MS_WATERSHED:
            return _EPOCH + timedelta(milliseconds=stamp)
        return _EPOCH + timedelta(seconds=stamp)
    except (OverflowError, ValueError):
        reason = "dates after 9999 are not supported as unix timestamps"
        if stamp < 0:
            reason = "dates before 0000 are not supported as unix timestamps"
        raise LaxError(
            "datetime_parsing", f"Input should be a valid datetime, {reason}", {"error": reason}
        ) from None


def lax_duration(v: Any) -> timedelta:
    """A ``timedelta``: as is, from seconds, or from ISO 8601 text (``PT30S``, ``P1DT2H``)."""
    if isinstance(v, timedelta):
        return v
    if isinstance(v, (int, float)):  # a bool too: True is one second
        try:
            return timedelta(seconds=v)
        except (OverflowError, ValueError):
            reason = "durations may not exceed 999,999,999 days"
            raise LaxError(
                "time_delta_parsing",
                f"Input should be a valid timedelta, {reason}",
                {"error": reason},
            ) from None
    if isinstance(v, str):
        # parse_duration forgives surrounding whitespace; pydantic does not.
        if v == v.strip():
            try:
                return parse_duration(v)
            except ValueError:
                pass
        raise LaxError(
            "time_delta_parsing",
            "Input should be a valid timedelta, invalid duration format",
            {"error": "invalid duration format"},
        )
    raise LaxError("time_delta_type", "Input should be a valid timedelta")
