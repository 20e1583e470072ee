"""The protocol layer against Airflow's own task SDK 1.3.2 (its schema.json, unions and frames).

The wheel is downloaded once into .cache/ by ``_airflow_sdk``; nothing from it is installed.
"""

from __future__ import annotations

import enum
import importlib.util
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import _airflow_sdk as sdk
import msgspec
import pytest

from supervisor_sim.protocol import (
    CATALOGUE,
    DEFINITIONS,
    PARSE_MESSAGES,
    SCHEMA_VERSION,
    TO_SUPERVISOR,
    TO_TASK,
    FrameDecoder,
    _types as T,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    validate_body,
)

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[2]


def _schema_defs() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in sdk.schema()["$defs"].items() if k != "JsonValue"}


def _load_gen_schema():
    spec = importlib.util.spec_from_file_location("gen_schema", ROOT / "tools" / "gen_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(title: str, problems: list[str]) -> str:
    return f"{title} (regenerate with tools/gen_schema.py?):\n  " + "\n  ".join(problems)


class TestSchemaJson:
    def test_schema_version_matches(self):
        """Airflow's schema.json carries the supervisor schema version we model."""
        assert sdk.schema()["api_version"] == SCHEMA_VERSION

    def test_every_definition_exists_on_both_sides(self):
        """Every $defs entry (except JsonValue) is in DEFINITIONS, and DEFINITIONS has no others."""
        ours, theirs = set(DEFINITIONS), set(_schema_defs())
        assert not theirs - ours, _report("missing from DEFINITIONS", sorted(theirs - ours))
        assert not ours - theirs, _report("not in Airflow's schema.json", sorted(ours - theirs))

    def test_field_names_match(self):
        """Each model has exactly the property names Airflow's schema gives it, in its order."""
        problems = []
        for name, node in _schema_defs().items():
            if "enum" in node:
                continue
            ours = [f.name for f in DEFINITIONS[name].fields]
            theirs = list(node.get("properties", {}))
            if ours != theirs:
                problems.append(f"{name}: ours {ours} != Airflow's {theirs}")
        assert not problems, _report("field names differ", problems)

    def test_required_sets_match(self):
        """Each model requires exactly the keys Airflow's schema lists as required."""
        problems = []
        for name, node in _schema_defs().items():
            if "enum" in node:
                continue
            ours, theirs = DEFINITIONS[name].required, frozenset(node.get("required", []))
            if ours != theirs:
                problems.append(f"{name}: ours {sorted(ours)} != Airflow's {sorted(theirs)}")
        assert not problems, _report("required keys differ", problems)

    def test_forbid_extra_matches_additional_properties_false(self):
        """A model forbids unknown keys exactly when Airflow's has additionalProperties false."""
        problems = []
        for name, node in _schema_defs().items():
            if "enum" in node:
                continue
            theirs = node.get("additionalProperties") is False
            if DEFINITIONS[name].forbid_extra != theirs:
                problems.append(f"{name}: forbid_extra should be {theirs}")
        assert not problems, _report("forbid_extra differs", problems)

    def test_enumerations_match(self):
        """Each enumeration has exactly Airflow's values, in order."""
        problems = []
        for name, node in _schema_defs().items():
            if "enum" not in node:
                continue
            ours = DEFINITIONS[name]
            if not isinstance(ours, T.Enum) or list(ours.values) != node["enum"]:
                problems.append(f"{name}: {ours!r} != {node['enum']}")
        assert not problems, _report("enumerations differ", problems)

    def test_field_types_and_defaults_match(self):
        """Each field's type and default are what tools/gen_schema.py derives from schema.json."""
        gen = _load_gen_schema()
        namespace = vars(T)
        problems = []
        for name, node in _schema_defs().items():
            if "enum" in node:
                continue
            model = DEFINITIONS[name]
            for fname, fnode in node.get("properties", {}).items():
                field = model.by_name[fname]
                expected = eval(gen.type_expr(fnode), namespace)
                if field.type != expected:
                    problems.append(f"{name}.{fname}: {field.type!r} != {expected!r}")
                if "default" in fnode and field.default != fnode["default"]:
                    problems.append(f"{name}.{fname}: default {field.default!r}")
        assert not problems, _report("field types differ", problems)


class TestUnions:
    @pytest.mark.parametrize(
        ("union", "ours"), [("ToSupervisor", TO_SUPERVISOR), ("ToTask", TO_TASK)]
    )
    def test_union_members_match_comms_py(self, union, ours):
        """Our union lists exactly the members of Airflow's comms.py union, no more, no fewer."""
        theirs = sdk.union_members(union)
        missing = sorted(set(theirs) - set(ours))
        extra = sorted(set(ours) - set(theirs))
        assert not missing, f"{union} members missing from our catalogue: {missing}"
        assert not extra, f"our {union} has members Airflow's comms.py lacks: {extra}"
        assert len(theirs) == len(set(theirs)) == len(ours)

    def test_every_union_member_is_a_schema_definition(self):
        """Every message in the unions (and the parse pair) has a body schema in schema.json."""
        defs = _schema_defs()
        names = set(sdk.union_members("ToSupervisor")) | set(sdk.union_members("ToTask"))
        assert not (names | set(PARSE_MESSAGES)) - set(defs)
        assert set(CATALOGUE) <= set(defs)


# --- frames --------------------------------------------------------------------------------------


class TaskInstanceState(enum.StrEnum):
    """Stands in for Airflow's generated str enum: msgspec writes its value."""

    FAILED = "failed"
    SKIPPED = "skipped"


TI_ID = uuid.UUID("0195e5c9-7d3a-7b5e-9a3b-1f2e3d4c5b6a")
IST = timezone(timedelta(hours=5, minutes=30))

#: Request bodies as the Python runtime's ``model_dump()`` hands them to msgspec.
REQUESTS: list[dict[str, Any]] = [
    {"key": "foo", "type": "GetVariable"},
    {"conn_id": "warehouse", "type": "GetConnection"},
    {"key": "return_value", "value": {"rows": [1, 2.5, None, "x"], "ok": True},
     "dag_id": "d", "run_id": "r", "task_id": "t", "map_index": None, "dag_result": False,
     "mapped_length": None, "type": "SetXCom"},
    {"key": "k", "dag_id": "d", "run_id": "r", "task_id": "t", "start": None, "stop": 5,
     "step": None, "include_prior_dates": False, "type": "GetXComSequenceSlice"},
    {"ti_id": TI_ID, "type": "ValidateInletsAndOutlets"},
    {"dag_id": "d", "map_index": None, "task_ids": ["a", "b"], "task_group_id": None,
     "logical_dates": [datetime(2025, 1, 1, tzinfo=UTC), datetime(1960, 6, 1, 12, tzinfo=IST)],
     "run_ids": None, "states": ["success"], "type": "GetTICount"},
    {"state": "deferred", "classpath": "airflow.triggers.temporal.DateTimeTrigger",
     "trigger_kwargs": {"moment": "2025-01-01T00:00:00Z"},
     "trigger_timeout": timedelta(days=1, seconds=30, microseconds=500000), "queue": None,
     "next_method": "execute_complete", "next_kwargs": None, "rendered_map_index": None,
     "type": "DeferTask"},
    {"state": "awaiting_input", "timeout": timedelta(0), "next_method": "resume",
     "next_kwargs": {}, "rendered_map_index": None, "type": "AwaitInputTask"},
    {"state": "up_for_reschedule", "reschedule_date": datetime(2200, 1, 1, 0, 0, 1, 5, UTC),
     "end_date": datetime(2025, 3, 1, 12, 0, 0, 999999, IST), "type": "RescheduleTask"},
    {"ti_id": str(TI_ID), "key": "cursor", "value": [1, {"a": None}], "expires_at": None,
     "type": "SetTaskStateStore"},
    {"value": ["s3cr3t", {"token": "t"}], "name": None, "type": "MaskSecret"},
    {"state": TaskInstanceState.FAILED, "end_date": datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC),
     "rendered_map_index": None, "type": "TaskState"},
    {"state": "success", "end_date": datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
     "task_outlets": [{"name": "raw", "uri": "s3://b/raw", "type": "Asset"}],
     "outlet_events": [], "rendered_map_index": "row 3", "type": "SucceedTask"},
    {"type": "ResendLoggingFD"},
]  # fmt: skip

