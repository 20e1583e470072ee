"""Damaged and hand-made transcripts: every command that reads one says which line is wrong.

A real transcript is recorded once; each case puts one bad line in it (as line 3, or the header)
and runs ``show``, ``show --html``, ``diff`` and ``replay`` on the result through the real command
line. Each must exit 2 with ``PATH: line N: ...`` on stderr and never a traceback.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest
from _cli import ROOT, cli, run_task_json

from supervisor_sim.transcript import MAX_DEPTH, TranscriptError, read_transcript

LOG = '{"record":"log","seq":90,"t":0.5,"source":"logs","line":{"event":"x"}}'
FRAME = '{"record":"frame","seq":90,"t":0.5,"dir":"in","id":7,"type":"GetVariable","body":null}'

SCRIPTED = shlex.join([sys.executable, str(ROOT / "tests" / "children" / "scripted.py")])


def _deep(levels: int) -> str:
    return '{"record":"log","seq":90,"t":0.5,"source":"logs","line":{"x":' + (
        "[" * (levels - 2) + "]" * (levels - 2) + "}}"
    )


#: (id, the bad line 3, the message after "PATH: line 3: ")
BAD_LINES = [
    ("array", b"[1, 2]", "a record must be a JSON object, not an array"),
    ("number", b"42", "a record must be a JSON object, not a number"),
    ("string", b'"frame"', "a record must be a JSON object, not a string"),
    ("not-json", b"hello", "not JSON (Expecting value: line 1 column 1 (char 0))"),
    (
        "not-utf8",
        b'{"record":"log","seq":90,"t":0.5,"source":"logs","line":{"event":"\xff"}}',
        "not UTF-8 (byte 0xff at column 67)",
    ),
    ("nested-100k", _deep(100_000).encode(), f"nested more than {MAX_DEPTH} levels deep"),
    ("nested-300", _deep(300).encode(), f"nested more than {MAX_DEPTH} levels deep"),
    ("no-kind", b'{"seq":90,"t":0.5}', 'a record must have a "record" field naming its kind'),
    ("kind-number", b'{"record":5}', '"record" must be a string, not a number'),
    ("no-seq", b'{"record":"note","t":0.5}', 'note record: no "seq" field'),
    (
        "t-string",
        FRAME.replace('"t":0.5', '"t":"soon"').encode(),
        "frame record: \"t\" must be a number, not the string 'soon'",
    ),
    (
        "seq-float",
        LOG.replace('"seq":90', '"seq":1.5').encode(),
        'log record: "seq" must be an integer, not a number',
    ),
    (
        "log-line-list",
        LOG.replace('{"event":"x"}', '["x"]').encode(),
        'log record: "line" must be an object, not an array',
    ),
    (
        "dir-sideways",
        FRAME.replace('"dir":"in"', '"dir":"up"').encode(),
        'frame record: "dir" must be "in" or "out", not the string \'up\'',
    ),
    (
        "id-string",
        FRAME.replace('"id":7', '"id":"7"').encode(),
        "frame record: \"id\" must be an integer or null, not the string '7'",
    ),
    (
        "raw-not-base64",
        FRAME.replace('"body":null', '"body":null,"raw":"%%%"').encode(),
        "frame record: \"raw\" must be base64 text, not the string '%%%'",
    ),
    (
        "body-bad-tag",
        FRAME.replace('"body":null', '"body":{"when":{"$ts":5}}').encode(),
        'frame record: "body" holds a malformed tagged value'
        ' ("$ts" must hold an RFC 3339 string, not a number)',
    ),
    (
        "body-bad-ext",
        FRAME.replace('"body":null', '"body":{"x":{"$ext":[1,2]}}').encode(),
        'frame record: "body" holds a malformed tagged value'
        ' ("$ext" must hold [code, base64 text], not [1, 2])',
    ),
    (
        "http-path-list",
        b'{"record":"http","seq":90,"t":0.5,"method":"GET","path":["a"]}',
        'http record: "path" must be a string, not an array',
    ),
    (
        "http-headers",
        b'{"record":"http","seq":90,"t":0.5,"method":"GET","path":"/x",'
        b'"request":{"headers":{"a":1}}}',
        'http record: "request.headers" must be an object of strings',
    ),
    (
        "http-negative-duration",
        b'{"record":"http","seq":90,"t":0.5,"method":"GET","path":"/x","duration_s":-1}',
        'http record: "duration_s" must be a non-negative number, not -1',
    ),
    ("second-header", b'{"record":"header"}', "a second header"),
]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hostile")
    _, result, _ = run_task_json("read_var_conn", tmp)
    return Path(result["transcript"])


def _with_line_3(recorded: Path, bad: bytes, dest: Path) -> Path:
    lines = recorded.read_bytes().split(b"\n")
    dest.write_bytes(b"\n".join([*lines[:2], bad, *lines[2:]]))
    return dest


def _runs(path: Path, tmp: Path, good: Path) -> dict[str, tuple[int, str, str]]:
    """Each reading command on ``path``: (exit status, stdout, stderr)."""
    out = {}
    for name, args in {
        "show": ("show", str(path)),
        "show --html": ("show", str(path), "--html", str(tmp / "page.html")),
        "diff A": ("diff", str(path), str(good)),
        "diff B": ("diff", str(good), str(path)),
        "replay": ("replay", str(path), "-q"),
    }.items():
        proc = cli(*args, cwd=tmp)
        out[name] = (proc.returncode, proc.stdout, proc.stderr)
    return out


@pytest.mark.parametrize(
    ("bad", "message"), [c[1:] for c in BAD_LINES], ids=[c[0] for c in BAD_LINES]
)
def test_a_bad_record_is_named_by_its_line(
    recorded: Path, tmp_path: Path, bad: bytes, message: str
):
    """read_transcript refuses the file with a TranscriptError naming line 3 and what is wrong."""
    path = _with_line_3(recorded, bad, tmp_path / "bad.jsonl")
    with pytest.raises(TranscriptError) as caught:
        read_transcript(path)
    assert str(caught.value) == f"{path}: line 3: {message}"
    assert caught.value.line == 3


CLI_CASES = ["array", "number", "nested-100k", "t-string", "log-line-list", "raw-not-base64",
             "not-utf8", "body-bad-tag", "http-headers"]  # fmt: skip


@pytest.mark.parametrize("case", CLI_CASES)
def test_every_reading_command_exits_2_naming_the_line(recorded: Path, tmp_path: Path, case: str):
    """show, show --html, diff (either side) and replay exit 2 with the reader's one sentence."""
    _, bad, message = next(c for c in BAD_LINES if c[0] == case)
    path = _with_line_3(recorded, bad, tmp_path / "bad.jsonl")
    for name, (status, _, stderr) in _runs(path, tmp_path, recorded).items():
        assert "Traceback" not in stderr, (name, stderr[-3000:])
        assert status == 2, (name, stderr[-2000:])
        assert f"Error: {path}: line 3: {message}" in stderr, (name, stderr[-2000:])
    assert not (tmp_path / "page.html").exists()


