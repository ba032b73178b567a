"""The package's layers hold: no module imports a module of a layer after it, no private name
crosses a module, and the simulator never imports the client side.

The layers are listed from the base up in ``LAYERS``: a module may import its own layer and
the ones before it, never one after it (see docs/architecture.md).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dfs_analytics"

LAYERS: list[set[str]] = [
    {"errors", "config", "periods", "rules", "query", "files", "progress", "_version", "_html"},
    {"concurrency", "client"},
    {"normalize"},
    {"dataset"},
    {"syncing"},
    {"loaders"},
    {"audit", "plots", "report"},
    {"tasks", "callbacks", "actions", "journal", "campaign", "review"},
    {"widget_views", "widgets"},
    {"connect", "cli", "demo"},
]
# what the simulator (a server of its own) may import from the toolkit: the rules both sides
# share (verdict rules; which URLs are loopback, where callbacks may go)
SIMULATOR_MAY_IMPORT = {"rules", "config", "errors", "_version"}

# beyond the order: the store knows nothing of HTTP, and what works on frames (the audit, plots,
# the report, the widgets) never talks to the server itself
FORBIDDEN = {
    *((frames, "client") for frames in ("audit", "plots", "report", "widgets", "widget_views")),
}


def _top(module: str) -> str:
    """The layer name of a dotted module inside the package (``audit.rates`` -> ``audit``)."""
    return module.split(".")[0]


def _imports() -> list[tuple[str, str, int, list[str]]]:
    """(importing module, imported package module, line, names) for every import of the
    package's own modules that runs (annotation-only imports are left out)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        here = ".".join(parts) or "__init__"
        package = parts if path.name == "__init__.py" else parts[:-1]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {  # imports for annotations only (if TYPE_CHECKING:) run nothing
            id(inner)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for inner in ast.walk(block)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [a.name for a in node.names]
                if not node.module:  # from . import x, y: each is a module
                    for name in names:
                        found.append((here, ".".join([*target, name]), node.lineno, []))
                else:
                    found.append((here, ".".join(target), node.lineno, names))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "dfs_analytics"
            ):
                target = node.module.split(".")[1:]
                found.append((here, ".".join(target), node.lineno, [a.name for a in node.names]))
    return found


def _layer(name: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if name in layer:
            return i
    return None


def test_every_module_has_a_layer() -> None:
    modules = {_top(m) for m, *_ in _imports()} | {
        p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"
    }
    modules -= {"__init__", "simulator", "__main__"}
    missing = sorted(m for m in modules if _layer(m) is None)
    assert not missing, f"modules without a layer (add them to LAYERS): {missing}"


def test_no_import_runs_down_the_layers() -> None:
    crossings: dict[tuple[str, str], list[str]] = {}
    for here, target, line, _ in _imports():
        source, dest = _top(here), _top(target)
        if source in ("__init__", "simulator") or source == dest:
            continue
        if dest == "simulator":
            if source not in ("connect", "cli", "demo"):  # only entry points start one
                crossings.setdefault((source, dest), []).append(f"{here}:{line}")
            continue
        low, high = _layer(source), _layer(dest)
        if low is None or high is None:
            continue
        if high > low or (source, dest) in FORBIDDEN:
            crossings.setdefault((source, dest), []).append(f"{here}:{line} -> {target}")
    assert not crossings, f"imports that run down the layers: {crossings}"


def test_the_simulator_imports_only_the_shared_rules() -> None:
    wrong = [
        f"{here}:{line} -> {target}"
        for here, target, line, _ in _imports()
        if _top(here) == "simulator"
        and _top(target) != "simulator"
        and _top(target) not in SIMULATOR_MAY_IMPORT
    ]
    assert not wrong, wrong


def test_no_private_name_crosses_a_module() -> None:
    crossing = [
        f"{here}:{line} imports {name} from {target}"
        for here, target, line, names in _imports()
        for name in names
        if name.startswith("_") and name != "__version__" and here != target
    ]
    assert not crossing, crossing


def test_there_is_no_import_cycle_between_layers() -> None:
    graph: dict[str, set[str]] = {}
    for here, target, *_ in _imports():
        source, dest = _top(here), _top(target)
        if source != dest and source != "__init__":
            graph.setdefault(source, set()).add(dest)
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, sorted(set(cycles))
