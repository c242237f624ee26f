"""ARCHITECTURE.md names only what exists: every file or folder it cites in backticks is in the tree, and every
code name it cites (a class, a function, `package.module`, `Class.attribute`) is defined or used in the code or
its data files. What the doc says about them is checked by reading; this keeps the names from going stale when
files move (the doc once cited `ops/manifest.py` after it had become a package)."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

from tests.support import REPO

DOC = REPO / "ARCHITECTURE.md"
FILE_ENDINGS = (".py", ".json", ".lark", ".md", ".yml", ".yaml", ".bicep", ".bicepparam", ".toml", ".txt", ".sh",
                ".cfg", ".ini", ".html", ".js", ".css", ".db", ".sql")
# Files the emulator writes at run time under its --data-dir: named by the doc, never in the tree.
RUNTIME_FILES = {"hub.json", "hub.db", "tls/"}
# Names other software defines, cited for what the code does with them.
FOREIGN_NAMES = {
    "EdgeHubConnectionString",  # IoT Edge's environment variable; the SDK reads it, the emulator sets it
    "HttpOnly",  # the cookie attribute (aiohttp's httponly=True)
}
# Backticked text that is neither a path nor a name: commands, topics, JSON, placeholders, numbers.
NOT_A_NAME = re.compile(r"[\s<>{}*…$=()\[\]'\",:;|@#%^&+?!\\]|^\d|^-|^http|^/")


@cache
def tracked_files() -> tuple[str, ...]:
    out = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True).stdout
    return tuple(out.split())


@cache
def tracked_dirs() -> frozenset[str]:
    return frozenset(str(parent) + "/" for path in tracked_files() for parent in Path(path).parents
                     if str(parent) != ".")


@cache
def code_words() -> frozenset[str]:
    """Every identifier-like word in the tracked code and data files (prose excluded)."""
    words: set[str] = set()
    for path in tracked_files():
        if path.endswith(".md") or not (REPO / path).is_file():
            continue
        try:
            text = (REPO / path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
    return frozenset(words)


def cited() -> list[str]:
    return sorted({token.strip() for token in re.findall(r"`([^`\n]+)`", DOC.read_text(encoding="utf-8"))})


def is_path(token: str) -> bool:
    return token.endswith(FILE_ENDINGS) or token.endswith("/")


def path_exists(token: str) -> bool:
    if token in RUNTIME_FILES:
        return True
    return (any(f == token or f.endswith("/" + token) for f in tracked_files())
            or any(d == token or d.endswith("/" + token) for d in tracked_dirs()))


def name_exists(token: str) -> bool:
    if token in FOREIGN_NAMES:
        return True
    if token.endswith("_total") and token.removesuffix("_total") in code_words():
        return True  # prometheus_client adds the suffix to a counter's name
    parts = token.split(".")
    module_path = "/".join(parts)
    if any(f.endswith((module_path + ".py", module_path + "/__init__.py")) for f in tracked_files()):
        return True
    if any(d.endswith(module_path + "/") for d in tracked_dirs()):
        return True  # a PEP 420 namespace package or a data folder
    return all(part in code_words() for part in parts)


PATHS = [t for t in cited() if not NOT_A_NAME.search(t.rstrip("/")) and is_path(t)]
# `_suffix` tokens abbreviate the metric named first in their table row: not names of their own.
NAMES = [t for t in cited() if not NOT_A_NAME.search(t) and not is_path(t) and "/" not in t and not t.startswith("_")
         and re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", t)
         and (("." in t) or re.search(r"[A-Z]", t[1:]) or "_" in t.strip("_"))]


def test_the_doc_cites_paths_and_names() -> None:
    assert len(PATHS) > 50 and len(NAMES) > 50  # the extraction below still finds what the doc cites


@pytest.mark.parametrize("token", PATHS)
def test_cited_path_exists(token: str) -> None:
    assert path_exists(token), f"ARCHITECTURE.md cites `{token}`, which no file or folder in the tree matches"


@pytest.mark.parametrize("token", NAMES)
def test_cited_name_exists(token: str) -> None:
    assert name_exists(token), f"ARCHITECTURE.md cites `{token}`, which the code and its data files never name"


def test_no_table_repeats_a_row() -> None:
    """A table row written twice is a fact with two owners: one copy goes stale (it happened to two rows)."""
    repeated: list[str] = []
    first_cells: dict[str, int] = {}
    for number, line in enumerate(DOC.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("|"):
            first_cells = {}
            continue
        if line.startswith("|---"):
            continue
        cell = line.split("|")[1].strip()
        if cell in first_cells:
            repeated.append(f"line {number} repeats line {first_cells[cell]}: {cell}")
        first_cells[cell] = number
    assert not repeated
