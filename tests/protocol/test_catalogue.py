"""The message catalogue: unions, terminal messages, replies, body validation, generated docs."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _airflow_sdk import startup_details

from supervisor_sim.protocol import (
    ACK,
    CATALOGUE,
    DEFINITIONS,
    PARSE_MESSAGES,
    TERMINAL,
    TO_SUPERVISOR,
    TO_TASK,
    Problem,
    message,
    packb,
    unpackb,
    validate_body,
)
from supervisor_sim.protocol._catalogue import MODELS, PLAIN_DATETIME_FIELDS

ROOT = Path(__file__).resolve().parents[2]
AWARE = datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
NAIVE = datetime(2025, 3, 1, 12, 0, 0)


def wire(body):
    """The body as the supervisor sees it after the msgpack round trip."""
    return unpackb(packb(body))


def problems(body, expected=None) -> list[tuple[str, str]]:
    return [(p.path, p.rule) for p in validate_body(body, expected)]


#: A minimal valid body for each message that forbids unknown keys (protocol.md §9.3).
FORBID_EXTRA_BODIES = {
    "SucceedTask": {"type": "SucceedTask", "end_date": AWARE},
    "RetryTask": {"type": "RetryTask", "end_date": AWARE},
    "DeferTask": {"type": "DeferTask", "classpath": "a.b.Trigger", "next_method": "resume"},
    "RescheduleTask": {"type": "RescheduleTask", "reschedule_date": AWARE, "end_date": AWARE},
    "AwaitInputTask": {"type": "AwaitInputTask", "next_method": "resume"},
    "SkipDownstreamTasks": {"type": "SkipDownstreamTasks", "tasks": ["a", ["b", 2]]},
    "TriggerDagRun": {"type": "TriggerDagRun", "dag_id": "d", "run_id": "r"},
}

XCOM_KEYS = {"key": "k", "dag_id": "d", "run_id": "r", "task_id": "t"}


class TestUnions:
    def test_to_supervisor_lists_55_distinct_requests(self):
        """ToSupervisor has Airflow 1.3.2's 55 request types, each once."""
        assert len(TO_SUPERVISOR) == len(set(TO_SUPERVISOR)) == 55

    def test_to_task_lists_30_distinct_replies(self):
        """ToTask has Airflow 1.3.2's 30 supervisor-to-task types, each once."""
        assert len(TO_TASK) == len(set(TO_TASK)) == 30

    def test_catalogue_holds_86_distinct_names(self):
        """The catalogue is ToSupervisor + ToTask + the 2 parse messages: 86 distinct names."""
        assert PARSE_MESSAGES == ("DagFileParseRequest", "DagFileParsingResult")
        assert set(TO_SUPERVISOR) & set(TO_TASK) == {"CreateHITLDetailPayload"}
        assert set(CATALOGUE) == set(TO_SUPERVISOR) | set(TO_TASK) | set(PARSE_MESSAGES)
        assert len(CATALOGUE) == 86

    def test_each_message_has_its_direction(self):
        """Requests are to_supervisor, replies to_task, parse messages parse."""
        for name, spec in CATALOGUE.items():
            if name in TO_SUPERVISOR:
                expected = "to_supervisor"
            elif name in TO_TASK:
                expected = "to_task"
            else:
                expected = "parse"
            assert spec.direction == expected, name

    def test_every_message_model_is_named_after_its_type_discriminator(self):
        """Each message's model has the message's name and a 'type' field fixed to that name."""
        for name, spec in CATALOGUE.items():
            assert spec.name == spec.model.name == name
            assert spec.model is MODELS[name]
            assert spec.model.fields == DEFINITIONS[name].fields or name in PLAIN_DATETIME_FIELDS
            type_field = spec.model.by_name["type"]
            assert type_field.type.describe() == repr(name)
            assert type_field.default == name

    def test_message_looks_up_a_spec_and_refuses_unknown_names(self):
        """message(name) returns the catalogue entry and raises KeyError for an unknown name."""
        assert message("GetVariable") is CATALOGUE["GetVariable"]
        with pytest.raises(KeyError):
            message("GetVarible")


