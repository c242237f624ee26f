"""The simulated devices over real Modbus TCP: pysunspec2, pymodbus FC 3/4/6/16, exceptions, faults, admin API."""

from __future__ import annotations

from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from energy_edge.sim.devices import sunspec_points
from tools.simulator.tests.support import SimThread, s16, s32, u32

PV = {p.key: p.address for p in sunspec_points([1, 103, 120, 123])}
BESS = {p.key: p.address for p in sunspec_points([1, 103, 120, 124, 713])}


def sunspec_device(site: SimThread, asset_id: str) -> Any:
    sunspec_client = pytest.importorskip("sunspec2.modbus.client")
    entry = site.device(asset_id)
    device = sunspec_client.SunSpecModbusClientDeviceTCP(slave_id=entry["unit_id"], ipaddr=entry["host"],
                                                          ipport=entry["port"], timeout=5)
    device.scan()
    return device


def grid_import_w(site: SimThread) -> int:
    with site.client("mgc-1") as c:
        rr = c.read_input_registers(0, count=2, device_id=site.device("mgc-1")["unit_id"])
        assert not rr.isError(), rr
        return s32(rr.registers)


def error_code(rr: Any) -> int | None:
    return int(rr.exception_code) if rr.isError() else None


# ---------------------------------------------------------------- endpoints


def test_sim_json_lists_the_endpoints(site: SimThread) -> None:
    doc = site.sim_json
    assert doc["site_id"] == "site-sim-small" and doc["admin_url"].startswith("http://127.0.0.1:")
    kinds = {d["asset_id"]: (d["kind"], d["protocol"], d["unit_id"]) for d in doc["devices"]}
    assert kinds == {"pv-1": ("solar", "sunspec", 1), "bess-1": ("battery", "sunspec", 2),
                     "boiler-1": ("boiler", "vendor", 3), "mgc-1": ("microgrid_controller", "vendor", 4)}
    ports = [d["port"] for d in doc["devices"]]
    assert len(set(ports)) == 4 and all(p > 0 for p in ports)
    bess = site.device("bess-1")
    assert bess["capacity_kwh"] == 10 and bess["max_discharge_kw"] == 5 and bess["host"] == "127.0.0.1"


def test_control_point_addresses() -> None:
    """The absolute addresses documented in docs/register-maps.md."""
    assert (PV["103.W"], PV["103.W_SF"], PV["103.St"]) == (40084, 40085, 40108)
    assert (PV["123.Conn"], PV["123.WMaxLimPct"], PV["123.WMaxLim_Ena"], PV["123.WMaxLimPct_SF"]) == \
        (40154, 40155, 40159, 40173)
    assert (BESS["124.WChaMax"], BESS["124.StorCtl_Mod"], BESS["124.ChaState"], BESS["124.ChaSt"]) == \
        (40152, 40155, 40158, 40161)
    assert (BESS["124.OutWRte"], BESS["124.InWRte"], BESS["124.InOutWRte_RvrtTms"]) == (40162, 40163, 40165)
    assert (BESS["124.WChaMax_SF"], BESS["124.ChaState_SF"], BESS["124.InOutWRte_SF"]) == (40168, 40172, 40175)
    assert (BESS["713.SoC"], BESS["end.ID"]) == (40180, 40185)


# ---------------------------------------------------------------- pysunspec2


