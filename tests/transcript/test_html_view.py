"""The HTML transcript view, checked in a real browser.

A transcript recorded by the real CLI is rendered with ``render_html`` and opened in headless
Chromium (Debian's ``/usr/bin/chromium``; CI installs it), driven over the DevTools protocol on a
pipe by bench/html_chromium.py (no extra Python package): the tests wait for the page's script,
read its DOM, press keys and click as a user would, and take screenshots into tests/artifacts/.
Every console message and uncaught error of a page is collected; a working page has none.

The page draws only the rows in view (virtual scrolling); the transcripts here are small enough
that every row is drawn at once, except the 10,000-record one, which is scrolled through.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from supervisor_sim.transcript import write_html
from supervisor_sim.transcript._html import render_html, runtime_label, script_json
from supervisor_sim.transcript._reader import Transcript, read_transcript

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from html_chromium import Chromium, Page  # noqa: E402

ARTIFACTS = REPO / "tests" / "artifacts"
TIMEOUT = 60
XSS = "</script><img src=x onerror=alert(1)>"
RENDERED = (
    "document.body && (document.body.dataset.rendered === 'ok' || "
    "!document.getElementById('js-errors').hidden)"
)


# --- driving Chromium ---------------------------------------------------------------------------


def open_page(browser: Chromium, page: Path, fragment: str = "") -> Page:
    """The page, once its script drew the first rows; it wrote nothing on the console."""
    tab = browser.open(page.as_uri() + fragment)
    tab.wait_for(RENDERED)
    errors = tab.evaluate("document.getElementById('js-errors').textContent")
    assert not errors, errors
    console = tab.console()
    assert not console, "the page logged to the console:\n" + "\n".join(console)
    return tab


def dom(tab: Page) -> Node:
    root = parse_dom(tab.evaluate("document.documentElement.outerHTML"))
    body = root.find(tag="body")
    assert body is not None
    errors = root.by_id("js-errors")
    assert errors is not None and "hidden" in errors.attrs, errors.text() if errors else ""
    assert body.attrs.get("data-rendered") == "ok", "the page's script did not finish"
    return root


def dump_dom(browser: Chromium, page: Path, fragment: str = "") -> Node:
    tab = open_page(browser, page, fragment)
    try:
        return dom(tab)
    finally:
        tab.close()


def screenshot(tab: Page, name: str) -> Path:
    out = ARTIFACTS / name
    out.unlink(missing_ok=True)
    tab.screenshot(out)
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, "no usable screenshot"
    return out


def in_view(tab: Page, selector: str) -> bool:
    """Whether the element is drawn inside the diagram's visible area (below its lane header)."""
    return bool(
        tab.evaluate(
            "(function(){var n=document.querySelector(" + json.dumps(selector) + ");"
            "if(!n)return false;var r=n.getBoundingClientRect(),"
            "d=document.getElementById('diagram').getBoundingClientRect(),"
            "h=document.getElementById('lanes').getBoundingClientRect().height;"
            "return r.height>0&&r.top>=d.top+h-1&&r.bottom<=d.bottom+1;})()"
        )
    )


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
def recorded(tmp_path_factory: pytest.TempPathFactory, browser: Chromium) -> Recorded:
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
    return Recorded(tmp, transcript, page, dump_dom(browser, page))


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


def test_select_in_the_url_opens_the_details_panel(recorded: Recorded, browser: Chromium):
    t = recorded.transcript
    reply = next(r for r in t.frames("out") if r.get("type") == "VariableResult")
    root = dump_dom(browser, recorded.page, f"#select={reply['seq']}")
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
    root = dump_dom(browser, recorded.page, f"#select={call['seq']}")
    panel = root.by_id("details")
    assert panel is not None and "hidden" not in panel.attrs
    text = panel.text()
    assert "GET /execution/connections/peer_conn" in text
    for name in call["request"]["headers"]:
        assert name in text
    assert json.dumps(call["response"]["json"], indent=2) in text
    assert len([a for a in arrows(root) if "selected" in a.classes()]) == 2


