"""Each module installs from only its own requirements.txt into a fresh venv and starts against the emulator.

The staging folder mirrors the module image (Dockerfile): `shared/`, `requirements.txt`, `main.py`
and the module's package side by side in one folder; nothing else of the repository is visible.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import MODULE_FOLDERS, REPO, HubProcess, next_loopback, registry_manager, site_manifest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    root = tmp_path_factory.mktemp("fresh-hub")
    manifest = root / "deployment.json"
    manifest.write_text(json.dumps(site_manifest("127.0.0.1", drop=("simulator",), probe_inputs=False)))
    process = HubProcess(manifest, root / "hub", next_loopback()).start()
    yield process
    process.stop()


def stage(module_folder: str, target: Path) -> Path:
    source = REPO / "modules" / module_folder
    app = target / "app"
    skip = shutil.ignore_patterns("tests", "__pycache__", "*.egg-info")
    shutil.copytree(REPO / "shared", app / "shared", ignore=skip)
    for item in source.iterdir():
        if item.name in ("tests", "__pycache__") or item.name.endswith(".egg-info"):
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, app / item.name)
    return app


@pytest.mark.parametrize("module_id", sorted(MODULE_FOLDERS))
def test_module_starts_from_its_own_requirements(hub: HubProcess, module_id: str, tmp_path: Path) -> None:
    app = stage(MODULE_FOLDERS[module_id], tmp_path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # pip must not see the emulator's CA bundle that the test process sets for the service SDK
    pip_env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "VIRTUAL_ENV")}
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"], cwd=app,
                             capture_output=True, text=True, timeout=600, env=pip_env)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {k: v for k, v in pip_env.items() if not k.startswith("PYTHON")}
    env.update(hub.module_env(module_id))
    env.update({"PYTHONUNBUFFERED": "1", "STATE_DIR": str(tmp_path / "state"), "ENERGY_EDGE_BIND_ADDRESS": hub.host,
                "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin"})
    proc = subprocess.Popen([str(python), "main.py"], cwd=app, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        manager = registry_manager(hub)
        deadline = time.monotonic() + 60
        config = {}
        while time.monotonic() < deadline and proc.poll() is None:
            twin = manager.get_module_twin(hub.hub_json["device_id"], module_id)
            config = twin.properties.reported.get("config", {})
            if config.get("status"):
                break
            time.sleep(0.2)
        assert config.get("status") == "applied", config
        assert proc.poll() is None, "module exited"
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output[-3000:]
    # nothing came from the repository's environment: the module ran on the venv's own packages
    assert str(REPO / ".venv") not in subprocess.run(
        [str(python), "-c", "import energy_edge_base, pydantic; print(energy_edge_base.__file__, pydantic.__file__)"],
        capture_output=True, text=True, cwd=app, env=env).stdout
    assert sys.prefix not in str(python)