def _deep_frame(levels: int) -> str:
    return FRAME.replace(
        '"body":null',
        '"body":{"type":"GetVariable","key":' + ("[" * (levels - 2) + "]" * (levels - 2) + "}"),
    )


@pytest.mark.parametrize("make", [_deep, _deep_frame], ids=["log", "frame"])
def test_a_record_nested_to_the_limit_is_read_by_every_command(
    recorded: Path, tmp_path: Path, make
):
    """A record exactly MAX_DEPTH deep is valid, and no command trips over its depth (diff of
    the file with itself walks every level of it)."""
    path = _with_line_3(recorded, make(MAX_DEPTH).encode(), tmp_path / "deep.jsonl")
    assert len(read_transcript(path).records) == len(read_transcript(recorded).records) + 1
    runs = _runs(path, tmp_path, recorded)
    proc = cli("diff", str(path), str(path), cwd=tmp_path)
    runs["diff itself"] = (proc.returncode, proc.stdout, proc.stderr)
    for name, (status, _, stderr) in runs.items():
        assert "Traceback" not in stderr, (name, stderr[-3000:])
        assert status in (0, 1), (name, stderr[-2000:])  # 1: diff and replay see the new line
    assert runs["diff itself"][0] == 0
    assert runs["show"][0] == 0 and runs["show --html"][0] == 0


def test_a_truncated_last_line_is_reported_not_fatal(recorded: Path, tmp_path: Path):
    """A file cut in the middle of a record reads as truncated: show says so, diff compares it."""
    data = recorded.read_bytes()
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(data[: data.index(b'"type":"SucceedTask"')])
    t = read_transcript(cut)
    assert t.truncated is not None and "bytes of an incomplete record follow" in t.truncated
    proc = cli("show", str(cut), cwd=tmp_path)
    assert proc.returncode == 0 and "TRUNCATED" in proc.stdout
    proc = cli("show", str(cut), "--html", str(tmp_path / "cut.html"), cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    proc = cli("diff", str(recorded), str(cut), "--json", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert any(d["kind"] == "only-in-a" for d in json.loads(proc.stdout)["details"])


def test_records_after_the_footer_are_refused(recorded: Path, tmp_path: Path):
    """Lines appended after the footer are not silently ignored."""
    path = tmp_path / "appended.jsonl"
    lines = recorded.read_bytes().rstrip(b"\n").split(b"\n")
    path.write_bytes(recorded.read_bytes() + LOG.encode() + b"\n")
    with pytest.raises(TranscriptError, match=rf"line {len(lines) + 1}: a record after the footer"):
        read_transcript(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"runtime": "python x.py"}, 'header: "runtime" must be an array, not the string'),
        ({"runtime": ["python", 3]}, 'header: "runtime" must be an array of strings'),
        ({"task": []}, 'header: "task" must be an object, not an array'),
        ({"config": None}, 'header: "config" must be an object, not null'),
    ],
)
def test_a_bad_header_is_named(recorded: Path, tmp_path: Path, change: dict, message: str):
    """A header field of the wrong type is refused on line 1 by every reading command."""
    lines = recorded.read_bytes().split(b"\n")
    header = {**json.loads(lines[0]), **change}
    path = tmp_path / "header.jsonl"
    path.write_bytes(b"\n".join([json.dumps(header).encode(), *lines[1:]]))
    with pytest.raises(TranscriptError, match=rf"line 1: {message}"):
        read_transcript(path)
    for name, (status, _, stderr) in _runs(path, tmp_path, recorded).items():
        assert "Traceback" not in stderr, (name, stderr[-3000:])
        assert status == 2 and f"{path}: line 1: {message}" in stderr, (name, stderr[-2000:])


