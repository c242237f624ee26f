"""BatteryDevice.set_power over real Modbus TCP against the site simulator's battery (SunSpec 124).

A recording transport sits on the real pymodbus one, so the tests see the requests in the order
they left: the two rates in one FC16, and StorCtl_Mod before or after them as the direction needs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from battery_module.config import BatterySettings
from battery_module.device import BatteryDevice
from energy_edge.sim.main import RunningSim, SimOptions, start_sim
from energy_edge_base.modbus import ModbusTransport, PymodbusTcpTransport

# The `small` scenario's battery: WChaMax 5 kW, so 1 kW is 20.0 % (raw 200 at InOutWRte_SF -1).
ASSET_ID = "bess-1"


class RecordingTransport(PymodbusTcpTransport):
    """The real transport, noting each write as (function code, address, words) before sending it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes: list[tuple[int, int, list[int]]] = []

    async def write_register(self, address: int, value: int) -> None:
        self.writes.append((6, address, [value]))
        await super().write_register(address, value)

    async def write_registers(self, address: int, values: Sequence[int]) -> None:
        self.writes.append((16, address, list(values)))
        await super().write_registers(address, values)


class RecordedBattery(BatteryDevice):
    def __init__(self, settings: BatterySettings) -> None:
        super().__init__(settings, None)  # type: ignore[arg-type]  # set_power needs no module
        self.recorder: RecordingTransport | None = None

    def make_transport(self) -> ModbusTransport:
        s = self.settings
        self.recorder = RecordingTransport(s.host, s.port, s.unit_id, s.timeout_s)
        return self.recorder

    def forget_writes(self) -> None:
        assert self.recorder is not None
        self.recorder.writes.clear()

    def named_writes(self) -> list[tuple[int, str, list[int]]]:
        """The writes so far, by the name of the first register each one wrote."""
        assert self.recorder is not None and self.poller is not None
        names = {r.address: r.name for r in self.poller.register_map.registers}
        return [(code, names[address], words) for code, address, words in self.recorder.writes]


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[RunningSim]:
    options = SimOptions(scenario="small", host="127.0.0.1", data_dir=tmp_path, accel=0.0, base_port=0,
                         admin_port=0)
    running = await start_sim(options, clock=False)
    yield running
    await running.close()


@pytest.fixture
async def battery(sim: RunningSim) -> AsyncIterator[RecordedBattery]:
    entry = next(d for d in sim.sim_json()["devices"] if d["asset_id"] == ASSET_ID)
    device = RecordedBattery(BatterySettings(asset_id=ASSET_ID, host=entry["host"], port=entry["port"],
                                             unit_id=entry["unit_id"]))
    yield device
    await device.close()


def function_codes(sim: RunningSim) -> dict[str, int]:
    counts: dict[str, int] = sim.sim.state()["devices"][ASSET_ID]["modbus"]["by_function_code"]
    return counts


SET_POWER = [
    # power_kw, writes in order (function code, first register, words), storctl_mod, read_back
    pytest.param(
        2.0,
        [(16, "discharge_rate_pct", [400, 0]), (6, "storage_control_mode", [2])],
        2,
        {"discharge_rate_pct": 40.0, "charge_rate_pct": 0.0, "storage_control_mode": 2, "setpoint_kw": 2.0},
        id="discharge-rates-then-mode",
    ),
    pytest.param(
        -1.0,
        [(16, "discharge_rate_pct", [0, 200]), (6, "storage_control_mode", [1])],
        1,
        {"charge_rate_pct": 20.0, "discharge_rate_pct": 0.0, "storage_control_mode": 1, "setpoint_kw": -1.0},
        id="charge-rates-then-mode",
    ),
    pytest.param(
        -9.0,  # clamped to the 5 kW rating
        [(16, "discharge_rate_pct", [0, 1000]), (6, "storage_control_mode", [1])],
        1,
        {"charge_rate_pct": 100.0, "discharge_rate_pct": 0.0, "storage_control_mode": 1, "setpoint_kw": -5.0},
        id="charge-clamped",
    ),
    pytest.param(
        0.0,
        [(6, "storage_control_mode", [0]), (16, "discharge_rate_pct", [0, 0])],
        0,
        {"storage_control_mode": 0, "discharge_rate_pct": 0.0, "charge_rate_pct": 0.0, "setpoint_kw": 0.0},
        id="hold-mode-then-rates",
    ),
]


@pytest.mark.parametrize(("power_kw", "writes", "storctl_mod", "read_back"), SET_POWER)
async def test_set_power_writes_both_rates_in_one_fc16(
    sim: RunningSim,
    battery: RecordedBattery,
    power_kw: float,
    writes: list[tuple[int, str, list[int]]],
    storctl_mod: int,
    read_back: dict[str, Any],
) -> None:
    await battery.ensure_values()
    before = function_codes(sim)
    applied_kw, got = await battery.set_power(power_kw)
    assert got == read_back and list(got) == list(read_back)  # same keys, in the order they were written
    assert applied_kw == read_back["setpoint_kw"]
    assert battery.named_writes() == writes
    after = function_codes(sim)
    assert (after.get("16", 0) - before.get("16", 0), after.get("6", 0) - before.get("6", 0)) == (1, 1)
    plant = sim.sim.state()["devices"][ASSET_ID]
    assert plant["storctl_mod"] == storctl_mod
    assert plant["command_kw"] == pytest.approx(read_back["setpoint_kw"], abs=0.01)


async def test_reversing_never_commands_the_old_direction_at_the_new_rate(
    sim: RunningSim, battery: RecordedBattery
) -> None:
    await battery.set_power(3.0)
    battery.forget_writes()
    await battery.set_power(-2.0)
    # While StorCtl_Mod still says discharge, OutWRte is already 0: the reversal passes through zero.
    assert battery.named_writes() == [(16, "discharge_rate_pct", [0, 400]), (6, "storage_control_mode", [1])]
    assert sim.sim.state()["devices"][ASSET_ID]["command_kw"] == pytest.approx(-2.0, abs=0.01)