def test_pysunspec2_scans_the_solar_inverter_and_limits_its_power(fresh_site: SimThread) -> None:
    device = sunspec_device(fresh_site, "pv-1")
    try:
        assert [m for m in device.models if isinstance(m, int)] == [1, 103, 120, 123]
        common = device.models[1][0]
        assert common.Mn.value == "energy-edge" and common.SN.value == "SIM-pv-1"
        assert device.models[120][0].WRtg.cvalue == 10000
        inverter = device.models[103][0]
        inverter.read()
        assert inverter.W.cvalue == pytest.approx(12 * 800 * 0.86, abs=10)  # 8256 W
        assert inverter.St.value == 4  # MPPT
        controls = device.models[123][0]
        controls.WMaxLimPct.cvalue = 50
        controls.WMaxLim_Ena.value = 1
        controls.write()  # two single-register writes: FC6
        inverter.read()
        assert inverter.W.cvalue == pytest.approx(5000, abs=10)
        assert inverter.St.value == 5  # THROTTLED
        controls.read()
        assert controls.WMaxLimPct.cvalue == 50 and controls.WMaxLim_Ena.value == 1
    finally:
        device.close()
    assert fresh_site.state()["devices"]["pv-1"]["power_kw"] == pytest.approx(5.0)
    assert fresh_site.state()["devices"]["pv-1"]["modbus"]["by_function_code"]["6"] == 2


def test_pysunspec2_reads_the_battery_and_commands_a_discharge(fresh_site: SimThread) -> None:
    before = grid_import_w(fresh_site)
    device = sunspec_device(fresh_site, "bess-1")
    try:
        assert [m for m in device.models if isinstance(m, int)] == [1, 103, 120, 124, 713]
        storage = device.models[124][0]
        assert storage.ChaState.cvalue == pytest.approx(50.0)
        assert storage.WChaMax.cvalue == 5000 and storage.ChaSt.value == 6  # HOLDING
        capacity = device.models[713][0]
        assert (capacity.WHRtg.cvalue, capacity.SoC.cvalue, capacity.SoH.cvalue) == (10000, 50.0, 100.0)
        assert device.models[120][0].DERTyp.value == 82
        storage.StorCtl_Mod.value = 2
        storage.OutWRte.cvalue = 40.0
        storage.write()
        inverter = device.models[103][0]
        inverter.read()
        assert inverter.W.cvalue == pytest.approx(2000, abs=10)
        storage.read()
        assert storage.ChaSt.value == 3  # DISCHARGING
    finally:
        device.close()
    assert grid_import_w(fresh_site) == pytest.approx(before - 2000, abs=2)


# ---------------------------------------------------------------- pymodbus: function codes


def test_battery_discharge_over_modbus_lowers_the_meter_reading(fresh_site: SimThread) -> None:
    unit = fresh_site.device("bess-1")["unit_id"]
    before = grid_import_w(fresh_site)
    with fresh_site.client("bess-1") as c:
        assert not c.write_register(BESS["124.StorCtl_Mod"], 2, device_id=unit).isError()  # FC6
        rr = c.write_registers(BESS["124.OutWRte"], [1000, 0], device_id=unit)  # FC16: OutWRte 100.0 %, InWRte 0
        assert not rr.isError(), rr
        w = c.read_holding_registers(BESS["103.W"], count=2, device_id=unit)
        assert s16(w.registers[0]) * 10 ** s16(w.registers[1]) == pytest.approx(5000, abs=10)
    assert grid_import_w(fresh_site) == pytest.approx(before - 5000, abs=2)
    fresh_site.advance(600)
    state = fresh_site.state()["devices"]["bess-1"]
    assert state["soc_pct"] == pytest.approx(50 - 100 * 5 * (600 / 3600) / 0.9 ** 0.5 / 10, abs=0.01)
    with fresh_site.client("bess-1") as c:
        soc = c.read_holding_registers(BESS["124.ChaState"], count=1, device_id=unit).registers[0]
    assert soc / 10 == pytest.approx(state["soc_pct"], abs=0.05)


