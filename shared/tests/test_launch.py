"""The compose launcher: a module's environment from hub.json, then the module itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def hub_json(tmp_path: Path) -> Path:
    path = tmp_path / "hub.json"
    path.write_text(json.dumps({
        "ca_cert": "/edge/hub/tls/ca.pem",
        "modules": {"battery": {"env": {"IOTEDGE_MODULEID": "battery", "IOTEDGE_DEVICEID": "dev"}}},
    }))
    return path


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "energy_edge_base.launch", *args], capture_output=True, text=True,
                          timeout=30)


def test_sets_the_module_environment_and_runs_the_command(tmp_path: Path) -> None:
    show = "import os; print(os.environ['IOTEDGE_MODULEID'], os.environ['EdgeModuleCACertificateFile'])"
    result = run(["--hub-json", str(hub_json(tmp_path)), "--module", "battery", "--", sys.executable, "-c", show])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["battery", "/edge/hub/tls/ca.pem"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--module", "solar"], 1, "no module 'solar'"),
        (["--module", "battery", "--wait-s", "0.1", "--hub-json-missing"], 2, ""),
    ],
)
def test_errors(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    path = hub_json(tmp_path)
    if "--hub-json-missing" in args:
        args = [a for a in args if a != "--hub-json-missing"] + ["--hub-json", str(tmp_path / "absent.json")]
    else:
        args = [*args, "--hub-json", str(path)]
    result = run([*args, "--", "true"])
    assert result.returncode == code
    assert message in result.stderr
