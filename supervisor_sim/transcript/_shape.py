"""The shape each transcript record must have before anything reads its fields.

``show``, ``show --html``, ``diff`` and ``replay`` index records, format their fields and walk
their values; a hand-edited or damaged file must stop them with a sentence naming the line, not
with whatever a wrong type raises deep inside one of them. These checks are what those readers
rely on, and no more: fields are optional unless a reader needs them, and a field the format does
not define is left alone. ``problem`` returns that sentence, or None for a record that is fine.
"""

from __future__ import annotations

import binascii
import math
from typing import Any

from ..protocol import from_jsonable, json_type

__all__ = ["MAX_DEPTH", "depth_problem", "header_problem", "json_type", "problem"]

#: Deepest nesting of one record line (the record itself is level 1). Far above any real message;
#: below what the recursive readers (normalising, diffing, tag decoding) can walk.
MAX_DEPTH = 256


_NULL: type = type(None)
_INT: frozenset[type] = frozenset({int})
_NUMBER: frozenset[type] = frozenset({int, float})
_STR: frozenset[type] = frozenset({str})
_OBJ: frozenset[type] = frozenset({dict})
_EXPECTED = {
    _INT: "an integer",
    frozenset({int, _NULL}): "an integer or null",
    _NUMBER: "a number",
    frozenset({int, float, _NULL}): "a number or null",
    _STR: "a string",
    frozenset({str, _NULL}): "a string or null",
    frozenset({int, str, _NULL}): "an integer, a string or null",
    frozenset({bool}): "a boolean",
    _OBJ: "an object",
    frozenset({dict, _NULL}): "an object or null",
    frozenset({list}): "an array",
}

#: Field -> the types its value may have (exactly: JSON decodes to these alone), per record kind.
#: Every kind has the common fields; a field not listed may hold anything.
_Spec = dict[str, frozenset[type]]
_COMMON: _Spec = {"seq": _INT, "t": _NUMBER}
_TYPES: dict[str, _Spec] = {
    "frame": {
        **_COMMON,
        "dir": _STR,
        "id": frozenset({int, _NULL}),
        "type": frozenset({str, _NULL}),
        "raw": _STR,
        "len": _INT,
        "offset": _INT,
        "elements": _INT,
        "decode_error": _STR,
        "raw_redacted": frozenset({bool}),
    },
    "http": {
        **_COMMON,
        "method": _STR,
        "path": _STR,
        "query": _STR,
        "status": frozenset({int, _NULL}),
        "attempt": _INT,
        "duration_s": frozenset({int, float, _NULL}),
        "cause": frozenset({int, str, _NULL}),
        "request": _OBJ,
        "response": _OBJ,
    },
    "log": {**_COMMON, "source": _STR, "line": _OBJ},
    "process": {**_COMMON, "event": _STR},
    "violation": {**_COMMON, "rule": _STR},
}

#: Fields a record of the kind cannot do without.
_REQUIRED_ALWAYS = frozenset({"seq", "t"})
_REQUIRED = {
    "frame": _REQUIRED_ALWAYS | {"dir"},
    "http": _REQUIRED_ALWAYS | {"method", "path"},
}
_ORDER = ("seq", "t", "dir", "method", "path")  # in which a message names missing fields

_HEADER: _Spec = {
    "runtime": frozenset({list}),
    "command": frozenset({list}),
    "config": _OBJ,
    "task": _OBJ,
    "parse": _OBJ,
    "api": _STR,
    "created": _STR,
    "tool_version": _STR,
    "redacted": frozenset({bool}),
}
_TASK: _Spec = {"ti": _OBJ, "dag_rel_path": _STR, "bundle_info": frozenset({dict, _NULL})}
_FOOTER: _Spec = {
    "counts": _OBJ,
    "final_state": frozenset({str, _NULL}),
    "exit_code": frozenset({int, _NULL}),
    "sha256": _STR,
}


def _base64(v: Any) -> bool:
    try:
        binascii.a2b_base64(v, strict_mode=True)
    except (binascii.Error, ValueError, TypeError):
        return False
    return True


