"""Requests, durations and datetimes against task-sdk 1.3.2's own pydantic models.

Airflow's supervisor decodes a request frame with msgspec, validates the body with
``TypeAdapter(ToSupervisor)`` and forwards terminal states to the Execution API as
``model_dump_json()`` of its own payload models. Here the same values go through both sides:

* every datetime field of every request, filled with each form a runtime can send (msgpack
  timestamps of each size, ISO strings with and without a zone, unix times, junk): Airflow's
  models and ``validate_body`` must take and refuse the same ones;
* the fields Airflow declares as plain ``datetime`` (naive values allowed) are exactly
  ``PLAIN_DATETIME_FIELDS``;
* timedeltas and datetimes are written to JSON exactly as pydantic writes them, and a terminal
  request's durations and datetimes reach the API spelled as Airflow's client spells them.

Airflow's side runs in the Airflow venv (``.cache/airflow-venv``, tools/airflow_venv.sh), in one
subprocess for the whole module; without it the module is skipped.
"""

from __future__ import annotations

import pickle
import random
import subprocess
import textwrap
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgpack
import pytest

from supervisor_sim.protocol import (
    DEFINITIONS,
    TO_SUPERVISOR,
    _types as T,
    as_pydantic_json,
    decode_request,
    format_datetime_json,
    format_duration_json,
    packb,
    parse_duration,
    validate_body,
)
from supervisor_sim.protocol._catalogue import MODELS, PLAIN_DATETIME_FIELDS

pytestmark = pytest.mark.contract

AIRFLOW_PYTHON = Path(__file__).resolve().parents[2] / ".cache" / "airflow-venv" / "bin" / "python"

# --- the forms a runtime can put in a datetime or duration field -------------------------------

DATETIME_FORMS: dict[str, Any] = {
    "timestamp-32": datetime(2026, 1, 1, tzinfo=UTC),
    "timestamp-64": datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=UTC),
    "timestamp-96": datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC),
    "timestamp-nanoseconds": msgpack.Timestamp(1_700_000_000, 999_999_999),
    "aware-offset": datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))),
    "naive-datetime": datetime(2026, 1, 1),  # msgpack cannot hold it: an ISO string, no zone
    "iso-z": "2026-01-01T00:00:00Z",
    "iso-offset": "2026-01-01T00:00:00+01:00",
    "iso-space": "2026-01-01 00:00:00Z",
    "iso-fraction-9": "2026-01-01T00:00:00.123456789Z",
    "iso-naive": "2026-01-01T00:00:00",
    "iso-date-only": "2026-01-01",
    "unix-int": 1_700_000_000,
    "unix-float": 1_700_000_000.5,
    "unix-ms": 1_700_000_000_000,
    "unix-string": "1700000000",
    "zero": 0,
    "junk-string": "not a date",
    "empty-string": "",
    "bool": True,
    "nil": None,
    "array": [],
    "map": {},
}

DURATION_FORMS: dict[str, Any] = {
    "iso-seconds": "PT600S",
    "iso-hours": "PT1H",
    "iso-days-seconds": "P1DT30.5S",
    "iso-years": "P1Y35D",
    "iso-negative": "-PT1S",
    "seconds-int": 600,
    "seconds-float": 0.5,
    "junk-string": "ten minutes",
    "bool": True,
    "nil": None,
    "map": {},
}

# --- minimal valid requests, from the catalogue -------------------------------------------------


def _value(t: T.Type) -> Any:
    """One value of ``t`` every lax validator takes."""
    if isinstance(t, T.Ref):
        target = DEFINITIONS[t.name]
        return target.values[0] if isinstance(target, T.Enum) else _value(target)
    if isinstance(t, T.Model):
        return {f.name: _value(f.type) for f in t.fields if f.required or f.name == "type"}
    if isinstance(t, T.AnyOf):
        return _value(t.options[0])
    if isinstance(t, T.Const):
        return t.value
    if isinstance(t, T.Enum):
        return t.values[0]
    if isinstance(t, T.ListOf):
        return [_value(t.item)] * (t.min_items or 0)
    if isinstance(t, T.TupleOf):
        return [_value(i) for i in t.items]
    if isinstance(t, T.MapOf):
        return {}
    if isinstance(t, T._DateTime):
        return datetime(2026, 1, 1, tzinfo=UTC)
    if isinstance(t, T._Duration):
        return "PT1S"
    if t == T.UUID:
        return str(uuid.UUID(int=1))
    return {"int": 1, "float": 1.0, "bool": True, "nil": None}.get(getattr(t, "name", ""), "x")


