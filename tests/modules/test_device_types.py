"""The walking test: every device type data file, read by the module's map against the simulator over Modbus TCP.

One simulator serves one device per data file in energy_edge_base/devices (the scenario is written from the
list of files, so a new file is walked without touching this test). For each: every register of the map
decodes, the registers that name a plant quantity agree with the simulator's state, every writable
register takes a write and reads it back, and the device's liveness points are registers it serves.
Boilers are also driven through the boiler module's own device class for their type.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from energy_edge_base.devices import device_type_names, load_device_type
from energy_edge_base.modbus import ModbusPoller
from tests.support import SimProcess, next_loopback

pytestmark = pytest.mark.integration

# Per kind: {register name: (device|site state, state key, scale to the register's unit)}. A data file of the
# kind names its registers after these quantities; the ones it has are checked, within its resolution.
QUANTITIES: dict[str, dict[str, tuple[str, str, float]]] = {
    "boiler": {
        "water_temp_c": ("device", "temp_c", 1), "heater_power_kw": ("device", "heater_kw", 1),
        "setpoint_c": ("device", "setpoint_c", 1), "rated_power_kw": ("device", "rated_kw", 1),
        "min_temp_c": ("device", "min_temp_c", 1), "max_temp_c": ("device", "max_temp_c", 1),
        "enable": ("device", "enable", 1), "power_limit_kw": ("device", "power_limit_kw", 1),
    },
    "microgrid_controller": {
        "grid_import_w": ("site", "grid_import_kw", 1000), "site_load_w": ("site", "site_load_kw", 1000),
        "import_limit_w": ("site", "import_limit_kw", 1000), "frequency_hz": ("site", "frequency_hz", 1),
        "voltage_v": ("site", "voltage_v", 1), "status": ("site", "status", 1),
        "peak_shaving_enable": ("site", "peak_shaving_enable", 1), "der_enable": ("site", "der_enable", 1),
    },
}
MOMENTARY = {"reset"}  # a write has an effect (clears a fault), not a value to read back


def _asset_id(name: str) -> str:
    return f"dt-{name.replace('_', '-')}"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    root = Path(tmp_path_factory.mktemp("device-types"))
    devices = [{"kind": load_device_type(name).kind, "asset_id": _asset_id(name), "device_type": name}
               for name in device_type_names()]
    scenario = {"site_id": "site-device-types", "start": "2024-06-18T12:00:00+02:00", "import_limit_kw": 50,
                "load": {"source": "constant", "value": 20.0}, "pv": {"source": "constant", "value": 0.0},
                "heat_demand": {"source": "constant", "value": 0.5}, "devices": devices}
    (root / "scenario.json").write_text(json.dumps(scenario))
    # accel 0: time stands still, so the registers and the admin state describe the same instant
    process = SimProcess(root, next_loopback(), scenario=str(root / "scenario.json"), accel=0).start()
    yield process
    process.stop()


def _endpoint(sim: SimProcess, name: str) -> dict[str, Any]:
    endpoint = next(d for d in sim.state_devices() if d["asset_id"] == _asset_id(name))
    assert endpoint["device_type"] == name
    return endpoint


@pytest.mark.parametrize("name", device_type_names())
async def test_device_type_against_the_simulator(sim: SimProcess, name: str) -> None:
    device_type = load_device_type(name)
    register_map = device_type.register_map()
    endpoint = _endpoint(sim, name)
    poller = ModbusPoller(endpoint["host"], endpoint["port"], endpoint["unit_id"], register_map)
    try:
        values = await poller.read_all()  # every register of the map decodes
        assert set(values) == set(register_map.names)
        assert [n for n, v in values.items() if v is None] == []
        state = sim.state()
        checked = 0
        for register, (where, key, scale) in QUANTITIES[device_type.kind].items():
            if register not in register_map:
                continue
            expected = float((state["site"] if where == "site" else state["devices"][_asset_id(name)])[key]) * scale
            tolerance = {"grid_import_w": 3000, "site_load_w": 3000, "frequency_hz": 0.2, "voltage_v": 5}.get(
                register, register_map[register].resolution() / 2 + 1e-9)
            assert float(values[register]) == pytest.approx(expected, abs=tolerance), register  # type: ignore[arg-type]
            checked += 1
        assert checked >= 4, "a device type names at least a few registers after the plant's quantities"
        for register in register_map.registers:
            if register.writable and register.name not in MOMENTARY:
                assert await poller.write(register.name, values[register.name]) == values[register.name]
        spec = device_type.liveness_spec()
        for point in [spec.heartbeat, *(c.counter for c in spec.counters), *(c.power for c in spec.counters)]:
            assert point is None or point in values
    finally:
        await poller.close()


@pytest.mark.parametrize("name", [n for n in device_type_names() if load_device_type(n).kind == "boiler"])
async def test_boiler_module_drives_every_boiler_type(sim: SimProcess, name: str) -> None:
    """The boiler module's device class for the type sets the thermostat; the simulated boiler follows."""
    from boiler_module.config import BoilerSettings
    from boiler_module.device import DEVICE_CLASSES, BoilerDevice
    from boiler_module.module import BoilerModule

    endpoint = _endpoint(sim, name)
    settings = BoilerSettings(asset_id=endpoint["asset_id"], host=endpoint["host"], port=endpoint["port"],
                              unit_id=endpoint["unit_id"], device_type=name)
    module = BoilerModule()
    device = module.make_device(settings)
    assert type(device) is DEVICE_CLASSES.get(name, BoilerDevice)
    try:
        applied, read_back = await device.set_temperature(71.3)
        step = device.map["setpoint_c"].resolution()
        assert abs(applied - 71.3) <= step / 2 + 1e-9 and read_back["setpoint_c"] == pytest.approx(applied)
        assert sim.state()["devices"][endpoint["asset_id"]]["setpoint_c"] == pytest.approx(applied)
        await device.poll()
        assert device.values["setpoint_c"] == pytest.approx(applied)
        assert device.values["water_temp_c"] == pytest.approx(
            sim.state()["devices"][endpoint["asset_id"]]["temp_c"], abs=device.map["water_temp_c"].resolution())
        # the poller reports its exchanges to the module's metrics (its events are their one source)
        sample = module.metrics.registry.get_sample_value
        labels = {"asset_id": endpoint["asset_id"]}
        assert (sample("energy_edge_device_exchanges_total", {**labels, "operation": "write", "outcome": "ok"})
                or 0) >= 1
        assert (sample("energy_edge_device_exchanges_total", {**labels, "operation": "poll", "outcome": "ok"})
                or 0) >= 1
        assert (sample("energy_edge_device_exchange_seconds_count", {**labels, "operation": "poll"}) or 0) >= 1
    finally:
        await device.close()
