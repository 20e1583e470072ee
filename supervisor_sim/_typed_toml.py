"""Typed TOML files: each table a dataclass, every file checked by one policy, every model
published as a JSON Schema.

``load(model, document)`` checks a parsed TOML document against the dataclass ``model`` and
builds it. The policy is the same for every file (``supervisor-sim.toml``, the fixtures file):

* a key the model does not declare is refused, naming the keys it does and the closest one
  (``runtime.cmd: unknown key; expected one of command, cwd; did you mean 'command'?``);
  at the top of a file it is an unknown *section*;
* a required key (a field without a default) that is missing is refused by name, before any
  value of that table is looked at;
* a value of the wrong kind is refused with what was expected and what was found
  (``connections.c.port: expected an integer, got 'abc'``);
* every message starts with the key path, ``a.b[2].c``; the caller adds the file.

A field's type says what its value may be: ``str``, ``int``, ``float`` (an integer is taken
too), ``bool``, ``datetime`` (a TOML date-time or an ISO 8601 string; a local one is UTC),
``Literal[...]``, ``list[T]`` and ``tuple[T, ...]`` (arrays), ``dict[str, T]`` (a table of
any keys), a dataclass (a table of its fields), ``T | None`` (optional: TOML has no null),
unions of different TOML kinds, and the ``Annotated`` markers below: ``JSON`` (any value with
a JSON form), ``JSONText`` (a table or a string of JSON, kept as JSON text), ``OneOf`` (a
string from a list known only when needed), ``FROM_KEY`` (the key of the table the dataclass
is a value of) and ``Deferred`` (a table checked against a model imported only when the table
has keys).

``json_schema(model)`` describes the same model as a JSON Schema (draft 7), with the ``#:``
comments above each field as its description, for editors (docs/configuration.md).

Standard library only, and cheap: ``run-task`` checks its config and fixtures before it
starts the runtime.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal, TypeVar, Union

__all__ = [
    "FROM_KEY",
    "JSON",
    "Deferred",
    "JSONText",
    "ModelError",
    "OneOf",
    "closest",
    "json_schema",
    "load",
]

T = TypeVar("T")


class ModelError(ValueError):
    """A document that does not match its model: ``where`` is the key path, ``message`` what
    is wrong there (and how to put it right when that is not obvious)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


# --- markers ----------------------------------------------------------------------------------


class _Json:
    """Any TOML value that has a JSON form: no dates or times, no NaN."""


class _JsonText:
    """A table, or a string holding JSON; the value is the JSON text."""


class _FromKey:
    """Not a TOML key: the key under which the enclosing table sits in its parent table."""


# Plain classes, not dataclasses: this module is imported before run-task starts its runtime,
# and each dataclass costs a fraction of a millisecond to create.


class OneOf:
    """A string among ``values()``, called only when a value is there to check (the
    vocabulary may live in a module that is not cheap to import)."""

    __slots__ = ("values",)

    def __init__(self, values: Callable[[], tuple[str, ...]]) -> None:
        self.values = values


class Deferred:
    """A table checked against the dataclass ``model()`` when it has keys; the value is a dict
    of the keys given, with their checked values (the model's defaults are not filled in)."""

    __slots__ = ("model",)

    def __init__(self, model: Callable[[], type]) -> None:
        self.model = model


JSON = Annotated[Any, _Json()]
JSONText = Annotated[str, _JsonText()]
FROM_KEY = _FromKey()


# --- loading ----------------------------------------------------------------------------------


def load(model: type[T], document: Mapping[str, Any], where: str = "") -> T:
    """``document`` (a parsed TOML table) checked against ``model`` and built; raises
    ``ModelError`` at the first key that does not match."""
    return typing.cast(T, _table(model, document, where, None))


class _Field:
    __slots__ = ("from_key", "name", "required", "type")

    def __init__(self, name: str, type: Any, required: bool, from_key: bool) -> None:
        self.name = name
        self.type = type
        self.required = required
        self.from_key = from_key