class TestTerminalMessages:
    def test_terminal_is_exactly_the_six_state_changing_messages(self):
        """TERMINAL is exactly the six messages that end a try (protocol.md §2.6)."""
        assert frozenset(
            {"SucceedTask", "TaskState", "RetryTask", "DeferTask", "RescheduleTask",
             "AwaitInputTask"}
        ) == TERMINAL  # fmt: skip

    def test_spec_terminal_flag_matches_terminal_set(self):
        """MessageSpec.terminal is true exactly for the terminal messages."""
        assert {n for n, s in CATALOGUE.items() if s.terminal} == TERMINAL

    def test_skip_downstream_tasks_is_not_terminal(self):
        """SkipDownstreamTasks changes other tasks only; the task must still send SucceedTask."""
        assert not CATALOGUE["SkipDownstreamTasks"].terminal

    def test_terminal_messages_are_answered_with_an_empty_ack(self):
        """Every terminal request is answered with an empty ack frame."""
        for name in TERMINAL:
            assert CATALOGUE[name].replies == (ACK,), name


class TestReplies:
    def test_every_request_has_replies_and_an_http_call(self):
        """Each ToSupervisor message names at least one reply and what the supervisor calls."""
        for name in TO_SUPERVISOR:
            spec = CATALOGUE[name]
            assert spec.replies, name
            assert spec.http, name

    def test_every_reply_named_is_a_to_task_type_an_ack_or_the_error_slot(self):
        """A reply is a ToTask type, 'ack', or an 'error slot: ...' marker, nothing else."""
        for name, spec in CATALOGUE.items():
            for reply in spec.replies:
                assert reply in TO_TASK or reply == ACK or reply.startswith("error slot: "), (
                    f"{name} replies {reply!r}"
                )

    def test_replies_are_not_requests_themselves(self):
        """ToTask-only messages answer nothing, so they list no replies."""
        for name in set(TO_TASK) - set(TO_SUPERVISOR):
            assert CATALOGUE[name].replies == (), name

    @pytest.mark.parametrize(
        ("name", "replies"),
        [
            ("GetVariable", ("VariableResult", "ErrorResponse")),
            ("GetConnection", ("ConnectionResult", "ErrorResponse")),
            ("GetXCom", ("XComResult",)),
            ("SetXCom", (ACK,)),
            ("PutVariable", (ACK,)),
            ("MaskSecret", (ACK,)),
            ("DeleteVariable", ("OKResponse",)),
            ("TriggerDagRun", ("OKResponse", "ErrorResponse")),
            ("ResendLoggingFD", ("SentFDs",)),
            ("UpdateHITLDetail", ("error slot: Unhandled request",)),
        ],
    )
    def test_replies_match_protocol_md(self, name, replies):
        """The reply types follow protocol.md §2.5 (a missing XCom is a value, not an error)."""
        assert CATALOGUE[name].replies == replies


class TestValidationAccepts:
    def test_minimal_valid_request_has_no_problems(self):
        """A GetVariable with its key is valid."""
        assert validate_body({"type": "GetVariable", "key": "foo"}, TO_SUPERVISOR) == []

    def test_realistic_startup_details_is_valid_after_the_wire(self):
        """A full StartupDetails body, as decoded from the wire, passes validation."""
        assert validate_body(wire(startup_details()), "StartupDetails") == []

    @pytest.mark.parametrize("name", list(FORBID_EXTRA_BODIES))
    def test_minimal_forbid_extra_bodies_are_valid(self, name):
        """The minimal bodies used for the unknown-key checks are valid as they stand."""
        assert validate_body(wire(FORBID_EXTRA_BODIES[name]), name) == []

    def test_unknown_key_on_a_permissive_model_is_accepted(self):
        """GetVariable ignores unknown keys, as its pydantic model does."""
        assert validate_body({"type": "GetVariable", "key": "k", "extra": 1}) == []

    @pytest.mark.parametrize(
        "body",
        [
            {"type": "GetVariableKeys", "limit": "5", "offset": " 7 "},
            {"type": "GetVariableKeys", "limit": 5.0},
            {"type": "GetXCom", **XCOM_KEYS, "include_prior_dates": 1},
            {"type": "GetXCom", **XCOM_KEYS, "include_prior_dates": "yes"},
            {"type": "RetryTask", "end_date": AWARE, "retry_delay_seconds": 5},
            {"type": "RetryTask", "end_date": AWARE, "retry_delay_seconds": "2.5"},
            {"type": "SucceedTask", "end_date": "2025-03-01T12:00:00Z"},
            {"type": "SucceedTask", "end_date": "2025-03-01T12:00:00.5+02:00"},
            {"type": "SucceedTask", "end_date": 1_740_830_400},
            {"type": "DeferTask", "classpath": "c", "next_method": "m", "trigger_timeout": 30},
            {"type": "DeferTask", "classpath": "c", "next_method": "m",
             "trigger_timeout": "P1DT0.5S"},
        ],
        ids=[
            "int-from-str", "int-from-integral-float", "bool-from-1", "bool-from-yes",
            "float-from-int", "float-from-str", "datetime-z-string", "datetime-offset-string",
            "datetime-unix-seconds", "duration-seconds", "duration-iso",
        ],
    )  # fmt: skip
    def test_lax_coercions_airflow_accepts_are_accepted(self, body):
        """Values pydantic's lax mode coerces (int "5", bool 1, ISO strings, ...) are valid."""
        assert validate_body(body) == []


