"""Boiler logic against the fake device boundary (no sockets): clamping, safe state, telemetry."""

from __future__ import annotations

from typing import Any

import pytest

from boiler_module.config import BoilerSettings
from boiler_module.device import BoilerDevice, NordvarmeBoilerDevice
from boiler_module.registers import BOILER_MAP
from energy_edge_base.devices import load_device_type
from energy_edge_base.methods import MethodError
from energy_edge_base.modbus.fake import FakeModbusDevice

DEVICE_VALUES = {"water_temp_c": 60.0, "heater_power_kw": 0.0, "state": 0, "fault_code": 0, "min_temp_c": 45.0,
                 "max_temp_c": 85.0, "rated_power_kw": 30.0, "enable": 1, "setpoint_c": 55.0, "power_limit_kw": 30.0}


class FakeBoiler(BoilerDevice):
    def __init__(self, fake: FakeModbusDevice) -> None:
        super().__init__(BoilerSettings(asset_id="boiler-1", host="fake"), None)
        self.fake = fake

    def make_transport(self) -> Any:
        return self.fake


@pytest.fixture
def fake() -> FakeModbusDevice:
    return FakeModbusDevice(BOILER_MAP, DEVICE_VALUES)


@pytest.mark.parametrize(
    ("requested", "applied"),
    [(70.0, 70.0), (95.0, 85.0), (20.0, 45.0), (60.04, 60.0)],
)
async def test_set_temperature_clamps_to_the_band(fake: FakeModbusDevice, requested: float, applied: float) -> None:
    boiler = FakeBoiler(fake)
    got, read_back = await boiler.set_temperature(requested)
    assert got == applied
    assert read_back["setpoint_c"] == pytest.approx(applied)
    assert fake.get_value("setpoint_c") == pytest.approx(applied)


@pytest.mark.parametrize(("requested", "applied"), [(10.0, 10.0), (50.0, 30.0), (None, 30.0), (0.0, 0.0)])
async def test_start_limits_heater_power(fake: FakeModbusDevice, requested: float | None, applied: float) -> None:
    boiler = FakeBoiler(fake)
    got, _ = await boiler.start(requested)
    assert got == applied
    assert fake.get_value("power_limit_kw") == pytest.approx(applied)
    assert fake.get_value("enable") == 1
    assert boiler.setpoint_kw == -applied  # heating draws from the site bus


async def test_safe_state_restores_thermostat_operation(fake: FakeModbusDevice) -> None:
    boiler = FakeBoiler(fake)
    await boiler.start(5.0)
    await boiler.set_temperature(80.0)
    await boiler.stop()
    await boiler.safe_state()
    assert (fake.get_value("enable"), fake.get_value("setpoint_c"), fake.get_value("power_limit_kw")) == (1, 55.0, 30.0)


async def test_offline_device_is_reported_and_commands_answer_503(fake: FakeModbusDevice) -> None:
    boiler = FakeBoiler(fake)
    await boiler.poll()
    boiler.health.poll_outcome(None)  # what the poll loop records for a good poll
    assert boiler.telemetry("site-1").water_temp_c == 60.0  # type: ignore[attr-defined]
    await boiler.close()
    fake.fail_transport()
    with pytest.raises(MethodError) as refused:
        await boiler.set_temperature(60)
    assert refused.value.status == 503
    boiler.health.poll_outcome("unreachable: connection refused")
    telemetry = boiler.telemetry("site-1")
    assert telemetry.online is False  # type: ignore[attr-defined]
    assert telemetry.state == "offline"  # type: ignore[attr-defined]


async def test_telemetry_sign_convention(fake: FakeModbusDevice) -> None:
    fake.set_value("heater_power_kw", 12.5)
    boiler = FakeBoiler(fake)
    await boiler.poll()
    boiler.health.poll_outcome(None)  # what the poll loop records for a good poll
    telemetry = boiler.telemetry("site-1")
    assert telemetry.power_kw == -12.5  # type: ignore[attr-defined]
    assert telemetry.heater_power_kw == 12.5  # type: ignore[attr-defined]


# ---------------------------------------------------------------- device types


@pytest.mark.parametrize(("device_type", "error"), [
    ("boiler", None), ("boiler_nordvarme", None),
    ("microgrid_controller", "unknown boiler device type 'microgrid_controller'"),
    ("heatpump", "unknown boiler device type 'heatpump'"),
])
def test_device_type_setting(device_type: str, error: str | None) -> None:
    from pydantic import ValidationError

    if error is None:
        assert BoilerSettings(asset_id="b", host="h", device_type=device_type).device_type == device_type
    else:
        with pytest.raises(ValidationError, match=error):
            BoilerSettings(asset_id="b", host="h", device_type=device_type)


class FakeNordvarme(NordvarmeBoilerDevice):
    def __init__(self, fake: FakeModbusDevice) -> None:
        super().__init__(BoilerSettings(asset_id="boiler-2", host="fake", device_type="boiler_nordvarme"), None)
        self.fake = fake

    def make_transport(self) -> Any:
        return self.fake


@pytest.fixture
def nordvarme() -> FakeModbusDevice:
    values = {k: v for k, v in DEVICE_VALUES.items()}
    values["heater_energy_kwh"] = 12.0
    return FakeModbusDevice(load_device_type("boiler_nordvarme").register_map(), values)


@pytest.mark.parametrize(("requested", "applied"), [(70.0, 70.0), (70.3, 70.5), (70.2, 70.0), (95.0, 85.0)])
async def test_nordvarme_setpoint_in_half_kelvin_steps(nordvarme: FakeModbusDevice, requested: float,
                                                       applied: float) -> None:
    got, read_back = await FakeNordvarme(nordvarme).set_temperature(requested)
    assert got == applied and read_back["setpoint_c"] == applied


async def test_nordvarme_has_no_remote_reset(nordvarme: FakeModbusDevice) -> None:
    with pytest.raises(MethodError, match="no remote reset") as info:
        await FakeNordvarme(nordvarme).reset()
    assert info.value.status == 409


def test_the_module_picks_the_class_by_device_type() -> None:
    from boiler_module.module import BoilerModule

    module = BoilerModule()
    for device_type, cls in (("boiler", BoilerDevice), ("boiler_nordvarme", NordvarmeBoilerDevice)):
        device = module.make_device(BoilerSettings(asset_id="b", host="h", device_type=device_type))
        assert type(device) is cls