def test_fc3_and_fc4_read_the_same_sunspec_map_and_fc6_fc16_write(fresh_site: SimThread) -> None:
    unit = fresh_site.device("pv-1")["unit_id"]
    with fresh_site.client("pv-1") as c:
        hr = c.read_holding_registers(40000, count=70, device_id=unit)
        ir = c.read_input_registers(40000, count=70, device_id=unit)
        assert hr.registers == ir.registers and hr.registers[:4] == [0x5375, 0x6E53, 1, 66]
        assert not c.write_register(PV["123.Conn"], 0, device_id=unit).isError()  # FC6: disconnect
        assert c.read_holding_registers(PV["103.W"], count=1, device_id=unit).registers == [0]
        assert c.read_holding_registers(PV["103.St"], count=1, device_id=unit).registers == [8]  # STANDBY
        rr = c.write_registers(PV["123.Conn"], [1, 250], device_id=unit)  # FC16: Conn 1, WMaxLimPct 25.0 %
        assert not rr.isError(), rr
        assert not c.write_register(PV["123.WMaxLim_Ena"], 1, device_id=unit).isError()
        assert c.read_holding_registers(PV["103.W"], count=1, device_id=unit).registers == [2500]  # W_SF 0: 10 kW
    counts = fresh_site.state()["devices"]["pv-1"]["modbus"]["by_function_code"]
    assert counts["6"] >= 2 and counts["16"] >= 1 and counts["4"] >= 1


def test_boiler_vendor_map(fresh_site: SimThread) -> None:
    unit = fresh_site.device("boiler-1")["unit_id"]
    with fresh_site.client("boiler-1") as c:
        ir = c.read_input_registers(0, count=10, device_id=unit).registers
        assert s16(ir[0]) == 560 and ir[2] == 0 and ir[4:7] == [450, 750, 30]  # 56.0 degC idle, 45/75, 3.0 kW
        hr = c.read_holding_registers(100, count=4, device_id=unit).registers
        assert hr == [1, 550, 30, 0]
        assert not c.write_registers(101, [700, 20], device_id=unit).isError()  # setpoint 70.0, limit 2.0 kW
        ir = c.read_input_registers(0, count=10, device_id=unit).registers
        assert ir[1] == 20 and ir[2] == 1  # heating at 2.0 kW
        assert not c.write_register(100, 0, device_id=unit).isError()  # disable
        ir = c.read_input_registers(0, count=3, device_id=unit).registers
        assert ir[1] == 0 and ir[2] == 2
    fresh_site.fault("boiler-1", "trip")
    with fresh_site.client("boiler-1") as c:
        assert c.read_input_registers(2, count=2, device_id=unit).registers == [3, 2]  # fault, code 2
    fresh_site.fault("boiler-1", "none")
    with fresh_site.client("boiler-1") as c:
        assert c.read_input_registers(2, count=2, device_id=unit).registers == [2, 0]


def set_boiler_temp(site: SimThread, temp_c: float) -> None:
    def apply() -> None:
        site.sim.plant.boilers["boiler-1"].temp_c = temp_c
        site.sim.on_control()

    site.call(apply)


def test_boiler_reset_clears_a_fault(fresh_site: SimThread) -> None:
    unit = fresh_site.device("boiler-1")["unit_id"]
    set_boiler_temp(fresh_site, 85.5)  # above max + 5 K: over-temperature fault
    with fresh_site.client("boiler-1") as c:
        assert c.read_input_registers(2, count=2, device_id=unit).registers == [3, 1]
        rr = c.write_register(103, 1, device_id=unit)
        assert not rr.isError()  # accepted, but the cause is still there
        assert c.read_input_registers(2, count=2, device_id=unit).registers == [3, 1]
        set_boiler_temp(fresh_site, 70.0)
        rr = c.write_register(103, 1, device_id=unit)
        assert not rr.isError() and rr.registers == [1]  # the echo of the written value
        assert c.read_input_registers(2, count=2, device_id=unit).registers == [0, 0]
    fresh_site.advance(1)
    with fresh_site.client("boiler-1") as c:
        assert c.read_holding_registers(103, count=1, device_id=unit).registers == [0]