#: Reply bodies as Airflow's supervisor hands them to msgspec.
REPLIES: list[dict[str, Any] | None] = [
    sdk.startup_details(),
    {"key": "foo", "value": "bar", "type": "VariableResult"},
    {"conn_id": "warehouse", "conn_type": "postgres", "host": None, "schema": None, "login": None,
     "password": None, "port": 5432, "extra": None, "type": "ConnectionResult"},
    {"error": "VARIABLE_NOT_FOUND", "detail": {"key": "nope"}, "type": "ErrorResponse"},
    {"key": "return_value", "value": None, "type": "XComResult"},
    {"start_date": datetime(1969, 12, 31, 23, 59, 59, 500000, UTC),
     "type": "TaskRescheduleStartDate"},
    {"ok": True, "type": "OKResponse"},
    None,
]  # fmt: skip


def _airflow_request(request_id: int, body: Any, carrier: Any = None) -> bytes:
    frame = sdk.frame_classes()["RequestFrame"](id=request_id, body=body, context_carrier=carrier)
    return bytes(frame.as_bytes())


def _airflow_response(request_id: int, body: Any = None, error: Any = None) -> bytes:
    return bytes(sdk.frame_classes()["ResponseFrame"](id=request_id, body=body, error=error)
                 .as_bytes())  # fmt: skip


