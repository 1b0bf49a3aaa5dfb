"""The package's layout follows the data flow: no import cycles, and no stage imports a later one.

The import graph is read from the source with ``ast`` (imports inside functions count: a lazy import is still a
dependency; imports under ``if TYPE_CHECKING:`` do not, they never run), so the test needs nothing imported and
names every offending edge or cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "generator"

#: Stages in data-flow order; a module may import its own stage and earlier ones only. Top-level modules not
#: listed here are foundations (errors, command, tools, yamlio, guard, openapi) that import no stage.
STAGES = ("inventory", "render", "build", "verify")
#: The entry points, which may import every stage.
ENTRY_POINTS = {"generator", "generator.cli", "generator.bench"}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (composite scripts excluded: they run inside the function)."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if "data" in rel.parts:
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import of a package module in ``path``, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {  # imports under ``if TYPE_CHECKING:`` are for annotations only, never run
        id(sub) for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body for sub in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in known:
                    yield target, node.lineno
                elif base in known:
                    yield base, node.lineno


def graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: first line}."""
    found = modules()
    known = set(found)
    edges: dict[str, dict[str, int]] = {}
    for name, path in found.items():
        targets: dict[str, int] = {}
        for target, line in imports(name, path, known):
            if target != name:
                targets.setdefault(target, line)
        edges[name] = targets
    return edges


def stage(module: str) -> int | None:
    """The stage index of a module (None for foundations), or len(STAGES) for entry points."""
    if module in ENTRY_POINTS:
        return len(STAGES)
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in STAGES:
        return STAGES.index(parts[1])
    return None


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, {})):
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_graph_reads_the_package() -> None:
    edges = graph()
    assert "generator.inventory.loader" in edges
    assert "generator.inventory.models" in edges["generator.inventory.loader"]
    # lazy (function-level) imports count too
    assert "generator.render.pipeline" in edges["generator.cli"]


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_no_stage_imports_a_later_one() -> None:
    edges = graph()
    wrong = []
    for module, targets in sorted(edges.items()):
        own = stage(module)
        for target, line in sorted(targets.items()):
            theirs = stage(target)
            if theirs is None:
                continue
            if own is None or theirs > own:
                path = modules()[module].relative_to(PACKAGE.parent)
                wrong.append(f"{path}:{line}: {module} imports {target}")
    assert not wrong, "imports against the data flow:\n" + "\n".join(wrong)


def test_no_private_names_across_modules() -> None:
    found = modules()
    wrong = []
    for path in sorted(found.values()):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("generator"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {', '.join(private)}")
    assert not wrong, "private names imported from another module:\n" + "\n".join(wrong)


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_public_surface_resolves() -> None:
    import generator

    for name in generator.__all__:
        assert getattr(generator, name) is not None, name
    assert callable(generator.render_fleet) and callable(generator.build_fleet)
