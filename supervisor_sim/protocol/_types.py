"""The small type language the message catalogue is written in.

Airflow validates message bodies with pydantic in *lax* mode, after msgspec decoded the msgpack
payload into plain Python values. These types check the same plain values and accept what
pydantic's lax mode accepts, so that "valid" here means "Airflow's supervisor would not drop it".
Each check appends ``Problem``s instead of raising, so one pass reports every problem in a body.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._lax import LaxError, lax_bool, lax_datetime, lax_duration, lax_float, lax_int

__all__ = [
    "ANY",
    "BOOL",
    "DATETIME",
    "DURATION",
    "FLOAT",
    "INT",
    "NAIVE_DATETIME",
    "NULL",
    "PATH",
    "STR",
    "UUID",
    "AnyOf",
    "Const",
    "Enum",
    "Field",
    "ListOf",
    "MapOf",
    "Model",
    "Problem",
    "Ref",
    "TupleOf",
    "Type",
]

MISSING: Any = type("MISSING", (), {"__repr__": lambda self: "MISSING"})()


@dataclass(frozen=True)
class Problem:
    """One reason a body fails validation: where, what rule, and a sentence a person can act on."""

    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _kind(value: Any) -> str:
    """Name a decoded value's type the way msgpack and JSON people think of it."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes | bytearray):
        return "bin"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, datetime):
        return "timestamp"
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Type:
    """Base of every field type; ``nullable`` says whether nil is one of the accepted values."""

    nullable = False

    def check(self, value: Any, path: str, out: list[Problem], models: Mapping[str, Model]) -> None:
        raise NotImplementedError  # pragma: no cover - every concrete type overrides it

    def describe(self) -> str:
        raise NotImplementedError  # pragma: no cover

    def _wrong(self, value: Any, path: str, out: list[Problem]) -> None:
        out.append(
            Problem(
                path,
                "wrong-type",
                f"expected {self.describe()}, got {_kind(value)} {_short(value)}",
            )
        )


@dataclass(frozen=True)
class _Scalar(Type):
    name: str

    def describe(self) -> str:
        return self.name

    def check(self, value: Any, path: str, out: list[Problem], models: Mapping[str, Model]) -> None:
        if not _SCALAR_CHECKS[self.name](value):
            self._wrong(value, path, out)


def _accepts(coerce: Callable[[Any], Any]) -> Callable[[Any], bool]:
    """Whether pydantic's lax mode takes a value (the coercion core in ``_lax``)."""

    def check(v: Any) -> bool:
        try:
            coerce(v)
        except LaxError:
            return False
        return True

    return check


_is_int = _accepts(lax_int)
_is_float = _accepts(lax_float)
_is_bool = _accepts(lax_bool)

_SCALAR_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "int": _is_int,
    "float": _is_float,
    "bool": _is_bool,
    "nil": lambda v: v is None,
    "any JSON value": lambda v: True,
    "path string": lambda v: isinstance(v, str),
}

STR = _Scalar("str")
INT = _Scalar("int")
FLOAT = _Scalar("float")
BOOL = _Scalar("bool")
PATH = _Scalar("path string")


@dataclass(frozen=True)
class _Null(_Scalar):
    nullable = True


NULL = _Null("nil")


@dataclass(frozen=True)
class _Any(_Scalar):
    nullable = True


ANY = _Any("any JSON value")


