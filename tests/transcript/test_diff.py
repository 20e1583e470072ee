"""``diff``: frames aligned by sequence, each difference once, values printed as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _cli import cli

from supervisor_sim.protocol import encode_response
from supervisor_sim.supervision import Journal
from supervisor_sim.transcript import TranscriptWriter, diff_transcripts, read_transcript

TI = {"id": "0190a3c4-0000-7000-8000-000000000001", "dag_id": "d", "task_id": "t"}

#: A request: (type, body fields, reply type or None for an empty ack, reply body, HTTP path).
Request = tuple[str, dict[str, Any], str | None, Any, str]
READ_A = ("GetVariable", {"key": "a"}, "VariableResult", {"key": "a", "value": "1"}, "/v/a")
READ_B = ("GetVariable", {"key": "b"}, "VariableResult", {"key": "b", "value": "2"}, "/v/b")
READ_C = ("GetVariable", {"key": "c"}, "VariableResult", {"key": "c", "value": "3"}, "/v/c")
PUSH = ("SetXCom", {"key": "k", "value": 1}, None, None, "/x/k")
DONE = ("SucceedTask", {"state": "success"}, None, None, "/state")


def _write(path: Path, requests: list[Request], final_state: str = "success") -> Path:
    journal = Journal()
    writer = TranscriptWriter(path, {"task": {"ti": TI}, "runtime": ["x"]})
    journal.sinks.append(writer)
    startup = {"type": "StartupDetails", "ti": TI}
    journal.emit("frame", direction="out", id=0, type="StartupDetails", body=startup,
                 error=None, payload=encode_response(0, startup)[4:])  # fmt: skip
    for frame_id, (typ, fields, reply, reply_body, http_path) in enumerate(requests):
        body = {"type": typ, **fields}
        request = journal.emit(
            "frame", direction="in", id=frame_id, type=typ, body=body, payload=b"\x90"
        )
        journal.emit(
            "http",
            method="GET",
            path=http_path,
            query="",
            status=200,
            request_headers={},
            response_headers={},
            request_body=b"",
            response_body=b"",
            cause=request.seq,
        )
        body_out = None if reply is None else {"type": reply, **reply_body}
        journal.emit("frame", direction="out", id=frame_id, type=reply, body=body_out,
                     error=None, payload=b"\x93\x00\xc0\xc0")  # fmt: skip
    writer.close({"final_state": final_state, "exit_code": 0})
    return path


def _diff(tmp_path: Path, a: list[Request], b: list[Request], **kw: Any):
    ta = read_transcript(_write(tmp_path / "a.jsonl", a))
    tb = read_transcript(_write(tmp_path / "b.jsonl", b, **kw))
    return diff_transcripts(ta, tb)


def test_the_same_requests_are_equivalent(tmp_path: Path):
    """Two transcripts of the same exchanges have no differences."""
    assert _diff(tmp_path, [READ_A, READ_B, DONE], [READ_A, READ_B, DONE]).equivalent


def test_one_inserted_request_is_one_difference(tmp_path: Path):
    """A request only B made is one difference; the frames after it (whose ids all moved on by
    one) still match their counterparts."""
    result = _diff(tmp_path, [READ_A, READ_B, PUSH, READ_A, DONE],
                   [READ_A, READ_C, READ_B, PUSH, READ_A, DONE])  # fmt: skip
    assert result.differences == [
        "runtime -> supervisor frame B#1: only in B: GetVariable (id 1), answered VariableResult"
    ]
    (d,) = result.details
    assert (d.kind, d.direction, d.a_index, d.b_index, d.type) == (
        "only-in-b",
        "in",
        None,
        1,
        "GetVariable",
    )


def test_one_missing_request_is_one_difference(tmp_path: Path):
    """A request only A made is one difference, named by A's frame."""
    result = _diff(tmp_path, [READ_A, PUSH, READ_B, DONE], [READ_A, READ_B, DONE])
    assert result.differences == [
        "runtime -> supervisor frame A#1: only in A: SetXCom (id 1), answered ack"
    ]


def test_a_changed_value_is_printed_as_json(tmp_path: Path):
    """Field differences show both values as JSON text, with the path in the body."""
    changed = ("GetVariable", {"key": "a"}, "VariableResult", {"key": "a", "value": None}, "/v/a")
    result = _diff(tmp_path, [READ_A, DONE], [changed, DONE])
    assert result.differences == [
        "supervisor -> runtime frame A#1/B#1 VariableResult (reply to GetVariable): "
        'body.value: "1" in A, null in B'
    ]
    (d,) = result.details
    assert (d.kind, d.field, d.a, d.b) == ("field", "body.value", "1", None)


