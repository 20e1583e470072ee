"""Hostile runtimes through the real command line: no leak, no unbounded cost, always a verdict.

Each row runs ``tests/children/hostile.py KIND`` under ``supervisor-sim run-task --json`` in a
child process, as a user would, and checks what every row must show: the supervisor exits
within the subprocess timeout with a verdict (exit status 0, ``final_state`` success: the
runtime ends the task normally after its attack), no process of the run is left (the runtime's
PID and process group, from the transcript's spawn record), the transcript is whole (footer,
digest, no problems), the connection password the runtime learnt (``s3cret-pw``, from
``tests/conftest.py``'s fixtures) is in none of the console output, the ``--json`` result, the
transcript, its HTML page and the state file, and the supervisor's peak RSS (sampled every
20 ms) stays under the row's bound. docs/reliability.md ("Hostile runtimes") lists the rows.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import psutil
import pytest

from supervisor_sim.protocol import LIMITS
from supervisor_sim.transcript import Transcript, read_transcript
from tests._cli import CONFIG, ROOT, cli

HOSTILE = ROOT / "tests" / "children" / "hostile.py"
#: What the runtime leaks; its first six characters, so that a cut-short quote counts too.
SECRET = b"s3cret"
#: Peak RSS of the supervisor process for every row unless it says otherwise. An idle
#: run-task peaks at about 40 MB; before the violation caps, 50 MB of binary stdout took 290 MB.
RSS_BOUND_MB = 120


@dataclass
class Run:
    """One hostile run: what the supervisor printed, recorded and cost."""

    status: int
    result: dict[str, Any]
    stdout: bytes
    stderr: bytes
    transcript: Transcript
    transcript_path: Path
    state: Path
    peak_rss_mb: float
    seconds: float


def _peak_rss(pid: int, stop: threading.Event, out: list[float]) -> None:
    try:
        proc = psutil.Process(pid)
        while not stop.is_set():
            out.append(proc.memory_info().rss / 1e6)
            stop.wait(0.02)
    except psutil.Error:  # it exited between two samples
        pass


def run_hostile(
    kind: str,
    tmp: Path,
    fixtures: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Run:
    """``run-task d t --runtime "python hostile.py KIND" --json`` with a transcript and a state
    file in ``tmp``, its peak RSS sampled; never runs past ``timeout``."""
    transcript = tmp / f"{kind}.jsonl"
    state = tmp / "state.sqlite"
    argv = [
        sys.executable, "-m", "supervisor_sim", "--config", str(CONFIG),
        "run-task", "d", "t",
        "--runtime", f"{sys.executable} {HOSTILE} {kind}",
        "--fixtures", str(fixtures), "--state", str(state), "--transcript", str(transcript),
        "--json", *extra,
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=tmp,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    samples: list[float] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_peak_rss, args=(proc.pid, stop, samples), daemon=True)
    sampler.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"supervisor-sim did not exit within {timeout:g}s on {kind}")
    finally:
        stop.set()
        sampler.join()
    seconds = time.monotonic() - started
    lines = [line for line in stdout.splitlines() if line.startswith(b"{")]
    assert lines, f"no --json result; stderr:\n{stderr[-3000:].decode(errors='replace')}"
    run = Run(
        status=proc.returncode,
        result=json.loads(lines[-1]),
        stdout=stdout,
        stderr=stderr,
        transcript=read_transcript(transcript),
        transcript_path=transcript,
        state=state,
        peak_rss_mb=max(samples, default=0.0),
        seconds=seconds,
    )
    _check_invariants(run)
    return run


def _check_invariants(run: Run) -> None:
    """What every row must show, whatever its attack."""
    assert run.status == 0, run.stderr[-3000:].decode(errors="replace")
    assert run.result["final_state"] == "success"
    t = run.transcript
    assert t.footer is not None and t.truncated is None, "the transcript must end with a footer"
    assert t.problems == [], t.problems
    spawn = next(r for r in t.of("process") if r.get("event") == "spawn")
    _assert_gone(spawn["pid"])


def _assert_gone(pid: int) -> None:
    """Neither the runtime nor anything in its process group (its pgid is its pid) is left."""
    try:
        proc = psutil.Process(pid)
        assert proc.status() == psutil.STATUS_ZOMBIE, f"the runtime {pid} is still running"
    except psutil.NoSuchProcess:
        pass
    left = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pid:
                left.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    assert left == [], f"processes of the runtime's group {pid} outlived the run: {left}"


_B64 = re.compile(rb"[A-Za-z0-9+/]{8,}={0,2}")


def _leaks(data: bytes, depth: int = 0) -> list[str]:
    """Where ``data`` holds the secret: as it is, or inside base64 text (a frame's raw bytes,
    a violation's, the HTML page's zlib-compressed chunks of records, which hold base64 too)."""
    found = [f"plain at byte {data.find(SECRET)}"] if SECRET in data else []
    if depth > 2:
        return found
    for m in _B64.finditer(data):
        token = m.group()
        try:
            decoded = base64.b64decode(token + b"=" * (-len(token) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if decoded[:1] == b"\x78":  # a zlib stream
            try:
                decoded = zlib.decompress(decoded)
            except zlib.error:
                pass
        if SECRET in decoded or (len(decoded) > 16 and _leaks(decoded, depth + 1)):
            found.append(f"in base64 at byte {m.start()}")
    return found


def _state_dump(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return "\n".join(db.iterdump())


def _assert_no_secret(run: Run, tmp: Path, fixtures: Path) -> None:
    """The secret is in no output, no record, no page, and in the state file only where the
    fixtures put it (the stub must keep a connection's password to serve it)."""
    assert _leaks(run.stdout) == [], "the --json result holds the secret"
    assert _leaks(run.stderr) == [], "the console output holds the secret"
    assert _leaks(run.transcript_path.read_bytes()) == [], "the transcript holds the secret"
    page = tmp / "page.html"
    shown = cli("show", "--html", str(page), str(run.transcript_path), cwd=tmp, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert _leaks(page.read_bytes()) == [], "the HTML page holds the secret"
    seeded = tmp / "seeded.sqlite"
    from supervisor_sim.api import StubStore, load_fixtures

    StubStore(seeded).seed(load_fixtures(fixtures))
    secret = SECRET.decode()
    assert _state_dump(run.state).count(secret) == _state_dump(seeded).count(secret)


def _rules(run: Run) -> dict[str, int]:
    """Rule -> how many times it was reported, recorded or only counted."""
    out: dict[str, int] = dict(run.result["violations_suppressed"])
    for v in run.result["violations"]:
        out[v["rule"]] = out.get(v["rule"], 0) + 1
    return out


# --- structures too deep or too long ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("deep-json-log", "log-too-deep"),
        ("deeper-json-log", "log-too-deep"),
        ("long-number-log", "log-number-too-long"),
        ("deep-msgpack", "frame-too-deep"),
    ],
)
def test_a_structure_past_the_limits_is_refused_with_its_rule(tmp_path, fixtures_file, kind, rule):
    """A log line nested 500 or 100,000 deep, a 5,000-digit integer, a frame nested 1,000 deep:
    each is kept unparsed (the line) or answered with an error (the frame) under its limit's
    rule, and the task goes on to succeed; peak RSS under 120 MB."""
    run = run_hostile(kind, tmp_path, fixtures_file)
    assert _rules(run) == {rule: 1}
    assert run.peak_rss_mb < RSS_BOUND_MB
    if kind.endswith("-log"):
        (line,) = [r["line"] for r in run.transcript.of("log")]
        assert line.get("malformed") is True, "the line is kept, unparsed"


