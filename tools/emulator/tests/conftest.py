"""The emulator's test fixtures: the probe deployment, and one emulator with it started once and reused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import HubProcess

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def probe_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One emulator with the probe deployment, shared by the tests that don't restart it."""
    hub = HubProcess(FIXTURES / "probe.deployment.json", tmp_path_factory.mktemp("probe-hub")).start()
    yield hub
    assert hub.stop() == 0
