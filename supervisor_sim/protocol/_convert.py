"""From the Execution API's JSON to the values Airflow's supervisor puts on the wire.

Airflow parses API responses into pydantic models and dumps them in python mode, so what the
runtime receives has every field (defaults filled in, in declaration order) and real datetimes,
which msgpack sends as timestamp extensions. ``materialize`` does the same from plain JSON.
"""

from __future__ import annotations

import copy
from datetime import UTC
from typing import Any

from ._codec import parse_datetime
from ._schema import DEFINITIONS
from ._types import AnyOf, ListOf, MapOf, Model, Ref, Type, _DateTime

__all__ = ["materialize"]


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