def _shown(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {text!r}"
    return json_type(value)


def _fields(record: dict[str, Any], spec: _Spec, where: str) -> str | None:
    for name, value in record.items():
        allowed = spec.get(name)
        if allowed is not None and type(value) not in allowed:
            return f'{where}"{name}" must be {_EXPECTED[allowed]}, not {_shown(value)}'
    return None


def header_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with a header (already known to be a transcript header), or None."""
    found = _fields(record, _HEADER, "header: ")
    for name in ("runtime", "command"):
        if found is None and not all(type(a) is str for a in record.get(name, ())):
            found = f'header: "{name}" must be an array of strings'
    task = record.get("task")
    if found is None and task is not None:
        found = _fields(task, _TASK, "header: task.")
        ti = task.get("ti")
        if found is None and ti is not None and "id" in ti and type(ti["id"]) is not str:
            found = f'header: task.ti."id" must be a string, not {_shown(ti["id"])}'
    return found


#: Shapes (kind, field names, field types) of records that passed ``_field_problem``.
_PASSED: set[tuple[str, tuple[str, ...], tuple[type, ...]]] = set()
_PASSED_MAX = 4096


def _field_problem(kind: str, record: dict[str, Any]) -> str | None:
    """A required field missing, or a field of the wrong type, or None."""
    required = _REQUIRED.get(kind, _REQUIRED_ALWAYS)
    if not required <= record.keys():
        missing = next(name for name in _ORDER if name in required and name not in record)
        return f'{kind} record: no "{missing}" field'
    spec = _TYPES.get(kind, _COMMON)
    for name, value in record.items():
        allowed = spec.get(name)
        if allowed is not None and type(value) not in allowed:
            return _fields(record, spec, f"{kind} record: ")
    return None


def problem(record: Any, raw: bytes) -> str | None:
    """What is wrong with one decoded record line (``raw``: its bytes), or None."""
    if type(record) is not dict:
        return f"a record must be a JSON object, not {json_type(record)}"
    kind = record.get("record")
    if type(kind) is not str:
        if kind is None:
            return 'a record must have a "record" field naming its kind'
        return f'"record" must be a string, not {_shown(kind)}'
    if kind == "footer":
        return _fields(record, _FOOTER, "footer: ")
    if kind == "header":
        return "a second header"
    # The fields' names and types settle both checks below; a record of the same kind with the
    # same names and types as one that passed them passes them too (a writer writes few shapes).
    shape = (kind, tuple(record), tuple(map(type, record.values())))
    if shape not in _PASSED:
        found = _field_problem(kind, record)
        if found:
            return found
        if len(_PASSED) < _PASSED_MAX:
            _PASSED.add(shape)
    if kind == "frame":
        if record["dir"] not in ("in", "out"):
            return f'{kind} record: "dir" must be "in" or "out", not {_shown(record["dir"])}'
        if "raw" in record and not _base64(record["raw"]):
            return f'{kind} record: "raw" must be base64 text, not {_shown(record["raw"])}'
        if b'"$' in raw:
            # Only a line holding a string that starts with "$" can hold a tag ({"$ts": ...}).
            for name in ("body", "error", "context_carrier"):
                try:
                    from_jsonable(record.get(name))
                except Exception as exc:  # whatever a malformed tag makes the decoding raise
                    return (
                        f'{kind} record: "{name}" holds a malformed tagged value ({_reason(exc)})'
                    )
    elif kind == "http":
        duration = record.get("duration_s")
        if duration is not None and not (duration >= 0 and math.isfinite(duration)):
            return f'{kind} record: "duration_s" must be a non-negative number, not {duration!r}'
        for part in ("request", "response"):
            value = record.get(part)
            if value is None:
                continue
            headers = value.get("headers")
            if headers is not None and not (
                type(headers) is dict and _STR.issuperset(map(type, headers.values()))
            ):
                return f'{kind} record: "{part}.headers" must be an object of strings'
            if "b64" in value and not _base64(value["b64"]):
                return (
                    f'{kind} record: "{part}.b64" must be base64 text, not {_shown(value["b64"])}'
                )
    return None


def _reason(exc: Exception) -> str:
    text = str(exc)
    if type(exc) is ValueError and text:  # the codec's own words on a tag (its name is noise)
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def depth_problem(record: Any, raw: bytes) -> str | None:
    """Whether a decoded line nests deeper than ``MAX_DEPTH``. Counting the line's brackets (at C
    speed) settles almost every line; only one with more brackets than that is walked."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return None
    level = [(record, 1)]
    while level:
        value, depth = level.pop()
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, dict):
            level.extend((v, depth + 1) for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            level.extend((v, depth + 1) for v in value if isinstance(v, dict | list))
    return None
