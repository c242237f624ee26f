"""Fixtures shared by the integration tests: the module images, built once per session."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.support import REPO


@pytest.fixture(scope="session")
def module_images(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every module image and the simulator image, built once per session by `make images`' script (cold on a
    clean clone in CI, from the layer cache after that). Skips where no Docker Engine answers (not root)."""
    import docker

    try:
        docker.from_env().ping()
    except Exception as exc:
        pytest.skip(f"no Docker Engine answers ({exc}); as root: bash scripts/start-dockerd.sh")
    out = tmp_path_factory.mktemp("images") / "built.json"
    result = subprocess.run([sys.executable, "scripts/build_images.py", "--json", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    built: list[dict[str, Any]] = json.loads(out.read_text())
    return built