def test_controller_vendor_map_and_status(fresh_site: SimThread) -> None:
    unit = fresh_site.device("mgc-1")["unit_id"]
    with fresh_site.client("mgc-1") as c:
        ir = c.read_input_registers(0, count=12, device_id=unit).registers
        assert s32(ir[0:2]) == pytest.approx(6000 - 8256, abs=2) and s32(ir[2:4]) == 6000
        assert ir[4] == pytest.approx(5000, abs=5) and ir[5] == pytest.approx(4000, abs=30)
        assert ir[6] == 0b110  # DER active (PV), grid connected
        assert c.read_holding_registers(100, count=5, device_id=unit).registers == [0, 8000, 1, 1, 0]
        assert not c.write_registers(100, [0, 5000], device_id=unit).isError()  # import limit 5 kW
    status, _ = fresh_site.http("POST", "/load", {"offset_kw": 4.0})  # import now about 1.7 kW
    assert status == 200
    fresh_site.advance(120)
    with fresh_site.client("mgc-1") as c:
        assert c.read_input_registers(6, count=1, device_id=unit).registers[0] & 1 == 0  # 1.7 kW: not guarding
    fresh_site.http("POST", "/load", {"offset_kw": 8.0})  # about 5.7 kW: above the 5 kW limit
    fresh_site.advance(300)
    with fresh_site.client("mgc-1") as c:
        assert c.read_input_registers(6, count=1, device_id=unit).registers[0] == 0b111
        assert u32(c.read_input_registers(7, count=2, device_id=unit).registers) > 0  # import energy
        assert not c.write_register(103, 0, device_id=unit).isError()  # der_enable 0 blocks PV
        assert s32(c.read_input_registers(0, count=2, device_id=unit).registers) == pytest.approx(14000, abs=2)
    assert fresh_site.state()["devices"]["pv-1"]["power_kw"] == 0


# ---------------------------------------------------------------- exceptions


@pytest.mark.parametrize(
    ("asset_id", "op", "address", "arg", "code"),
    [
        ("pv-1", "hr", 39999, 1, 2),  # below the map
        ("pv-1", "hr", 40178, 1, 2),  # past the end marker
        ("pv-1", "ir", 40170, 10, 2),  # running past the end
        ("pv-1", "w6", 40084, 100, 2),  # W is read-only
        ("pv-1", "w16", 40000, [1, 2], 2),  # the SunS marker is read-only
        ("pv-1", "w6", 40155, 1500, 3),  # WMaxLimPct 150 %
        ("pv-1", "w6", 40154, 2, 3),  # Conn must be 0 or 1
        ("bess-1", "w6", 40158, 100, 2),  # ChaState is read-only
        ("bess-1", "w16", 40162, [1500, 0], 3),  # OutWRte 150 %
        ("bess-1", "w6", 40155, 4, 3),  # StorCtl_Mod has two bits
        ("bess-1", "w6", 40152, 6000, 3),  # WChaMax above the 5 kW rating
        ("boiler-1", "ir", 10, 1, 2),
        ("boiler-1", "hr", 0, 1, 2),
        ("boiler-1", "hr", 100, 5, 2),
        ("boiler-1", "w6", 0, 1, 2),  # input registers cannot be written
        ("boiler-1", "w6", 101, 900, 3),  # setpoint 90 degC above max
        ("boiler-1", "w6", 101, 300, 3),  # setpoint 30 degC below min
        ("boiler-1", "w6", 102, 40, 3),  # power limit 4 kW above the 3 kW rating
        ("boiler-1", "w6", 103, 2, 3),
        ("boiler-1", "w6", 104, 1, 2),
        ("mgc-1", "w6", 101, 100, 2),  # half of the 32-bit import limit
        ("mgc-1", "w16", 100, [0xFFFF, 0xFFFF], 3),  # import limit -1 W
        ("mgc-1", "w6", 103, 5, 3),
        ("mgc-1", "unit", 0, 1, 0x0B),  # another unit id
        ("pv-1", "coils", 0, 1, 1),  # no bit functions
    ],
)
def test_exception_replies(site: SimThread, asset_id: str, op: str, address: int, arg: Any, code: int) -> None:
    unit = site.device(asset_id)["unit_id"]
    with site.client(asset_id) as c:
        if op == "hr":
            rr = c.read_holding_registers(address, count=arg, device_id=unit)
        elif op == "ir":
            rr = c.read_input_registers(address, count=arg, device_id=unit)
        elif op == "w6":
            rr = c.write_register(address, arg, device_id=unit)
        elif op == "w16":
            rr = c.write_registers(address, arg, device_id=unit)
        elif op == "unit":
            rr = c.read_input_registers(address, count=arg, device_id=unit + 10)
        else:
            rr = c.read_coils(address, count=arg, device_id=unit)
        assert error_code(rr) == code
    # nothing changed: a refused write leaves the device as it was
    assert site.state()["devices"]["pv-1"]["wmaxlim_pct"] == 100.0


