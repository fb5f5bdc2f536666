"""The package's shape stays easy to find one's way in: no import cycle in src/, no module over
about 500 lines without saying why in its docstring, no function over 60 lines of code.

Read from the source with ``ast`` (nothing is imported), so it is quick and sees imports made
inside functions too: an import moved into a function to dodge a cycle is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "spheroseg"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
# A longer module says why in its docstring, in a paragraph that starts with this.
LONG_MODULE_REASON = "Why one module:"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def imported_modules(name: str, tree: ast.Module) -> set[str]:
    """The spheroseg modules `name` imports, anywhere in its code."""
    found = set()
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: imported_modules(name, tree) for name, tree in TREES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] if there is none (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*stack[stack.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_cycle_finder_finds_a_cycle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_is_read():
    assert "spheroseg.measure.frame" in GRAPH["spheroseg.measure.store"]
    assert "spheroseg.report.style" in GRAPH["spheroseg.report.overlay"]
    assert "spheroseg.ngff" in GRAPH["spheroseg.report.build"]  # `from spheroseg import ngff`, in a function


def test_no_import_cycle_in_src():
    assert find_cycle(GRAPH) == []


def test_package_never_imports_snakemake():
    found = sorted(name for name, tree in TREES.items() for node in ast.walk(tree)
                   if (isinstance(node, ast.Import)
                       and any(alias.name.split(".")[0] == "snakemake" for alias in node.names))
                   or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "snakemake"))
    assert found == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_short_or_says_why(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    if lines > MAX_MODULE_LINES:
        docstring = ast.get_docstring(TREES[name]) or ""
        assert LONG_MODULE_REASON in docstring, (
            f"{name} has {lines} lines: split it, or say why it is one module in its docstring "
            f"({LONG_MODULE_REASON!r})")


def code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef, source: list[str]) -> int:
    """Lines of code of a function: not blank, not comments, not its docstring."""
    skipped = set()
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        skipped = set(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(1 for number in range(function.lineno, function.end_lineno + 1)
               if number not in skipped and source[number - 1].strip()
               and not source[number - 1].strip().startswith("#"))


def test_code_lines_counts_code_only():
    source = 'def f(x):\n    """Doc.\n\n    More.\n    """\n    # note\n\n    return x\n'
    (function,) = ast.parse(source).body
    assert code_lines(function, source.splitlines()) == 2


def long_functions() -> list[str]:
    found = []
    for name, tree in TREES.items():
        source = MODULES[name].read_text(encoding="utf-8").splitlines()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                count = code_lines(node, source)
                if count > MAX_FUNCTION_LINES:
                    found.append(f"{name}.{node.name}: {count} lines")
    return found


def test_no_function_over_sixty_lines_of_code():
    assert long_functions() == []