# --- secrets leaked in every way ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "rules"),
    [
        ("secret-in-bad-log", {"log-not-json": 1}),
        ("secret-in-bad-id", {"bad-id": 1}),
        ("secret-in-invalid-field", {"invalid-request:wrong-type": 1}),
        ("secret-in-level", {"log-unknown-level": 1}),
        ("secret-as-key", {}),
        ("secret-as-type", {"invalid-request:unknown-type": 1}),
        ("secret-in-bin", {"invalid-request:wrong-type": 1}),
        ("secret-in-undecodable-frame", {"bad-msgpack": 1}),
    ],
)
def test_a_leaked_secret_reaches_no_output_record_or_file(tmp_path, fixtures_file, kind, rules):
    """The runtime learns the connection password, then leaks it: in a non-JSON log line, as a
    request id, in an invalid field, as a log level, a log key, a message type, a bin value,
    inside an undecodable frame. The violation is reported, masked, and the password is in no
    console line, --json result, transcript, HTML page or state-file row the fixtures did not
    put there; peak RSS under 120 MB."""
    run = run_hostile(kind, tmp_path, fixtures_file)
    assert _rules(run) == rules
    _assert_no_secret(run, tmp_path, fixtures_file)
    if kind not in ("secret-in-bad-log", "secret-in-level", "secret-as-key"):
        # The frame that carried it is recorded masked, and says so.
        assert [r for r in run.transcript.frames("in") if r.get("raw_redacted")]
    assert run.peak_rss_mb < RSS_BOUND_MB