# ---------------------------------------------------------------- faults


def test_fault_offline_and_back(fresh_site: SimThread) -> None:
    entry = fresh_site.device("pv-1")
    with fresh_site.client("pv-1") as c:
        assert not c.read_holding_registers(40000, count=2, device_id=1).isError()
        fresh_site.fault("pv-1", "offline")
        with pytest.raises((ConnectionException, ModbusIOException, OSError)):
            rr = c.read_holding_registers(40000, count=2, device_id=1)
            assert rr.isError()  # an error response would not do either: the connection is gone
    refused = ModbusTcpClient(entry["host"], port=entry["port"], timeout=1, retries=0)
    assert not refused.connect()
    refused.close()
    assert fresh_site.state()["devices"]["pv-1"]["modbus"]["listening"] is False
    fresh_site.fault("pv-1", "none")
    with fresh_site.client("pv-1") as c:
        assert c.read_holding_registers(40000, count=2, device_id=1).registers == [0x5375, 0x6E53]


def test_fault_exception(fresh_site: SimThread) -> None:
    fresh_site.fault("bess-1", "exception")
    unit = fresh_site.device("bess-1")["unit_id"]
    with fresh_site.client("bess-1") as c:
        assert error_code(c.read_holding_registers(40000, count=2, device_id=unit)) == 4
        assert error_code(c.write_register(BESS["124.StorCtl_Mod"], 2, device_id=unit)) == 4
        fresh_site.fault("bess-1", "exception", code=6)
        assert error_code(c.read_input_registers(40000, count=2, device_id=unit)) == 6
        fresh_site.fault("bess-1", "none")
        assert not c.read_holding_registers(40000, count=2, device_id=unit).isError()
    assert fresh_site.state()["devices"]["bess-1"]["storctl_mod"] == 0  # the refused write did nothing


def test_fault_frozen(fresh_site: SimThread) -> None:
    unit = fresh_site.device("bess-1")["unit_id"]
    with fresh_site.client("bess-1") as c:
        c.write_register(BESS["124.StorCtl_Mod"], 2, device_id=unit)
        c.write_register(BESS["124.OutWRte"], 1000, device_id=unit)
        fresh_site.fault("bess-1", "frozen")
        soc_before = c.read_holding_registers(BESS["124.ChaState"], count=1, device_id=unit).registers
        fresh_site.advance(900)
        assert fresh_site.state()["devices"]["bess-1"]["soc_pct"] < 40  # the plant moved on...
        assert c.read_holding_registers(BESS["124.ChaState"], count=1, device_id=unit).registers == soc_before
        rr = c.write_register(BESS["124.OutWRte"], 500, device_id=unit)  # ...writes still reach it
        assert not rr.isError() and rr.registers == [500]
        assert fresh_site.state()["devices"]["bess-1"]["power_kw"] == pytest.approx(2.5)
        fresh_site.fault("bess-1", "none")
        soc_after = c.read_holding_registers(BESS["124.ChaState"], count=1, device_id=unit).registers
        assert soc_after[0] < soc_before[0] - 50


