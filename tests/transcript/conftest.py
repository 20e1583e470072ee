"""The headless Chromium the HTML view's tests share (one per test module)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from html_chromium import CHROMIUM, Chromium

TIMEOUT = 60


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the HTML view is tested in headless Chromium. "
            "Install it with `apt-get install -y chromium` (.ci/run does)."
        )
    with Chromium(timeout=TIMEOUT) as b:
        yield b