def test_secret_options_are_masked_in_the_transcript_header(tmp_path, fixtures_file):
    """--token and --jwt-secret, as --opt=value or --opt value, are recorded in the header's
    command line as ``***``; the rest of the command line is kept."""
    run = run_hostile(
        "secret-as-key", tmp_path, fixtures_file, "--token=s3cret-token", "--jwt-secret", "s3cret-j"
    )
    command = run.transcript.header["command"]
    assert command[-3:] == ["--token=***", "--jwt-secret", "***"]
    assert "run-task" in command
    _assert_no_secret(run, tmp_path, fixtures_file)


def test_no_redact_keeps_the_received_bytes_but_no_message_quotes_the_secret(
    tmp_path, fixtures_file
):
    """With --no-redact the undecodable frame is recorded as received, secret included, while
    the violation, the console and the --json result still say nothing of it."""
    run = run_hostile("secret-in-undecodable-frame", tmp_path, fixtures_file, "--no-redact")
    (bad,) = [r for r in run.transcript.frames("in") if r.get("decode_error")]
    assert base64.b64decode(bad["raw"]) == b"\xc1" + b"s3cret-pw"
    assert _leaks(run.stdout) == [] and _leaks(run.stderr) == []


# --- floods ------------------------------------------------------------------------------------


def _assert_capped(run: Run, rule: str, total: int) -> None:
    """``total`` violations of ``rule``: the first ``violations_per_rule`` in full, the rest
    counted, said in a note and in the footer."""
    recorded = [v for v in run.result["violations"] if v["rule"] == rule]
    assert len(recorded) == LIMITS.violations_per_rule
    assert run.result["violations_suppressed"] == {rule: total - len(recorded)}
    notes = [r for r in run.transcript.of("note") if r.get("rule") == rule]
    assert [n["suppressed"] for n in notes] == [total - len(recorded)]
    assert f"{total - len(recorded):,} more {rule}" in notes[0]["message"]
    assert run.transcript.footer is not None
    assert run.transcript.footer["violations_suppressed"] == {rule: total - len(recorded)}
    assert len(run.transcript.of("violation")) == len(run.result["violations"])


