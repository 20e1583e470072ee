"""Check the layering of supervisor_sim from its import statements (no module is imported).

    python tools/import_graph.py          # prints the package graph; exit 1 on any breach

The rules (docs/architecture.md): protocol/ imports nothing of ours; api/ only protocol/;
supervision/ protocol/ and api/; transcript/ protocol/ only; runner/ and check/ the layers
(not each other); cli/ anything; no package imports another package's private ``_module``; the
package root holds only ``__init__``, ``__main__``, ``testing`` and at most two private modules.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PKG = "supervisor_sim"
ROOT = Path(__file__).resolve().parents[1] / PKG
LAYERS = {"protocol", "api", "supervision", "transcript"}
#: What each package may import (besides itself, the standard library and third parties).
ALLOWED: dict[str, set[str]] = {
    "protocol": set(),
    "api": {"protocol"},
    "supervision": {"protocol", "api"},
    "transcript": {"protocol"},
    "runner": LAYERS,
    "check": LAYERS,
    "cli": LAYERS | {"runner", "check"},
    "testing": LAYERS,
}
#: Root modules every package may use (shared private helpers of no layer).
SHARED = {"_lazy", "_typed_toml", "__init__"}
ROOT_FILES = {"__init__.py", "__main__.py", "testing.py"}
MAX_ROOT_PRIVATE = 2


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, int]]:
    """Absolute names of our modules (and imported names) that ``path`` imports, with lines."""
    tree = ast.parse(path.read_text(), str(path))
    this = module_name(path).split(".")
    package = this if path.name == "__init__.py" else this[:-1]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith(PKG)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith(PKG):
                continue
            if node.module is None or mod == PKG:  # from . import x, y: x may be a module
                found += [(f"{mod}.{a.name}", node.lineno) for a in node.names]
            else:
                found.append((mod, node.lineno))
    return found


def owner(module: str) -> str:
    """The package (or root module) of ``supervisor_sim.x.y``: ``x``; a name of the root
    package itself (``from .. import __version__``) belongs to ``__init__``."""
    parts = module.split(".")
    if len(parts) < 2:
        return "__init__"
    top = ROOT / parts[1]
    return parts[1] if top.is_dir() or top.with_suffix(".py").exists() else "__init__"


def check() -> tuple[list[str], dict[str, set[str]]]:
    problems: list[str] = []
    graph: dict[str, set[str]] = defaultdict(set)
    root_private = sorted(
        p.name
        for p in ROOT.iterdir()
        if p.is_file() and p.suffix == ".py" and p.name not in ROOT_FILES
    )
    if any(not n.startswith("_") for n in root_private) or len(root_private) > MAX_ROOT_PRIVATE:
        problems.append(
            f"package root holds {root_private} (allowed: {sorted(ROOT_FILES)} "
            f"and at most {MAX_ROOT_PRIVATE} private modules)"
        )
    for path in sorted(ROOT.rglob("*.py")):
        src = module_name(path)
        src_pkg = owner(src) if src != PKG else "__init__"
        if (src_pkg.startswith("_") and src_pkg != "__init__") or src_pkg in ("__main__",):
            continue  # shared root helpers and the entry point
        for target, line in imports(path):
            tgt_pkg = owner(target)
            if tgt_pkg == src_pkg or tgt_pkg in SHARED or target == PKG:
                continue
            graph[src_pkg].add(tgt_pkg)
            where = f"{path.relative_to(ROOT.parent)}:{line}"
            if src_pkg not in ALLOWED:
                problems.append(f"{where}: {src_pkg} is not a known package of the layout")
                continue
            if tgt_pkg not in ALLOWED[src_pkg]:
                problems.append(f"{where}: {src_pkg}/ imports {target} ({tgt_pkg}/ is not allowed)")
            rest = target.split(".")[2:]
            if rest and rest[0].startswith("_"):
                problems.append(f"{where}: imports the private module {target} of {tgt_pkg}/")
    return problems, graph


def main() -> int:
    problems, graph = check()
    for pkg in sorted(graph):
        print(f"{pkg:<12} -> {', '.join(sorted(graph[pkg]))}")
    for p in problems:
        print("BREACH", p)
    print(f"{len(problems)} breach(es)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
