"""The package's import graph: no cycles, the store never reaches up into the engine, the API or
the CLI, and each connector package (``transports/<name>/``) stands alone on the shared transport
modules. Every import counts: module-level, function-level and ``TYPE_CHECKING`` ones.

The graph is read with :mod:`ast` here, so that the test needs nothing but the repository. Where
the shared tool ``../shared/tools/import_cycles.py`` is beside the checkout, its verdict must agree.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import erpbridge

PACKAGE = Path(erpbridge.__file__).parent
NAME = PACKAGE.name
SHARED_TOOL = Path(__file__).resolve().parents[2] / "shared" / "tools" / "import_cycles.py"
#: What the store must not import (the layers above it).
ABOVE_THE_STORE = ("engine", "api", "cli")
#: What a connector (``transports``) and a system type's code (``systems``) must not import.
ABOVE_THE_CONNECTORS = ("store", "engine", "api", "cli", "config")
TRANSPORTS = f"{NAME}.transports"


def modules() -> dict[str, Path]:
    """Dotted name → file of every module of the package (migrations are scripts of Alembic's)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.relative_to(PACKAGE).parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """What ``node`` names: the module, and each ``from … import x`` as ``module.x``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        keep = len(base) - node.level + (1 if path.name == "__init__.py" else 0)
        prefix = ".".join(base[:keep] + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix, *(f"{prefix}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports (its own parent packages left out)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in imported_names(module, path, node):
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != module and not module.startswith(target + "."):
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_the_graph_is_read_whole() -> None:
    graph = import_graph()
    # function-level and TYPE_CHECKING imports are edges too
    assert "erpbridge.engine.dispatch" in graph["erpbridge.engine.dispatcher"]
    assert "erpbridge.store.deliveries" in graph["erpbridge.store.records"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_store_imports_nothing_from_above() -> None:
    above = tuple(f"{NAME}.{layer}" for layer in ABOVE_THE_STORE)
    upward = sorted(
        (module, target)
        for module, targets in import_graph().items()
        if module.startswith(f"{NAME}.store")
        for target in targets
        if target.startswith(above)
    )
    assert upward == []


def test_the_shared_tool_agrees() -> None:
    if not SHARED_TOOL.is_file():
        pytest.skip("no shared tool beside the checkout (CI): the tests above are the check")
    result = subprocess.run(
        [sys.executable, str(SHARED_TOOL), str(PACKAGE)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines()[-1].startswith("cycles=0 store_up=0 "), result.stdout


def connector_package(module: str) -> str | None:
    """``erpbridge.transports.rest`` for any module inside that connector package, else ``None``."""
    if not module.startswith(TRANSPORTS + "."):
        return None
    head = module.split(".")[2]
    return f"{TRANSPORTS}.{head}" if (PACKAGE / "transports" / head).is_dir() else None


def test_connectors_are_packages() -> None:
    packages = {connector_package(module) for module in modules()} - {None}
    assert {
        f"{TRANSPORTS}.{name}" for name in ("files", "odata", "rest", "rpc", "soap", "sql")
    } <= (packages)
    shared = sorted(
        m for m in modules() if m.startswith(TRANSPORTS + ".") and not connector_package(m)
    )
    # the shared modules are few and flat: everything else belongs to one connector
    assert all(m.count(".") == 2 for m in shared), shared


def test_connector_packages_do_not_import_each_other() -> None:
    across = sorted(
        (module, target)
        for module, targets in import_graph().items()
        if (own := connector_package(module))
        for target in targets
        if (other := connector_package(target)) and other != own
    )
    assert across == []


def test_connectors_import_nothing_from_above() -> None:
    above = tuple(f"{NAME}.{layer}" for layer in ABOVE_THE_CONNECTORS)
    upward = sorted(
        (module, target)
        for module, targets in import_graph().items()
        if module.startswith((TRANSPORTS, f"{NAME}.systems"))
        for target in targets
        if target.startswith(above)
    )
    assert upward == []
