"""The pymodbus range the simulator (tools/simulator/pyproject.toml) declares is the range `make test` proves: its
lower bound is the version the Makefile's pymodbus-lowest step installs, and the version in .venv (the upper end)
lies inside it."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]


def _declared() -> Requirement:
    doc = tomllib.loads((ROOT / "tools" / "simulator" / "pyproject.toml").read_text())
    return next(r for r in map(Requirement, doc["project"]["dependencies"]) if r.name == "pymodbus")


def _lowest_tested() -> Version:
    match = re.search(r"^PYMODBUS_LOWEST\s*:=\s*(\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile names the lowest pymodbus it tests"
    return Version(match.group(1))


def test_the_declared_range_starts_at_the_version_make_test_runs() -> None:
    spec = _declared().specifier
    lower = [Version(s.version) for s in spec if s.operator == ">="]
    assert lower == [_lowest_tested()]  # 3.13 == 3.13.0
    assert _lowest_tested() in spec


def test_the_installed_pymodbus_is_inside_the_declared_range() -> None:
    assert Version(version("pymodbus")) in _declared().specifier


def test_the_device_base_package_declares_the_same_range() -> None:
    doc = tomllib.loads((ROOT / "shared" / "pyproject.toml").read_text())
    shared = next(r for r in map(Requirement, doc["project"]["dependencies"]) if r.name == "pymodbus")
    assert shared.specifier == _declared().specifier
