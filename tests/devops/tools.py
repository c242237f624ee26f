"""Where the validators live: check-jsonschema in the project's venv, checkov and ansible in .venv-tools/
(installed by scripts/install-devops-tools.sh, which `make test` runs first)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

TOOLS = REPO / ".venv-tools"


def tool(env: str, name: str) -> Path:
    """A validator's executable; the test fails (not skips) when `make test`'s install step did not run."""
    path = TOOLS / env / "bin" / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `bash scripts/install-devops-tools.sh` (make test does)")
    return path


def run(argv: list[str | Path], cwd: Path = REPO, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def check_jsonschema() -> list[str]:
    found = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "check_jsonschema"]