def _temporal_fields(kind: type) -> list[tuple[str, str, bool]]:
    """(message, field, in a list) for every field of a request whose type holds ``kind``."""
    found = []
    for name in TO_SUPERVISOR:
        for f in MODELS[name].fields:
            options = f.type.options if isinstance(f.type, T.AnyOf) else (f.type,)
            for option in options:
                if isinstance(option, kind):
                    found.append((name, f.name, False))
                elif isinstance(option, T.ListOf) and isinstance(option.item, kind):
                    found.append((name, f.name, True))
    return found


DATETIME_FIELDS = _temporal_fields(T._DateTime)
DURATION_FIELDS = _temporal_fields(T._Duration)


def _cases() -> list[tuple[str, bytes]]:
    """(case id, request frame payload) for every field and form, after the base requests."""
    cases = []
    for name in TO_SUPERVISOR:
        cases.append((f"{name}:base", packb([0, _value(MODELS[name]), None])))
    for fields, forms in ((DATETIME_FIELDS, DATETIME_FORMS), (DURATION_FIELDS, DURATION_FORMS)):
        for name, field, listed in fields:
            for form, value in forms.items():
                body = _value(MODELS[name]) | {field: value}
                cases.append((f"{name}.{field}={form}", packb([0, body, None])))
                if listed:
                    body = body | {field: [value]}
                    cases.append((f"{name}.{field}=[{form}]", packb([0, body, None])))
    return cases


CASES = _cases()

# --- what pydantic writes -------------------------------------------------------------------------

_rng = random.Random(17)
TIMEDELTAS = [
    *[timedelta(0), timedelta(seconds=600), timedelta(hours=1), timedelta(days=1)],
    *[timedelta(days=1, seconds=1), timedelta(seconds=-1), timedelta(days=-1)],
    *[timedelta(seconds=0.5), timedelta(microseconds=1), timedelta(seconds=-0.5)],
    *[timedelta(days=365), timedelta(days=400), timedelta(days=-400, seconds=1)],
    *[timedelta(weeks=2), timedelta(days=-1, seconds=5), timedelta(hours=25, seconds=61.25)],
    *[timedelta(minutes=59, seconds=59, microseconds=999999), timedelta.max, timedelta.min],
    *[
        timedelta(
            days=_rng.randint(-800, 800),
            seconds=_rng.randint(0, 86399),
            microseconds=_rng.choice([0, 0, 1, 500000, _rng.randint(0, 999999)]),
        )
        for _ in range(200)
    ],
]

DATETIMES = [
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
    datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
    datetime(2026, 1, 1, tzinfo=timezone(timedelta(0))),
    datetime(2026, 1, 1, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
    datetime(2026, 1, 1, 12, 30, 5, 1),
    *[datetime(2026, 1, 1, tzinfo=timezone(timedelta(seconds=s))) for s in (30, -30, 90, -3690)],
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]

#: Terminal requests whose durations and datetimes Airflow's client forwards, with the payload
#: model it builds from them (airflow/sdk/api/client.py).
FORWARDED: list[tuple[str, dict[str, Any]]] = [
    ("DeferTask", {"classpath": "t.T", "next_method": "execute", "trigger_timeout": "PT600S"}),
    ("DeferTask", {"classpath": "t.T", "next_method": "execute", "trigger_timeout": 3600}),
    ("DeferTask", {"classpath": "t.T", "next_method": "execute", "trigger_timeout": "P1DT0S"}),
    ("DeferTask", {"classpath": "t.T", "next_method": "execute", "trigger_timeout": None}),
    ("AwaitInputTask", {"next_method": "execute", "timeout": "PT3600S"}),
    ("AwaitInputTask", {"next_method": "execute", "timeout": "-PT86395S"}),
    ("AwaitInputTask", {"next_method": "execute", "timeout": 0.25}),
    (
        "RescheduleTask",
        {"reschedule_date": "2026-01-01 00:00:00+00:00", "end_date": 1_700_000_000},
    ),
    ("RetryTask", {"end_date": "2026-01-01T00:00:00.5+01:00"}),
    ("SucceedTask", {"end_date": datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC)}),
]

