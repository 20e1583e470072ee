"""docs/architecture.md names only packages and files that exist, and draws every package."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "supervisor_sim"
DOC = (ROOT / "docs" / "architecture.md").read_text()


def _tree_block() -> str:
    return DOC.split("```", 2)[1]


def test_every_package_in_the_tree_exists() -> None:
    """Each folder the drawn tree names is a package of supervisor_sim, nested as drawn."""
    named = []
    parent = ""
    for line in _tree_block().splitlines():
        m = re.match(r"^(\s+)([a-z_]+)/", line)
        if not m:
            continue
        depth = len(m.group(1))
        name = m.group(2)
        path = f"{parent}/{name}" if depth > 2 and parent else name
        if depth <= 2:
            parent = name
        named.append(path)
        assert (PKG / path / "__init__.py").is_file(), f"architecture.md draws {path}/"
    assert {"protocol", "api", "api/stub", "api/store", "supervision", "transcript"} <= set(named)
    assert {"runner", "check", "cli"} <= set(named)


def test_every_package_of_the_code_is_drawn() -> None:
    """No package of supervisor_sim is missing from the drawn tree."""
    tree = _tree_block()
    for init in PKG.rglob("__init__.py"):
        rel = init.parent.relative_to(PKG)
        if rel == Path("."):
            continue
        assert f"{rel.name}/" in tree, f"package {rel} is not drawn in docs/architecture.md"


def test_every_file_named_exists() -> None:
    """Every `pkg/_module.py` or `pkg/sub/` path the page names is in the package."""
    names = set(re.findall(r"`((?:[a-z_]+/)+[a-z_]+\.py|(?:[a-z_]+/)+)`", DOC))
    names |= {n for n in re.findall(r"\b((?:[a-z_]+/)+_?[a-z_]+\.py)\b", DOC)}
    assert len(names) > 15, names
    for name in sorted(names):
        # A name relative to a package (``_assets/`` in the transcript/ section) counts too.
        found = (PKG / name).exists() or (ROOT / name).exists()
        found = found or any(PKG.glob(f"**/{name.rstrip('/')}"))
        assert found, f"architecture.md names {name}"
