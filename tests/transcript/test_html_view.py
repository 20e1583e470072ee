"""The HTML transcript view, checked in a real browser.

A transcript recorded by the real CLI is rendered with ``render_html`` and opened in headless
Chromium (Debian's ``/usr/bin/chromium``; CI installs it). Chromium is driven with plain
command-line switches, no extra Python packages: ``--dump-dom`` prints the DOM after the page's
script ran, ``--screenshot`` writes the artefacts under tests/artifacts/, and
``--enable-logging=stderr`` makes every console message and uncaught error of the page show up
on stderr as a ``CONSOLE`` line, which the page never produces when it works.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from supervisor_sim.transcript._html import render_html, script_json
from supervisor_sim.transcript._reader import Transcript, read_transcript

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts"
TIMEOUT = 60
XSS = "</script><img src=x onerror=alert(1)>"


# --- driving Chromium ---------------------------------------------------------------------------


def _chromium(tmp: Path, url: str, *switches: str) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the HTML view is tested in headless Chromium. "
            "Install it with `apt-get install -y chromium` (.ci/run does)."
        )
    profile = tmp / f"chromium-profile-{time.monotonic_ns()}"
    home = tmp / "chromium-home"
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *switches,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=tmp,
    )


def _console_lines(stderr: str) -> list[str]:
    """Console messages and uncaught errors of pages loaded from file:// URLs."""
    return [
        line
        for line in stderr.splitlines()
        if ":CONSOLE" in line or "Uncaught" in line or "console error" in line.lower()
    ]


def dump_dom(tmp: Path, page: Path, fragment: str = "") -> Node:
    proc = _chromium(tmp, page.as_uri() + fragment, "--dump-dom")
    assert proc.returncode == 0, f"chromium exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    console = _console_lines(proc.stderr)
    assert not console, "the page logged to the console:\n" + "\n".join(console)
    root = parse_dom(proc.stdout)
    body = root.find(tag="body")
    assert body is not None, f"no <body> in the dumped DOM:\n{proc.stdout[:2000]}"
    errors = root.by_id("js-errors")
    assert errors is not None and "hidden" in errors.attrs, errors.text() if errors else ""
    assert body.attrs.get("data-rendered") == "ok", "the page's script did not finish"
    return root


def screenshot(tmp: Path, page: Path, name: str, fragment: str = "") -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / name
    out.unlink(missing_ok=True)
    proc = _chromium(tmp, page.as_uri() + fragment, f"--screenshot={out}", "--window-size=1400,900")
    assert proc.returncode == 0, f"chromium exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    assert not _console_lines(proc.stderr), proc.stderr[-3000:]
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, "no usable screenshot"
    return out


# --- a small DOM tree from the dumped HTML -----------------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}  # fmt: skip


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def find(self, tag: str | None = None, **attrs: str) -> Node | None:
        found = self.find_all(tag, **attrs)
        return found[0] if found else None

    def by_id(self, ident: str) -> Node | None:
        return next((n for n in self.iter() if n.attrs.get("id") == ident), None)

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in _VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse_dom(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def arrows(root: Node) -> list[Node]:
    return [n for n in root.iter() if "data-kind" in n.attrs]


def row_of(node: Node) -> Node:
    current: Node | None = node
    while current is not None and "row" not in current.classes():
        current = current.parent
    assert current is not None
    return current


# --- a transcript recorded by the real CLI -----------------------------------------------------


@dataclass
class Recorded:
    tmp: Path
    transcript: Transcript
    page: Path
    dom: Node


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    tmp = tmp_path_factory.mktemp("html_view")
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "--config", str(REPO / "supervisor-sim.toml"),
         "run-task", "example_dag", "read_var_conn", "--state", str(tmp / "state.sqlite"),
         "--transcript", str(tmp / "t.jsonl"), "-q"],
        cwd=tmp, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, f"run-task failed ({proc.returncode}):\n{proc.stderr}"
    transcript = read_transcript(tmp / "t.jsonl")
    assert transcript.truncated is None and not transcript.problems
    page = tmp / "t.html"
    page.write_text(render_html(transcript), encoding="utf-8")
    return Recorded(tmp, transcript, page, dump_dom(tmp, page))


