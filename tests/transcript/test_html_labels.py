"""The HTML view's labels read as text and stay clear of the bars; a traceback is never cut.

Checked in headless Chromium on the page as drawn (bench/html_chromium.py, as
test_html_view.py does): the text of every label, tooltip and log line, measured with DOM
ranges, so that two pieces of text joined with no separator ("peer_varattempt 2"), a label drawn
over an activation bar or another lane's box, and a traceback line running past its box's edge
are caught where a user would see them, at several window widths. Screenshots go to
tests/artifacts/.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from supervisor_sim.protocol import render_traceback
from supervisor_sim.transcript._html import render_html
from supervisor_sim.transcript._reader import Transcript, read_transcript

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
# open_page is test_html_view's (as test_html_scale uses it); the browser fixture is conftest's.
from test_html_view import TIMEOUT, Chromium, Page, open_page  # noqa: E402

ARTIFACTS = REPO / "tests" / "artifacts"
WIDTHS = [(1400, 1000), (1000, 900), (860, 800)]


def resize(tab: Page, width: int, height: int) -> None:
    """Another window size, once the page redrew for it (two animation frames)."""
    tab.resize(width, height)
    tab.evaluate(
        "window.dispatchEvent(new Event('resize'));"
        "new Promise(function(r){requestAnimationFrame(function(){"
        "requestAnimationFrame(function(){r(true);});});})"
    )


def shoot(tab: Page, name: str) -> None:
    out = ARTIFACTS / name
    out.unlink(missing_ok=True)
    tab.screenshot(out)
    assert out.read_bytes().startswith(b"\x89PNG"), "no screenshot"


# --- what the tests measure in the page ------------------------------------------------------

# Every text node drawn in a row's diagram column (arrow labels, notes, the gap's pause), as the
# rectangle a user sees (the part an ``overflow: hidden`` ancestor clips away is not seen), and
# every activation bar; returned with what overlaps.
OVERLAPS = """(function () {
  function clipOf(node, rect) {
    for (var e = node.parentElement; e && !e.classList.contains('row'); e = e.parentElement) {
      if (getComputedStyle(e).overflowX !== 'visible') {
        var c = e.getBoundingClientRect();
        rect = {left: Math.max(rect.left, c.left), right: Math.min(rect.right, c.right),
                top: Math.max(rect.top, c.top), bottom: Math.min(rect.bottom, c.bottom)};
      }
    }
    return rect;
  }
  function meets(a, b) {
    return Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 &&
      Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
  }
  var out = [], texts = 0, bars = 0;
  document.querySelectorAll('#win .row > .d').forEach(function (d) {
    var acts = [].map.call(d.querySelectorAll('.act'), function (a) {
      return a.getBoundingClientRect();
    });
    bars += acts.length;
    var walk = document.createTreeWalker(d, NodeFilter.SHOW_TEXT), node;
    while ((node = walk.nextNode())) {
      if (!node.nodeValue.trim()) continue;
      var range = document.createRange();
      range.selectNodeContents(node);
      [].forEach.call(range.getClientRects(), function (r) {
        var seen = clipOf(node, r);
        if (seen.right - seen.left <= 0.5) return;
        texts += 1;
        acts.forEach(function (a) {
          if (meets(seen, a)) out.push(JSON.stringify(node.nodeValue) + ' over an activation bar');
        });
      });
    }
  });
  return {overlaps: out, texts: texts, bars: bars};
})()"""

# Two pieces of text of a label (an arrow's, a log line's, a note's, a violation's, a lane's)
# with nothing between them: an element whose text follows other text without a space. The one
# join allowed is a query after its path (".q").
JOINED = """(function () {
  var out = [];
  document.querySelectorAll('#win .label, #win .log, #win .note, #win .vhead, #win .vairflow, ' +
      '.lane').forEach(function (box) {
    var before = '';
    box.childNodes.forEach(function (n) {
      var text = n.textContent;
      if (n.nodeType === 1 && !n.classList.contains('q') && before && text &&
          !/\\s$/.test(before) && !/^\\s/.test(text)) {
        out.push(JSON.stringify(before.slice(-20)) + ' + ' + JSON.stringify(text.slice(0, 20)) +
          ' in ' + box.className);
      }
      if (text) before = text;
    });
  });
  return out;
})()"""

# The lane boxes: inside the diagram's column (not over the time column or the logs' title) and
# apart from one another.
LANES = """(function () {
  var col = document.querySelector('#lanes .d').getBoundingClientRect();
  var boxes = [].map.call(document.querySelectorAll('#lanes .lane'), function (n) {
    var r = n.getBoundingClientRect();
    return {name: n.querySelector('b').textContent, left: r.left, right: r.right};
  });
  var out = [];
  boxes.forEach(function (b, k) {
    if (b.left < col.left - 0.5 || b.right > col.right + 0.5) {
      out.push(b.name + ' [' + b.left + ', ' + b.right + '] outside [' + col.left + ', ' +
        col.right + ']');
    }
    boxes.slice(k + 1).forEach(function (c) {
      if (Math.min(b.right, c.right) - Math.max(b.left, c.left) > 0.5) {
        out.push(b.name + ' overlaps ' + c.name);
      }
    });
  });
  return out;
})()"""


def check_labels(tab: Page, where: str) -> dict[str, Any]:
    """Assert that no label text is joined to the next or drawn over a bar or another lane."""
    joined = tab.evaluate(JOINED)
    assert not joined, f"{where}: text joined with no separator: {joined}"
    lanes = tab.evaluate(LANES)
    assert not lanes, f"{where}: lane boxes: {lanes}"
    found = tab.evaluate(OVERLAPS)
    assert not found["overlaps"], f"{where}: {found['overlaps']}"
    assert found["texts"] > 0
    return dict(found)


def arrow_texts(tab: Page, kind: str) -> list[str]:
    return list(
        tab.evaluate(
            f"[].map.call(document.querySelectorAll('#win .arrow[data-kind={kind}] .label'),"
            "function(n){return n.textContent;})"
        )
    )


# --- transcripts ---------------------------------------------------------------------------------


def _header(**kw: Any) -> dict[str, Any]:
    return {
        "record": "header", "format": "supervisor-sim-transcript", "version": 1,
        "tool_version": "0.1.0", "created": "2026-01-01T00:00:00Z", "redacted": True,
        "command": ["supervisor-sim"], "runtime": ["runtime", "--flag"], "api": "stub",
        "task": {"ti": {"id": "0000"}, "dag_id": "dag", "task_id": "task", "run_id": "r",
                 "try_number": 1, "map_index": -1},
        **kw,
    }  # fmt: skip


def _frame(seq: int, t: float, direction: str, fid: int, typ: str | None, body: Any):
    return {"record": "frame", "seq": seq, "t": t, "dir": direction, "id": fid, "type": typ,
            "body": body, "raw": "kwDAwA==", "len": 4}  # fmt: skip


def _http(seq: int, t: float, path: str, status: int, cause: Any, **kw: Any) -> dict[str, Any]:
    return {"record": "http", "seq": seq, "t": t, "method": "GET", "path": path, "query": "",
            "status": status, "error": None, "attempt": 1, "duration_s": 0.001, "cause": cause,
            "request": {"headers": {}}, "response": {"headers": {}, "json": {"x": 1}},
            **kw}  # fmt: skip


def retried_transcript(tmp: Path, **header: Any) -> Transcript:
    """A GetVariable whose HTTP call failed twice and was retried after pauses of over a
    second (inside the request's exchange, so its activation bar runs through the pauses), a
    supervisor note in the exchange, an XCom read with a query, log lines, a violation."""
    path = "/execution/variables/peer_var"
    records = [
        _frame(1, 0.01, "in", 0, "GetVariable", {"type": "GetVariable", "key": "peer_var"}),
        {"record": "note", "seq": 2, "t": 0.011, "level": "warning",
         "message": "injected status 503 GET " + path + " (GetVariable:503@1+, call 1)"},
        _http(3, 0.012, path, 503, 1),
        _http(4, 1.2, path, 503, 1, attempt=2),
        _http(5, 3.5, path, 200, 1, attempt=3),
        _frame(6, 3.51, "out", 0, "VariableResult", {"key": "peer_var", "value": "v"}),
        _frame(7, 3.6, "in", 1, "GetXCom", {"type": "GetXCom", "key": "k"}),
        _http(8, 3.61, "/execution/xcoms/dag/r/task/k", 200, 7, query="map_index=-1"),
        _frame(9, 3.62, "out", 1, "XComResult", {"key": "k", "value": 1}),
        {"record": "log", "seq": 10, "t": 3.7, "source": "logs",
         "line": {"level": "info", "logger": "task.runner", "event": "Hello", "answer": 42}},
        {"record": "log", "seq": 11, "t": 3.71, "source": "stderr",
         "line": {"level": "error", "event": "Task failed with exception",
                  "error_detail": [{"exc_type": "KeyError", "exc_value": "'missing'",
                                    "frames": []}]}},
        {"record": "violation", "seq": 12, "t": 3.72, "rule": "log-missing-level",
         "message": "log record has no 'level' key", "airflow": "Airflow's supervisor crashes"},
        {"record": "process", "seq": 13, "t": 3.8, "event": "exit", "exit_code": 0},
    ]  # fmt: skip
    return Transcript(tmp / "retried.jsonl", _header(**header), records, footer=None)


# --- F15: labels ---------------------------------------------------------------------------------


def test_a_retried_calls_label_separates_its_path_from_its_attempt(
    tmp_path: Path, browser: Chromium
):
    """An HTTP call's label reads "attempt 2 GET /path", never "…/peer_varattempt 2"; a query
    continues its path ("…/k?map_index=-1"); the tooltip is the same text; and the attempt is
    still shown when a narrow window cuts the path short."""
    page = tmp_path / "retried.html"
    page.write_text(render_html(retried_transcript(tmp_path)), encoding="utf-8")
    tab = open_page(browser, page)
    texts = arrow_texts(tab, "http-request")
    assert texts == [
        "GET /execution/variables/peer_var",
        "attempt 2 GET /execution/variables/peer_var",
        "attempt 3 GET /execution/variables/peer_var",
        "GET /execution/xcoms/dag/{run_id}/task/k?map_index=-1",
    ]
    titles = tab.evaluate(
        "[].map.call(document.querySelectorAll('#win .arrow[data-kind=http-request]'),"
        "function(n){return n.title;})"
    )
    assert titles == texts
    resize(tab, 700, 800)
    seen = tab.evaluate(
        "[].map.call(document.querySelectorAll('#win .label .tag.attempt'), function(t){"
        "var r=t.getBoundingClientRect(), l=t.closest('.label').getBoundingClientRect();"
        "return r.width > 0 && r.left >= l.left && r.right <= l.right;})"
    )
    assert seen == [True, True]
    tab.close()


def test_no_label_is_joined_to_the_next_or_drawn_over_a_bar(tmp_path: Path, browser: Chromium):
    """At every window width, in every label drawn (arrows, notes, log lines, violations,
    lanes), one piece of text is separated from the next; no text is drawn over an activation
    bar (a pause's "1.19 s later" or a supervisor note inside an exchange); and the lane boxes
    stay apart and inside the diagram, even with a long runtime command and an API URL."""
    transcript = retried_transcript(
        tmp_path,
        runtime=["/opt/airflow/venv/bin/python", "-X", "dev",
                 "/opt/airflow/dags/bundles/analytics/reference_runtime_checkout/runtime.py"],
        api="http://airflow-api-server.internal.example.com:8080/execution/",
    )  # fmt: skip
    page = tmp_path / "labels.html"
    page.write_text(render_html(transcript), encoding="utf-8")
    tab = open_page(browser, page)
    gaps = tab.evaluate(
        "[].map.call(document.querySelectorAll('#win .r-gap'), function(g){"
        "return [g.textContent.trim(), !!g.querySelector('.act')];})"
    )
    assert gaps == [["⋯ 1.19 s later ⋯", True], ["⋯ 2.30 s later ⋯", True]]
    for width, height in WIDTHS:
        resize(tab, width, height)
        found = check_labels(tab, f"{width}x{height}")
        assert found["bars"] >= 6  # the pauses and the note are inside the exchange
    resize(tab, *WIDTHS[0])
    shoot(tab, "html_labels.png")
    log = tab.evaluate("document.querySelector('#win .log').title")
    assert log == "logs INFO task.runner Hello answer=42"
    error = tab.evaluate("document.querySelectorAll('#win .log')[1].textContent")
    assert error == "stderr ERROR Task failed with exception KeyError: 'missing'"
    violation = tab.evaluate("document.querySelector('#win .r-violation').title")
    assert violation == (
        "⚠ VIOLATION log-missing-level log record has no 'level' key\n"
        "Airflow: Airflow's supervisor crashes"
    )
    lane = tab.evaluate("document.querySelector('.lane-sup').textContent")
    assert lane == "supervisor-sim supervisor"
    header = tab.evaluate(
        "[document.querySelector('.title-row').textContent,"
        "document.querySelector('.facts').textContent]"
    )
    assert header[0].startswith("task dag.task unknown (no footer) ")
    assert "run r · try 1 task instance 0000 " in header[1]
    tab.close()


def test_a_recorded_retry_reads_cleanly(tmp_path: Path, browser: Chromium):
    """A real run whose variable read the stub failed once with a 500 (retried by the client a
    second later): its page has the "attempt 2" label and passes the label checks."""
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor_sim", "--config", str(REPO / "supervisor-sim.toml"),
         "run-task", "example_dag", "read_var_conn", "--state", str(tmp_path / "state.sqlite"),
         "--fault", "GetVariable:500@1", "--transcript", str(tmp_path / "t.jsonl"), "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, f"run-task failed ({proc.returncode}):\n{proc.stderr}"
    page = tmp_path / "t.html"
    page.write_text(render_html(read_transcript(tmp_path / "t.jsonl")), encoding="utf-8")
    tab = open_page(browser, page)
    assert "attempt 2 GET /execution/variables/peer_var" in arrow_texts(tab, "http-request")
    for width, height in WIDTHS:
        resize(tab, width, height)
        check_labels(tab, f"recorded, {width}x{height}")
    tab.close()


# --- F17: a traceback is read whole --------------------------------------------------------------

LONG_VALUE = (
    "could not load s3://analytics-warehouse-prod/exports/2026/12/04/"
    "daily_revenue_by_region_and_product_category.parquet (AccessDenied: the role "
    "arn:aws:iam::123456789012:role/airflow-worker is not allowed s3:GetObject)"
)
LONG_FILE = (
    "/home/someone/projects/airflow-deployments/production/dags-folder/bundles/analytics_team/"
    "a_package_with_a_long_name/transformations/revenue.py"
)


def test_a_traceback_wraps_every_long_line_and_copies_whole(tmp_path: Path, browser: Chromium):
    """The details' traceback box holds every character of its longest lines inside its edges
    (the lines wrap, nothing is cut or hidden past a scrollbar), in a narrow window too, and
    selecting the box copies the traceback as Python prints it, one line per line."""
    detail = [
        {"exc_type": "RuntimeError", "exc_value": LONG_VALUE, "is_cause": False, "exc_notes": [],
         "syntax_error": None, "is_group": False, "exceptions": [],
         "frames": [{"filename": LONG_FILE, "lineno": 1234, "name": "load_partition"}]},
        {"exc_type": "PermissionError", "exc_value": "[Errno 13] " + LONG_VALUE,
         "is_cause": True, "frames": [{"filename": LONG_FILE, "lineno": 99, "name": "open"}]},
    ]  # fmt: skip
    records = [
        {"record": "log", "seq": 1, "t": 0.01, "source": "logs",
         "line": {"level": "error", "event": "Task failed with exception", "error_detail": detail}},
    ]  # fmt: skip
    page = tmp_path / "tb.html"
    page.write_text(
        render_html(Transcript(tmp_path / "tb.jsonl", _header(), records, footer=None)),
        encoding="utf-8",
    )
    expected = "\n".join(render_traceback(detail))
    assert max(len(line) for line in expected.splitlines()) > 200
    tab = open_page(browser, page, "#select=1")
    tab.wait_for("document.querySelector('#details pre.traceback') !== null")
    measure = """(function () {
      var pre = document.querySelector('#details pre.traceback'), box = pre.getBoundingClientRect();
      var range = document.createRange(), outside = [];
      var walk = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT), node;
      while ((node = walk.nextNode())) {
        range.selectNodeContents(node);
        [].forEach.call(range.getClientRects(), function (r) {
          if (r.width && (r.left < box.left - 0.5 || r.right > box.right + 0.5)) {
            outside.push(node.nodeValue.slice(0, 40));
          }
        });
      }
      return {outside: outside, scroll: pre.scrollWidth - pre.clientWidth};
    })()"""
    for width, height in [*WIDTHS, (600, 800)]:
        resize(tab, width, height)
        seen = tab.evaluate(measure)
        assert seen["outside"] == [], f"{width}: text past the box's edge: {seen['outside']}"
        assert seen["scroll"] <= 0, f"{width}: {seen['scroll']} px hidden past the box's edge"
    copied = tab.evaluate(
        "(function(){var pre=document.querySelector('#details pre.traceback');"
        "var r=document.createRange();r.selectNodeContents(pre);var s=getSelection();"
        "s.removeAllRanges();s.addRange(r);var text=s.toString();s.removeAllRanges();"
        "return [text, pre.textContent, pre.innerText];})()"
    )
    assert copied == [expected, expected, expected]
    resize(tab, *WIDTHS[0])
    shoot(tab, "html_traceback.png")
    tab.close()


def test_the_pages_own_error_box_wraps(tmp_path: Path, browser: Chromium):
    """The box the page shows its own errors in wraps a long line instead of running it past
    the window's edge."""
    page = tmp_path / "e.html"
    page.write_text(
        render_html(Transcript(tmp_path / "e.jsonl", _header(), [], footer=None)),
        encoding="utf-8",
    )
    tab = open_page(browser, page)
    overflow = tab.evaluate(
        "(function(){var b=document.getElementById('js-errors');b.hidden=false;"
        "b.textContent='Cannot show this transcript: ' + 'x'.repeat(3000);"
        "return b.scrollWidth - b.clientWidth;})()"
    )
    assert overflow <= 0
    tab.close()
