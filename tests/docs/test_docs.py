"""Documentation that cannot rot: generated pages are current and every shown command runs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import CONFIG, ROOT

DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]


def _blocks(path: Path) -> list[list[str]]:
    """The supervisor-sim command lines of each ```sh block in a page."""
    blocks = re.findall(r"```sh\n(.*?)```", path.read_text(), re.S)
    out = []
    for block in blocks:
        lines = [ln.strip() for ln in block.splitlines()]
        lines = [ln for ln in lines if ln.startswith(("./supervisor-sim ", "supervisor-sim "))]
        if lines:
            out.append(lines)
    return out


EXAMPLES = [(p, i, b) for p in DOCS for i, b in enumerate(_blocks(p))]


def test_cli_reference_is_current():
    """docs/cli.md is what tools/gen_cli_doc.py generates from the command line now."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_cli_doc
    finally:
        sys.path.pop(0)
    assert (ROOT / "docs" / "cli.md").read_text() == gen_cli_doc.render(), (
        "docs/cli.md is stale: run `python tools/gen_cli_doc.py`"
    )


def test_every_docs_page_is_linked_from_the_index():
    """Each page in docs/ is reachable from docs/index.md."""
    index = (ROOT / "docs" / "index.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        if page.name != "index.md":
            assert f"({page.name})" in index, f"docs/index.md does not link {page.name}"


@pytest.mark.parametrize(
    ("page", "number", "lines"), EXAMPLES, ids=[f"{p.name}#{i}" for p, i, _ in EXAMPLES]
)
def test_documented_commands_run(tmp_path: Path, page: Path, number: int, lines: list[str]):
    """Each command shown in the docs runs and exits as the page says (0 unless marked)."""
    state = tmp_path / "state.sqlite"
    (tmp_path / "runtimes").symlink_to(ROOT / "runtimes")  # relative runtime paths resolve
    for line in lines:
        expected = 0
        if m := re.search(r"#\s*exits (\d+)", line):
            expected = int(m.group(1))
            line = line[: m.start()].strip()
        argv = shlex.split(line)[1:]
        if argv and argv[0] == "run-task" and "--state" not in argv:
            argv += ["--state", str(state)]
        proc = subprocess.run(
            [sys.executable, "-m", "supervisor_sim", "--config", str(CONFIG), *argv],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "NO_COLOR": "1"},
        )
        assert proc.returncode == expected, f"{line}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_readme_run_command_works_literally():
    """The README's first command, run as written from the checkout, takes hello to success."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", readme, re.S).group(1)
    run_line, test_line = [ln for ln in block.splitlines() if ln.strip()]
    assert test_line.strip() == "./test"
    proc = subprocess.run(
        shlex.split(run_line), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "final state   success" in proc.stderr


def test_the_rule_counts_the_docs_quote_are_the_checks():
    """Every "N protocol rules" / "All N rules" in the README and docs is the number of rules
    check runs."""
    from supervisor_sim.check._rules import RULES

    quoted = [
        (page.name, int(n))
        for page in DOCS
        for n in re.findall(r"\b(\d+) (?:protocol )?rules\b", page.read_text())
    ]
    assert quoted, "no page quotes the number of rules"
    assert all(n == len(RULES) for _, n in quoted), (quoted, len(RULES))
