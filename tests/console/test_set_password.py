"""`energy-edge console set-password` and its in-container form `python -m energy_edge_base.credentials`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from energy_edge_base.credentials import read_credentials, verify_password
from tests.support import ENERGY_EDGE, REPO

COMMANDS = {
    "cli": [*ENERGY_EDGE, "console", "set-password"],
    "in the container": [sys.executable, "-m", "energy_edge_base.credentials"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    ("user", "password", "code", "stored"),
    [
        ("technician", "a long enough one", 0, True),
        ("auditor", "short", 1, False),  # refused: nothing written
    ],
)
def test_set_password(tmp_path: Path, command: str, user: str, password: str, code: int, stored: bool) -> None:
    path = tmp_path / "console-credentials.json"
    result = subprocess.run([*COMMANDS[command], "--file", str(path), "--user", user, "--password-stdin"],
                            input=password + "\n", capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == code, result.stderr
    users = read_credentials(path)
    assert (user in users) is stored
    if stored:
        assert verify_password(password, users[user]) and path.stat().st_mode & 0o077 == 0