def test_fault_silent_answers_nothing(fresh_site: SimThread) -> None:
    fresh_site.fault("mgc-1", "silent")
    entry = fresh_site.device("mgc-1")
    client = ModbusTcpClient(entry["host"], port=entry["port"], timeout=0.3, retries=0)
    assert client.connect()  # it accepts the connection...
    try:
        with pytest.raises(ModbusIOException):
            rr = client.read_input_registers(0, count=2, device_id=entry["unit_id"])
            assert rr.isError()
    finally:
        client.close()
    fresh_site.fault("mgc-1", "none")
    assert grid_import_w(fresh_site) != 0


# ---------------------------------------------------------------- admin API


def test_admin_api(fresh_site: SimThread) -> None:
    state = fresh_site.state()
    assert state["site_id"] == "site-sim-small" and state["sim_time"].startswith("2024-06-18T12:00:00")
    assert set(state["devices"]) == {"pv-1", "bess-1", "boiler-1", "mgc-1"}
    assert state["devices"]["bess-1"]["soc_pct"] == 50.0 and state["devices"]["boiler-1"]["temp_c"] == 56.0
    before = grid_import_w(fresh_site)
    status, doc = fresh_site.http("POST", "/load", {"offset_kw": 7.5})
    assert status == 200 and doc["load_kw"] == 13.5
    assert grid_import_w(fresh_site) == pytest.approx(before + 7500, abs=2)  # at once, no time passed
    status, doc = fresh_site.http("POST", "/time", {"advance_s": 90})
    assert status == 200 and doc["t_s"] == 90 and doc["sim_time"].startswith("2024-06-18T12:01:30")
    status, doc = fresh_site.http("POST", "/time", {"accel": 600})
    assert status == 200 and doc["accel"] == 600 and doc["step_s"] == 60
    fresh_site.http("POST", "/time", {"accel": 0})
    assert fresh_site.http("GET", "/faults")[1]["pv-1"] == {"fault": "none"}
    assert fresh_site.http("GET", "/devices")[1][0]["asset_id"] == "pv-1"
    assert fresh_site.http("POST", "/faults", {"asset_id": "nope", "fault": "offline"})[0] == 404
    assert fresh_site.http("POST", "/faults", {"asset_id": "pv-1", "fault": "melt"})[0] == 400
    assert fresh_site.http("POST", "/faults", {"asset_id": "pv-1", "fault": "exception", "code": 99})[0] == 400
    assert fresh_site.http("POST", "/load", {"offset_kw": "a lot"})[0] == 400
    assert fresh_site.http("POST", "/time", {"accel": -1})[0] == 400


def test_revert_timer_over_modbus(fresh_site: SimThread) -> None:
    unit = fresh_site.device("bess-1")["unit_id"]
    with fresh_site.client("bess-1") as c:
        assert not c.write_register(BESS["124.InOutWRte_RvrtTms"], 30, device_id=unit).isError()
        assert not c.write_register(BESS["124.StorCtl_Mod"], 1, device_id=unit).isError()
        assert not c.write_register(BESS["124.InWRte"], 500, device_id=unit).isError()  # charge 2.5 kW
        assert s16(c.read_holding_registers(BESS["103.W"], count=1, device_id=unit).registers[0]) == -2500
        fresh_site.advance(29)
        assert c.read_holding_registers(BESS["124.ChaSt"], count=1, device_id=unit).registers == [4]  # CHARGING
        fresh_site.advance(2)
        regs = c.read_holding_registers(BESS["124.StorCtl_Mod"], count=1, device_id=unit).registers
        assert regs == [0]
        assert c.read_holding_registers(BESS["103.W"], count=1, device_id=unit).registers == [0]
    assert fresh_site.state()["devices"]["bess-1"]["reverted"] == 1