def test_every_frame_and_http_call_is_an_arrow(recorded: Recorded):
    t, found = recorded.transcript, arrows(recorded.dom)
    kinds = Counter(a.attrs["data-kind"] for a in found)
    assert kinds == {
        "request": len(t.frames("in")),
        "reply": len(t.frames("out")),
        "http-request": len(t.http()),
        "http-response": len(t.http()),
    }
    # every frame and HTTP record has its arrows, under its own seq
    by_seq: dict[int, list[str]] = {}
    for a in found:
        by_seq.setdefault(int(a.attrs["data-seq"]), []).append(a.attrs["data-kind"])
    for r in t.frames():
        assert by_seq[r["seq"]] == ["request" if r["dir"] == "in" else "reply"]
    for r in t.http():
        assert by_seq[r["seq"]] == ["http-request", "http-response"]
    assert len(by_seq) == len(t.frames()) + len(t.http())

    types = {(a.attrs["data-kind"], a.attrs["data-type"]) for a in found}
    for expected in [
        ("request", "GetVariable"),
        ("request", "GetConnection"),
        ("request", "SetXCom"),
        ("request", "SucceedTask"),
        ("reply", "StartupDetails"),
        ("reply", "VariableResult"),
        ("reply", "ConnectionResult"),
        ("reply", "ack"),
        ("http-request", "GET /execution/variables/peer_var"),
        ("http-request", "GET /execution/connections/peer_conn"),
    ]:
        assert expected in types, f"no {expected} arrow in {sorted(types)}"
    acks = [a for a in found if a.attrs["data-type"] == "ack"]
    assert len(acks) == sum(1 for r in t.frames("out") if r.get("type") is None) == 2
    assert all("ack" in a.text() for a in acks)


def test_http_arrows_show_status_and_sit_in_their_exchange(recorded: Recorded):
    found = arrows(recorded.dom)
    t = recorded.transcript
    for r in t.http():
        typ = f"{r['method']} {r['path']}"
        (response,) = [
            a for a in found
            if a.attrs["data-kind"] == "http-response" and a.attrs["data-seq"] == str(r["seq"])
        ]  # fmt: skip
        assert response.attrs["data-type"] == typ
        assert str(r["status"]) in response.text()
        (request,) = [
            a for a in found
            if a.attrs["data-kind"] == "http-request" and a.attrs["data-seq"] == str(r["seq"])
        ]  # fmt: skip
        assert r["method"] in request.text()
        if isinstance(r["cause"], int):
            # nested inside the exchange of the request frame that caused it
            assert "in-ex" in row_of(request).classes()
            assert "in-ex" in row_of(response).classes()
        else:
            assert r["cause"] in request.text()
    variable = next(
        a for a in found
        if a.attrs["data-kind"] == "http-response"
        and a.attrs["data-type"] == "GET /execution/variables/peer_var"
    )  # fmt: skip
    assert "200" in variable.text()


def test_header_shows_task_state_and_counts(recorded: Recorded):
    root, t = recorded.dom, recorded.transcript
    assert t.footer is not None
    state = root.by_id("final-state")
    assert state is not None and state.text().strip() == t.footer["final_state"] == "success"
    header = root.find("header")
    assert header is not None
    text = " ".join(header.text().split())
    assert "example_dag.read_var_conn" in text
    assert "runtimes/reference/runtime.py" in text
    assert t.header["created"] in text
    assert f"{len(t.frames('in'))} in / {len(t.frames('out'))} out" in text
    assert root.by_id("banner-truncated") is None and root.by_id("banner-problems") is None
    lanes = root.by_id("lanes")
    assert lanes is not None
    for lane in ("Runtime", "supervisor-sim", "Execution API"):
        assert lane in lanes.text()
    # log lines, in the margin; process events, as notes on the runtime lane
    logs = [n for n in root.iter() if "log" in n.classes() and "data-i" in n.attrs]
    assert len(logs) == len(t.of("log"))
    assert any("Read connection" in n.text() for n in logs)
    notes = [n for n in root.iter() if {"note", "on-rt"} <= n.classes()]
    assert len(notes) == len(t.of("process"))
    assert any("spawn" in n.text() for n in notes) and any("exit" in n.text() for n in notes)