@dataclass(frozen=True)
class _DateTime(Type):
    """An instant: a timestamp extension, an RFC 3339 string, or unix seconds.

    ``aware`` (pydantic's ``AwareDatetime``, most of Airflow's fields) refuses a value without a
    zone; a plain ``datetime`` field (``TaskState.end_date``) takes it as it is.
    """

    aware: bool = True

    def describe(self) -> str:
        if self.aware:
            return "a timezone-aware datetime (msgpack timestamp ext -1)"
        return "a datetime (msgpack timestamp ext -1; a naive one is accepted)"

    def check(self, value: Any, path: str, out: list[Problem], models: Mapping[str, Model]) -> None:
        try:
            parsed = lax_datetime(value)
        except LaxError:
            if isinstance(value, str):
                out.append(
                    Problem(
                        path,
                        "wrong-type",
                        f"expected {self.describe()}, got unparseable string {_short(value)}",
                    )
                )
            else:
                self._wrong(value, path, out)
            return
        if self.aware and (parsed.tzinfo is None or parsed.utcoffset() is None):
            if isinstance(value, str):
                out.append(
                    Problem(
                        path,
                        "naive-datetime",
                        f"datetime string {_short(value)} has no zone; Airflow "
                        "requires a timezone (add Z or an offset)",
                    )
                )
            else:
                out.append(
                    Problem(path, "naive-datetime", "naive datetime; Airflow requires a timezone")
                )


DATETIME = _DateTime()
#: A plain ``datetime`` field: naive values are accepted.
NAIVE_DATETIME = _DateTime(aware=False)


@dataclass(frozen=True)
class _Uuid(Type):
    def describe(self) -> str:
        return "a UUID string"

    def check(self, value: Any, path: str, out: list[Problem], models: Mapping[str, Model]) -> None:
        if isinstance(value, str):
            try:
                uuid.UUID(value)
            except ValueError:
                out.append(Problem(path, "wrong-type", f"{_short(value)} is not a UUID"))
            return
        self._wrong(value, path, out)


UUID = _Uuid()


@dataclass(frozen=True)
class _Duration(Type):
    def describe(self) -> str:
        return "an ISO-8601 duration string such as 'PT30S' or a number of seconds"

    def check(self, value: Any, path: str, out: list[Problem], models: Mapping[str, Model]) -> None:
        try:
            lax_duration(value)
        except LaxError:
            self._wrong(value, path, out)


DURATION = _Duration()


@dataclass(frozen=True)
class Const(Type):
    value: Any

    def describe(self) -> str:
        return repr(self.value)

    def check(self, value: Any, path: str, out: list[Problem], models: Mapping[str, Model]) -> None:
        if value != self.value or type(value) is not type(self.value):
            out.append(Problem(path, "wrong-value", f"must be {self.value!r}, got {_short(value)}"))


@dataclass(frozen=True)
class Enum(Type):
    name: str
    values: tuple[Any, ...]

    def describe(self) -> str:
        return f"{self.name} (one of {', '.join(map(repr, self.values))})"

    def check(self, value: Any, path: str, out: list[Problem], models: Mapping[str, Model]) -> None:
        if value not in self.values or not isinstance(value, str | int):
            out.append(
                Problem(
                    path,
                    "wrong-value",
                    f"{_short(value)} is not a {self.name}; expected one of "
                    f"{', '.join(map(repr, self.values))}",
                )
            )


@dataclass(frozen=True)
class ListOf(Type):
    item: Type
    min_items: int | None = None

    def describe(self) -> str:
        return f"an array of {self.item.describe()}"

    def check(self, value: Any, path: str, out: list[Problem], models: Mapping[str, Model]) -> None:
        if not isinstance(value, list | tuple):
            self._wrong(value, path, out)
            return
        if self.min_items is not None and len(value) < self.min_items:
            out.append(
                Problem(
                    path, "too-short", f"needs at least {self.min_items} item(s), got {len(value)}"
                )
            )
        for i, item in enumerate(value):
            self.item.check(item, f"{path}[{i}]", out, models)


@dataclass(frozen=True)
class TupleOf(Type):
    items: tuple[Type, ...]

    def describe(self) -> str:
        return f"a {len(self.items)}-element array [{', '.join(t.describe() for t in self.items)}]"

    def check(self, value: Any, path: str, out: list[Problem], models: Mapping[str, Model]) -> None:
        if not isinstance(value, list | tuple) or len(value) != len(self.items):
            self._wrong(value, path, out)
            return
        for i, (t, item) in enumerate(zip(self.items, value, strict=True)):
            t.check(item, f"{path}[{i}]", out, models)


