"""SunSpec devices as data: the points energy-edge uses from each model, and discovery.

A SunSpec device publishes 'SunS' at 40000 (or 0 / 50000), then models back to back, each an
`ID, L` header followed by L registers, ended by ID 0xFFFF. Offsets below are relative to a
model's ID register, as in the SunSpec model definitions (pysunspec2's model_<id>.json).
`discover()` walks the chain once; `build_map()` turns the points of the models found into one
absolute `RegisterMap` the generic poller reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from energy_edge_base.liveness import EnergyCounter, LivenessSpec
from energy_edge_base.modbus import ModbusTransport, Register, RegisterMap
from energy_edge_base.modbus.poller import DeviceUnavailable
from energy_edge_base.modbus.registers import MAX_READ_REGISTERS

# Model 103's lifetime AC energy (WH) against its AC power (W): an inverter whose data froze keeps its counter
# still while its power says energy flows (the counter counts delivered energy: PV output, battery discharge).
AC_ENERGY_LIVENESS = LivenessSpec(counters=(
    EnergyCounter("ac_energy_wh", "ac_power_w", 0.001, 0.001, scale_factor="ac_energy_sf"),))

SUNS_MARKER = (0x5375, 0x6E53)  # "SunS"
BASE_ADDRESSES = (40000, 0, 50000)
END_MODEL_ID = 0xFFFF


@dataclass(frozen=True)
class Point:
    """One SunSpec point: our name (with unit), offset in its model, type, scale factor point."""

    name: str
    offset: int
    data_type: str = "uint16"
    scale_factor: str | None = None  # name of another Point in the same model
    unit: str = ""
    access: str = "r"
    length: int | None = None  # strings only


# Only the points energy-edge reads or writes. Names carry units; raw SunSpec names in comments.
MODELS: dict[int, tuple[Point, ...]] = {
    1: (  # common
        Point("manufacturer", 2, "string", length=16),  # Mn
        Point("model_name", 18, "string", length=16),  # Md
        Point("serial_number", 50, "string", length=16),  # SN
    ),
    103: (  # three-phase inverter
        Point("ac_power_w", 14, "int16", "ac_power_sf", "W"),  # W
        Point("ac_power_sf", 15, "int16"),  # W_SF
        Point("frequency_hz", 16, "uint16", "frequency_sf", "Hz"),  # Hz
        Point("frequency_sf", 17, "int16"),  # Hz_SF
        Point("ac_energy_wh", 24, "uint32", "ac_energy_sf", "Wh"),  # WH (acc32)
        Point("ac_energy_sf", 26, "int16"),  # WH_SF
        Point("operating_state", 38),  # St: 1 off, 2 sleeping, 4 MPPT, 5 throttled, 7 fault, 8 standby
        Point("vendor_state", 39),  # StVnd
        Point("event_bits", 40, "uint32"),  # Evt1
    ),
    120: (  # nameplate
        Point("rated_power_w", 3, "uint16", "rated_power_sf", "W"),  # WRtg
        Point("rated_power_sf", 4, "int16"),  # WRtg_SF
        Point("rated_energy_wh", 19, "uint16", "rated_energy_sf", "Wh"),  # WHRtg
        Point("rated_energy_sf", 20, "int16"),  # WHRtg_SF
        Point("max_charge_rate_w", 23, "uint16", "max_charge_rate_sf", "W"),  # MaxChaRte
        Point("max_charge_rate_sf", 24, "int16"),
        Point("max_discharge_rate_w", 25, "uint16", "max_discharge_rate_sf", "W"),  # MaxDisChaRte
        Point("max_discharge_rate_sf", 26, "int16"),
    ),
    123: (  # immediate controls
        Point("connect", 4, access="rw"),  # Conn: 0 disconnect, 1 connect
        Point("power_limit_pct", 5, "uint16", "power_limit_sf", "%", "rw"),  # WMaxLimPct
        Point("power_limit_revert_s", 7, unit="s", access="rw"),  # WMaxLimPct_RvrtTms
        Point("power_limit_enable", 9, access="rw"),  # WMaxLim_Ena
        Point("power_limit_sf", 23, "int16"),  # WMaxLimPct_SF
    ),
    124: (  # storage
        Point("max_charge_w", 2, "uint16", "max_charge_sf", "W"),  # WChaMax
        Point("storage_control_mode", 5, "bitfield16", access="rw"),  # StorCtl_Mod: bit0 charge, bit1 discharge
        Point("min_reserve_pct", 7, "uint16", "min_reserve_sf", "%", "rw"),  # MinRsvPct
        Point("state_of_charge_pct", 8, "uint16", "state_of_charge_sf", "%"),  # ChaState
        Point("charge_status", 11),  # ChaSt: 1 off, 2 empty, 3 discharging, 4 charging, 5 full, 6 holding
        Point("discharge_rate_pct", 12, "int16", "rate_sf", "%", "rw"),  # OutWRte, % of WChaMax
        Point("charge_rate_pct", 13, "int16", "rate_sf", "%", "rw"),  # InWRte, % of WChaMax
        Point("rate_revert_s", 15, unit="s", access="rw"),  # InOutWRte_RvrtTms
        Point("max_charge_sf", 18, "int16"),  # WChaMax_SF
        Point("min_reserve_sf", 21, "int16"),  # MinRsvPct_SF
        Point("state_of_charge_sf", 22, "int16"),  # ChaState_SF
        Point("rate_sf", 25, "int16"),  # InOutWRte_SF
    ),
    713: (  # DER storage capacity
        Point("capacity_wh", 2, "uint16", "energy_sf", "Wh"),  # WHRtg
        Point("available_energy_wh", 3, "uint16", "energy_sf", "Wh"),  # WHAvail
        Point("soc_pct", 4, "uint16", "percent_sf", "%"),  # SoC
        Point("soh_pct", 5, "uint16", "percent_sf", "%"),  # SoH
        Point("energy_sf", 7, "int16"),  # WH_SF
        Point("percent_sf", 8, "int16"),  # Pct_SF
    ),
}


class NotSunSpec(Exception):
    """The device answered, but no SunSpec marker was found at the known base addresses."""


async def discover(transport: ModbusTransport, bases: Iterable[int] = BASE_ADDRESSES,
                   max_models: int = 64) -> dict[int, int]:
    """Walk the model chain: {model id: absolute address of its ID register} (first of each id)."""
    for base in bases:
        try:
            marker = await transport.read_registers("holding", base, 2)
        except DeviceUnavailable:
            raise
        except Exception:
            continue  # an exception reply at this base: try the next one
        if tuple(marker) != SUNS_MARKER:
            continue
        layout: dict[int, int] = {}
        address = base + 2
        for _ in range(max_models):
            model_id, length = await transport.read_registers("holding", address, 2)
            if model_id == END_MODEL_ID:
                return layout
            layout.setdefault(model_id, address)
            address += 2 + length
        return layout
    raise NotSunSpec(f"no SunSpec marker at {', '.join(map(str, bases))}")


def build_map(name: str, layout: dict[int, int], models: Iterable[int]) -> RegisterMap:
    """One absolute register map from the points of `models` found in `layout`.

    Missing optional models are skipped; a caller that needs one checks `layout` first.
    Point names are unique across the models used together (prefix where they would clash).
    """
    registers = []
    for model_id in models:
        if model_id not in layout:
            continue
        start = layout[model_id]
        for point in MODELS[model_id]:
            registers.append(
                Register(
                    name=point.name,
                    address=start + point.offset,
                    table="holding",
                    data_type=point.data_type,  # type: ignore[arg-type]
                    length=point.length,
                    scale_factor_register=point.scale_factor,
                    unit=point.unit,
                    access=point.access,  # type: ignore[arg-type]
                    not_implemented=point.data_type != "string" and not point.name.endswith("_sf"),
                    description=f"SunSpec model {model_id} offset {point.offset}",
                )
            )
    # A SunSpec map is one contiguous readable block from the `SunS` marker on, so reads may bridge the
    # unmapped points between the ones used: 2 requests per poll instead of 12-18 (benchmarks/README.md, D).
    return RegisterMap(name=name, registers=tuple(registers), max_read_gap_registers=MAX_READ_REGISTERS)


async def discover_map(transport: ModbusTransport, name: str, models: Iterable[int],
                       required: Iterable[int]) -> RegisterMap:
    """Discover the device and build its map; a device without the `required` models is refused."""
    layout = await discover(transport)
    missing = [m for m in required if m not in layout]
    if missing:
        raise ValueError(f"SunSpec models {missing} not found (device has {sorted(layout)})")
    return build_map(name, layout, models)
