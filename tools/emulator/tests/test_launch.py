"""The launcher (hub/launch.py): a module's environment from hub.json, then the module itself; started as the
emulator's module and as the plain file compose mounts into module images that hold no emulator."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from energy_edge.hub import launch

# The two ways it is started: as the emulator's module, and as the file compose mounts into a module image
# (`python /opt/energy-edge/launch.py`), where no energy_edge package is importable.
LAUNCHERS = {"module": [sys.executable, "-m", "energy_edge.hub.launch"],
             "file": [sys.executable, "-I", launch.__file__]}


def hub_json(tmp_path: Path, emulator_dir: str = "/app/data/hub",
             workload_uri: str = "unix:///app/data/hub/workload/battery.sock") -> Path:
    """hub.json as an emulator with `--data-dir emulator_dir` writes it, seen here in `tmp_path`."""
    path = tmp_path / "hub.json"
    path.write_text(json.dumps({
        "ca_cert": f"{emulator_dir}/tls/ca.pem",
        "modules": {"battery": {"env": {"IOTEDGE_MODULEID": "battery", "IOTEDGE_DEVICEID": "dev",
                                        "IOTEDGE_WORKLOADURI": workload_uri}}},
    }))
    return path


Run = Callable[[list[str]], subprocess.CompletedProcess[str]]


@pytest.fixture(params=sorted(LAUNCHERS))
def run(request: pytest.FixtureRequest) -> Run:
    def started(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*LAUNCHERS[request.param], *args], capture_output=True, text=True, timeout=30)
    return started


SHOW = "import os; print(os.environ['IOTEDGE_MODULEID'], os.environ['EdgeModuleCACertificateFile'], " \
       "os.environ['IOTEDGE_WORKLOADURI'])"


@pytest.mark.parametrize(
    ("emulator_dir", "workload_uri", "expected_ca", "expected_uri"),
    [
        # compose: the emulator's /app/data is this container's /edge: its paths move with the volume
        ("/app/data/hub", "unix:///app/data/hub/workload/battery.sock", "{here}/tls/ca.pem",
         "unix://{here}/workload/battery.sock"),
        # the emulator on this machine: the same paths
        ("{here}", "unix://{here}/workload/battery.sock", "{here}/tls/ca.pem", "unix://{here}/workload/battery.sock"),
        # a socket outside the data dir (a long data dir puts it under the temp dir) and an HTTP URI stay as they are
        ("/app/data/hub", "unix:///tmp/ee-workload-1/battery.sock", "{here}/tls/ca.pem",
         "unix:///tmp/ee-workload-1/battery.sock"),
        ("/app/data/hub", "http://127.0.0.1:15580/", "{here}/tls/ca.pem", "http://127.0.0.1:15580/"),
    ],
)
def test_sets_the_module_environment_and_runs_the_command(
        run: Run, tmp_path: Path, emulator_dir: str, workload_uri: str, expected_ca: str, expected_uri: str) -> None:
    here = str(tmp_path.resolve())
    path = hub_json(tmp_path, emulator_dir.format(here=here), workload_uri.format(here=here))
    result = run(["--hub-json", str(path), "--module", "battery", "--", sys.executable, "-c", SHOW])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["battery", expected_ca.format(here=here), expected_uri.format(here=here)]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--module", "solar"], 1, "no module 'solar'"),
        (["--module", "battery", "--wait-s", "0.1", "--hub-json-missing"], 2, ""),
    ],
)
def test_errors(run: Run, tmp_path: Path, args: list[str], code: int, message: str) -> None:
    path = hub_json(tmp_path)
    if "--hub-json-missing" in args:
        args = [a for a in args if a != "--hub-json-missing"] + ["--hub-json", str(tmp_path / "absent.json")]
    else:
        args = [*args, "--hub-json", str(path)]
    result = run([*args, "--", "true"])
    assert result.returncode == code
    assert message in result.stderr


def test_it_imports_only_the_standard_library() -> None:
    """Module images have no emulator and no third-party package beyond their own: the mounted file must run there."""
    tree = ast.parse(Path(launch.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported - {"__future__"} <= sys.stdlib_module_names, imported - sys.stdlib_module_names