def test_a_task_instance_id_that_is_not_a_string_is_refused(recorded: Path, tmp_path: Path):
    """The replay names the task instance by its id: a header where it is a number is refused."""
    lines = recorded.read_bytes().split(b"\n")
    header = json.loads(lines[0])
    header["task"]["ti"]["id"] = 7
    path = tmp_path / "ti.jsonl"
    path.write_bytes(b"\n".join([json.dumps(header).encode(), *lines[1:]]))
    proc = cli("replay", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f'{path}: line 1: header: task.ti."id" must be a string, not a number' in proc.stderr


def test_a_recorded_setting_of_the_wrong_type_stops_the_replay(recorded: Path, tmp_path: Path):
    """replay uses the recorded supervisor settings, so a setting of the wrong type is exit 2."""
    lines = recorded.read_bytes().split(b"\n")
    header = json.loads(lines[0])
    header["config"]["heartbeat_interval"] = "often"
    path = tmp_path / "config.jsonl"
    path.write_bytes(b"\n".join([json.dumps(header).encode(), *lines[1:]]))
    proc = cli("replay", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f'{path}: header: config.heartbeat_interval cannot be "often"' in proc.stderr


def test_a_transcript_without_frames_is_nothing_to_replay(recorded: Path, tmp_path: Path):
    """A header-only transcript is not a MATCH: replay exits 2 saying there is nothing to replay."""
    path = tmp_path / "header-only.jsonl"
    path.write_bytes(recorded.read_bytes().split(b"\n")[0] + b"\n")
    proc = cli("replay", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{path}: nothing to replay: the transcript holds no frames" in proc.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"\n\n", "empty file"),
        (b'{"format":"supervisor-sim-transcript"', "truncated before the end of its header line"),
        (b"\xff\xfe\n", "line 1 is not UTF-8; not a transcript"),
        (b"[" * 100_000 + b"\n", f"line 1 is nested more than {MAX_DEPTH} levels deep"),
        (
            b"[]\n",
            "not a supervisor-sim transcript (no 'supervisor-sim-transcript' header on line 1)",
        ),
    ],
)
def test_a_file_that_is_no_transcript_is_exit_2(tmp_path: Path, content: bytes, message: str):
    """Files that are no transcript at all get one sentence from every reading command."""
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    for args in (("show", str(path)), ("diff", str(path), str(path)), ("replay", str(path))):
        proc = cli(*args, cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert f"{path}: {message}" in proc.stderr, proc.stderr[-2000:]


def test_show_never_writes_a_recorded_control_character_to_the_terminal(tmp_path: Path):
    """A runtime's log line holding escape sequences (clear screen, window title, carriage
    return) is shown with them escaped, with and without colour: no raw ESC, BEL or CR."""
    event = "\x1b[2J\x1b[31mRED\x1b]0;pwned-title\x07 \r overwrite"
    steps = [
        {"log": json.dumps({"event": event, "level": "info"})},
        {"send": {"type": "SucceedTask", "state": "success", "end_date": "$now",
                  "task_outlets": [], "outlet_events": []}},
    ]  # fmt: skip
    _, result, _ = run_task_json(
        "hello", tmp_path, "--runtime", SCRIPTED, env={"SCRIPTED_STEPS": json.dumps(steps)}
    )
    path = Path(result["transcript"])
    for extra in ((), ("--color",)):
        proc = cli("show", str(path), "--grep", "RED", *extra, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        shown = [ln for ln in proc.stdout.splitlines() if "RED" in ln]
        assert shown, proc.stdout[-2000:]
        text = "\n".join(shown)
        assert "\\x1b[2J" in text and "\\x07" in text and "\\r" in text, text
        bare = re.sub(r"\x1b\[[0-9;]*m", "", text)  # show's own colours
        assert not any(c in bare for c in "\x1b\x07\r"), repr(text)
