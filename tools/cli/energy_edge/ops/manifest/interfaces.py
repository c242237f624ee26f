"""What each module sends on and handles, from the `outputs` / `input_names` its class declares."""

from __future__ import annotations

import ast
import contextlib
import importlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# ====================================================================== what a module sends and handles


@dataclass(frozen=True)
class ModuleInterface:
    """Outputs a module sends on and inputs it handles, as the module class declares them (`outputs`,
    `input_names`; the runtime holds the code to them)."""

    entry: str | None  # "package.module:Class", None when the folder has no EdgeModule main.py
    outputs: frozenset[str] = frozenset()
    inputs: frozenset[str] = frozenset()


def _main_class(main: Path) -> tuple[str, str] | None:
    """(python module, class name) of ``run_module(SomeModule())`` in a module's main.py."""
    tree = ast.parse(main.read_text(encoding="utf-8"))
    imported = {alias.asname or alias.name: node.module
                for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
                for alias in node.names}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "run_module"
                and node.args and isinstance(node.args[0], ast.Call) and isinstance(node.args[0].func, ast.Name)):
            name = node.args[0].func.id
            if name in imported:
                return imported[name], name
    return None


@contextlib.contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def module_interface(folder: Path) -> ModuleInterface:
    """The interface the module class that main.py runs declares."""
    main = folder / "main.py"
    found = _main_class(main) if main.is_file() else None
    if found is None:
        return ModuleInterface(None)
    module_name, class_name = found
    with _on_path(folder):
        cls = getattr(importlib.import_module(module_name), class_name)
    return ModuleInterface(f"{module_name}:{class_name}", frozenset(cls.outputs), frozenset(cls.input_names))
