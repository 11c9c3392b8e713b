"""Print the import graph between the top-level units of a package and its cycles.

A *unit* is a direct child of the package: ``edgekd/<unit>/`` or ``edgekd/<unit>.py``.
Every ``import`` in every file counts, including the ones inside functions: a lazy import
hides a cycle from the interpreter but not from the reader, and the layer rule
(docs/design.md) is about which unit may know about which.

Standard library only, so anyone can run it on a fresh checkout::

    python tools/import_graph.py            # graph of ./edgekd
    python tools/import_graph.py path/to/pkg --why   # also print the file behind each edge

Exit status 1 when the graph has a cycle (a strongly connected component of more than
one unit), 0 otherwise.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def units_of(package: Path) -> set[str]:
    """The top-level units of ``package``: sub-packages and modules (``__init__``/``__main__`` excluded)."""
    found = set()
    for child in package.iterdir():
        if child.is_dir() and (child / "__init__.py").exists():
            found.add(child.name)
        elif child.suffix == ".py" and child.stem not in ("__init__", "__main__"):
            found.add(child.stem)
    return found


def _module_name(package: Path, path: Path) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """Absolute dotted names imported anywhere in ``tree`` (relative imports resolved)."""
    names = []
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.append(target)
            # ``from edgekd import bench`` imports the unit ``bench``
            names.extend(f"{target}.{alias.name}" for alias in node.names)
    return names


def import_graph(package: Path) -> dict[str, dict[str, set[str]]]:
    """``{unit: {imported unit: {files that import it}}}`` for the package at ``package``."""
    package = Path(package)
    root = package.name
    units = units_of(package)
    graph: dict[str, dict[str, set[str]]] = {u: {} for u in units}
    for path in sorted(package.rglob("*.py")):
        module = _module_name(package, path)
        parts = module.split(".")
        source = parts[1] if len(parts) > 1 else None
        if source not in units:
            continue  # the package's own __init__/__main__ sit above every unit
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name in _imported_names(tree, module, path.name == "__init__.py"):
            bits = name.split(".")
            if len(bits) < 2 or bits[0] != root or bits[1] not in units or bits[1] == source:
                continue
            graph[source].setdefault(bits[1], set()).add(str(path.relative_to(package.parent)))
    return graph


def cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """Strongly connected components with more than one unit (Tarjan), each sorted, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def render(graph: dict[str, dict[str, set[str]]], why: bool = False) -> str:
    """The graph as text: one line per unit with what it imports, then the cycles."""
    lines = []
    for unit in sorted(graph):
        targets = sorted(graph[unit])
        lines.append(f"{unit} -> {', '.join(targets) if targets else '(nothing)'}")
        if why:
            for target in targets:
                for path in sorted(graph[unit][target]):
                    lines.append(f"    {target}: {path}")
    found = cycles(graph)
    for component in found:
        lines.append("cycle: " + " <-> ".join(component))
    edges = sum(len(t) for t in graph.values())
    lines.append(f"{len(graph)} units, {edges} edges, {len(found)} cycle(s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / "edgekd"
    parser.add_argument("package", nargs="?", type=Path, default=default,
                        help="package directory (default: this checkout's edgekd/)")
    parser.add_argument("--why", action="store_true", help="list the files behind each edge")
    args = parser.parse_args(argv)
    if not (args.package / "__init__.py").exists():
        print(f"error: {args.package} is not a package directory (no __init__.py)", file=sys.stderr)
        return 2
    graph = import_graph(args.package)
    print(render(graph, why=args.why))
    return 1 if cycles(graph) else 0


if __name__ == "__main__":
    sys.exit(main())
