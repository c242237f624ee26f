"""Every register map the modules declare, walked against the simulator over Modbus TCP.

One table: for each device, how the module finds its map (static vendor map, or SunSpec discovery)
and which register must agree with which value of the simulated plant. Adding a device adds a row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from boiler_module.registers import BOILER_MAP
from energy_edge_base import sunspec
from energy_edge_base.modbus import ModbusPoller, ModbusTransport, RegisterMap
from energy_edge_base.modbus.poller import PymodbusTcpTransport
from microgrid_controller_module.registers import PCC_MAP
from tests.support import SimProcess, next_loopback

pytestmark = pytest.mark.integration


async def battery_map(transport: ModbusTransport) -> RegisterMap:
    from battery_module.device import MODELS, REQUIRED_MODELS

    return await sunspec.discover_map(transport, "battery", MODELS, REQUIRED_MODELS)


async def solar_map(transport: ModbusTransport) -> RegisterMap:
    from solar_module.device import MODELS, REQUIRED_MODELS

    return await sunspec.discover_map(transport, "solar", MODELS, REQUIRED_MODELS)


async def static(register_map: RegisterMap, transport: ModbusTransport) -> RegisterMap:
    return register_map


MapSource = Callable[[ModbusTransport], Any]

# (asset id, map source, {register: (device|site, state key, scale to the register's unit, tolerance)})
TABLE: list[tuple[str, MapSource, dict[str, tuple[str, str, float, float]]]] = [
    ("pv-1", solar_map, {
        "ac_power_w": ("device", "power_kw", 1000, 200),
        "rated_power_w": ("device", "rated_kw", 1000, 1),
        "connect": ("device", "conn", 1, 0),
        "power_limit_enable": ("device", "wmaxlim_ena", 1, 0),
    }),
    ("bess-1", battery_map, {
        "ac_power_w": ("device", "power_kw", 1000, 200),
        "state_of_charge_pct": ("device", "soc_pct", 1, 0.2),
        "soc_pct": ("device", "soc_pct", 1, 0.2),
        "capacity_wh": ("device", "capacity_kwh", 1000, 100),
        "max_charge_w": ("device", "wchamax_kw", 1000, 1),
        "storage_control_mode": ("device", "storctl_mod", 1, 0),
        "soh_pct": ("device", "soh_pct", 1, 0.2),
    }),
    ("boiler-1", lambda t: static(BOILER_MAP, t), {
        "water_temp_c": ("device", "temp_c", 1, 0.2),
        "setpoint_c": ("device", "setpoint_c", 1, 0.1),
        "rated_power_kw": ("device", "rated_kw", 1, 0.1),
        "min_temp_c": ("device", "min_temp_c", 1, 0.1),
        "max_temp_c": ("device", "max_temp_c", 1, 0.1),
        "enable": ("device", "enable", 1, 0),
        "power_limit_kw": ("device", "power_limit_kw", 1, 0.1),
    }),
    ("mgc-1", lambda t: static(PCC_MAP, t), {
        "grid_import_w": ("site", "grid_import_kw", 1000, 3000),
        "site_load_w": ("site", "site_load_kw", 1000, 3000),
        "import_limit_w": ("site", "import_limit_kw", 1000, 1),
        "frequency_hz": ("site", "frequency_hz", 1, 0.2),
        "voltage_v": ("site", "voltage_v", 1, 5),
        "status": ("site", "status", 1, 0),
        "peak_shaving_enable": ("site", "peak_shaving_enable", 1, 0),
        "der_enable": ("site", "der_enable", 1, 0),
    }),
]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    # accel 0: time stands still, so the registers and the admin state describe the same instant
    process = SimProcess(Path(tmp_path_factory.mktemp("maps-sim")), next_loopback(), accel=0).start()
    yield process
    process.stop()


@pytest.mark.parametrize(("asset_id", "source", "checks"), TABLE, ids=[row[0] for row in TABLE])
async def test_register_map_against_the_simulator(sim: SimProcess, asset_id: str, source: MapSource,
                                                  checks: dict[str, tuple[str, str, float, float]]) -> None:
    endpoint = next(d for d in sim.state_devices() if d["asset_id"] == asset_id)
    transport = PymodbusTcpTransport(endpoint["host"], endpoint["port"], endpoint["unit_id"], 3.0)
    await transport.connect()
    register_map = await source(transport)
    poller = ModbusPoller(endpoint["host"], endpoint["port"], endpoint["unit_id"], register_map, transport=transport)
    try:
        values = await poller.read_all()  # every register of the map decodes
        assert set(values) == set(register_map.names)
        state = sim.state()
        for register, (where, key, scale, tolerance) in checks.items():
            expected = (state["site"] if where == "site" else state["devices"][asset_id])[key]
            got = values[register]
            assert got is not None, f"{register} not implemented"
            assert float(got) == pytest.approx(float(expected) * scale, abs=tolerance), (register, got, expected)
    finally:
        await poller.close()