def _expected(value: Any) -> Any:
    """A python-mode value as it reads after the wire, per msgspec (the oracle)."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(value))


def _decode_stream(data: bytes, chunk: int) -> list[Any]:
    decoder = FrameDecoder()
    raws = []
    for lo in range(0, len(data), chunk):
        decoder.feed(data[lo : lo + chunk])
        raws += list(decoder)
    decoder.end_of_stream()
    return raws


def _assert_same(ours: Any, theirs: Any, path: str = "body") -> None:
    """Equal values, with datetimes aware on both sides and equal as instants."""
    if isinstance(theirs, datetime):
        assert isinstance(ours, datetime), path
        assert ours.utcoffset() == timedelta(0) and theirs.tzinfo is not None, path
        assert ours == theirs, path
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), path
        for k in theirs:
            _assert_same(ours[k], theirs[k], f"{path}.{k}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _assert_same(a, b, f"{path}[{i}]")
    else:
        assert type(ours) is type(theirs) and ours == theirs, f"{path}: {ours!r} != {theirs!r}"


class TestAirflowFramesDecode:
    @pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
    def test_airflow_request_frames_decode_to_what_airflow_decodes(self, chunk):
        """Requests Airflow's _RequestFrame writes decode, in any chunking, to the same values."""
        stream = b"".join(_airflow_request(i, body) for i, body in enumerate(REQUESTS))
        raws = _decode_stream(stream, chunk)
        decoder = msgspec.msgpack.Decoder(sdk.frame_classes()["RequestFrame"])
        assert len(raws) == len(REQUESTS)
        for i, (raw, body) in enumerate(zip(raws, REQUESTS, strict=True)):
            frame = decode_request(raw.payload, raw.offset)
            theirs = decoder.decode(raw.payload)
            assert (frame.id, frame.elements, frame.context_carrier) == (i, 3, None)
            _assert_same(frame.body, theirs.body)
            _assert_same(frame.body, _expected(body))
            assert validate_body(frame.body, TO_SUPERVISOR) == [], body["type"]

    def test_python_values_arrive_as_the_wire_types(self):
        """Aware datetimes arrive as UTC instants, UUIDs as strings, timedeltas as ISO strings."""
        body = {"ti_id": TI_ID, "when": datetime(2025, 3, 1, 17, 30, tzinfo=IST),
                "timeout": timedelta(hours=1), "state": TaskInstanceState.SKIPPED,
                "type": "X"}  # fmt: skip
        frame = decode_request(_airflow_request(3, body)[4:])
        assert frame.body == {
            "ti_id": "0195e5c9-7d3a-7b5e-9a3b-1f2e3d4c5b6a",
            "when": datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
            "timeout": "PT3600S",
            "state": "skipped",
            "type": "X",
        }

    def test_trace_carrier_is_decoded(self):
        """The runtime's W3C trace carrier in element 2 decodes as a map."""
        carrier = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
        frame = decode_request(_airflow_request(1, REQUESTS[0], carrier)[4:])
        assert frame.context_carrier == carrier

    def test_airflow_response_frames_decode_to_what_the_runtime_decodes(self):
        """Replies written by Airflow's _ResponseFrame decode to the runtime's own values."""
        stream = b"".join(_airflow_response(i, body) for i, body in enumerate(REPLIES))
        error = {"error": "API_SERVER_ERROR", "detail": {"status_code": 500, "message": "boom"},
                 "type": "ErrorResponse"}  # fmt: skip
        stream += _airflow_response(99, None, error)
        raws = _decode_stream(stream, 5000)
        decoder = msgspec.msgpack.Decoder(sdk.frame_classes()["ResponseFrame"])
        assert len(raws) == len(REPLIES) + 1
        for raw in raws:
            frame = decode_response(raw.payload, raw.offset)
            theirs = decoder.decode(raw.payload)
            assert (frame.id, frame.elements) == (theirs.id, 3)
            _assert_same(frame.body, theirs.body)
            _assert_same(frame.error, theirs.error)
            if frame.body is not None:
                assert validate_body(frame.body, TO_TASK) == [], frame.type
        assert decode_response(raws[-1].payload).error == error

    def test_startup_details_from_airflow_keeps_every_date(self):
        """StartupDetails' dates (pre-1970, microseconds, year 2600) survive Airflow's encoding."""
        body = sdk.startup_details()
        frame = decode_response(_airflow_response(0, body)[4:])
        dag_run = frame.body["ti_context"]["dag_run"]
        assert frame.body["start_date"] == body["start_date"]
        assert dag_run["partition_date"] == datetime(2599, 12, 31, 22, tzinfo=UTC)
        event = dag_run["consumed_asset_events"][0]
        assert event["timestamp"] == datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC)
        assert frame.body["ti"]["id"] == str(body["ti"]["id"])


