"""The emulator on its own: a fresh venv with only the base package and the emulator's distribution installed
imports, starts and answers, and none of the other tools' heavy dependencies came with it (issue #22).

The staging folder holds copies of shared/ and tools/emulator/ only, as a user of the emulator would have them;
pip takes the third-party packages from its index or its cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from tests.support import REPO, next_loopback, start_until_ready, terminate
from tools.emulator.tests.conftest import FIXTURES

pytestmark = pytest.mark.integration

# What the simulator, the benchmark, the local run and the operator commands need; the emulator must not pull it in.
OTHER_TOOLS_ONLY = ("numpy", "highspy", "psycopg", "matplotlib", "pandas", "docker", "rich", "azure.iot.hub")


@pytest.fixture(scope="module")
def emulator_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with `pip install ./shared ./tools/emulator` (not editable: nothing points back into the repo)."""
    root = tmp_path_factory.mktemp("emulator-alone")
    skip = shutil.ignore_patterns("tests", "__pycache__", "*.egg-info", "build")
    for part in ("shared", "tools/emulator"):
        shutil.copytree(REPO / part, root / part, ignore=skip)
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip_env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "VIRTUAL_ENV", "PYTHONPATH")}
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "./shared", "./tools/emulator"], cwd=root, capture_output=True, text=True,
                             timeout=300, env=pip_env)
    assert install.returncode == 0, install.stderr[-3000:]
    return python


def test_the_emulator_alone_has_none_of_the_other_tools_dependencies(emulator_venv: Path) -> None:
    probe = ("import importlib.util, json, sys\n"
             f"names = {list(OTHER_TOOLS_ONLY)!r}\n"
             "def present(name):\n"
             "    try:\n"
             "        return importlib.util.find_spec(name) is not None\n"
             "    except ModuleNotFoundError:\n"
             "        return False\n"
             "import energy_edge.hub.server, energy_edge.service\n"
             "print(json.dumps({'present': [n for n in names if present(n)],\n"
             "                  'tools': [n for n in ('sim', 'run', 'bench', 'ops', 'cli')\n"
             "                            if present('energy_edge.' + n)],\n"
             "                  'hub': energy_edge.hub.server.__file__}))\n")
    result = subprocess.run([str(emulator_venv), "-c", probe], capture_output=True, text=True, timeout=60,
                            cwd=emulator_venv.parent, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout)
    assert found["present"] == [] and found["tools"] == []
    assert str(REPO) not in found["hub"]  # the copy installed in the venv, not the repository's editable install


def test_the_emulator_alone_starts_and_answers(emulator_venv: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "hub"
    hub_cmd = [str(emulator_venv), "-m", "energy_edge.hub"]
    log: list[str] = []
    proc = start_until_ready([*hub_cmd, "--manifest", str(FIXTURES / "probe.deployment.json"),
                              "--host", next_loopback(), "--data-dir", str(data_dir)],
                             "energy-edge hub ready", log, 60, "emulator from its own venv")
    try:
        status = subprocess.run([*hub_cmd, "status", "--data-dir", str(data_dir)], capture_output=True, text=True,
                                timeout=60)
        assert status.returncode == 0, status.stderr[-3000:]
        # the manifest's modules have identities; none is connected yet and the cloud link is up
        assert set(json.loads((data_dir / "hub.json").read_text())["modules"]) == {"probeA", "probeB", "sink"}
        answer = json.loads(status.stdout)
        assert (answer["upstream_online"], answer["connected_modules"]) == (True, [])
    finally:
        assert terminate(proc, 15) == 0, "".join(log)[-3000:]