_FIELDS: dict[type, tuple[_Field, ...]] = {}


def _fields(model: type) -> tuple[_Field, ...]:
    cached = _FIELDS.get(model)
    if cached is None:
        fields = dataclasses.fields(model)
        # A model whose module defers annotations has strings here; evaluating them costs
        # ~0.1 ms a class, which models read before a runtime starts avoid by not deferring.
        hints = (
            typing.get_type_hints(model, include_extras=True)
            if any(isinstance(f.type, str) for f in fields)
            else {f.name: f.type for f in fields}
        )
        cached = _FIELDS[model] = tuple(
            _Field(
                f.name,
                hints[f.name],
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
                any(m is FROM_KEY for m in getattr(hints[f.name], "__metadata__", ())),
            )
            for f in fields
            if f.init
        )
    return cached


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _unknown(where: str, key: str, known: list[str]) -> ModelError:
    what = "unknown key" if where else "unknown section"
    message = f"{what}; expected one of {', '.join(sorted(known))}"
    close = closest(key, known)
    if close:
        message += f"; did you mean {close!r}?"
    return ModelError(_join(where, key), message)


def closest(word: str, known: list[str]) -> str | None:
    """The known word ``word`` was probably meant as: one it abbreviates (``cmd`` for
    ``command``: its letters in order, the first alike), else the most similar one."""
    import difflib  # only for a message

    if len(word) >= 3:
        shortened = [k for k in known if k[0] == word[0] and _in_order(word, k)]
        if shortened:
            return min(shortened, key=len)
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.75)
    return close[0] if close else None


def _in_order(letters: str, word: str) -> bool:
    rest = iter(word)
    return all(c in rest for c in letters)


def _table(model: type, value: Any, where: str, key: str | None) -> Any:
    if not isinstance(value, dict):
        raise ModelError(where, f"expected a table, got {_show(value)}")
    fields = _fields(model)
    keys = [f.name for f in fields if not f.from_key]
    for name in value:
        if name not in keys:
            raise _unknown(where, name, keys)
    for f in fields:
        if f.required and not f.from_key and f.name not in value:
            raise ModelError(where, f"missing required key {f.name!r}")
    args: dict[str, Any] = {}
    for f in fields:
        if f.from_key:
            args[f.name] = key
        elif f.name in value:
            args[f.name] = _value(f.type, value[f.name], _join(where, f.name))
    try:
        return model(**args)
    except (TypeError, ValueError) as exc:  # a model's own checks (__post_init__)
        raise ModelError(where, str(exc)) from None


