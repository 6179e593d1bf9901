"""The shape of the tree, enforced: no import cycles, a light core model, layers kept.

Imports are read with ``ast`` from the source (module level, not ``if TYPE_CHECKING``
blocks and not the lazy imports inside functions, which exist to keep protocol
libraries out of processes that do not use them).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("edge_agent", "drivers")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)


def _imported(module: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``module`` imports at load time (``from a import b`` counts
    ``a.b`` when that is a module, else ``a``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _top_level_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            if name in known:
                found.add(name)
            elif name.rpartition(".")[0] in known and not name.startswith(base + "."):
                found.add(name.rpartition(".")[0])
    found.discard(module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imported(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_is_read() -> None:
    graph = _graph()
    # A sanity check that the parser sees real edges (else "no cycle" proves nothing).
    assert "edge_agent.config.base" in graph["edge_agent.config.plant"]
    assert "edge_agent.config.loader" in graph["edge_agent.service.reload"]
    assert "drivers.registry" in graph["drivers.modbus.kind"]


def test_there_is_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_a_cycle_would_be_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_the_config_sections_sit_on_the_base_types() -> None:
    """base.py and catalog.py are the bottom of edge_agent.config: they import nothing of it."""
    graph = _graph()
    for bottom in ("edge_agent.config.base", "edge_agent.config.catalog"):
        assert not {m for m in graph[bottom] if m.startswith("edge_agent.config")}, bottom


@pytest.mark.parametrize(
    "module", ["edge_agent.model", "edge_agent.metrics.units", "edge_agent.metrics.output"]
)
def test_the_core_model_and_the_calculators_import_no_pydantic(module: str) -> None:
    """Drivers, sinks and the outbox work on SampleBatch, the calculators on plain specs:
    loading them must stay cheap (and independent of the config layer)."""
    code = (
        f"import sys, {module}\n"
        "heavy = [m for m in ('pydantic', 'yaml', 'edge_agent.config')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == ""


def _loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {modules!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return [m for m in result.stdout.strip().split(",") if m]


def test_the_service_imports_its_web_stack_only_for_a_listener() -> None:
    """aiohttp, prometheus_client and the console are about a fifth of a second of the
    start: a plant without ``service.health`` (the demo plant) must not pay for them."""
    web = ("aiohttp", "prometheus_client", "edge_agent.console.app", "edge_agent.service.health")
    assert _loaded_after("import edge_agent.cli, edge_agent.service.supervisor", web) == []


def test_the_command_line_imports_the_config_models_only_for_a_command() -> None:
    """``edge-agent --version`` and ``--help`` are the first things a user times: the
    pydantic config models (a fifth of a second to build) load with a command that
    reads a plant file, not with the command line itself."""
    models = ("edge_agent.config", "pydantic", "yaml", "structlog")
    assert _loaded_after("import edge_agent.cli\nedge_agent.cli.build_parser()", models) == []


def test_the_core_imports_no_protocol_library() -> None:
    """pymodbus and asyncua are the drivers' business (drivers/ and simulators/)."""
    offenders = []
    for name, path in _modules().items():
        if not name.startswith("edge_agent"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                targets = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                if any((t or "").split(".")[0] in ("pymodbus", "asyncua") for t in targets):
                    offenders.append(name)
    assert offenders == []


def _every_import(path: Path) -> Iterator[str]:
    """Every module ``path`` imports anywhere (in functions and TYPE_CHECKING blocks too),
    relative imports resolved; ``from a import b`` also yields ``a.b``."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{module}" if module else base
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def test_the_outbox_does_not_import_the_sinks_it_feeds() -> None:
    found = set(_every_import(ROOT / "edge_agent" / "outbox" / "outbox.py"))
    assert "edge_agent.model" in found  # the parser sees imports
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "edge_agent" / "outbox").rglob("*.py"))
        for module in _every_import(path)
        if module == "edge_agent.sinks" or module.startswith("edge_agent.sinks.")
    ]
    assert not offenders, "the outbox imports the sinks it feeds:\n" + "\n".join(offenders)


def test_no_module_is_over_500_lines() -> None:
    """A module past 500 lines holds more than one job: split it by what it holds."""
    long = {
        name: lines
        for name, path in _modules().items()
        if (lines := len(path.read_text().splitlines())) > 500
    }
    assert long == {}
