"""Layers import downwards only: the outbox feeds the sinks and must not depend on them.

Imports are read from the source with :mod:`ast` (nothing is imported), so an import
hidden in a function or under ``TYPE_CHECKING`` counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def imported_modules(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, relative imports resolved; ``from a import b`` also
    yields ``a.b`` (``b`` may be a module)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_parser_sees_imports() -> None:
    """Guards the test below against passing because it reads nothing."""
    found = set(imported_modules(ROOT / "edge_agent" / "outbox" / "outbox.py"))
    assert "edge_agent.model" in found
    assert "edge_agent.outbox.store" in found


def test_the_outbox_does_not_import_the_sinks() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "edge_agent" / "outbox").rglob("*.py"))
        for module in imported_modules(path)
        if _within(module, "edge_agent.sinks")
    ]
    assert not offenders, "the outbox imports the sinks it feeds:\n" + "\n".join(offenders)