def _value(tp: Any, value: Any, where: str, key: str | None = None) -> Any:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        inner, *marks = typing.get_args(tp)
        for mark in marks:
            if isinstance(mark, _Json):
                return _json(value, where)
            if isinstance(mark, _JsonText):
                return _json_text(value, where)
            if isinstance(mark, OneOf):
                text = _value(str, value, where)
                allowed = mark.values()
                if text not in allowed:
                    raise ModelError(where, f"expected one of {', '.join(allowed)}, got {text!r}")
                return text
            if isinstance(mark, Deferred):
                table = _value(dict[str, Any], value, where)
                if not table:
                    return {}
                built = _table(mark.model(), table, where, None)
                return {name: getattr(built, name) for name in table}
        return _value(inner, value, where, key)
    if origin in (Union, types.UnionType):
        return _union(tp, value, where, key)
    if origin is Literal:
        allowed = typing.get_args(tp)
        text = _value(str, value, where)
        if text not in allowed:
            raise ModelError(where, f"expected one of {', '.join(allowed)}, got {text!r}")
        return text
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ModelError(where, f"expected {_describe(tp, where)}, got {_show(value)}")
        item = typing.get_args(tp)[0]
        items = [_value(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ModelError(where, f"expected a table, got {_show(value)}")
        item = typing.get_args(tp)[1]
        return {k: _value(item, v, _join(where, k), k) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _table(typing.cast(type, tp), value, where, key)
    if tp is Any:
        return value
    if tp is datetime:
        return _datetime(value, where)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        # bool is an int in Python; TOML keeps them apart, and so must we.
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ModelError(where, f"expected {_describe(tp, where)}, got {_show(value)}")


def _union(tp: Any, value: Any, where: str, key: str | None) -> Any:
    """The branch that takes this kind of TOML value; a catch-all (``JSON``, ``Any``) only
    when no other does."""
    branches = [b for b in typing.get_args(tp) if b is not type(None)]
    kind = _kind(value)
    fallback = None
    for branch in branches:
        kinds = _kinds(branch)
        if kinds is None:
            fallback = fallback or branch
        elif kind in kinds:
            return _value(branch, value, where, key)
    if fallback is not None:
        return _value(fallback, value, where, key)
    if len(branches) == 1:
        return _value(branches[0], value, where, key)
    wanted = " or ".join(_describe(b, where) for b in branches)
    raise ModelError(where, f"expected {wanted}, got {_show(value)}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    return "datetime"


def _kinds(tp: Any) -> frozenset[str] | None:
    """The TOML kinds a type takes; None for a catch-all."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        inner, *marks = typing.get_args(tp)
        if any(isinstance(m, _Json) for m in marks):
            return None
        if any(isinstance(m, _JsonText) for m in marks):
            return frozenset({"str", "table"})
        if any(isinstance(m, Deferred) for m in marks):
            return frozenset({"table"})
        return _kinds(inner)
    if origin in (list, tuple):
        return frozenset({"array"})
    if origin is dict or dataclasses.is_dataclass(tp):
        return frozenset({"table"})
    if origin is Literal or tp is str:
        return frozenset({"str"})
    simple = {
        int: {"int"},
        float: {"int", "float"},
        bool: {"bool"},
        datetime: {"datetime", "str"},
    }
    if tp in simple:
        return frozenset(simple[tp])
    return None


def _describe(tp: Any, where: str) -> str:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        inner, *marks = typing.get_args(tp)
        if any(isinstance(m, _JsonText) for m in marks):
            return "a table or a JSON string"
        return _describe(inner, where)
    if origin in (list, tuple):
        item = typing.get_args(tp)[0]
        if item is str:
            return "an array of strings"
        if dataclasses.is_dataclass(item):
            return f"an array of tables ([[{where}]])"
        return "an array"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a table"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(b, where) for b in typing.get_args(tp) if b is not type(None))
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        datetime: "a date-time",
    }
    return names.get(tp, "a value")


def _datetime(value: Any, where: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ModelError(where, f"expected an ISO 8601 date-time, got {_show(value)}") from None
    if not isinstance(value, datetime):
        raise ModelError(where, f"expected a date-time, got {_show(value)}")
    # A local date-time (no offset) is taken as UTC: Airflow only keeps aware UTC times.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _json(value: Any, where: str) -> Any:
    if isinstance(value, datetime | date | time):
        raise ModelError(
            where,
            f"TOML dates and times have no JSON form; quote it as a string, got {_show(value)}",
        )
    if isinstance(value, dict):
        return {k: _json(v, _join(where, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        raise ModelError(where, "NaN has no JSON form")
    return value


def _json_text(value: Any, where: str) -> str:
    import json  # here: --help loads this module and needs no json

    if isinstance(value, dict):
        return json.dumps(_json(value, where), separators=(",", ":"))
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError as exc:
            raise ModelError(where, f"not valid JSON: {exc}") from None
        return value
    raise ModelError(where, f"expected a table or a JSON string, got {_show(value)}")


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


# --- JSON Schema ------------------------------------------------------------------------------


def json_schema(model: type, *, title: str, schema_id: str | None = None) -> dict[str, Any]:
    """A JSON Schema (draft 7) of the files ``model`` reads; each dataclass is a definition,
    described by its docstring, each field by the ``#:`` comment above it."""
    definitions: dict[str, Any] = {}
    root = _object_schema(model, definitions)
    out: dict[str, Any] = {"$schema": "http://json-schema.org/draft-07/schema#"}
    if schema_id:
        out["$id"] = schema_id
    out["title"] = title
    out.update(root)
    if definitions:
        out["definitions"] = dict(sorted(definitions.items()))
    return out


def _object_schema(model: type, definitions: dict[str, Any]) -> dict[str, Any]:
    docs = _field_docs(model)
    properties: dict[str, Any] = {}
    required = []
    defaults = {f.name: f for f in dataclasses.fields(model)}
    for f in _fields(model):
        if f.from_key:
            continue
        schema = _schema(f.type, definitions)
        if f.name in docs:
            schema = {"description": docs[f.name], **schema}
        default = defaults[f.name].default
        if f.required:
            required.append(f.name)
        elif isinstance(default, str | int | float | bool) or default == ():
            schema["default"] = list(default) if isinstance(default, tuple) else default
        properties[f.name] = schema
    out: dict[str, Any] = {"type": "object"}
    doc = _docstring(model)
    if doc:
        out["description"] = doc
    out["properties"] = properties
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    return out


def _schema(tp: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        inner, *marks = typing.get_args(tp)
        for mark in marks:
            if isinstance(mark, _Json):
                return {"description": "any TOML value with a JSON form (no dates or times)"}
            if isinstance(mark, _JsonText):
                return {"type": ["object", "string"]}
            if isinstance(mark, OneOf):
                return {"type": "string", "enum": list(mark.values())}
            if isinstance(mark, Deferred):
                return _schema(mark.model(), definitions)
        return _schema(inner, definitions)
    if origin in (Union, types.UnionType):
        branches = [b for b in typing.get_args(tp) if b is not type(None)]
        if len(branches) == 1:
            return _schema(branches[0], definitions)
        # As in ``_union``: a catch-all takes only what no other branch does.
        tables = any("table" in (_kinds(b) or ()) for b in branches)
        schemas = []
        for branch in branches:
            schema = _schema(branch, definitions)
            if _kinds(branch) is None and tables:
                schema = {**schema, "not": {"type": "object"}}
            schemas.append(schema)
        return {"anyOf": schemas}
    if origin is Literal:
        return {"type": "string", "enum": list(typing.get_args(tp))}
    if origin in (list, tuple):
        return {"type": "array", "items": _schema(typing.get_args(tp)[0], definitions)}
    if origin is dict:
        return {
            "type": "object",
            "additionalProperties": _schema(typing.get_args(tp)[1], definitions),
        }
    if dataclasses.is_dataclass(tp):
        name = typing.cast(type, tp).__name__
        if name not in definitions:
            definitions[name] = {}  # reserved first: a model may refer to itself
            definitions[name] = _object_schema(typing.cast(type, tp), definitions)
        return {"$ref": f"#/definitions/{name}"}
    if tp is datetime:
        return {"type": "string", "description": "a TOML date-time or an ISO 8601 string"}
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return {"type": names[tp]} if tp in names else {}


def _docstring(model: type) -> str:
    import inspect

    doc = inspect.getdoc(model) or ""
    if doc.startswith(f"{model.__name__}("):  # the dataclass's generated signature
        return ""
    return " ".join(doc.split("\n\n", 1)[0].split()).replace("``", "`")


def _field_docs(model: type) -> dict[str, str]:
    """The ``#:`` comment lines above each field of ``model``'s class body."""
    import inspect

    try:
        lines = inspect.getsource(model).splitlines()
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    comment: list[str] = []
    for line in lines[1:]:
        text = line.strip()
        if text.startswith("#:"):
            comment.append(text[2:].strip())
            continue
        name = text.split(":", 1)[0].strip()
        if comment and name.isidentifier() and ":" in text:
            docs[name] = " ".join(comment)
        comment = []
    return docs
