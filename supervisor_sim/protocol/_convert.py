"""Between the Execution API's JSON and the values on the wire, both ways, as Airflow does it.

Airflow parses API responses into pydantic models and dumps them in python mode, so what the
runtime receives has every field (defaults filled in, in declaration order) and real datetimes,
which msgpack sends as timestamp extensions. ``materialize`` does the same from plain JSON.

The other way, Airflow validates a runtime's request into a pydantic model and writes the HTTP
body with ``model_dump_json``, so a duration or datetime reaches the API re-spelled by pydantic
whatever form the runtime sent. ``as_pydantic_json`` does the same to a request's values.
"""

from __future__ import annotations

import copy
from datetime import UTC
from typing import Any

from ._codec import format_datetime_json, format_duration_json, parse_datetime
from ._lax import LaxError, lax_datetime, lax_duration
from ._schema import DEFINITIONS
from ._types import AnyOf, ListOf, MapOf, Model, Ref, Type, _DateTime, _Duration

__all__ = ["as_pydantic_json", "materialize"]


def materialize(value: Any, type_or_name: Type | str) -> Any:
    """Fill defaults and turn ISO strings into aware datetimes, following a catalogue type."""
    t = DEFINITIONS[type_or_name] if isinstance(type_or_name, str) else type_or_name
    return _walk(value, t)


def _walk(value: Any, t: Type) -> Any:
    if isinstance(t, Ref):
        return _walk(value, DEFINITIONS[t.name])
    if isinstance(t, Model):
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for f in t.fields:
            if f.name in value:
                out[f.name] = _walk(value[f.name], f.type)
            elif not f.required:
                out[f.name] = copy.copy(f.default)
        for k, v in value.items():  # keys the model does not know are kept, not dropped
            if k not in out:
                out[k] = v
        return out
    if isinstance(t, _DateTime):
        if isinstance(value, str):
            try:
                dt = parse_datetime(value)
            except ValueError:
                return value
            return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
        return value
    if isinstance(t, AnyOf):
        if value is None:
            return None
        for option in t.options:
            if isinstance(option, _DateTime) and isinstance(value, str):
                return _walk(value, option)
            if isinstance(option, Ref | Model) and isinstance(value, dict):
                return _walk(value, option)
            if isinstance(option, ListOf) and isinstance(value, list):
                return _walk(value, option)
        return value
    if isinstance(t, ListOf) and isinstance(value, list):
        return [_walk(v, t.item) for v in value]
    if isinstance(t, MapOf) and isinstance(value, dict):
        return {k: _walk(v, t.value) for k, v in value.items()}
    return value


def as_pydantic_json(value: Any, type_or_name: Type | str) -> Any:
    """``value``'s durations and datetimes as pydantic writes them to JSON, following a catalogue
    type: ``PT600S`` or ``600`` becomes ``PT10M``, ``2026-01-01 00:00:00+00:00`` or a unix time
    ``2026-01-01T00:00:00Z``. What does not parse is left alone (validation reports it), and so
    is everything else: keys stay, in their order."""
    t = DEFINITIONS[type_or_name] if isinstance(type_or_name, str) else type_or_name
    return _respell(value, t)


def _respell(value: Any, t: Type) -> Any:
    if isinstance(t, Ref):
        return _respell(value, DEFINITIONS[t.name])
    if isinstance(t, Model):
        if not isinstance(value, dict):
            return value
        fields = t.by_name
        return {k: _respell(v, fields[k].type) if k in fields else v for k, v in value.items()}
    if isinstance(t, _Duration):
        try:
            return format_duration_json(lax_duration(value))
        except LaxError:
            return value
    if isinstance(t, _DateTime):
        try:
            return format_datetime_json(lax_datetime(value))
        except LaxError:
            return value
    if isinstance(t, AnyOf):
        if value is None:
            return None
        for option in t.options:
            if isinstance(option, _Duration | _DateTime):
                respelled = _respell(value, option)
                if respelled is not value:
                    return respelled
            elif (isinstance(option, Ref | Model) and isinstance(value, dict)) or (
                isinstance(option, ListOf) and isinstance(value, list)
            ):
                return _respell(value, option)
        return value
    if isinstance(t, ListOf) and isinstance(value, list):
        return [_respell(v, t.item) for v in value]
    if isinstance(t, MapOf) and isinstance(value, dict):
        return {k: _respell(v, t.value) for k, v in value.items()}
    return value
