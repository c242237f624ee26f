"""Simulators over real TCP on 127.0.0.1 with ephemeral ports, paused (accel 0) so time moves only on request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from energy_edge.sim.main import SimOptions
from tools.simulator.tests.support import SimThread


def _start(tmp_path_factory: pytest.TempPathFactory, scenario: str = "small") -> SimThread:
    options = SimOptions(scenario=scenario, host="127.0.0.1", data_dir=tmp_path_factory.mktemp("sim"),
                         accel=0.0, base_port=0, admin_port=0)
    return SimThread(options).start()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimThread]:
    """One `small` site shared by a module's tests that leave it as they found it."""
    sim = _start(tmp_path_factory)
    yield sim
    sim.stop()


@pytest.fixture
def fresh_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimThread]:
    """A `small` site of its own (starting one takes about 10 ms), for tests that change it."""
    sim = _start(tmp_path_factory)
    yield sim
    sim.stop()