def test_an_ack_against_a_reply_is_a_type_difference_with_null(tmp_path: Path):
    """An empty ack has no type: it is printed as null, never as Python's None."""
    answered = ("SetXCom", {"key": "k", "value": 1}, "ErrorResponse", {"error": "x"}, "/x/k")
    result = _diff(tmp_path, [PUSH, DONE], [answered, DONE])
    assert result.differences == [
        "supervisor -> runtime frame A#1/B#1 (reply to SetXCom): "
        'type null in A, "ErrorResponse" in B'
    ]
    assert "None" not in "".join(result.differences)


def test_another_request_type_is_one_type_difference(tmp_path: Path):
    """A request replaced by another type is named once, with both types."""
    result = _diff(tmp_path, [READ_A, PUSH, DONE], [READ_A, READ_B, DONE])
    assert result.differences[0] == (
        'runtime -> supervisor frame A#1/B#1: type "SetXCom" in A, "GetVariable" in B'
    )
    assert len(result.differences) == 1


def test_an_http_call_is_compared_with_the_frame_that_caused_it(tmp_path: Path):
    """A request that made another API call is named with the call, under its frame."""
    other = ("GetVariable", {"key": "a"}, "VariableResult", {"key": "a", "value": "1"}, "/v/z")
    result = _diff(tmp_path, [READ_A, DONE], [other, DONE])
    assert result.differences == [
        "runtime -> supervisor frame A#0/B#0 GetVariable: http GET /v/a -> 200: 1 in A, 0 in B",
        "runtime -> supervisor frame A#0/B#0 GetVariable: http GET /v/z -> 200: 0 in A, 1 in B",
    ]


def test_another_final_state_is_printed_as_json(tmp_path: Path):
    """The final states are compared last, quoted as JSON strings."""
    result = _diff(tmp_path, [DONE], [DONE], final_state="failed")
    assert result.differences == ['final state: "success" in A, "failed" in B']


def test_json_output_lists_the_differences_and_their_details(tmp_path: Path):
    """diff --json prints equivalent, the sentences and one object per difference."""
    a = _write(tmp_path / "a.jsonl", [READ_A, DONE])
    b = _write(tmp_path / "b.jsonl", [READ_A, READ_B, DONE])
    proc = cli("diff", str(a), str(b), "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["equivalent"] is False
    assert out["differences"] == [
        "runtime -> supervisor frame B#1: only in B: GetVariable (id 1), answered VariableResult"
    ]
    assert out["details"] == [
        {
            "kind": "only-in-b",
            "text": out["differences"][0],
            "direction": "in",
            "b_index": 1,
            "type": "GetVariable",
            "a": None,
            "b": None,
        }
    ]


@pytest.mark.parametrize("as_json", [False, True])
def test_an_equivalent_pair_exits_0(tmp_path: Path, as_json: bool):
    """Equivalent transcripts exit 0, in text and in JSON."""
    a = _write(tmp_path / "a.jsonl", [READ_A, DONE])
    b = _write(tmp_path / "b.jsonl", [READ_A, DONE])
    proc = cli("diff", str(a), str(b), *(["--json"] if as_json else []), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    if as_json:
        assert json.loads(proc.stdout) == {"equivalent": True, "differences": [], "details": []}
    else:
        assert proc.stdout.startswith("equivalent: 5 frames")


def test_values_json_cannot_hold_are_compared_and_printed(tmp_path: Path):
    """A map with bytes keys (valid msgpack, tagged in the transcript) is diffed and shown."""
    a = _write(
        tmp_path / "a.jsonl", [("SetXCom", {"key": "k", "value": {b"\x00": 1}}, None, None, "/x")]
    )
    b = _write(
        tmp_path / "b.jsonl", [("SetXCom", {"key": "k", "value": {b"\x00": 2}}, None, None, "/x")]
    )
    result = diff_transcripts(read_transcript(a), read_transcript(b))
    assert result.differences == [
        "runtime -> supervisor frame A#0/B#0 SetXCom: body.value.b'\\x00': 1 in A, 2 in B"
    ]
    for args in (("show", str(a)), ("diff", str(a), str(b), "--json")):
        proc = cli(*args, cwd=tmp_path)
        assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    proc = cli("show", str(a), cwd=tmp_path)
    assert 'value={"$map": [[{"$bytes": "AA=="}, 1]]}' in proc.stdout
