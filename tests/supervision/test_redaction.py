"""Masking in the session and its journal: one path for every record, and the violation caps.

docs/reliability.md ("Secrets") says what is masked where;
tests/supervision/test_hostile_runtimes.py runs each way a runtime can leak a secret through the
real command line.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from _session_helpers import SUCCEED

from supervisor_sim.api import STUB_BASE_URL, StubTransport
from supervisor_sim.protocol import Limits, SecretsMasker
from supervisor_sim.supervision import Journal, Violation
from supervisor_sim.supervision._redaction import Redactor
from supervisor_sim.transcript import read_transcript
from tests._session_helpers import SCRIPTED, run_task


def _redactor(*secrets: str) -> Redactor:
    masker = SecretsMasker()
    for secret in secrets:
        masker.add(secret)
    return Redactor(masker)


# --- the redactor --------------------------------------------------------------------------------


def test_the_redactor_masks_keys_and_bytes_where_the_masker_masks_strings() -> None:
    """A secret in a map key, a bytes value or a bytes key is masked too; the bytes around it
    are kept exactly, invalid UTF-8 included; nothing else changes."""
    r = _redactor("s3cret-pw")
    value = {"s3cret-pw": [b"\xff\xc1s3cret-pw\x00", {"ok": "s3cret-pw!"}], b"k-s3cret-pw": 1}
    assert r.value(value) == {"***": [b"\xff\xc1***\x00", {"ok": "***!"}], b"k-***": 1}
    assert r.value({"plain": [1, b"\xff", None]}) == {"plain": [1, b"\xff", None]}
    assert r.bytes(b"\x93\xa9s3cret-pw\xc0") == b"\x93\xa9***\xc0"


def test_hides_secret_finds_what_string_masking_misses_and_learns_new_secrets() -> None:
    """A secret as a key, a bin value or the value itself is found; in a string value it is not
    (the transcript masks those); a key seen clean is checked again once the masker learns."""
    r = _redactor("s3cret-pw")
    assert r.hides_secret({"a": {"s3cret-pw": 1}})
    assert r.hides_secret([{"a": b"s3cret-pw"}])
    assert r.hides_secret("s3cret-pw")
    assert not r.hides_secret({"a": "s3cret-pw"})
    assert not r.request_hides_secret("GetVariable", {"type": "GetVariable", "key": "k"}, None)
    # A context carrier is masked here whole: no sink masks its strings.
    assert r.request_hides_secret("GetVariable", {"type": "GetVariable"}, {"t": "s3cret-pw"})
    r.masker.add("GetVariable")
    assert r.request_hides_secret("GetVariable", {"type": "GetVariable", "key": "k"}, None)


# --- the journal ---------------------------------------------------------------------------------


def test_the_journal_records_the_first_of_each_rule_and_counts_the_rest() -> None:
    """Past ``violations_per_rule`` a rule's violations are counted, with their bytes; past
    ``violations_per_session`` every rule's are; one note per rule says how many more."""
    events: list = []
    journal = Journal(sinks=[events.append], limits=Limits(violations_per_rule=2,
                                                           violations_per_session=3))  # fmt: skip
    for _ in range(5):
        journal.violation(Violation("a", "msg", "airflow", raw=b"\0\0\0\0"))
    for _ in range(3):
        journal.violation(Violation("b", "msg", "airflow"))
    assert [v.rule for v in journal.violations] == ["a", "a", "b"]
    assert journal.suppressed == {"a": 3, "b": 2}
    assert journal.suppressed_bytes == 12
    assert journal.violation_count == 8
    journal.note_suppressed()
    notes = [e.data for e in events if e.kind == "note"]
    assert [(n["rule"], n["suppressed"]) for n in notes] == [("a", 3), ("b", 2)]
    assert notes[0]["message"].startswith("3 more a violations counted, not recorded")
    assert len([e for e in events if e.kind == "violation"]) == 3


def test_the_journal_masks_a_violation_and_keeps_its_bytes_length() -> None:
    """A violation's message and path are masked; its bytes too, unless received data is kept
    (--no-redact), and then its length is still said (``raw_len``)."""
    r = _redactor("s3cret-pw")
    journal = Journal(redactor=r)
    raw = b"\xc1s3cret-pw"
    journal.violation(Violation("x", "got s3cret-pw", "airflow", path="body.s3cret-pw", raw=raw))
    (v,) = journal.violations
    assert (v.message, v.path, v.raw, v.raw_len) == ("got ***", "body.***", b"\xc1***", 10)
    assert v.as_dict()["raw_redacted"] is True
    r.keep_received = True
    journal.violation(Violation("x", "got s3cret-pw", "airflow", raw=raw))
    assert journal.violations[1].raw == raw and journal.violations[1].message == "got ***"


def test_notes_are_masked() -> None:
    """A note quoting the API or the runtime says nothing of a secret."""
    events: list = []
    journal = Journal(sinks=[events.append], redactor=_redactor("s3cret-pw"))
    journal.emit("note", level="error", message="HTTP 409: s3cret-pw refused")
    assert events[0].data["message"] == "HTTP 409: *** refused"


# --- one learning path, with the stub inline and over HTTP ---------------------------------------


@pytest.mark.parametrize("over_http", [False, True], ids=["stub-inline", "over-http"])
async def test_secrets_a_request_registers_are_masked_in_its_own_record(
    store, tmp_path: Path, over_http: bool
) -> None:
    """A MaskSecret value and a sensitive PutVariable value are masked in the very frame that
    carries them, whether the API answers inline (the stub) or over HTTP (as --api-url does,
    where the records are written as they happen), and in every log line after it."""
    http = None
    if over_http:
        # The stub as a plain httpx transport: nothing is answered inline.
        http = httpx.AsyncClient(base_url=STUB_BASE_URL, transport=StubTransport(store))
    steps = [
        {"send": {"type": "MaskSecret", "value": "mask-me-4711", "name": None}},
        {"send": {"type": "PutVariable", "key": "api_token", "value": "put-me-0815"}},
        {"log": json.dumps({"level": "info", "event": "using mask-me-4711 and put-me-0815"})},
        {"send": SUCCEED},
    ]
    path = tmp_path / "t.jsonl"
    run = await run_task(store, "hello", runtime=SCRIPTED, steps=steps, transcript=path, http=http)
    assert run.outcome.final_state == "success"
    data = path.read_bytes()
    assert b"mask-me-4711" not in data and b"put-me-0815" not in data
    t = read_transcript(path)
    frames = {r["type"]: r for r in t.frames("in")}
    assert frames["MaskSecret"]["body"]["value"] == "***"
    assert frames["PutVariable"]["body"]["value"] == "***"
    for r in t.frames("in"):
        assert b"mask-me-4711" not in base64.b64decode(r["raw"])  # the raw bytes too
    (line,) = [r["line"] for r in t.of("log")]
    assert line["event"] == "using *** and ***"
