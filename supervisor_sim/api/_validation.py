"""Request validation shaped like pydantic v2 errors as FastAPI returns them (422 bodies).

Each check takes ``(value, loc, errors)``, records any problem in ``errors`` and returns the
validated value, or ``_BAD`` when it failed. ``_model`` validates a JSON object against a list of
``_Field``s, as a pydantic model with ``extra="forbid"`` (or ``extra="ignore"``) would.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

_MISSING: Any = object()  # no request body at all
_BAD: Any = object()  # a value that failed validation (its error is already recorded)


class _Errors(list[dict[str, Any]]):
    def add(self, type_: str, loc: tuple[Any, ...], msg: str, value: Any, ctx: Any = None) -> Any:
        error: dict[str, Any] = {"type": type_, "loc": list(loc), "msg": msg, "input": value}
        if ctx is not None:
            error["ctx"] = ctx
        self.append(error)
        return _BAD


Check = Callable[[Any, tuple[Any, ...], _Errors], Any]


def _str(nullable: bool = False, min_length: int = 0) -> Check:
    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v is None and nullable:
            return None
        if not isinstance(v, str):
            return errs.add("string_type", loc, "Input should be a valid string", v)
        if len(v) < min_length:
            return errs.add(
                "string_too_short",
                loc,
                f"String should have at least {min_length} character",
                v,
                {"min_length": min_length},
            )
        return v

    return check


def _int(nullable: bool = False) -> Check:
    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v is None and nullable:
            return None
        if isinstance(v, int):  # a bool too: pydantic's lax mode takes true/false as 1/0
            return int(v)
        if isinstance(v, float):
            if v.is_integer():
                return int(v)
            return errs.add(
                "int_from_float",
                loc,
                "Input should be a valid integer, got a number with a fractional part",
                v,
            )
        if isinstance(v, str):
            if re.fullmatch(r"\s*[+-]?\d+\s*", v):
                return int(v)
            return errs.add(
                "int_parsing",
                loc,
                "Input should be a valid integer, unable to parse string as an integer",
                v,
            )
        return errs.add("int_type", loc, "Input should be a valid integer", v)

    return check


def _float(nullable: bool = False) -> Check:
    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v is None and nullable:
            return None
        if isinstance(v, (int, float)):  # a bool too, as pydantic's lax mode
            return float(v)
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                return errs.add(
                    "float_parsing",
                    loc,
                    "Input should be a valid number, unable to parse string as a number",
                    v,
                )
        return errs.add("float_type", loc, "Input should be a valid number", v)

    return check


def _bool_query(v: str, loc: tuple[Any, ...], errs: _Errors) -> Any:
    lowered = v.strip().lower()
    if lowered in ("1", "on", "t", "true", "y", "yes"):
        return True
    if lowered in ("0", "off", "f", "false", "n", "no"):
        return False
    return errs.add(
        "bool_parsing", loc, "Input should be a valid boolean, unable to interpret input", v
    )


def _datetime(nullable: bool = False, naive_ok: bool = False) -> Check:
    """Airflow's ``UtcDateTime``: an aware datetime (ISO 8601 text or epoch number) -> UTC.

    With ``naive_ok`` (a plain ``datetime`` field) a value without an offset is taken as UTC.
    """

    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v is None and nullable:
            return None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return datetime.fromtimestamp(v, UTC)
        if not isinstance(v, str):
            return errs.add("datetime_type", loc, "Input should be a valid datetime", v)
        try:
            parsed = datetime.fromisoformat(v)
        except ValueError:
            # shape verified against real Airflow in the differential test tier (issue 6)
            reason = "input is too short" if len(v) < 10 else "invalid datetime format"
            return errs.add(
                "datetime_from_date_parsing",
                loc,
                f"Input should be a valid datetime or date, {reason}",
                v,
                {"error": reason},
            )
        if parsed.tzinfo is None:
            if naive_ok:
                return parsed.replace(tzinfo=UTC)
            return errs.add("timezone_aware", loc, "Input should have timezone info", v)
        return parsed.astimezone(UTC)

    return check


_DURATION = re.compile(r"[-+]?P(?!$)(\d+(\.\d+)?[YMWD])*(T(?!$)(\d+(\.\d+)?[HMS])*)?")


def _duration(nullable: bool = False) -> Check:
    """A timedelta: seconds as a number, or ISO 8601 text (``PT30S``) as the SDK sends it."""

    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v is None and nullable:
            return None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
        if isinstance(v, str) and (_DURATION.fullmatch(v) or re.fullmatch(r"[-+]?\d+(\.\d+)?", v)):
            return v
        if isinstance(v, str):
            return errs.add(
                "time_delta_parsing",
                loc,
                "Input should be a valid timedelta, invalid duration format",
                v,
                {"error": "invalid duration format"},
            )
        return errs.add("time_delta_type", loc, "Input should be a valid timedelta", v)

    return check


def _expected(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _enum_literal(enum: str, member: str, value: str) -> Check:
    """``Literal[SomeEnum.MEMBER]``: pydantic names the expected value by the member's repr,
    e.g. ``<TerminalTIState.SUCCESS: 'success'>``."""
    # shape verified against real Airflow in the differential test tier (issue 6)
    expected = f"<{enum}.{member}: '{value}'>"

    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v == value and isinstance(v, str):
            return v
        return errs.add(
            "literal_error", loc, f"Input should be {expected}", v, {"expected": expected}
        )

    return check


def _enum(*values: str) -> Check:
    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v in values and isinstance(v, str):
            return v
        expected = _expected(values)
        return errs.add("enum", loc, f"Input should be {expected}", v, {"expected": expected})

    return check


def _dict(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
    if isinstance(v, dict):
        return v
    return errs.add("dict_type", loc, "Input should be a valid dictionary", v)


def _null_tolerated(check: Check) -> Check:
    """``check``, except that null passes, where pydantic would refuse it.

    A leniency real Airflow does not have, kept on purpose for the deferral kwargs: the
    protocol lets a child leave them out (default null) and the supervisor then sends null.
    Airflow's own task runner always sends objects. See docs/fidelity.md.
    """

    def tolerant(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        return None if v is None else check(v, loc, errs)

    return tolerant


#: How pydantic labels the ``dict[str, JsonValue]`` member of a union in an error's ``loc``.
_JSON_DICT_LABEL = (
    "dict[str,json-or-python[json=any,python=tagged-union[list[...],dict[str,...],str,bool,"
    "int,float,none]]]"
)


def _json_dict_or_str(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
    """``dict[str, JsonValue] | str`` (plain or encrypted kwargs; null is refused): a smart
    union, so a value neither member takes gets one error per member, each labelled."""
    # checked against real Airflow 3.3.2 by a one-off probe, not in the parity sequence
    if isinstance(v, (dict, str)):
        return v
    errs.add("dict_type", (*loc, _JSON_DICT_LABEL), "Input should be a valid dictionary", v)
    return errs.add("string_type", (*loc, "str"), "Input should be a valid string", v)


def _any(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
    return v


def _skip_tasks(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
    """``list[str | tuple[str, int]]``: bare task ids or ``[task_id, map_index]`` pairs."""
    if not isinstance(v, list):
        return errs.add("list_type", loc, "Input should be a valid list", v)
    out: list[tuple[str, int]] = []
    for i, item in enumerate(v):
        if isinstance(item, str):
            out.append((item, -1))
        elif (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], int)
            and not isinstance(item[1], bool)
        ):
            out.append((item[0], item[1]))
        else:
            # pydantic reports one error per union member.
            # shape verified against real Airflow in the differential test tier (issue 6)
            errs.add("string_type", (*loc, i, "str"), "Input should be a valid string", item)
            errs.add(
                "tuple_type", (*loc, i, "tuple[str,int]"), "Input should be a valid tuple", item
            )
    return out


class _Field(NamedTuple):
    name: str
    check: Check
    required: bool = False


def _model(
    body: Any,
    fields: tuple[_Field, ...],
    loc: tuple[Any, ...],
    errs: _Errors,
    *,
    forbid_extra: bool = True,
) -> dict[str, Any]:
    """Validate a JSON object against a StrictBaseModel (extra keys forbidden), or with
    ``forbid_extra=False`` a plain BaseModel (extra keys ignored).

    Returns only the keys present and valid, so ``"k" in result`` mirrors pydantic's
    ``exclude_unset``.
    """
    if body is _MISSING:
        errs.add("missing", loc, "Field required", None)
        return {}
    if not isinstance(body, dict):
        errs.add(
            "model_attributes_type",
            loc,
            "Input should be a valid dictionary or object to extract fields from",
            body,
        )
        return {}
    out: dict[str, Any] = {}
    names = set()
    for f in fields:
        names.add(f.name)
        if f.name not in body:
            if f.required:
                errs.add("missing", (*loc, f.name), "Field required", body)
            continue
        value = f.check(body[f.name], (*loc, f.name), errs)
        if value is not _BAD:
            out[f.name] = value
    if forbid_extra:
        for key, value in body.items():
            if key not in names:
                errs.add("extra_forbidden", (*loc, key), "Extra inputs are not permitted", value)
    return out


def _bool(nullable: bool = False) -> Check:
    """A JSON boolean, with pydantic's lax coercions (0/1 and the usual strings)."""

    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v is None and nullable:
            return None
        if isinstance(v, bool):
            return v
        if isinstance(v, int) and v in (0, 1):
            return bool(v)
        if isinstance(v, str):
            return _bool_query(v, loc, errs)
        return errs.add("bool_type", loc, "Input should be a valid boolean", v)

    return check


