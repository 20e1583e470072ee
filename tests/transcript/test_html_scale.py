"""A 100,000-frame transcript in the HTML view, in headless Chromium, used as a person would.

The transcript is written straight through ``TranscriptWriter`` (bench/html_transcripts.py: a
task making 50,000 requests of the usual kinds, with their HTTP calls, log lines, heartbeats and
one violation), read back, rendered with ``write_html`` and opened; then one specific frame deep
inside is searched for, found and shown, its details opened, the view filtered, and the
violation jumped to. Screenshots of the top, the search and the filtered view go to
tests/artifacts/. How long the page takes to open is measured by bench/html_scale.py, never
asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_html_view import TIMEOUT, Chromium, Page, in_view, open_page, screenshot

from supervisor_sim.transcript import read_transcript, write_html

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from html_transcripts import NEEDLE_KEY, write_transcript  # noqa: E402

pytestmark = pytest.mark.slow

FRAMES = 100_000


@dataclass
class Big:
    page: Path
    info: dict[str, Any]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Big:
    tmp = tmp_path_factory.mktemp("html_scale")
    info = write_transcript(tmp / "big.jsonl", FRAMES)
    assert info["frames"] >= FRAMES
    transcript = read_transcript(tmp / "big.jsonl")
    assert transcript.truncated is None and not transcript.problems
    assert len(transcript.frames()) == info["frames"]
    page = write_html(transcript, tmp / "big.html")
    return Big(page, info)


@pytest.fixture(scope="module")
def tab(big: Big) -> Iterator[Page]:
    with Chromium(timeout=TIMEOUT * 3) as browser:
        page = open_page(browser, big.page)
        yield page
        assert not page.console(), page.console()


def _text(tab: Page, ident: str) -> str:
    return str(tab.evaluate(f"document.getElementById({json.dumps(ident)}).textContent"))


def test_the_page_opens_with_a_few_rows_drawn(tab: Page, big: Big):
    """The page shows the top of the diagram with only the rows near the view in the document."""
    assert tab.evaluate("document.body.dataset.records") == str(big.info["records"])
    assert int(tab.evaluate("document.querySelectorAll('#win .row').length")) < 300
    assert tab.evaluate("document.querySelector('#win [data-type=\"StartupDetails\"]')") is not None
    assert _text(tab, "shown-count") == f"{big.info['records']:,} records"
    assert _text(tab, "violation-nav") == "1 violation"
    label = _text(tab, "runtime-label")
    assert label.startswith("python -m airflow_runtime.entrypoint"), label
    screenshot(tab, "html_scale_top.png")


def test_search_finds_and_shows_one_frame(tab: Page, big: Big):
    """Searching for a key only one exchange holds finds its three records (the request, its
    HTTP call, the reply), and the request, 3/4 down the transcript, is drawn in view."""
    needle = big.info["needle"]
    tab.wait_for("document.body.dataset.searchReady === 'yes'", timeout=TIMEOUT)
    tab.key("/")
    tab.type_text(NEEDLE_KEY)
    tab.wait_for("document.getElementById('search-count').textContent === '1 of 3 hits'")
    current = tab.evaluate(
        "(function(){var a=document.querySelector('.row.hit-current [data-kind]');"
        "return a && [a.dataset.kind, a.dataset.type, a.dataset.seq, a.textContent];})()"
    )
    assert current is not None, "no current hit drawn"
    kind, typ, seq, text = current
    assert (kind, typ, int(seq)) == ("request", "GetVariable", needle["seq"])
    assert NEEDLE_KEY in text and f"#{needle['id']}" in text
    assert in_view(tab, ".row.hit-current")
    screenshot(tab, "html_scale_search.png")

    tab.key("Enter")  # the next hit: its HTTP call
    tab.wait_for("document.getElementById('search-count').textContent === '2 of 3 hits'")
    call = tab.evaluate("document.querySelector('.row.hit-current [data-kind]').dataset.type")
    assert call == f"GET /execution/variables/{NEEDLE_KEY}"
    assert in_view(tab, ".row.hit-current")
    tab.key("Enter", modifiers=8)  # Shift+Enter: back to the request, whose details open
    tab.wait_for("document.getElementById('search-count').textContent === '1 of 3 hits'")
    tab.click(".row.hit-current .label")
    tab.wait_for(f"document.getElementById('details').dataset.selectedSeq === '{needle['seq']}'")
    details = _text(tab, "details-body")
    assert f'"key": "{NEEDLE_KEY}"' in details  # the full body
    assert "VariableResult" in details and f"GET /execution/variables/{NEEDLE_KEY}" in details


def test_filters_and_jumps_at_scale(tab: Page, big: Big):
    """A type filter keeps that type's exchanges (and the search hits in them); the violation is
    one key press away from anywhere."""
    tab.evaluate(
        "var s = document.getElementById('filter-type');"
        "s.value = [].filter.call(s.options, function(o){"
        "return o.textContent.indexOf('GetVariable') === 0})[0].value;"
        "s.dispatchEvent(new Event('change'))"
    )
    shown = _text(tab, "shown-count")
    assert shown.endswith(f"of {big.info['records']:,} records shown"), shown
    kinds = tab.evaluate(
        "[].map.call(document.querySelectorAll('#win [data-kind]'), function(a){"
        "return a.dataset.type.split(' ')[0]})"
    )
    assert set(kinds) <= {"GetVariable", "VariableResult", "ErrorResponse", "GET"}, set(kinds)
    assert in_view(tab, ".row.hit-current, .arrow.selected")  # the selection stayed in view
    screenshot(tab, "html_scale_filtered.png")
    tab.evaluate(
        "var s = document.getElementById('filter-type'); s.value = '';"
        "s.dispatchEvent(new Event('change'))"
    )
    tab.key("Escape")  # close the details
    tab.evaluate("document.getElementById('diagram').focus()")
    tab.key("v")
    tab.wait_for("document.querySelector('#win .r-violation.selected') !== null")
    assert in_view(tab, ".r-violation.selected")
    assert "unknown-message-type" in tab.evaluate(
        "document.querySelector('#win .r-violation.selected').textContent"
    )
    tab.key("e")  # the next error after the violation
    tab.wait_for("document.querySelector('#win .r-violation.selected') === null")
    assert in_view(tab, "#win .selected")


def test_the_benchmark_measures_a_page(tmp_path: Path):
    """bench/html_scale.py (what bench/run.py --only html runs) opens a page and reports its
    times."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "html_scale.py"), "--sizes", "300", "--runs", "1",
         "--tmp", str(tmp_path)],
        capture_output=True, text=True, timeout=TIMEOUT * 3, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (size,) = json.loads(proc.stdout.splitlines()[-1])["sizes"]
    assert size["frames"] >= 300 and size["runs"][0]["search_hits"] == "1 of 3 hits"
    for key in ("load_ms", "records_ms", "search_ready_ms", "search_ms", "render_s"):
        assert isinstance(size[key], int | float) and size[key] > 0, (key, size)