def test_a_flood_of_non_json_log_lines_is_kept_whole_and_its_violations_capped(
    tmp_path, fixtures_file
):
    """2 MB of non-JSON log lines (20,000): every line is in the transcript, 100 log-not-json
    violations are recorded and the other 19,900 counted; -q prints next to nothing and the
    --json result stays small; peak RSS under 120 MB."""
    run = run_hostile("non-json-flood", tmp_path, fixtures_file, "-q")
    lines = [r for r in run.transcript.of("log") if r["source"] == "logs"]
    assert len(lines) == 2_000_000 // 100
    _assert_capped(run, "log-not-json", len(lines))
    assert len(run.stderr) < 64_000 and len(run.stdout) < 200_000
    assert run.peak_rss_mb < RSS_BOUND_MB


def test_binary_stdout_is_kept_whole_and_its_violations_capped(tmp_path, fixtures_file):
    """10 MB of binary stdout (40,000 lines, none valid UTF-8): every line is recorded (with
    U+FFFD), 100 log-invalid-utf8 violations recorded and the rest counted; -q prints next to
    nothing; peak RSS under 120 MB (before the caps, 50 MB took 290 MB and 83 MB of output)."""
    run = run_hostile("binary-stdout", tmp_path, fixtures_file, "-q", env={"HOSTILE_MB": "10"})
    stdout = [r for r in run.transcript.of("log") if r["source"] == "stdout"]
    assert len(stdout) > 30_000
    invalid = sum(1 for r in stdout if "\ufffd" in r["line"]["event"])
    _assert_capped(run, "log-invalid-utf8", invalid)
    assert len(run.stderr) < 64_000 and len(run.stdout) < 200_000
    assert run.peak_rss_mb < RSS_BOUND_MB


def test_a_flood_of_empty_frames_is_counted_not_recorded_one_by_one(tmp_path, fixtures_file):
    """200,000 zero-length frames: 100 zero-length-frame violations recorded, 199,900 counted,
    their 799,600 bytes counted as unrecorded in the comm channel's byte count; the --json
    result stays small (it was 64 MB); the task's SucceedTask after them is still served; peak
    RSS under 120 MB."""
    run = run_hostile("empty-frames", tmp_path, fixtures_file, "-q")
    _assert_capped(run, "zero-length-frame", 200_000)
    (comm,) = [
        r
        for r in run.transcript.of("process")
        if r.get("event") == "channel-bytes" and r["channel"] == "comm"
    ]
    assert comm["unrecorded"] == 4 * 199_900
    assert len(run.stdout) < 200_000
    assert run.peak_rss_mb < RSS_BOUND_MB


def _heartbeat_lateness(t: Transcript, interval: float) -> float:
    """The longest a heartbeat came after it was due: ``interval`` after the previous one's
    answer (Airflow's cadence, which heartbeats keep here)."""
    beats = [r for r in t.http() if r.get("cause") == "heartbeat"]
    late = [(b["t"] - b["duration_s"]) - (a["t"] + interval) for a, b in pairwise(beats)]
    assert len(beats) >= 3, "too few heartbeats to measure"
    return max(late)


def test_a_mask_secret_flood_never_holds_up_the_heartbeat(tmp_path, fixtures_file):
    """2,000 MaskSecret requests sent without waiting for their replies: every one is served
    and its value masked in the transcript, and no heartbeat (every 0.2 s) comes more than
    0.5 s late (one once waited 13 s); peak RSS under 120 MB."""
    run = run_hostile(
        "mask-flood",
        tmp_path,
        fixtures_file,
        "-q",
        "--heartbeat-interval",
        "0.2",
        env={"HOSTILE_N": "2000", "HOSTILE_LINGER": "1.5"},
    )
    masks = [r for r in run.transcript.frames("in") if r["type"] == "MaskSecret"]
    assert len(masks) == 2000
    assert all(r["body"]["value"] == "***" for r in masks)
    assert b"secret-000123-value" not in run.transcript_path.read_bytes()
    assert _heartbeat_lateness(run.transcript, 0.2) < 0.5
    assert run.peak_rss_mb < RSS_BOUND_MB
