"""SunSpec devices as data: the points energy-edge uses from each model, and discovery.

A SunSpec device publishes 'SunS' at 40000 (or 0 / 50000), then models back to back, each an
`ID, L` header followed by L registers, ended by ID 0xFFFF. Offsets are relative to a
model's ID register; they, the types and the scale-factor points come from the SunSpec model definitions
(energy_edge_base/devices/sunspec_models.json, generated from pysunspec2's model_<id>.json).
`discover()` walks the chain once; `build_map()` turns the points of the models found into one
absolute `RegisterMap` the generic poller reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from energy_edge_base.devices import sunspec_model
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


# SunSpec point types as the codec reads them. acc32 stays uint32 with the uint32 "not implemented" pattern,
# enum16 a plain uint16, bitfield32 a uint32: what energy-edge has always decoded them as.
_CODEC_TYPES = {"uint16": "uint16", "enum16": "uint16", "int16": "int16", "sunssf": "int16", "uint32": "uint32",
                "acc32": "uint32", "bitfield32": "uint32", "bitfield16": "bitfield16", "string": "string"}


Use = tuple[str, str] | tuple[str, str, str] | tuple[str, str, str, str]


def _model(model_id: int, *uses: Use) -> tuple[Point, ...]:
    """Our points of a model: (our name, SunSpec name[, unit[, access]]). Offset, type, length and scale-factor
    point come from the model definition (energy_edge_base/devices/sunspec_models.json)."""
    model = sunspec_model(model_id)
    definition = {p.name: p for p in model.points}
    ours = {use[1]: use[0] for use in uses}
    points = []
    for name, sunspec_name, *rest in uses:
        d = definition[sunspec_name]
        if d.sf is not None and d.sf not in ours:
            raise ValueError(f"model {model_id}: {sunspec_name} needs its scale factor {d.sf} among the points")
        points.append(Point(name, model.offset(sunspec_name), _CODEC_TYPES[d.type],
                            ours[d.sf] if d.sf is not None else None, rest[0] if rest else "",
                            rest[1] if len(rest) > 1 else "r", d.size if d.type == "string" else None))
    return tuple(points)


# Only the points energy-edge reads or writes: (our name with its unit, SunSpec name, unit, access).
MODELS: dict[int, tuple[Point, ...]] = {
    1: _model(1, ("manufacturer", "Mn"), ("model_name", "Md"), ("serial_number", "SN")),
    103: _model(  # three-phase inverter
        103,
        ("ac_power_w", "W", "W"), ("ac_power_sf", "W_SF"),
        ("frequency_hz", "Hz", "Hz"), ("frequency_sf", "Hz_SF"),
        ("ac_energy_wh", "WH", "Wh"), ("ac_energy_sf", "WH_SF"),
        ("operating_state", "St"),  # 1 off, 2 sleeping, 4 MPPT, 5 throttled, 7 fault, 8 standby
        ("vendor_state", "StVnd"),
        ("event_bits", "Evt1"),
    ),
    120: _model(  # nameplate
        120,
        ("rated_power_w", "WRtg", "W"), ("rated_power_sf", "WRtg_SF"),
        ("rated_energy_wh", "WHRtg", "Wh"), ("rated_energy_sf", "WHRtg_SF"),
        ("max_charge_rate_w", "MaxChaRte", "W"), ("max_charge_rate_sf", "MaxChaRte_SF"),
        ("max_discharge_rate_w", "MaxDisChaRte", "W"), ("max_discharge_rate_sf", "MaxDisChaRte_SF"),
    ),
    123: _model(  # immediate controls
        123,
        ("connect", "Conn", "", "rw"),  # 0 disconnect, 1 connect
        ("power_limit_pct", "WMaxLimPct", "%", "rw"),
        ("power_limit_revert_s", "WMaxLimPct_RvrtTms", "s", "rw"),
        ("power_limit_enable", "WMaxLim_Ena", "", "rw"),
        ("power_limit_sf", "WMaxLimPct_SF"),
    ),
    124: _model(  # storage
        124,
        ("max_charge_w", "WChaMax", "W"),
        ("storage_control_mode", "StorCtl_Mod", "", "rw"),  # bit0 charge, bit1 discharge
        ("min_reserve_pct", "MinRsvPct", "%", "rw"),
        ("state_of_charge_pct", "ChaState", "%"),
        ("charge_status", "ChaSt"),  # 1 off, 2 empty, 3 discharging, 4 charging, 5 full, 6 holding
        ("discharge_rate_pct", "OutWRte", "%", "rw"),  # % of WChaMax
        ("charge_rate_pct", "InWRte", "%", "rw"),  # % of WChaMax
        ("rate_revert_s", "InOutWRte_RvrtTms", "s", "rw"),
        ("max_charge_sf", "WChaMax_SF"),
        ("min_reserve_sf", "MinRsvPct_SF"),
        ("state_of_charge_sf", "ChaState_SF"),
        ("rate_sf", "InOutWRte_SF"),
    ),
    713: _model(  # DER storage capacity
        713,
        ("capacity_wh", "WHRtg", "Wh"),
        ("available_energy_wh", "WHAvail", "Wh"),
        ("soc_pct", "SoC", "%"),
        ("soh_pct", "SoH", "%"),
        ("energy_sf", "WH_SF"),
        ("percent_sf", "Pct_SF"),
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