def test_clicking_an_arrow_opens_its_details(recorded: Recorded, browser: Chromium):
    """A mouse click on an arrow's label goes through the page's handler."""
    request = next(r for r in recorded.transcript.frames("in") if r["type"] == "GetConnection")
    tab = open_page(browser, recorded.page)
    tab.click('[data-kind="request"][data-type="GetConnection"] .label')
    tab.wait_for("!document.getElementById('details').hidden")
    root = dom(tab)
    tab.close()
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


def test_screenshots(recorded: Recorded, browser: Chromium):
    tab = open_page(browser, recorded.page)
    shot = screenshot(tab, "html_view.png")
    tab.close()
    reply = next(r for r in recorded.transcript.http() if r["path"].endswith("peer_var"))
    tab = open_page(browser, recorded.page, f"#select={reply['seq']}")
    screenshot(tab, "html_view_details.png")
    tab.close()
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
    # every </script> closes one of the page's own elements: the index, one compressed chunk of
    # records, one of search text, and the code
    assert lowered.count("<script") == lowered.count("</script>") == 4
    for needle in ("http://", "https://", "<link", "<script src", "@import", "url("):
        assert needle not in lowered, needle
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html  # header, escaped


def test_hostile_strings_stay_text_in_the_browser(tmp_path: Path, browser: Chromium):
    transcript = xss_transcript(tmp_path)
    page = tmp_path / "xss.html"
    page.write_text(render_html(transcript), encoding="utf-8")
    root = dump_dom(browser, page, "#select=2")
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

    root = dump_dom(browser, page, "#select=10")
    panel = root.by_id("details")
    assert panel is not None and XSS in panel.text()  # the b64 body, decoded as text
    tab = open_page(browser, page, "#select=7")
    screenshot(tab, "html_view_synthetic.png")
    tab.close()