_ORACLE = textwrap.dedent(
    """
    import datetime as dt, json, pickle, sys, typing
    import msgspec, pydantic
    from pydantic import AwareDatetime, BaseModel, TypeAdapter
    from airflow.sdk.api import client
    from airflow.sdk.api.datamodels import _generated
    from airflow.sdk.execution_time import comms
    from airflow.serialization import serialized_objects

    job = pickle.load(sys.stdin.buffer)
    out = {}

    frames = msgspec.msgpack.Decoder(comms._RequestFrame)
    union = TypeAdapter(comms.ToSupervisor)
    verdicts = []
    for payload in job["frames"]:
        try:
            union.validate_python(frames.decode(payload).body)
            verdicts.append((True, None))
        except pydantic.ValidationError as exc:
            verdicts.append((False, exc.errors()[0]["type"]))
    out["verdicts"] = verdicts

    delta, when = TypeAdapter(dt.timedelta), TypeAdapter(dt.datetime)
    out["durations"] = [json.loads(delta.dump_json(v)) for v in job["timedeltas"]]
    out["datetimes"] = [json.loads(when.dump_json(v)) for v in job["datetimes"]]

    payloads = {
        "DeferTask": _generated.TIDeferredStatePayload,
        "AwaitInputTask": _generated.TIAwaitingInputStatePayload,
        "RescheduleTask": _generated.TIRescheduleStatePayload,
    }
    forwarded = []
    for name, body in job["forwarded"]:
        msg = getattr(comms, name).model_validate(body)
        if name in payloads:  # client.defer / await_input / reschedule
            sent = payloads[name](**msg.model_dump(exclude_unset=True, exclude={"type"}))
        elif name == "RetryTask":
            sent = _generated.TIRetryStatePayload(end_date=msg.end_date)
        else:
            sent = _generated.TISuccessStatePayload(end_date=msg.end_date)
        forwarded.append(json.loads(sent.model_dump_json()))
    out["forwarded"] = forwarded

    classes = {}
    for module in (comms, _generated, serialized_objects):
        for k, v in vars(module).items():
            if isinstance(v, type) and issubclass(v, BaseModel):
                classes.setdefault(k, v)

    def kinds(ann):
        if ann is dt.datetime:
            return {"plain"}
        if ann is AwareDatetime:
            return {"aware"}
        return set().union(*(kinds(a) for a in typing.get_args(ann)))

    fields = {}
    for model, names in job["datetime_fields"].items():
        cls = classes.get(model)
        for name in names:
            fields[(model, name)] = (
                None if cls is None else sorted(kinds(cls.model_fields[name].annotation))
            )
    out["fields"] = fields
    sys.stdout.buffer.write(pickle.dumps(out, protocol=4))
    """
)


def _all_datetime_fields() -> dict[str, list[str]]:
    """Every field of every generated shape whose type holds a datetime."""

    def holds(t: T.Type) -> bool:
        if isinstance(t, T._DateTime):
            return True
        if isinstance(t, T.AnyOf):
            return any(holds(o) for o in t.options)
        return isinstance(t, T.ListOf) and holds(t.item)

    return {
        name: names
        for name, model in DEFINITIONS.items()
        if isinstance(model, T.Model) and (names := [f.name for f in model.fields if holds(f.type)])
    }


@pytest.fixture(scope="module")
def airflow_says() -> dict[str, Any]:
    """Airflow's verdicts and JSON for everything this module asks, from one subprocess."""
    if not AIRFLOW_PYTHON.exists():
        pytest.skip(f"no Airflow venv at {AIRFLOW_PYTHON} (tools/airflow_venv.sh builds it)")
    job = {
        "frames": [payload for _, payload in CASES],
        "timedeltas": TIMEDELTAS,
        "datetimes": DATETIMES,
        "forwarded": FORWARDED,
        "datetime_fields": _all_datetime_fields(),
    }
    proc = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", _ORACLE],
        input=pickle.dumps(job, protocol=4),
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    answer: dict[str, Any] = pickle.loads(proc.stdout)
    answer["verdicts"] = dict(zip((case for case, _ in CASES), answer["verdicts"], strict=True))
    return answer


