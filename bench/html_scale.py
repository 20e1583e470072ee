"""How long the HTML view takes to open a large transcript, in headless Chromium.

For each size N: bench/html_transcripts.py writes a transcript of N frames (a task making N/2
requests, each with its HTTP call and reply, logs, heartbeats, one violation), ``read_transcript``
reads it and ``write_html`` renders it (both timed), then the page is opened ``--runs`` times in
one headless Chromium (bench/html_chromium.py), each time in a new tab, and the page's own clock
(``performance.now()``, from the start of the navigation) says when

- ``load_ms``: the first rows were drawn (the page is usable: it scrolls, selects, filters);
- ``records_ms``: every record was inflated (details of any record show at once);
- ``search_ready_ms``: the search text was inflated;

and ``search_ms`` is one search for a frame deep inside (Enter in the search box to the hit
count showing). The goal is ``load_ms`` under 2,000 ms at 100,000 frames (docs/transcript.md).

    html_scale.py [--sizes 10000,100000] [--runs 3] [--tmp DIR]   prints one JSON object

Run by ``bench/run.py`` (``--only html``). Without Chromium it prints ``{"skipped": why}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from html_chromium import CHROMIUM, Chromium  # noqa: E402
from html_transcripts import write_transcript  # noqa: E402

from supervisor_sim.transcript import read_transcript, write_html  # noqa: E402

SEARCH = """(function (needle) {
  return new Promise(function (resolve) {
    var box = document.getElementById('search'), count = document.getElementById('search-count');
    var t0 = performance.now();
    var seen = new MutationObserver(function () {
      if (/ of |no hits/.test(count.textContent)) {
        seen.disconnect();
        resolve([performance.now() - t0, count.textContent]);
      }
    });
    seen.observe(count, {childList: true, characterData: true, subtree: true});
    box.value = needle;
    box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));
  });
})"""


def measure(frames: int, runs: int, tmp: Path) -> dict[str, Any]:
    """Write, read, render and open a transcript of ``frames`` frames ``runs`` times."""
    path = tmp / f"html-{frames}.jsonl"
    started = time.perf_counter()
    info = write_transcript(path, frames)
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    transcript = read_transcript(path)
    read_s = time.perf_counter() - started
    page = tmp / f"html-{frames}.html"
    started = time.perf_counter()
    write_html(transcript, page)
    render_s = time.perf_counter() - started
    del transcript
    samples = []
    with Chromium(timeout=300) as browser:
        for _ in range(runs):
            tab = browser.open(page.as_uri())
            tab.wait_for("document.body.dataset.searchReady === 'yes'", timeout=300)
            body = tab.evaluate("Object.assign({}, document.body.dataset)")
            search_ms, count = tab.evaluate(f"{SEARCH}({json.dumps(info['needle']['key'])})")
            samples.append(
                {
                    "load_ms": float(body["loadMs"]),
                    "records_ms": float(body["recordsLoadedMs"]),
                    "search_ready_ms": float(body["searchReadyMs"]),
                    "search_ms": round(search_ms, 1),
                    "search_hits": count,
                    "rows_in_dom": tab.evaluate("document.querySelectorAll('#win .row').length"),
                }
            )
            tab.close()
    out: dict[str, Any] = {
        "frames": info["frames"],
        "records": info["records"],
        "transcript_mb": round(info["bytes"] / 1e6, 2),
        "page_mb": round(page.stat().st_size / 1e6, 2),
        "write_s": round(write_s, 2),
        "read_s": round(read_s, 2),
        "render_s": round(render_s, 2),
        "runs": samples,
    }
    for key in ("load_ms", "records_ms", "search_ready_ms", "search_ms"):
        out[key] = statistics.median(s[key] for s in samples)
    page.unlink()
    path.unlink()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="frames per transcript")
    parser.add_argument("--runs", type=int, default=3, help="page loads per size (median)")
    parser.add_argument("--tmp", type=Path, help="scratch directory (default: a new one)")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(json.dumps({"skipped": f"{CHROMIUM} is missing (apt-get install -y chromium)"}))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="supsim-html-", dir=args.tmp) as scratch:
        result = {"sizes": [measure(n, args.runs, Path(scratch)) for n in sizes]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
