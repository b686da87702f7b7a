"""The packages of `selective_autonomy` form a layered graph, and no two modules import each other.

Every import is read from the source with `ast`: top-level ones, those inside functions (a lazy
import is still a dependency) and those under `if TYPE_CHECKING:` (a type-only import still ties
the two packages together: the upper one cannot be typed without the lower one, and a cycle there
is one refactor away from a runtime cycle). They all obey the same rules; a failure says which kind
the offending import is.
"""

from __future__ import annotations

import ast
import graphlib
from dataclasses import dataclass
from pathlib import Path

import pytest

import selective_autonomy

ROOT = Path(selective_autonomy.__file__).parent
TOP = "selective_autonomy"

# The one layer table: a package may import its own layer and the layers below it, never above.
# Within a layer the imports must not form a cycle (checked on the package graph below).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"__init__", "schemas", "config", "errors", "closing", "cli_output", "cli_options"}),
    frozenset({"streams", "store", "inference", "traces", "webapi"}),
    frozenset({"agents", "learning", "console", "edges", "controls", "onboarding"}),
    frozenset({"simulator", "demo", "cli"}),
)
LAYER_OF = {package: depth for depth, members in enumerate(LAYERS) for package in members}


@dataclass(frozen=True)
class Import:
    """One import of a `selective_autonomy` module by another."""

    source: str  # importing module, dotted
    target: str  # imported module, dotted (a name imported from a module resolves to the module)
    where: str  # path:line, relative to the repository
    kind: str  # "top-level", "function-level" or "TYPE_CHECKING"

    def __str__(self) -> str:
        return f"{self.where}: {self.source} imports {self.target} ({self.kind})"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str) -> str:
    """The module `name` lives in: `a.b.Thing` -> `a.b` when `a.b` is a module."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, path: Path) -> None:
        self.module = module
        self.package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        self.where = str(path.relative_to(ROOT.parent))
        self.found: list[Import] = []
        self._functions = 0
        self._type_checking = 0

    def _kind(self) -> str:
        if self._type_checking:
            return "TYPE_CHECKING"
        return "function-level" if self._functions else "top-level"

    def _add(self, names: list[str], line: int) -> None:
        for name in names:
            if name == TOP or name.startswith(TOP + "."):
                target = _resolve(name)
                if target != self.module:
                    self.found.append(Import(self.module, target, f"{self.where}:{line}", self._kind()))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._functions += 1
        self.generic_visit(node)
        self._functions -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._type_checking += 1
            for child in node.body:
                self.visit(child)
            self._type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self._add([alias.name for alias in node.names], node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        # `from pkg import sub` imports the submodule `pkg.sub`; `from mod import name` imports `mod`.
        self._add([f"{module}.{alias.name}" for alias in node.names], node.lineno)


def _imports() -> list[Import]:
    found: list[Import] = []
    for module, path in MODULES.items():
        collector = _Collector(module, path)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found.extend(collector.found)
    return found


IMPORTS = _imports()


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_layer() -> None:
    packages = {_package(module) for module in MODULES}
    assert packages - LAYER_OF.keys() == set(), "add the new package to LAYERS in tests/unit/test_layers.py"
    assert LAYER_OF.keys() - packages == set(), "a package in LAYERS no longer exists"


def test_no_package_imports_a_layer_above_it() -> None:
    upward = [str(found) for found in IMPORTS if LAYER_OF[_package(found.target)] > LAYER_OF[_package(found.source)]]
    assert upward == [], "imports reaching a higher layer:\n" + "\n".join(upward)


def _first_cycle(edges: dict[str, set[str]]) -> list[str]:
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return []


def _explain(cycle: list[str], key: str) -> str:
    """The imports behind each edge of `cycle` (a list of nodes, first repeated last)."""
    lines = [f"{key} cycle (each is imported by the next): " + " <- ".join(cycle)]
    for importer, imported in zip(cycle[1:], cycle[:-1], strict=True):
        lines.append(f"{importer} -> {imported}:")
        for found in IMPORTS:
            source, target = (
                (_package(found.source), _package(found.target)) if key == "package" else (found.source, found.target)
            )
            if (source, target) == (importer, imported):
                lines.append(f"    {found}")
    return "\n".join(lines)


def test_packages_form_no_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for found in IMPORTS:
        source, target = _package(found.source), _package(found.target)
        if source != target:
            edges.setdefault(source, set()).add(target)
    cycle = _first_cycle(edges)
    assert cycle == [], _explain(cycle, "package")


def test_modules_form_no_cycle() -> None:
    # A module importing its own package's __init__ (which re-exports it) is not counted: that is
    # how a package exposes its names, and Python resolves it.
    edges: dict[str, set[str]] = {}
    for found in IMPORTS:
        if not found.source.startswith(found.target + "."):
            edges.setdefault(found.source, set()).add(found.target)
    cycle = _first_cycle(edges)
    assert cycle == [], _explain(cycle, "module")


@pytest.mark.parametrize(
    ("source", "target", "kind"),
    [
        ("import selective_autonomy.streams.topics", "selective_autonomy.streams.topics", "top-level"),
        ("from selective_autonomy.schemas import events", "selective_autonomy.schemas.events", "top-level"),
        ("from selective_autonomy.schemas.events import Action", "selective_autonomy.schemas.events", "top-level"),
        ("from ..schemas.events import Action", "selective_autonomy.schemas.events", "top-level"),
        (
            "def f():\n    from selective_autonomy.store import engine",
            "selective_autonomy.store.engine",
            "function-level",
        ),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from selective_autonomy.agents import gate",
            "selective_autonomy.agents.gate",
            "TYPE_CHECKING",
        ),
    ],
)
def test_the_reader_resolves(source: str, target: str, kind: str) -> None:
    path = ROOT / "inference" / "probe.py"
    collector = _Collector("selective_autonomy.inference.probe", path)
    collector.visit(ast.parse(source))
    assert [(found.target, found.kind) for found in collector.found] == [(target, kind)]


def test_the_checks_catch_a_cycle_and_an_upward_import() -> None:
    # The rules themselves, on made-up imports: a test that could not fail would guard nothing.
    assert _first_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) != []
    assert _first_cycle({"a": {"b"}, "b": {"c"}}) == []
    upward = Import(
        "selective_autonomy.store.engine", "selective_autonomy.agents.gate", "store/engine.py:1", "top-level"
    )
    assert LAYER_OF[_package(upward.target)] > LAYER_OF[_package(upward.source)]
    assert (
        str(upward)
        == "store/engine.py:1: selective_autonomy.store.engine imports selective_autonomy.agents.gate (top-level)"
    )