def test_select_in_the_url_opens_the_details_panel(recorded: Recorded):
    t = recorded.transcript
    reply = next(r for r in t.frames("out") if r.get("type") == "VariableResult")
    root = dump_dom(recorded.tmp, recorded.page, f"#select={reply['seq']}")
    panel = root.by_id("details")
    assert panel is not None and "hidden" not in panel.attrs
    assert panel.attrs.get("data-selected-seq") == str(reply["seq"])
    text = panel.text()
    assert "VariableResult" in text
    body = json.dumps(reply["body"], indent=2)
    assert body in text  # the full body, pretty-printed
    selected = [a for a in arrows(root) if "selected" in a.classes()]
    assert [a.attrs["data-seq"] for a in selected] == [str(reply["seq"])]

    call = next(r for r in t.http() if r["path"] == "/execution/connections/peer_conn")
    root = dump_dom(recorded.tmp, recorded.page, f"#select={call['seq']}")
    panel = root.by_id("details")
    assert panel is not None and "hidden" not in panel.attrs
    text = panel.text()
    assert "GET /execution/connections/peer_conn" in text
    for name in call["request"]["headers"]:
        assert name in text
    assert json.dumps(call["response"]["json"], indent=2) in text
    assert len([a for a in arrows(root) if "selected" in a.classes()]) == 2


def test_clicking_an_arrow_opens_its_details(recorded: Recorded, tmp_path: Path):
    """A click (dispatched by a script appended to the page) goes through the page's handler."""
    request = next(r for r in recorded.transcript.frames("in") if r["type"] == "GetConnection")
    html = recorded.page.read_text(encoding="utf-8")
    click = (
        '<script>document.querySelector(\'[data-kind="request"]'
        '[data-type="GetConnection"] .label\').click();</script>'
    )
    at = html.rindex("</body>")
    page = tmp_path / "click.html"
    page.write_text(html[:at] + click + html[at:], encoding="utf-8")
    root = dump_dom(tmp_path, page)
    panel = root.by_id("details")
    assert panel is not None and "hidden" not in panel.attrs
    assert panel.attrs.get("data-selected-seq") == str(request["seq"])
    text = panel.text()
    assert json.dumps(request["body"], indent=2) in text
    # the panel links the reply and the HTTP call the request caused
    assert "ConnectionResult" in text and "GET /execution/connections/peer_conn" in text


def test_no_hash_no_panel(recorded: Recorded):
    panel = recorded.dom.by_id("details")
    assert panel is not None and "hidden" in panel.attrs


def test_screenshots(recorded: Recorded):
    shot = screenshot(recorded.tmp, recorded.page, "html_view.png")
    reply = next(r for r in recorded.transcript.http() if r["path"].endswith("peer_var"))
    screenshot(recorded.tmp, recorded.page, "html_view_details.png", f"#select={reply['seq']}")
    assert shot.exists()


# --- synthetic transcripts --------------------------------------------------------------------


def _frame(seq: int, t: float, direction: str, fid: int, typ: str | None, body: Any, **kw: Any):
    raw = base64.b64encode(b"\x93\x00\xc0\xc0").decode()
    return {"record": "frame", "seq": seq, "t": t, "dir": direction, "id": fid, "type": typ,
            "body": body, "raw": raw, "len": 4, **kw}  # fmt: skip


def _http(seq: int, t: float, method: str, path: str, status: int | None, cause: Any, **kw: Any):
    return {"record": "http", "seq": seq, "t": t, "method": method, "path": path, "query": "",
            "status": status, "error": None, "attempt": 1, "duration_s": 0.001, "cause": cause,
            "request": {"headers": {"accept": "application/json"}},
            "response": {"headers": {"content-type": "application/json"}, "json": {"x": 1}},
            **kw}  # fmt: skip


