"""The package layout keeps its promises: the stages import only what their docstrings
allow (docs/ARCHITECTURE.md), no module imports itself back through others, even from
inside a function, and modules and functions stay small enough to read."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"dann_serve": ROOT / "dann_serve", "dann_client": ROOT / "client" / "dann_client"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# What each part of dann_serve may import from the project (prefixes of module names).
# Every part may import itself; the CLI may import everything.
# The top-level modules, and the import-free contract of names and shapes.
TOP_LEVEL = (
    "dann_serve.config",
    "dann_serve.files",
    "dann_serve.progress",
    "dann_serve.runtime",
    "dann_client.contract",
)
ALLOWED = {
    "dann_serve.data": (
        *TOP_LEVEL,
        "dann_client.preprocessing",
        "dann_client.background",
        "dann_client.framing",
        "dann_client.contract",
        "dann_client.errors",
    ),
    "dann_serve.model": ("dann_serve.config", "dann_client.contract"),
    "dann_serve.training": (*TOP_LEVEL, "dann_serve.data", "dann_serve.model"),
    "dann_serve.export": (
        *TOP_LEVEL,
        "dann_serve.data",
        "dann_serve.model",
        "dann_serve.training",
        "dann_serve.drift",
        "dann_serve.serving.loader",
        "dann_serve.serving.model_config",
        "dann_client.contract",
        "dann_client.preprocessing",
    ),
    "dann_serve.serving": (
        *TOP_LEVEL,
        "dann_serve.drift",
        "dann_client.contract",
        "dann_client.tensors",
        "dann_client.png",  # the capture's PNG files: the client's one encoder
        "dann_client.preprocessing",  # the image files a folder reader lists
        "dann_client.errors",  # ImageError: a file the page sends that is no image
    ),
    # the monitor's statistics: numpy and scipy only, below both export and serving
    "dann_serve.drift": ("dann_serve.files", "dann_client.contract"),
    "dann_serve.experiments": (
        *TOP_LEVEL,
        "dann_serve.data",
        "dann_serve.model",
        "dann_serve.training",
    ),
    "dann_serve.cli": ("dann_serve", "dann_client"),
    "dann_serve.config": (),
    "dann_serve.files": (),
    "dann_serve.progress": (),
    "dann_serve.runtime": (),
    "dann_serve.__main__": ("dann_serve.cli",),
    "dann_serve": (),  # the package's own __init__
    "dann_client": ("dann_client",),  # the client never imports dann_serve
}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def _modules() -> dict[str, Module]:
    found = {}
    for top, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            if "_pb2" in path.name:
                continue  # generated protobuf code
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((top, *parts))
            found[name] = Module(name, path, ast.parse(path.read_text(), str(path)))
    return found


MODULES = _modules()


def _runtime_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from (n for branch in child.orelse for n in _runtime_imports_of(branch))
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _runtime_imports(child)


def _runtime_imports_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    yield from _runtime_imports(node)


def imported_modules(module: Module) -> set[str]:
    """The project modules ``module`` imports, naming submodules where a name is one."""
    names: set[str] = set()
    for statement in _runtime_imports(module.tree):
        if isinstance(statement, ast.Import):
            names.update(alias.name for alias in statement.names)
            continue
        base = statement.module or ""
        if statement.level:
            package = module.name if module.is_package else module.name.rpartition(".")[0]
            for _ in range(statement.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}".rstrip(".")
        for alias in statement.names:
            candidate = f"{base}.{alias.name}"
            names.add(candidate if candidate in MODULES else base)
    return {name for name in names if name in MODULES}


def _owner(name: str) -> str:
    """The most specific key of ALLOWED that ``name`` falls under."""
    matches = [key for key in ALLOWED if name == key or name.startswith(key + ".")]
    return max(matches, key=len)


def _allowed(owner: str, target: str) -> bool:
    if owner != "dann_serve" and (target == owner or target.startswith(owner + ".")):
        return True
    return any(target == rule or target.startswith(rule + ".") for rule in ALLOWED[owner])


def test_each_stage_imports_only_what_it_may() -> None:
    broken = [
        f"{module.name} imports {target}"
        for module in MODULES.values()
        for target in sorted(imported_modules(module))
        if not _allowed(_owner(module.name), target)
    ]
    assert not broken, "\n".join(broken)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for following in sorted(graph[node]):
            if state.get(following) == "open":
                return [*stack[stack.index(following) :], following]
            if following not in state and (found := visit(following)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_even_through_imports_inside_functions() -> None:
    graph = {name: imported_modules(module) - {name} for name, module in MODULES.items()}
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def assert_small(path: Path) -> None:
    text = path.read_text()
    lines = text.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{path}: {lines} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path}: {', '.join(long)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_stay_small(name: str) -> None:
    assert_small(MODULES[name].path)


# The benchmark scripts and the harness are read as often as the package (a figure in
# docs/PERFORMANCE.md is only as good as the script behind it), so the same sizes hold.
SCRIPTS = sorted((ROOT / "bench").glob("*.py")) + sorted((ROOT / "harness").glob("*.py"))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_benchmark_scripts_and_the_harness_stay_small(path: Path) -> None:
    assert_small(path)


def test_dann_serve_has_a_handful_of_top_level_modules() -> None:
    top = sorted(path.name for path in PACKAGES["dann_serve"].glob("*.py"))
    assert len(top) <= 6, top


def test_every_package_says_what_it_owns_and_may_import() -> None:
    for module in MODULES.values():
        if module.is_package and module.name.startswith("dann_serve."):
            docstring = ast.get_docstring(module.tree) or ""
            assert "May import" in docstring, f"{module.path}: no import rule in its docstring"