def _uuid(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
    if isinstance(v, str):
        try:
            return str(uuid.UUID(v))
        except ValueError:
            # shape verified against real Airflow in the differential test tier (issue 6)
            return errs.add(
                "uuid_parsing",
                loc,
                "Input should be a valid UUID, invalid character: expected an optional prefix "
                "of `urn:uuid:` followed by [0-9a-fA-F-]",
                v,
                {"error": "invalid character"},
            )
    return errs.add("uuid_type", loc, "UUID input should be a string, bytes or UUID object", v)


def _list_of(item: Check, *, nullable: bool = False, min_length: int = 0) -> Check:
    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        if v is None and nullable:
            return None
        if not isinstance(v, list):
            return errs.add("list_type", loc, "Input should be a valid list", v)
        out = [item(x, (*loc, i), errs) for i, x in enumerate(v)]
        if any(x is _BAD for x in out):
            return _BAD
        if len(out) < min_length:
            return errs.add(
                "too_short",
                loc,
                f"List should have at least {min_length} item after validation, not {len(out)}",
                v,
                {"field_type": "List", "min_length": min_length, "actual_length": len(out)},
            )
        return out

    return check


def _nested(fields: tuple[_Field, ...], *, forbid_extra: bool = True) -> Check:
    """A nested model: a JSON object validated against ``fields``."""

    def check(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
        before = len(errs)
        out = _model(v, fields, loc, errs, forbid_extra=forbid_extra)
        return _BAD if len(errs) > before else out

    return check


def _state_value(v: Any, loc: tuple[Any, ...], errs: _Errors) -> Any:
    """A state-store ``value``: any JSON except null and non-finite numbers (field validator)."""
    if v is None:
        message = "value cannot be null"
    elif isinstance(v, float) and not math.isfinite(v):
        message = "value must be a finite number; NaN and Inf are not JSON representable"
    else:
        return v
    # FastAPI renders the ValueError in ``ctx`` as an empty object.
    # shape verified against real Airflow in the differential test tier (issue 6)
    return errs.add("value_error", loc, f"Value error, {message}", v, {"error": {}})