def _header(dag_id: str = "dag", task_id: str = "task") -> dict[str, Any]:
    return {
        "record": "header", "format": "supervisor-sim-transcript", "version": 1,
        "tool_version": "0.1.0", "created": "2026-01-01T00:00:00Z", "redacted": True,
        "command": ["supervisor-sim"], "runtime": ["runtime", "--flag"], "api": "stub",
        "task": {"ti": {"id": "0000"}, "dag_id": dag_id, "task_id": task_id, "run_id": "r",
                 "try_number": 1, "map_index": -1},
    }  # fmt: skip


def xss_transcript(tmp: Path) -> Transcript:
    records = [
        {"record": "process", "seq": 1, "t": 0.01, "event": "spawn", "argv": ["rt", XSS], "pid": 7},
        _frame(2, 0.02, "in", 0, "GetVariable", {"type": "GetVariable", "key": XSS}),
        _http(3, 0.03, "GET", f"/execution/variables/{XSS}", 404, 2,
              response={"headers": {XSS: XSS}, "json": {"detail": XSS}}),
        _frame(4, 0.04, "out", 0, "ErrorResponse",
               {"error": "VARIABLE_NOT_FOUND", "detail": {"key": XSS}, "type": "ErrorResponse"}),
        _frame(5, 0.05, "in", 1, XSS, {"type": XSS, XSS: XSS}),
        {"record": "violation", "seq": 6, "t": 0.06, "rule": XSS, "message": XSS, "airflow": XSS,
         "frame_id": 1},
        _frame(7, 0.07, "out", 1, "ErrorResponse", None,
               error={"error": "API_SERVER_ERROR", "detail": {"message": XSS}}),
        {"record": "log", "seq": 8, "t": 0.08, "source": "stderr",
         "line": {"level": "error", "event": XSS, XSS: XSS}},
        {"record": "note", "seq": 9, "t": 0.09, "level": "warning", "message": XSS},
        _http(10, 0.10, "PUT", "/execution/task-instances/0000/heartbeat", 500, "heartbeat",
              response={"headers": {}, "b64": base64.b64encode(XSS.encode()).decode()}),
        _http(11, 2.5, "PATCH", "/execution/task-instances/0000/state", None, "exit",
              error=XSS, response={}),
    ]  # fmt: skip
    return Transcript(
        tmp / f"{XSS}.jsonl",
        _header(XSS, XSS),
        records,
        footer=None,
        truncated=f"no footer after 11 records {XSS}",
        problems=[f"line 3: not JSON {XSS}"],
    )


def test_script_json_cannot_close_its_element():
    text = script_json({"a": XSS, "b": "&\u2028\u2029>", "c": float("nan")})
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == {"a": XSS, "b": "&\u2028\u2029>", "c": {"$float": "nan"}}


def test_rendered_file_is_self_contained_and_escaped(tmp_path: Path):
    transcript = xss_transcript(tmp_path)
    transcript.header["task"]["run_id"] = "%%JS%%"  # not a template placeholder
    html = render_html(transcript)
    assert "%%JS%%" in html and html.count("use strict") == 1
    lowered = html.lower()
    assert "<img" not in lowered
    assert lowered.count("</script>") == 2  # the data element's and the code's own
    for needle in ("http://", "https://", "<link", "<script src", "@import", "url("):
        assert needle not in lowered, needle
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html  # header, escaped