def _ours(payload: bytes) -> list[str]:
    body = decode_request(payload).body
    return [f"{p.rule} at {p.path}" for p in validate_body(body, TO_SUPERVISOR)]


def test_every_request_type_has_a_base_body_airflow_takes(airflow_says: dict[str, Any]) -> None:
    """The minimal body built for each request type is valid for Airflow and for us, so each
    datetime case below changes exactly one thing."""
    refused = {
        case: (verdict, _ours(payload))
        for case, payload in CASES
        if case.endswith(":base")
        and ((verdict := airflow_says["verdicts"][case])[0] is False or _ours(payload))
    }
    assert not refused


@pytest.mark.parametrize(("case", "payload"), CASES, ids=[case for case, _ in CASES])
def test_a_request_is_valid_exactly_when_airflows_models_take_it(
    airflow_says: dict[str, Any], case: str, payload: bytes
) -> None:
    """Each datetime and duration form, in each field of each request, is taken or refused by
    validate_body as by TypeAdapter(ToSupervisor) after msgspec decoded the same bytes."""
    theirs, error = airflow_says["verdicts"][case]
    ours = _ours(payload)
    assert (not ours) == theirs, f"Airflow {'takes' if theirs else f'refuses ({error})'}: {ours}"


def test_the_fields_taking_naive_datetimes_are_the_ones_airflow_declares_plain(
    airflow_says: dict[str, Any],
) -> None:
    """A field is in PLAIN_DATETIME_FIELDS exactly when Airflow's model declares it a plain
    ``datetime`` (every other datetime field is an ``AwareDatetime``)."""
    fields = airflow_says["fields"]
    assert not [key for key, kinds in fields.items() if kinds is None], "model not found"
    plain = {key for key, kinds in fields.items() if kinds == ["plain"]}
    aware = {key for key, kinds in fields.items() if kinds == ["aware"]}
    assert plain | aware == set(fields), fields
    assert plain == {(m, f) for m, names in PLAIN_DATETIME_FIELDS.items() for f in names}


def test_naive_task_state_end_date_is_valid_as_in_airflow() -> None:
    """TaskState.end_date is a plain datetime in Airflow: a naive value is no violation, while
    SucceedTask.end_date (an AwareDatetime) still needs its zone."""
    naive = "2026-01-01T00:00:00"
    assert validate_body({"type": "TaskState", "state": "failed", "end_date": naive}) == []
    problems = validate_body({"type": "SucceedTask", "end_date": naive})
    assert [p.rule for p in problems] == ["naive-datetime"]


def test_timedeltas_are_written_as_pydantic_writes_them(airflow_says: dict[str, Any]) -> None:
    """format_duration_json gives pydantic's own JSON for each timedelta (negatives, fractions,
    years of 365 days, the extremes), and parse_duration reads it back."""
    theirs = airflow_says["durations"]
    ours = [format_duration_json(v) for v in TIMEDELTAS]
    wrong = [(v, o, t) for v, o, t in zip(TIMEDELTAS, ours, theirs, strict=True) if o != t]
    assert not wrong
    assert [parse_duration(t) for t in theirs] == TIMEDELTAS


def test_datetimes_are_written_as_pydantic_writes_them(airflow_says: dict[str, Any]) -> None:
    """format_datetime_json gives pydantic's own JSON for aware, odd-offset and naive values."""
    assert [format_datetime_json(v) for v in DATETIMES] == airflow_says["datetimes"]


def test_terminal_requests_reach_the_api_spelled_as_airflows_client_spells_them(
    airflow_says: dict[str, Any],
) -> None:
    """A terminal request's durations and datetimes, in whatever form the runtime wrote them,
    are forwarded as Airflow's ``model_dump_json`` writes them (``PT600S`` as ``PT10M``)."""
    for (name, body), sent in zip(FORWARDED, airflow_says["forwarded"], strict=True):
        ours = as_pydantic_json(body, name)
        for key in body:
            if key in sent:
                assert ours[key] == sent[key], (name, key, body[key])
