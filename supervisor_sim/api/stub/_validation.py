"""Request validation shaped like pydantic v2 errors as FastAPI returns them (422 bodies).

A check takes ``(value, loc, errors)``, records any problem in ``errors`` and returns the
validated value, or ``BAD`` when it failed. ``model`` validates a JSON object against a tuple of
``Field``s, as a pydantic model with ``extra="forbid"`` (or ``extra="ignore"``) would. Scalars
are coerced by the protocol package's lax-coercion core (``lax_int`` and friends), which the
comm protocol's checks share, so the stub and the catalogue take exactly what pydantic takes.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC
from typing import Any, NamedTuple

from ...protocol import (
    LaxError,
    lax_bool,
    lax_datetime,
    lax_duration,
    lax_float,
    lax_int,
    lax_str,
)

__all__ = [
    "BAD",
    "BOOL",
    "DATETIME",
    "INT",
    "MISSING",
    "STR",
    "Check",
    "Errors",
    "Field",
    "boolean",
    "duration",
    "instant",
    "integer",
    "json_dict_or_str",
    "list_of",
    "literal_member",
    "mapping",
    "model",
    "nested",
    "null_tolerated",
    "number",
    "one_of",
    "skip_tasks",
    "state_value",
    "text",
    "uuid_text",
]

MISSING: Any = object()  # no request body at all
BAD: Any = object()  # a value that failed validation (its error is already recorded)

Loc = tuple[Any, ...]


class Errors(list[dict[str, Any]]):
    """The 422 ``detail`` list, in the order pydantic reports it."""

    def add(self, type_: str, loc: Loc, msg: str, value: Any, ctx: Any = None) -> Any:
        error: dict[str, Any] = {"type": type_, "loc": list(loc), "msg": msg, "input": value}
        if ctx is not None:
            error["ctx"] = ctx
        self.append(error)
        return BAD


Check = Callable[[Any, Loc, Errors], Any]


def _lax(coerce: Callable[[Any], Any], nullable: bool) -> Check:
    def check(v: Any, loc: Loc, errs: Errors) -> Any:
        if v is None and nullable:
            return None
        try:
            return coerce(v)
        except LaxError as exc:
            return errs.add(exc.type, loc, exc.message, v, exc.ctx)

    return check


def text(*, nullable: bool = False, min_length: int = 0) -> Check:
    """``str`` (optionally ``None``), at least ``min_length`` characters."""
    base = _lax(lax_str, nullable)
    if not min_length:
        return base

    def check(v: Any, loc: Loc, errs: Errors) -> Any:
        value = base(v, loc, errs)
        if isinstance(value, str) and len(value) < min_length:
            return errs.add(
                "string_too_short",
                loc,
                f"String should have at least {min_length} character",
                v,
                {"min_length": min_length},
            )
        return value

    return check


def integer(*, nullable: bool = False) -> Check:
    return _lax(lax_int, nullable)


def number(*, nullable: bool = False) -> Check:
    return _lax(lax_float, nullable)


def boolean(*, nullable: bool = False) -> Check:
    return _lax(lax_bool, nullable)


def instant(*, nullable: bool = False, naive_ok: bool = False) -> Check:
    """Airflow's ``UtcDateTime``: an aware datetime (ISO 8601 text or epoch number) -> UTC.

    With ``naive_ok`` (a plain ``datetime`` field) a value without an offset is taken as UTC.
    """
    parse = _lax(lax_datetime, nullable)

    def check(v: Any, loc: Loc, errs: Errors) -> Any:
        parsed = parse(v, loc, errs)
        if parsed is BAD or parsed is None:
            return parsed
        if parsed.tzinfo is None:
            if naive_ok:
                return parsed.replace(tzinfo=UTC)
            return errs.add("timezone_aware", loc, "Input should have timezone info", v)
        return parsed.astimezone(UTC)

    return check


def duration(*, nullable: bool = False) -> Check:
    """A ``timedelta``: seconds as a number, or ISO 8601 text (``PT30S``) as the SDK sends it.
    The value is kept as sent (the stub stores it as text)."""
    parse = _lax(lax_duration, nullable)

    def check(v: Any, loc: Loc, errs: Errors) -> Any:
        return BAD if parse(v, loc, errs) is BAD else v

    return check


STR = text()
INT = integer()
BOOL = boolean()
DATETIME = instant()


def _expected(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def literal_member(enum: str, member: str, value: str) -> Check:
    """``Literal[SomeEnum.MEMBER]``: pydantic names the expected value by the member's repr,
    e.g. ``<TerminalTIState.SUCCESS: 'success'>``."""
    # shape verified against real Airflow in the differential test tier
    expected = f"<{enum}.{member}: '{value}'>"

    def check(v: Any, loc: Loc, errs: Errors) -> Any:
        if v == value and isinstance(v, str):
            return v
        return errs.add(
            "literal_error", loc, f"Input should be {expected}", v, {"expected": expected}
        )

    return check


def one_of(*values: str) -> Check:
    """A str enum: one of ``values`` (in the enum's declaration order, as pydantic lists them)."""
    expected = _expected(values)

    def check(v: Any, loc: Loc, errs: Errors) -> Any:
        if v in values and isinstance(v, str):
            return v
        return errs.add("enum", loc, f"Input should be {expected}", v, {"expected": expected})

    return check


def mapping(v: Any, loc: Loc, errs: Errors) -> Any:
    if isinstance(v, dict):
        return v
    return errs.add("dict_type", loc, "Input should be a valid dictionary", v)


def null_tolerated(check: Check) -> Check:
    """``check``, except that null passes, where pydantic would refuse it.

    A leniency real Airflow does not have, kept on purpose for the deferral kwargs: the
    protocol lets a child leave them out (default null) and the supervisor then sends null.
    Airflow's own task runner always sends objects. See docs/fidelity.md.
    """

    def tolerant(v: Any, loc: Loc, errs: Errors) -> Any:
        return None if v is None else check(v, loc, errs)

    return tolerant


#: How pydantic labels the ``dict[str, JsonValue]`` member of a union in an error's ``loc``.
_JSON_DICT_LABEL = (
    "dict[str,json-or-python[json=any,python=tagged-union[list[...],dict[str,...],str,bool,"
    "int,float,none]]]"
)


def json_dict_or_str(v: Any, loc: Loc, errs: Errors) -> Any:
    """``dict[str, JsonValue] | str`` (plain or encrypted kwargs; null is refused): a smart
    union, so a value neither member takes gets one error per member, each labelled."""
    # checked against real Airflow 3.3.2 by a one-off probe, not in the parity sequence
    if isinstance(v, (dict, str)):
        return v
    errs.add("dict_type", (*loc, _JSON_DICT_LABEL), "Input should be a valid dictionary", v)
    return errs.add("string_type", (*loc, "str"), "Input should be a valid string", v)


def skip_tasks(v: Any, loc: Loc, errs: Errors) -> Any:
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
            # shape verified against real Airflow in the differential test tier
            errs.add("string_type", (*loc, i, "str"), "Input should be a valid string", item)
            errs.add(
                "tuple_type", (*loc, i, "tuple[str,int]"), "Input should be a valid tuple", item
            )
    return out


class Field(NamedTuple):
    name: str
    check: Check
    required: bool = False


def model(
    body: Any,
    fields: tuple[Field, ...],
    loc: Loc,
    errs: Errors,
    *,
    forbid_extra: bool = True,
) -> dict[str, Any]:
    """Validate a JSON object against a StrictBaseModel (extra keys forbidden), or with
    ``forbid_extra=False`` a plain BaseModel (extra keys ignored).

    Returns only the keys present and valid, so ``"k" in result`` mirrors pydantic's
    ``exclude_unset``.
    """
    if body is MISSING:
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
    for f in fields:
        if f.name not in body:
            if f.required:
                errs.add("missing", (*loc, f.name), "Field required", body)
            continue
        value = f.check(body[f.name], (*loc, f.name), errs)
        if value is not BAD:
            out[f.name] = value
    if forbid_extra and len(body) > len(out):
        names = {f.name for f in fields}
        for key, value in body.items():
            if key not in names:
                errs.add("extra_forbidden", (*loc, key), "Extra inputs are not permitted", value)
    return out


def uuid_text(v: Any, loc: Loc, errs: Errors) -> Any:
    if isinstance(v, str):
        try:
            return str(uuid.UUID(v))
        except ValueError:
            # shape verified against real Airflow in the differential test tier
            return errs.add(
                "uuid_parsing",
                loc,
                "Input should be a valid UUID, invalid character: expected an optional prefix "
                "of `urn:uuid:` followed by [0-9a-fA-F-]",
                v,
                {"error": "invalid character"},
            )
    return errs.add("uuid_type", loc, "UUID input should be a string, bytes or UUID object", v)


def list_of(item: Check, *, nullable: bool = False, min_length: int = 0) -> Check:
    def check(v: Any, loc: Loc, errs: Errors) -> Any:
        if v is None and nullable:
            return None
        if not isinstance(v, list):
            return errs.add("list_type", loc, "Input should be a valid list", v)
        out = [item(x, (*loc, i), errs) for i, x in enumerate(v)]
        if any(x is BAD for x in out):
            return BAD
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


def nested(fields: tuple[Field, ...], *, forbid_extra: bool = True) -> Check:
    """A nested model: a JSON object validated against ``fields``."""

    def check(v: Any, loc: Loc, errs: Errors) -> Any:
        before = len(errs)
        out = model(v, fields, loc, errs, forbid_extra=forbid_extra)
        return BAD if len(errs) > before else out

    return check


def state_value(v: Any, loc: Loc, errs: Errors) -> Any:
    """A state-store ``value``: any JSON except null and non-finite numbers (field validator)."""
    if v is None:
        message = "value cannot be null"
    elif isinstance(v, float) and not math.isfinite(v):
        message = "value must be a finite number; NaN and Inf are not JSON representable"
    else:
        return v
    # FastAPI renders the ValueError in ``ctx`` as an empty object.
    # shape verified against real Airflow in the differential test tier
    return errs.add("value_error", loc, f"Value error, {message}", v, {"error": {}})