class TestOurFramesDecodeInAirflow:
    @pytest.mark.parametrize("body", REQUESTS, ids=[b["type"] for b in REQUESTS])
    def test_our_request_bytes_equal_airflows(self, body):
        """encode_request writes byte for byte what Airflow's runtime writes for the same body."""
        assert encode_request(7, body) == _airflow_request(7, body)

    @pytest.mark.parametrize("body", REPLIES, ids=[b["type"] if b else "ack" for b in REPLIES])
    def test_our_response_bytes_equal_airflows(self, body):
        """encode_response writes byte for byte what Airflow's supervisor writes."""
        assert encode_response(0, body) == _airflow_response(0, body)

    def test_our_requests_decode_in_airflows_supervisor(self):
        """Airflow's supervisor decoder (msgspec, _RequestFrame) reads our requests' values."""
        decoder = msgspec.msgpack.Decoder(sdk.frame_classes()["RequestFrame"])
        carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        for i, body in enumerate(REQUESTS):
            data = encode_request(i, body, carrier if i % 2 else None)
            frame = decoder.decode(data[4:])
            assert frame.id == i
            assert frame.context_carrier == (carrier if i % 2 else None)
            _assert_same(frame.body, _expected(body))

    def test_our_responses_decode_in_airflows_runtime(self):
        """Airflow's runtime decoder (msgspec, _ResponseFrame) reads our replies' values."""
        decoder = msgspec.msgpack.Decoder(sdk.frame_classes()["ResponseFrame"])
        for i, body in enumerate(REPLIES):
            frame = decoder.decode(encode_response(i, body)[4:])
            assert (frame.id, frame.error) == (i, None)
            if body is None:
                assert frame.body is None
            else:
                _assert_same(frame.body, _expected(body))
        error = {"error": "API_SERVER_ERROR", "detail": None, "type": "ErrorResponse"}
        frame = decoder.decode(encode_response(5, None, error)[4:])
        assert (frame.id, frame.body, frame.error) == (5, None, error)

    def test_untyped_msgspec_sees_three_elements_and_aware_datetimes(self):
        """A plain msgspec decode of our StartupDetails frame is [0, body, nil] with aware dates."""
        body = sdk.startup_details()
        value = msgspec.msgpack.Decoder().decode(encode_response(0, body)[4:])
        assert len(value) == 3 and value[0] == 0 and value[2] is None
        start = value[1]["start_date"]
        assert isinstance(start, datetime) and start.tzinfo is not None
        assert start == body["start_date"]
        _assert_same(value[1], _expected(body))