@dataclass(frozen=True)
class MapOf(Type):
    value: Type = ANY

    def describe(self) -> str:
        return "a map" if self.value is ANY else f"a map of str to {self.value.describe()}"

    def check(self, value: Any, path: str, out: list[Problem], models: Mapping[str, Model]) -> None:
        if not isinstance(value, Mapping):
            self._wrong(value, path, out)
            return
        for k, v in value.items():
            if not isinstance(k, str):
                out.append(
                    Problem(
                        f"{path}[{k!r}]", "wrong-type", f"map keys must be strings, got {_kind(k)}"
                    )
                )
                continue
            self.value.check(v, f"{path}.{k}", out, models)


@dataclass(frozen=True)
class Ref(Type):
    """A nested model, looked up by name in the catalogue at check time."""

    name: str

    def describe(self) -> str:
        from ._schema import DEFINITIONS  # late: _schema is built from this module

        target = DEFINITIONS.get(self.name)
        if isinstance(target, Enum):  # DagRunState, TaskInstanceState, ...: a string, not a map
            return target.describe()
        return f"a {self.name} map"

    def check(self, value: Any, path: str, out: list[Problem], models: Mapping[str, Model]) -> None:
        models[self.name].check(value, path, out, models)


@dataclass(frozen=True)
class AnyOf(Type):
    options: tuple[Type, ...]

    @property
    def nullable(self) -> bool:  # type: ignore[override]
        return any(o.nullable for o in self.options)

    def describe(self) -> str:
        return " or ".join(o.describe() for o in self.options)

    def check(self, value: Any, path: str, out: list[Problem], models: Mapping[str, Model]) -> None:
        trials: list[list[Problem]] = []
        for option in self.options:
            trial: list[Problem] = []
            option.check(value, path, trial, models)
            if not trial:
                return
            trials.append(trial)
        # An option whose problems are all *inside* the value matched its outer shape: its
        # problems are the useful ones ("dag_run.state: ..." rather than "wrong type").
        for trial in trials:
            if all(p.path != path for p in trial):
                out.extend(trial)
                return
        for trial in trials:
            if any(p.rule == "naive-datetime" for p in trial):
                out.extend(trial)
                return
        self._wrong(value, path, out)


@dataclass(frozen=True)
class Field:
    """One key of a model.

    ``required`` follows pydantic: a required field has no default, so its key must be present
    even when its type accepts nil ("required but nullable", R? in protocol.md).
    """

    name: str
    type: Type
    required: bool
    default: Any = MISSING

    @property
    def nullable(self) -> bool:
        return self.type.nullable

    @property
    def presence(self) -> str:
        if self.required:
            return "required, may be nil" if self.nullable else "required"
        return f"optional (default {self.default!r})"


@dataclass(frozen=True)
class Model(Type):
    """A map with known keys: a message body or a nested object."""

    name: str
    fields: tuple[Field, ...]
    forbid_extra: bool = False
    description: str = ""
    by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    def describe(self) -> str:
        return f"a {self.name} map"

    @property
    def required(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if f.required)

    def check(self, value: Any, path: str, out: list[Problem], models: Mapping[str, Model]) -> None:
        if not isinstance(value, Mapping):
            self._wrong(value, path, out)
            return
        for f in self.fields:
            if f.name not in value:
                if f.required:
                    rule = "missing-nullable-key" if f.nullable else "missing-required-field"
                    extra = " (it may be nil, but the key must be present)" if f.nullable else ""
                    out.append(
                        Problem(f"{path}.{f.name}", rule, f"required field is missing{extra}")
                    )
                continue
            f.type.check(value[f.name], f"{path}.{f.name}", out, models)
        if self.forbid_extra:
            for key in value:
                if key not in self.by_name:
                    out.append(
                        Problem(
                            f"{path}.{key}",
                            "unknown-field",
                            f"unknown key; {self.name} forbids keys it does not define",
                        )
                    )