def test_hostile_strings_stay_text_in_the_browser(tmp_path: Path):
    transcript = xss_transcript(tmp_path)
    page = tmp_path / "xss.html"
    page.write_text(render_html(transcript), encoding="utf-8")
    root = dump_dom(tmp_path, page, "#select=2")
    assert not root.find_all("img"), "a recorded string became an <img> element"
    found = arrows(root)
    assert Counter(a.attrs["data-kind"] for a in found) == {
        "request": 2, "reply": 2, "http-request": 3, "http-response": 3,
    }  # fmt: skip
    # the hostile strings are shown, as text, wherever they were recorded
    panel = root.by_id("details")
    assert panel is not None and XSS in panel.text()
    assert any(a.attrs["data-type"] == XSS for a in found)
    assert any(a.attrs["data-type"] == f"GET /execution/variables/{XSS}" for a in found)
    violation = root.find(data_violation=XSS)
    assert violation is not None
    vtext = violation.text()
    assert XSS in vtext and f"Airflow: {XSS}" in vtext
    assert "VIOLATION" in vtext
    log = next(n for n in root.iter() if "log" in n.classes() and "data-i" in n.attrs)
    assert XSS in log.text()
    # error slot reply styled as an error; a 4xx/5xx and a transport failure highlighted
    error_reply = next(a for a in found if a.attrs["data-seq"] == "7")
    assert "err" in error_reply.classes() and "API_SERVER_ERROR" in error_reply.text()
    statuses = {
        a.attrs["data-seq"]: a.classes() for a in found if a.attrs["data-kind"] == "http-response"
    }
    assert "s4" in statuses["3"] and "s5" in statuses["10"] and "sx" in statuses["11"]
    # the truncation and the problems are announced
    truncated, problems = root.by_id("banner-truncated"), root.by_id("banner-problems")
    assert truncated is not None and XSS in truncated.text()
    assert problems is not None and XSS in problems.text()
    state = root.by_id("final-state")
    assert state is not None and "unknown" in state.text()
    # a time gap is shown
    assert "s later" in root.text()

    root = dump_dom(tmp_path, page, "#select=10")
    panel = root.by_id("details")
    assert panel is not None and XSS in panel.text()  # the b64 body, decoded as text
    screenshot(tmp_path, page, "html_view_synthetic.png", "#select=7")


def test_console_capture_sees_page_errors(tmp_path: Path):
    """The 'no console output' checks above would notice a broken page."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><body><script>console.error('x'); nope();</script>")
    proc = _chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert proc.returncode == 0
    lines = _console_lines(proc.stderr)
    assert any("Uncaught ReferenceError" in line for line in lines), proc.stderr[-2000:]


@pytest.mark.slow
def test_ten_thousand_records(tmp_path: Path):
    records: list[dict[str, Any]] = []
    seq = 0

    def nxt() -> int:
        nonlocal seq
        seq += 1
        return seq

    for i in range(2000):
        t = i * 0.01
        req = nxt()
        records.append(
            _frame(req, t, "in", i, "GetVariable", {"type": "GetVariable", "key": f"k{i}"})
        )
        records.append(_http(nxt(), t, "GET", f"/execution/variables/k{i}", 200, req))
        reply = {"key": f"k{i}", "value": "v" * 50, "type": "VariableResult"}
        records.append(_frame(nxt(), t, "out", i, "VariableResult", reply))
        for _ in range(2):
            records.append({"record": "log", "seq": nxt(), "t": t, "source": "logs",
                            "line": {"level": "info", "event": f"line {seq}"}})  # fmt: skip
    assert len(records) == 10_000
    transcript = Transcript(tmp_path / "big.jsonl", _header(), records,
                            footer={"final_state": "success", "exit_code": 0})  # fmt: skip
    started = time.monotonic()
    html = render_html(transcript)
    assert time.monotonic() - started < 5
    page = tmp_path / "big.html"
    page.write_text(html, encoding="utf-8")
    started = time.monotonic()
    root = dump_dom(tmp_path, page)
    elapsed = time.monotonic() - started
    assert Counter(a.attrs["data-kind"] for a in arrows(root)) == {
        "request": 2000, "reply": 2000, "http-request": 2000, "http-response": 2000,
    }  # fmt: skip
    assert elapsed < 45, f"Chromium took {elapsed:.1f}s for 10k records"


def test_page_css_and_js_are_package_data_inlined_whole():
    """The page's CSS and JS come from the package's _assets files, which pyproject.toml ships."""
    import tomllib
    from importlib import resources

    assets = resources.files("supervisor_sim.transcript").joinpath("_assets")
    css = assets.joinpath("view.css").read_text(encoding="utf-8")
    js = assets.joinpath("view.js").read_text(encoding="utf-8")
    html = render_html(Transcript(Path("t.jsonl"), _header(), []))
    assert f"<style>\n{css}</style>" in html
    assert f"<script>\n{js}</script>" in html
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["supervisor_sim.transcript"]
    assert {"_assets/*.css", "_assets/*.js"} <= set(shipped)