class TestValidationRejects:
    def test_naive_end_date_is_reported_with_path_and_reason(self):
        """A naive SucceedTask.end_date is reported at its path as needing a timezone."""
        [problem] = validate_body({"type": "SucceedTask", "end_date": NAIVE}, "SucceedTask")
        assert problem.path == "SucceedTask.end_date"
        assert problem.rule == "naive-datetime"
        assert "naive datetime; Airflow requires a timezone" in problem.message

    def test_naive_datetime_string_is_reported(self):
        """An ISO string without a zone in an aware-datetime field is naive-datetime too."""
        body = {"type": "SucceedTask", "end_date": "2025-03-01T12:00:00"}
        assert problems(body) == [("SucceedTask.end_date", "naive-datetime")]

    @pytest.mark.parametrize("name", list(FORBID_EXTRA_BODIES))
    def test_unknown_key_on_a_forbid_model_is_an_unknown_field(self, name):
        """An unknown key on a model that forbids extras is reported as unknown-field."""
        body = {**FORBID_EXTRA_BODIES[name], "surprise": 1}
        assert problems(body, TO_SUPERVISOR) == [(f"{name}.surprise", "unknown-field")]

    def test_put_variable_without_description_misses_a_nullable_key(self):
        """PutVariable.description may be nil, but the key must be present."""
        assert problems({"type": "PutVariable", "key": "k", "value": "v"}) == [
            ("PutVariable.description", "missing-nullable-key")
        ]
        body = {"type": "PutVariable", "key": "k", "value": None, "description": None}
        assert validate_body(body) == []

    def test_xcom_slice_without_start_stop_step_misses_three_nullable_keys(self):
        """GetXComSequenceSlice without start, stop and step reports all three keys."""
        assert problems({"type": "GetXComSequenceSlice", **XCOM_KEYS}) == [
            ("GetXComSequenceSlice.start", "missing-nullable-key"),
            ("GetXComSequenceSlice.stop", "missing-nullable-key"),
            ("GetXComSequenceSlice.step", "missing-nullable-key"),
        ]

    def test_missing_required_key_is_reported(self):
        """A missing non-nullable required key is missing-required-field."""
        assert problems({"type": "GetVariable"}) == [("GetVariable.key", "missing-required-field")]

    def test_missing_type_is_reported(self):
        """A body without 'type' is missing-type."""
        assert problems({"key": "foo"}) == [("body.type", "missing-type")]

    @pytest.mark.parametrize("type_name", ["GetVarible", "JsonValue", "DagRun"])
    def test_unknown_type_is_reported(self, type_name):
        """A 'type' naming no message (nested types included) is unknown-type."""
        assert problems({"type": type_name}) == [("body.type", "unknown-type")]

    def test_type_outside_the_expected_union_is_unknown_here(self):
        """A reply type sent as a request is unknown-type for the ToSupervisor union."""
        assert problems({"type": "OKResponse", "ok": True}, TO_SUPERVISOR) == [
            ("body.type", "unknown-type")
        ]

    def test_non_string_type_is_a_wrong_type(self):
        """A 'type' that is not a string is wrong-type."""
        assert problems({"type": 5}) == [("body.type", "wrong-type")]

    @pytest.mark.parametrize("body", [None, [], "GetVariable", 5, b"x"], ids=repr)
    def test_body_that_is_not_a_map_is_reported(self, body):
        """A body that is not a map is not-a-map."""
        assert problems(body) == [("body", "not-a-map")]

    def test_bad_state_deep_inside_startup_details_reports_the_nested_path(self):
        """A bad DagRun state in StartupDetails names StartupDetails.ti_context.dag_run.state."""
        body = wire(startup_details())
        body["ti_context"]["dag_run"]["state"] = "exploded"
        assert problems(body, TO_TASK) == [
            ("StartupDetails.ti_context.dag_run.state", "wrong-value")
        ]

    def test_naive_datetime_deep_in_a_list_reports_the_index(self):
        """A naive timestamp in a consumed asset event names the list index in its path."""
        body = startup_details()
        body["ti_context"]["dag_run"]["consumed_asset_events"][0]["timestamp"] = NAIVE
        assert problems(wire(body)) == [
            (
                "StartupDetails.ti_context.dag_run.consumed_asset_events[0].timestamp",
                "naive-datetime",
            )
        ]

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ({"type": "GetVariableKeys", "limit": "5.5"}, ("GetVariableKeys.limit", "wrong-type")),
            ({"type": "GetVariableKeys", "limit": 5.5}, ("GetVariableKeys.limit", "wrong-type")),
            ({"type": "GetXCom", **XCOM_KEYS, "include_prior_dates": 2},
             ("GetXCom.include_prior_dates", "wrong-type")),
            ({"type": "GetVariable", "key": 5}, ("GetVariable.key", "wrong-type")),
            ({"type": "ValidateInletsAndOutlets", "ti_id": "not-a-uuid"},
             ("ValidateInletsAndOutlets.ti_id", "wrong-type")),
            ({"type": "TaskState", "state": "success"}, ("TaskState.state", "wrong-value")),
            ({"type": "SucceedTask", "end_date": AWARE, "state": "failed"},
             ("SucceedTask.state", "wrong-value")),
            ({"type": "SkipDownstreamTasks", "tasks": [["a", "b"]]},
             ("SkipDownstreamTasks.tasks[0][1]", "wrong-type")),
            ({"type": "UpdateHITLDetail", "ti_id": "0195e5c9-7d3a-7b5e-9a3b-1f2e3d4c5b6a",
              "chosen_options": []}, ("UpdateHITLDetail.chosen_options", "too-short")),
            ({"type": "SetRenderedFields", "rendered_fields": {1: "x"}},
             ("SetRenderedFields.rendered_fields[1]", "wrong-type")),
        ],
        ids=[
            "int-from-fraction-str", "int-from-fraction", "bool-from-2", "str-from-int",
            "bad-uuid", "taskstate-success", "succeed-wrong-const", "tuple-wrong-item",
            "empty-chosen-options", "int-map-key",
        ],
    )  # fmt: skip
    def test_wrong_values_are_reported_at_their_path(self, body, expected):
        """Values Airflow's lax validation would still refuse are reported where they are."""
        assert problems(body) == [expected]