def test_console_capture_sees_page_errors(tmp_path: Path, browser: Chromium):
    """The 'no console output' checks above would notice a broken page."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><body><script>console.error('x'); nope();</script>")
    tab = browser.open(page.as_uri())
    lines = tab.console()
    tab.close()
    assert any("ReferenceError" in line for line in lines), lines
    assert any(line == "console.error: x" for line in lines), lines


def test_page_without_javascript_shows_a_notice(tmp_path: Path):
    """With JavaScript off the header is there, with a notice instead of empty controls."""
    page = tmp_path / "t.html"
    page.write_text(render_html(xss_transcript(tmp_path)), encoding="utf-8")
    with Chromium(timeout=TIMEOUT, javascript=False) as b:
        tab = b.open(page.as_uri())
        text = tab.evaluate("document.body.innerText")
        toolbar = tab.evaluate("getComputedStyle(document.getElementById('toolbar')).display")
        screenshot(tab, "html_view_no_js.png")
    assert "with JavaScript, which is off" in text
    assert "supervisor-sim show TRANSCRIPT" in text
    assert "VIOLATION" not in text and toolbar == "none"
    assert "unknown (no footer)" in text.lower()  # the header, rendered without a script


def test_runtime_lane_shows_the_recorded_command(tmp_path: Path, browser: Chromium):
    """The runtime lane is labelled with the header's runtime argv, shortened, whole in its
    tooltip."""
    transcript = xss_transcript(tmp_path)
    argv = ["/opt/venv/bin/python3", "/srv/runtimes/reference/runtime.py", "--log", "ci"]
    transcript.header["runtime"] = argv
    page = tmp_path / "t.html"
    page.write_text(render_html(transcript), encoding="utf-8")
    root = dump_dom(browser, page)
    lane = next(n for n in root.iter() if "lane-rt" in n.classes())
    assert lane.attrs["title"] == " ".join(argv)
    label = root.by_id("runtime-label")
    assert label is not None and label.text() == "python3 reference/runtime.py --log ci"

    assert runtime_label(["runtimes/go/bin/runtime"]) == "runtime"
    assert runtime_label([]) == ""
    long = runtime_label(["/usr/bin/java", "-Xmx2g", "-jar", "/a/b/runtime.jar", "x" * 80])
    assert long.startswith("java -Xmx2g -jar b/runtime.jar x") and long.endswith("…")
    assert len(long) <= 40
    assert runtime_label(["python", "my runtime.py"]) == "python 'my runtime.py'"


def test_search_finds_counts_and_steps_through_hits(recorded: Recorded, browser: Chromium):
    """Typing in the search box finds the records whose type, body or log text holds the text
    (case-insensitively), says how many, shows the first and steps through them with Enter,
    Shift+Enter, n and N."""
    t = recorded.transcript
    request = next(r for r in t.frames("in") if r["type"] == "GetConnection")
    call = next(r for r in t.http() if r["path"] == "/execution/connections/peer_conn")
    reply = next(r for r in t.frames("out") if r.get("type") == "ConnectionResult")
    tab = open_page(browser, recorded.page)
    tab.key("/")  # focuses the search box
    assert tab.evaluate("document.activeElement.id") == "search"
    tab.type_text("PEER_CONN")
    tab.wait_for("document.getElementById('search-count').textContent === '1 of 3 hits'")
    hits = tab.evaluate(
        "[].map.call(document.querySelectorAll('.row.hit-current, .row.hit'),"
        "function(n){return n.querySelector('[data-seq]').dataset.seq})"
    )
    assert sorted(set(map(int, hits))) == sorted([request["seq"], call["seq"], reply["seq"]])
    current = ".row.hit-current [data-seq]"
    assert tab.evaluate(f"document.querySelector('{current}').dataset.seq") == str(request["seq"])
    assert in_view(tab, ".row.hit-current")
    tab.key("Enter")
    tab.wait_for(f"document.querySelector('{current}').dataset.seq === '{call['seq']}'")
    assert tab.evaluate("document.getElementById('search-count').textContent") == "2 of 3 hits"
    tab.key("Enter", modifiers=8)  # Shift+Enter: back
    tab.wait_for(f"document.querySelector('{current}').dataset.seq === '{request['seq']}'")
    tab.key("Escape")  # clears the search box
    tab.wait_for("document.getElementById('search-count').textContent === ''")
    assert tab.evaluate("document.querySelectorAll('.row.hit, .row.hit-current').length") == 0
    # a log line's text, from outside the box with n
    tab.evaluate("document.getElementById('search').value = 'read connection'")
    tab.evaluate("document.getElementById('search').dispatchEvent(new Event('input'))")
    tab.wait_for("document.getElementById('search-count').textContent === '1 of 1 hit'")
    assert (
        tab.evaluate("document.querySelector('.row.hit-current .log').textContent").find(
            "Read connection"
        )
        >= 0
    )
    tab.evaluate("document.getElementById('search').value = 'no such text anywhere'")
    tab.evaluate("document.getElementById('search').dispatchEvent(new Event('input'))")
    tab.wait_for("document.getElementById('search-count').textContent === 'no hits'")
    tab.close()


def test_filters_by_channel_type_and_level(tmp_path: Path, browser: Chromium):
    """The channel boxes, the type list and the level list hide what they exclude; a type keeps
    the other half of its exchanges and the HTTP calls its requests caused."""
    records = [
        _frame(1, 0.01, "in", 0, "GetVariable", {"type": "GetVariable", "key": "a"}),
        _http(2, 0.02, "GET", "/execution/variables/a", 200, 1),
        _frame(3, 0.03, "out", 0, "VariableResult", {"key": "a", "value": "1"}),
        _frame(4, 0.04, "in", 1, "GetConnection", {"type": "GetConnection", "conn_id": "c"}),
        _http(5, 0.05, "GET", "/execution/connections/c", 200, 4),
        _frame(6, 0.06, "out", 1, "ConnectionResult", {"conn_id": "c"}),
        {"record": "log", "seq": 7, "t": 0.07, "source": "logs",
         "line": {"level": "info", "event": "an info line"}},
        {"record": "log", "seq": 8, "t": 0.08, "source": "stderr",
         "line": {"level": "error", "event": "an error line"}},
        _http(9, 0.09, "PUT", "/execution/task-instances/0000/heartbeat", 204, "heartbeat"),
    ]  # fmt: skip
    page = tmp_path / "f.html"
    page.write_text(render_html(Transcript(tmp_path / "f.jsonl", _header(), records)))
    tab = open_page(browser, page)

    def seqs() -> list[int]:  # the seq of every drawn record, from its time column
        return sorted({round(float(x) * 100) for x in tab.evaluate(
            "[].map.call(document.querySelectorAll('#win .row > .t'), function(n){"
            "return n.textContent})") if x})  # fmt: skip

    assert seqs() == list(range(1, 10))
    tab.click("#ch-api")
    assert seqs() == [1, 3, 4, 6, 7, 8]
    tab.click("#ch-api")
    tab.click("#show-heartbeats")
    assert seqs() == list(range(1, 9))
    tab.click("#show-heartbeats")
    tab.click("#ch-stderr")
    assert seqs() == [1, 2, 3, 4, 5, 6, 7, 9]
    tab.click("#ch-stderr")
    tab.evaluate(
        "var s = document.getElementById('filter-type');"
        "s.value = [].filter.call(s.options, function(o){"
        "return o.textContent.indexOf('GetVariable') === 0})[0].value;"
        "s.dispatchEvent(new Event('change'))"
    )
    assert seqs() == [1, 2, 3]
    assert "3 of 9 records shown" in tab.evaluate(
        "document.getElementById('shown-count').textContent"
    )
    tab.evaluate(
        "var s = document.getElementById('filter-type'); s.value = '';"
        "s.dispatchEvent(new Event('change'));"
        "var l = document.getElementById('filter-level'); l.value = '4';"
        "l.dispatchEvent(new Event('change'))"
    )
    assert seqs() == [1, 2, 3, 4, 5, 6, 8, 9]  # the info line is hidden, frames stay
    screenshot(tab, "html_view_filtered.png")
    tab.close()


def test_jumps_to_next_error_and_violation(tmp_path: Path, browser: Chromium):
    """e / E and v / V (and the toolbar's buttons) select the next and previous error or
    violation and bring it into view; the counts are in the toolbar."""
    transcript = xss_transcript(tmp_path)
    page = tmp_path / "x.html"
    page.write_text(render_html(transcript), encoding="utf-8")
    tab = open_page(browser, page)
    assert tab.evaluate("document.getElementById('violation-nav').textContent") == "1 violation"
    # errors: the 404, the ErrorResponse, the violation, the error slot, the error log line,
    # the warning note (not an error), the 500 heartbeat, the transport error
    errors = [3, 4, 6, 7, 8, 10, 11]
    assert tab.evaluate("document.getElementById('error-count').textContent") == (
        f"{len(errors)} errors"
    )
    selected = "document.getElementById('details').getAttribute('data-selected-seq')"
    seen = []
    for _ in errors:
        tab.key("e")
        tab.wait_for(f"{_selected_seq()} !== {json.dumps(str(seen[-1]) if seen else None)}")
        seen.append(int(tab.evaluate(_selected_seq())))
    assert seen == errors
    tab.key("E")
    tab.wait_for(f"{_selected_seq()} === '10'")
    tab.key("v")
    tab.wait_for(f"{_selected_seq()} === '6'")
    assert in_view(tab, ".r-violation.selected")
    tab.key("Enter")  # opens the details of what is selected
    tab.wait_for(f"{selected} === '6'")
    tab.key("Escape")
    tab.wait_for("document.getElementById('details').hidden")
    tab.click("#next-error")
    tab.wait_for(f"{_selected_seq()} === '3'")
    tab.close()


def _selected_seq() -> str:
    """JavaScript: the seq of the selected record (an arrow, a note, a log line, a violation)."""
    return (
        "(function(){var n=document.querySelector('#win .selected');if(!n)return null;"
        "var a=n.closest('[data-seq]')||n.querySelector('[data-seq]');if(a)return a.dataset.seq;"
        "var r=n.closest('.row');var t=r.querySelector('.t, .vt');"
        "return t?String(Math.round(parseFloat(t.textContent)*100)):null;})()"
    )


def test_write_html_creates_the_page_0600(tmp_path: Path):
    """The page holds what the transcript holds: it gets the transcript's mode, 0600, redacted
    or not, and an existing page written over is set to it too."""
    for redacted in (True, False):
        transcript = xss_transcript(tmp_path)
        transcript.header["redacted"] = redacted
        out = tmp_path / f"page-{redacted}.html"
        assert write_html(transcript, out) == out
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert out.read_text(encoding="utf-8") == render_html(transcript)
    old = tmp_path / "old.html"
    old.write_text("x")
    os.chmod(old, 0o644)
    write_html(xss_transcript(tmp_path), old)
    assert stat.S_IMODE(old.stat().st_mode) == 0o600


def _scroll_through(tab: Page) -> list[list[str]]:
    """Scroll the diagram from top to bottom a screen at a time, as a reader would; every arrow
    that was inside the visible area at some point: [kind, seq, type]."""
    return tab.evaluate(
        """(async function () {
          var d = document.getElementById('diagram'), lanes = document.getElementById('lanes');
          var seen = {}, out = [];
          function frame() {
            return new Promise(function (r) { requestAnimationFrame(function () {
              requestAnimationFrame(r); }); });
          }
          for (var guard = 0; guard < 100000; guard++) {
            await frame();
            var box = d.getBoundingClientRect(), top = box.top + lanes.offsetHeight;
            document.querySelectorAll('#win [data-kind]').forEach(function (a) {
              var r = a.getBoundingClientRect();
              if (r.top < top - 1 || r.bottom > box.bottom + 1) return;
              var key = a.dataset.kind + ' ' + a.dataset.seq;
              if (!seen[key]) { seen[key] = 1; out.push([a.dataset.kind, a.dataset.seq,
                a.dataset.type]); }
            });
            if (d.scrollTop + d.clientHeight >= d.scrollHeight - 1) break;
            d.scrollTop += d.clientHeight - lanes.offsetHeight - 40;
          }
          return out;
        })()""",
        timeout=300,
    )


def _ten_thousand(tmp: Path) -> tuple[list[dict[str, Any]], Path]:
    """2,000 exchanges (request, HTTP call, reply, two log lines), rendered to a page."""
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
    transcript = Transcript(tmp / "big.jsonl", _header(), records,
                            footer={"final_state": "success", "exit_code": 0})  # fmt: skip
    page = tmp / "big.html"
    page.write_text(render_html(transcript), encoding="utf-8")
    return records, page


@pytest.mark.slow
def test_ten_thousand_records(tmp_path: Path, browser: Chromium):
    """Every frame and HTTP call of a 10,000-record transcript is an arrow that scrolls into
    view; only the rows near the view are in the document at any time."""
    records, page = _ten_thousand(tmp_path)
    tab = open_page(browser, page)
    assert tab.evaluate("document.body.dataset.records") == "10000"
    assert tab.evaluate("document.querySelectorAll('#win .row').length") < 300
    tab.resize(1400, 4000)  # fewer, longer screens
    tab.wait_for("document.body.dataset.recordsLoaded === 'all'")
    found = _scroll_through(tab)
    tab.close()
    assert Counter(kind for kind, _, _ in found) == {
        "request": 2000, "reply": 2000, "http-request": 2000, "http-response": 2000,
    }  # fmt: skip
    by_seq: dict[int, list[str]] = {}
    for kind, s, typ in found:
        by_seq.setdefault(int(s), []).append(kind)
        assert typ in ("GetVariable", "VariableResult") or typ.startswith("GET /execution/")
    for r in records:
        if r["record"] == "frame":
            assert by_seq[r["seq"]] == ["request" if r["dir"] == "in" else "reply"]
        elif r["record"] == "http":
            assert by_seq[r["seq"]] == ["http-request", "http-response"]


@pytest.mark.slow
def test_a_diagram_taller_than_a_browser_allows_still_scrolls_to_every_row(
    tmp_path: Path, browser: Chromium
):
    """Past the height a browser lets an element have (the page's MAX_H, 15 million pixels,
    lowered here to 100,000), the scrollbar spans the rows proportionally: its end shows the
    last rows, a jump shows its target, and the wheel still moves the rows by what it turns."""
    _, page = _ten_thousand(tmp_path)
    html = page.read_text(encoding="utf-8")
    assert html.count("var MAX_H = 15e6;") == 1
    page.write_text(html.replace("var MAX_H = 15e6;", "var MAX_H = 1e5;"), encoding="utf-8")
    tab = open_page(browser, page)
    tab.wait_for("document.body.dataset.searchReady === 'yes'")
    assert tab.evaluate("document.getElementById('rows').offsetHeight") <= 100_040
    tab.evaluate("var d = document.getElementById('diagram'); d.scrollTop = d.scrollHeight; 1")
    tab.wait_for("document.querySelector('#win [data-seq=\"9998\"]') !== null")
    assert in_view(tab, '#win [data-seq="9998"][data-kind="reply"]')  # the last reply
    tab.key("/")
    tab.type_text("k1234")
    tab.wait_for("document.getElementById('search-count').textContent === '1 of 3 hits'")
    assert in_view(tab, ".row.hit-current")
    top = "document.querySelector('.row.hit-current').getBoundingClientRect().top"
    before = tab.evaluate(top)
    tab.send("Input.dispatchMouseEvent",
             {"type": "mouseWheel", "x": 500, "y": 600, "deltaX": 0, "deltaY": 120})  # fmt: skip
    tab.wait_for(f"{top} < {before - 60}")
    assert abs(before - 120 - tab.evaluate(top)) < 10
    tab.close()


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


def test_a_runtime_exception_is_shown_as_its_traceback(tmp_path: Path, browser: Chromium):
    """A log line's ``error_detail`` (structlog's dict traceback, as Airflow's task runner sends
    it) shows its exception line in the row and the traceback Python would print in the details,
    the same lines ``show`` prints."""
    detail = [
        {"exc_type": "KeyError", "exc_value": "'missing'", "is_cause": False, "exc_notes": [],
         "syntax_error": None, "is_group": False, "exceptions": [],
         "frames": [{"filename": "/dags/task.py", "lineno": 12, "name": "run"}]},
    ]  # fmt: skip
    records = [
        {"record": "log", "seq": 1, "t": 0.01, "source": "logs",
         "line": {"level": "error", "event": "Task failed with exception", "error_detail": detail}},
    ]  # fmt: skip
    transcript = Transcript(tmp_path / "t.jsonl", _header(), records, footer=None)
    page = tmp_path / "t.html"
    page.write_text(render_html(transcript), encoding="utf-8")
    root = dump_dom(browser, page, "#select=1")
    row = " ".join(n.text() for n in root.iter() if "log" in n.classes())
    assert "KeyError: 'missing'" in row
    assert "error_detail=" not in row  # the raw list is not dumped into the row
    panel = root.by_id("details")
    assert panel is not None and "hidden" not in panel.attrs
    text = panel.text()
    assert "Traceback (most recent call last):" in text
    assert 'File "/dags/task.py", line 12, in run' in text
    assert "KeyError: 'missing'" in text