class TestProblemText:
    BAD_BODIES = [
        {"type": "SucceedTask", "end_date": NAIVE, "x": 1},
        {"type": "PutVariable", "key": 1},
        {"type": "GetXComSequenceSlice", **XCOM_KEYS},
        {"type": "TaskState", "state": "bogus", "end_date": "yesterday"},
        {"type": "SkipDownstreamTasks", "tasks": "a"},
        {"type": "Nope"},
        {"key": "k"},
        [],
    ]

    def test_every_problem_reads_path_colon_sentence(self):
        """str(Problem) is 'path: sentence', with a non-empty path, rule and message."""
        found: list[Problem] = []
        for body in self.BAD_BODIES:
            found += validate_body(body)
        assert len(found) >= len(self.BAD_BODIES)
        for p in found:
            assert p.path and p.rule and p.message
            assert str(p) == f"{p.path}: {p.message}"
            assert p.message[0].isalnum() or p.message[0] in "'\"", p
            assert not p.message.endswith(".")


def _load_generator():
    path = ROOT / "tools" / "gen_protocol_doc.py"
    spec = importlib.util.spec_from_file_location("gen_protocol_doc", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestGeneratedDoc:
    def test_docs_protocol_md_matches_the_catalogue(self):
        """docs/protocol.md is exactly what tools/gen_protocol_doc.py renders from the catalogue."""
        expected = _load_generator().render()
        doc = ROOT / "docs" / "protocol.md"
        actual = doc.read_text(encoding="utf-8") if doc.exists() else ""
        assert actual == expected, (
            "docs/protocol.md is stale: run `python tools/gen_protocol_doc.py`"
        )

    def test_doc_has_a_section_for_every_message_and_nested_type(self):
        """The rendered doc has a heading for every message and every nested definition."""
        text = _load_generator().render()
        for name in DEFINITIONS:
            assert f"### `{name}`" in text, name
        for name in TERMINAL:
            assert f"### `{name}`" in text
        assert text.count("**forbids unknown keys**") == sum(
            1 for d in DEFINITIONS.values() if getattr(d, "forbid_extra", False)
        )
