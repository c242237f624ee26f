"""Register images of the simulated devices, built from declarative tables by one generic encoder.

- SunSpec devices (solar, battery): one contiguous map at 40000 ('SunS', models, end marker), served to
  FC3 and FC4 alike. The models come from pysunspec2's model JSON (energy_edge_base/devices/sunspec_models.json).
- Vendor devices (boiler, microgrid controller): input registers (FC4) and holding registers (FC3/6/16) as
  separate address spaces, 0-based PDU addresses.

A device turns the plant's state into engineering values keyed by point (`values()`), the encoder turns
those into registers (`refresh()`), and a write is decoded, validated and applied to the plant (`write()`).
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pymodbus.constants import ExcCodes

from energy_edge.sim import __version__
from energy_edge.sim.plant import ST_FAULT, ST_MPPT, ST_STANDBY, Battery, Boiler, Plant, SiteMeter, Solar
from energy_edge.sim.scenario import BatterySpec, BoilerSpec, ControllerSpec, SolarSpec
from energy_edge_base.devices import load_device_type, sunspec_model
from energy_edge_base.modbus.registers import Register

SUNSPEC_BASE = 40000
SQRT3 = math.sqrt(3.0)

# ---------------------------------------------------------------- point types

_U16 = {"uint16", "enum16", "bitfield16", "count", "acc16"}
_S16 = {"int16", "sunssf"}
_U32 = {"uint32", "enum32", "bitfield32", "acc32"}
_S32 = {"int32"}
_SIZES = {**dict.fromkeys(_U16 | _S16 | {"pad"}, 1), **dict.fromkeys(_U32 | _S32, 2)}


@dataclass(frozen=True)
class Point:
    """One value in a register image. Engineering value = raw * scale * 10**(value of point `sf`)."""

    key: str
    address: int
    type: str
    size: int
    access: str = "R"  # "R" or "RW"
    scale: float = 1.0
    sf: str | None = None
    units: str = ""
    doc: str = ""
    # A vendor data file's register: its own data type, word order and scale encode the point, so a map in
    # any type the codec knows (float32, low word first, ...) needs no code here. None for SunSpec points.
    register: Register | None = field(default=None, compare=False)

    @property
    def writable(self) -> bool:
        return self.access == "RW"


@dataclass(frozen=True)
class Control:
    """Valid engineering values for a writable point: a closed range and/or a set of choices."""

    lo: float | None = None
    hi: float | None = None
    choices: frozenset[int] | None = None

    def ok(self, value: Any) -> bool:
        if value is None or isinstance(value, str):
            return False
        if self.choices is not None and value not in self.choices:
            return False
        tol = 1e-9 * max(1.0, abs(value))
        if self.lo is not None and value < self.lo - tol:
            return False
        return not (self.hi is not None and value > self.hi + tol)


BOOL = Control(choices=frozenset({0, 1}))


def _multiplier(point: Point, sfs: Mapping[str, Any]) -> float:
    m = point.scale
    if point.sf is not None:
        sf = sfs.get(point.sf)
        if isinstance(sf, int):
            m *= 10.0**sf
    return m


# The codec's data type for each SunSpec point type: the words are packed and unpacked by the one codec
# (energy_edge_base.modbus.registers); what the simulator adds is the device's behaviour (saturating at the
# type's range, SunSpec's accumulators and pads reading 0 when not implemented, scale factors).
_CODEC_TYPE = {**dict.fromkeys(("uint16", "enum16", "count", "acc16", "pad"), "uint16"),
               **dict.fromkeys(("uint32", "enum32", "bitfield32", "acc32"), "uint32"),
               "bitfield16": "bitfield16", "int16": "int16", "sunssf": "int16", "int32": "int32", "string": "string"}


@cache
def _codec(point_type: str, size: int) -> Register:
    """The codec's register for a point type (keyed by type and size: the name and address do not matter)."""
    data_type = _CODEC_TYPE[point_type]
    return Register(name="value", address=0, data_type=data_type,  # type: ignore[arg-type]
                    length=size if data_type == "string" else None,
                    not_implemented=point_type not in ("acc16", "acc32", "pad", "string"))


def encode(point: Point, value: Any, sfs: Mapping[str, Any], codec: Register | None = None) -> list[int]:
    """The registers for `value` (None = not implemented), saturating at the type's range."""
    if point.register is not None:
        return _encode_vendor(point.register, value)
    t = point.type
    codec = codec or _codec(t, point.size)
    if t == "string":
        text = (value or "").encode("ascii", "replace")[: point.size * 2].decode("ascii")
        return codec.encode(text)
    if value is None or t == "pad":
        return codec.not_implemented_words() if codec.not_implemented else [0] * point.size
    raw = round(float(value) / _multiplier(point, sfs)) if t != "sunssf" else int(value)
    if t in _U16:
        raw = max(0, min(raw, 0xFFFF))
    elif t in _S16:
        raw = max(-32767, min(raw, 32767))
    elif t == "acc32":
        raw &= 0xFFFFFFFF
    elif t in _U32:
        raw = max(0, min(raw, 0xFFFFFFFE))
    elif t in _S32:
        raw = max(-0x7FFFFFFF, min(raw, 0x7FFFFFFF))
    return codec.encode_raw(raw)


def _encode_vendor(register: Register, value: Any) -> list[int]:
    """A data file register's words for `value`, saturating integers at the type's range as a device does."""
    if value is None:
        return [0] * register.word_count
    raw = float(value) / register.scale
    if register.data_type == "float32":
        return register.encode_raw(raw)
    low, high = register.raw_range()
    return register.encode_raw(max(low, min(round(raw), high)))


def decode(point: Point, regs: list[int], sfs: Mapping[str, Any]) -> Any:
    """The engineering value of `regs` (None if they hold the not-implemented pattern)."""
    if point.register is not None:
        return point.register.decode(regs)
    t = point.type
    if t == "string":
        return struct.pack(f">{len(regs)}H", *regs).rstrip(b"\0").decode("ascii", "replace")
    raw = _codec(t, point.size).decode_raw(regs)
    if raw is None or isinstance(raw, str) or t in ("enum16", "bitfield16", "enum32", "bitfield32", "sunssf"):
        return raw
    m = _multiplier(point, sfs)
    return raw * m if m != 1.0 else raw


class RegisterBlock:
    """A contiguous run of registers holding `points` (gaps read as 0 and are not writable)."""

    def __init__(self, start: int, points: Iterable[Point]) -> None:
        self.points = sorted(points, key=lambda p: p.address)
        self.start = self.points[0].address if start < 0 else start
        end = max(p.address + p.size for p in self.points)
        self.size = end - self.start
        self.regs = [0] * self.size
        self.at: list[Point | None] = [None] * self.size
        self.codecs = [p.register or _codec(p.type, p.size) for p in self.points]
        self.encoded: list[tuple[Any, Any] | None] = [None] * len(self.points)  # (value, sf) last encoded
        for p in self.points:
            for i in range(p.size):
                if self.at[p.address - self.start + i] is not None:
                    raise ValueError(f"{p.key} overlaps another point at {p.address + i}")
                self.at[p.address - self.start + i] = p

    def contains(self, address: int, count: int) -> bool:
        return count >= 1 and self.start <= address and address + count <= self.start + self.size

    def encode(self, values: Mapping[str, Any]) -> None:
        # A point whose value and scale factor are what they were at its last encoding keeps its words: most
        # points (ratings, scale factors, not-implemented ones) never change, which halves the cost of a refresh.
        for k, (p, codec) in enumerate(zip(self.points, self.codecs, strict=True)):
            value = values.get(p.key)
            key = (value, values.get(p.sf) if p.sf is not None else None)
            if self.encoded[k] == key:
                continue
            i = p.address - self.start
            self.regs[i : i + p.size] = encode(p, value, values, codec)
            self.encoded[k] = key

    def read(self, address: int, count: int) -> list[int]:
        i = address - self.start
        return self.regs[i : i + count]

    def decode_write(self, address: int, regs: list[int], sfs: Mapping[str, Any]) -> list[tuple[Point, Any]] | ExcCodes:
        """The points a write covers with their new values, or why it is refused."""
        touched: list[Point] = []
        for k in range(len(regs)):
            p = self.at[address - self.start + k]
            if p is None or not p.writable:
                return ExcCodes.ILLEGAL_ADDRESS
            if not touched or touched[-1] is not p:
                touched.append(p)
        out: list[tuple[Point, Any]] = []
        for p in touched:
            if p.address < address or p.address + p.size > address + len(regs):
                return ExcCodes.ILLEGAL_ADDRESS  # a write must cover a multi-register point whole
            i = p.address - address
            out.append((p, decode(p, regs[i : i + p.size], sfs)))
        return out

    def store(self, address: int, regs: list[int]) -> None:
        i = address - self.start
        self.regs[i : i + len(regs)] = regs
        for k, p in enumerate(self.points):  # written words: the next refresh encodes these points anew
            if p.address < address + len(regs) and address < p.address + p.size:
                self.encoded[k] = None


# ---------------------------------------------------------------- SunSpec models
# From energy_edge_base/devices/sunspec_models.json, generated from pysunspec2's model JSON (sim/sunspecgen.py).


@dataclass(frozen=True)
class ModelPoint:
    name: str
    type: str
    size: int
    sf: str | None
    access: str
    units: str


def model_points(model_id: int) -> list[ModelPoint]:
    """The points of a SunSpec model after ID and L, in order."""
    return [ModelPoint(p.name, p.type, p.size, p.sf, p.access, p.units or "")
            for p in sunspec_model(model_id).points[2:]]


def model_length(model_id: int) -> int:
    return sum(p.size for p in model_points(model_id))


def sunspec_points(models: list[int], base: int = SUNSPEC_BASE) -> list[Point]:
    """'SunS', then each model (ID, L, points; keys "<model>.<point>"), then the end marker (0xFFFF, 0)."""
    pts = [Point("SunS", base, "string", 2, doc="SunSpec marker 0x5375 0x6E53")]
    addr = base + 2
    for mid in models:
        pts.append(Point(f"{mid}.ID", addr, "uint16", 1, doc=f"model {mid}"))
        pts.append(Point(f"{mid}.L", addr + 1, "uint16", 1, doc=f"model {mid} length"))
        addr += 2
        for mp in model_points(mid):
            pts.append(Point(f"{mid}.{mp.name}", addr, mp.type, mp.size, mp.access,
                             sf=f"{mid}.{mp.sf}" if mp.sf else None, units=mp.units))
            addr += mp.size
    pts.append(Point("end.ID", addr, "uint16", 1, doc="end marker"))
    pts.append(Point("end.L", addr + 1, "uint16", 1, doc="end marker length"))
    return pts


def sunspec_header_values(models: list[int]) -> dict[str, Any]:
    values: dict[str, Any] = {"SunS": "SunS", "end.ID": 0xFFFF, "end.L": 0}
    for mid in models:
        values[f"{mid}.ID"] = mid
        values[f"{mid}.L"] = model_length(mid)
    return values


def sf_for(max_abs: float, limit: int = 32767, lowest: int = -3) -> int:
    """The smallest scale factor (>= lowest) for which max_abs fits in limit counts."""
    sf = lowest
    while max_abs / 10.0**sf > limit and sf < 10:
        sf += 1
    return sf


# ---------------------------------------------------------------- vendor tables
# Read from the device type data files (energy_edge_base/devices/<type>.json), the same the asset modules use.
# (address, name, type, scale, access, units, description)

VendorRow = tuple[int, str, str, float, str, str, str]


def vendor_rows(device_type: str, table: str) -> list[VendorRow]:
    """The rows of one table ("input" or "holding") of a device type's data file."""
    return [(r.address, r.name, r.data_type, r.scale, r.access.upper(), r.unit, r.description)
            for r in load_device_type(device_type).registers if r.table == table]


BOILER_INPUT = vendor_rows("boiler", "input")
BOILER_HOLDING = vendor_rows("boiler", "holding")
CONTROLLER_INPUT = vendor_rows("microgrid_controller", "input")
CONTROLLER_HOLDING = vendor_rows("microgrid_controller", "holding")


def vendor_points(device_type: str, table: str) -> list[Point]:
    """The points of one table of a device type's data file, each encoded by its own register."""
    return [Point(r.name, r.address, r.data_type, r.word_count, r.access.upper(), r.scale, units=r.unit,
                  doc=r.description, register=r)
            for r in load_device_type(device_type).registers if r.table == table]


def vendor_spaces(device_type: str) -> dict[str, list[RegisterBlock]]:
    """The input ("ir") and holding ("hr") register spaces of a vendor device type, from its data file.

    Points are keyed by register name, and the device classes below name the plant's values the same way, so
    another vendor's map of the same kind (other addresses, types, scales, fewer registers) needs no code here.
    """
    spaces: dict[str, list[RegisterBlock]] = {}
    for space, table in (("ir", "input"), ("hr", "holding")):
        points = vendor_points(device_type, table)
        if points:
            spaces[space] = [RegisterBlock(-1, points)]
    return spaces


# ---------------------------------------------------------------- devices


class SimDevice:
    """One Modbus device: its register spaces, the controls it accepts and the link to the plant."""

    kind = ""
    protocol = ""
    momentary: frozenset[str] = frozenset()

    def __init__(self, asset_id: str, unit_id: int, plant: Plant, spaces: dict[str, list[RegisterBlock]],
                 controls: dict[str, Control], static: dict[str, Any]) -> None:
        self.asset_id = asset_id
        self.unit_id = unit_id
        self.plant = plant
        self.spaces = spaces
        self.controls = controls
        self.static = static  # constants and scale factors
        self.extra: dict[str, Any] = {}  # written values of points the plant does not model
        self.refresh()

    # the subclasses' part
    def values(self) -> dict[str, Any]:
        raise NotImplementedError

    def apply(self, key: str, value: Any) -> None:
        """Hand a validated control value to the plant (keys without a plant meaning stay in `extra`)."""
        self.extra[key] = value

    def info(self) -> dict[str, Any]:
        return {}

    # generic
    def all_values(self) -> dict[str, Any]:
        return {**self.static, **self.extra, **self.values()}

    def refresh(self) -> None:
        values = self.all_values()
        seen: set[int] = set()
        for blocks in self.spaces.values():
            for block in blocks:
                if id(block) not in seen:
                    seen.add(id(block))
                    block.encode(values)

    def end_of_step(self) -> None:
        for key in self.momentary:
            self.extra.pop(key, None)

    def _block(self, space: str, address: int, count: int) -> RegisterBlock | None:
        return next((b for b in self.spaces.get(space, []) if b.contains(address, count)), None)

    def read(self, space: str, address: int, count: int) -> list[int] | ExcCodes:
        block = self._block(space, address, count)
        return ExcCodes.ILLEGAL_ADDRESS if block is None else block.read(address, count)

    def write(self, address: int, regs: list[int]) -> ExcCodes | None:
        """Validate and apply a write to holding registers; nothing changes unless all of it is valid."""
        block = self._block("hr", address, len(regs))
        if block is None:
            return ExcCodes.ILLEGAL_ADDRESS
        decoded = block.decode_write(address, regs, self.static)
        if isinstance(decoded, ExcCodes):
            return decoded
        for point, value in decoded:
            control = self.controls.get(point.key)
            if control is not None and not control.ok(value):
                return ExcCodes.ILLEGAL_VALUE
        block.store(address, regs)
        for point, value in decoded:
            self.apply(point.key, value)
        return None

    def points(self) -> list[Point]:
        seen: dict[int, RegisterBlock] = {}
        for blocks in self.spaces.values():
            for b in blocks:
                seen[id(b)] = b
        return [p for b in seen.values() for p in b.points]


def _flag(value: Any) -> bool:
    return bool(int(value))


class SunSpecDevice(SimDevice):
    protocol = "sunspec"
    models: list[int] = []

    def __init__(self, asset_id: str, unit_id: int, plant: Plant, controls: dict[str, Control],
                 static: dict[str, Any]) -> None:
        block = RegisterBlock(SUNSPEC_BASE, sunspec_points(self.models))
        controls = {"1.DA": Control(1, 247), **controls}
        super().__init__(asset_id, unit_id, plant, {"hr": [block], "ir": [block]}, controls,
                         {**sunspec_header_values(self.models), **static})

    def ac_values(self, power_kw: float, energy_kwh: float) -> dict[str, Any]:
        """Model 103's AC measurements for a real power at unity power factor."""
        m = self.plant.meter
        w = power_kw * 1000.0
        v_ll = m.voltage_v
        amps = abs(w) / (SQRT3 * v_ll) if v_ll > 0 else 0.0
        return {
            "103.A": amps, "103.AphA": amps, "103.AphB": amps, "103.AphC": amps,
            "103.PPVphAB": v_ll, "103.PPVphBC": v_ll, "103.PPVphCA": v_ll,
            "103.PhVphA": v_ll / SQRT3, "103.PhVphB": v_ll / SQRT3, "103.PhVphC": v_ll / SQRT3,
            "103.W": w, "103.Hz": m.frequency_hz, "103.VA": abs(w), "103.VAr": 0.0,
            "103.PF": 100.0 if abs(w) > 0 else None, "103.WH": energy_kwh * 1000.0,
        }


def _inverter_static(rated_w: float, da: int, manufacturer: str, model: str, serial: str) \
        -> dict[str, Any]:
    w_sf = sf_for(rated_w * 1.2, lowest=0)
    a_sf = sf_for(rated_w * 1.2 / (SQRT3 * 360.0), 65534, lowest=-2)
    return {
        "1.Mn": manufacturer, "1.Md": model, "1.Opt": "sim", "1.Vr": __version__, "1.SN": serial, "1.DA": da,
        "103.A_SF": a_sf, "103.V_SF": -1, "103.W_SF": w_sf, "103.Hz_SF": -2, "103.VA_SF": w_sf,
        "103.VAr_SF": w_sf, "103.PF_SF": -1, "103.WH_SF": 0, "103.DCA_SF": a_sf, "103.DCV_SF": -1,
        "103.DCW_SF": w_sf, "103.Tmp_SF": -1, "103.Evt2": 0, "103.EvtVnd1": 0, "103.EvtVnd2": 0,
        "103.EvtVnd3": 0, "103.EvtVnd4": 0,
        "120.WRtg": rated_w, "120.WRtg_SF": w_sf, "120.VARtg": rated_w, "120.VARtg_SF": w_sf,
        "120.VArRtgQ1": 0.44 * rated_w, "120.VArRtgQ2": 0.44 * rated_w, "120.VArRtgQ3": -0.44 * rated_w,
        "120.VArRtgQ4": -0.44 * rated_w, "120.VArRtg_SF": w_sf,
        "120.ARtg": rated_w / (SQRT3 * 400.0), "120.ARtg_SF": a_sf,
        "120.PFRtgQ1": -0.9, "120.PFRtgQ2": 0.9, "120.PFRtgQ3": -0.9, "120.PFRtgQ4": 0.9, "120.PFRtg_SF": -3,
    }


class SolarDevice(SunSpecDevice):
    """PV inverter: SunSpec 1, 103, 120, 123."""

    kind = "solar"
    models = [1, 103, 120, 123]

    def __init__(self, spec: SolarSpec, plant: Plant) -> None:
        self.spec = spec
        self.unit = plant.solar[spec.asset_id]
        rated_w = self.unit.ac_kw * 1000.0
        static = _inverter_static(rated_w, spec.unit_id, spec.manufacturer,
                                  spec.model or f"SIM-PV-{spec.kwp:g}", spec.serial or f"SIM-{spec.asset_id}")
        static.update({
            "120.DERTyp": 4,
            "123.Conn_WinTms": 0, "123.WMaxLimPct_WinTms": 0, "123.WMaxLimPct_RmpTms": 0,
            "123.OutPFSet": 1.0, "123.OutPFSet_WinTms": 0, "123.OutPFSet_RvrtTms": 0, "123.OutPFSet_RmpTms": 0,
            "123.OutPFSet_Ena": 0, "123.VArWMaxPct": 0, "123.VArMaxPct": 0, "123.VArAvalPct": 0,
            "123.VArPct_WinTms": 0, "123.VArPct_RvrtTms": 0, "123.VArPct_RmpTms": 0, "123.VArPct_Mod": 0,
            "123.VArPct_Ena": 0, "123.WMaxLimPct_SF": -1, "123.OutPFSet_SF": -3, "123.VArPct_SF": -1,
        })
        controls = {
            "123.Conn": BOOL, "123.WMaxLim_Ena": BOOL, "123.WMaxLimPct": Control(0, 100),
            "123.OutPFSet": Control(-1, 1), "123.OutPFSet_Ena": BOOL, "123.VArPct_Ena": BOOL,
            "123.VArPct_Mod": Control(choices=frozenset({0, 1, 2, 3})),
            "123.VArWMaxPct": Control(-100, 100), "123.VArMaxPct": Control(-100, 100),
            "123.VArAvalPct": Control(-100, 100),
        }
        super().__init__(spec.asset_id, spec.unit_id, plant, controls, static)

    def values(self) -> dict[str, Any]:
        s: Solar = self.unit
        dcw = s.power_kw * 1000.0 / 0.97
        return {
            **self.ac_values(s.power_kw, s.energy_kwh),
            "103.DCV": 620.0 if s.available_kw > 0 else 0.0, "103.DCW": dcw,
            "103.DCA": dcw / 620.0 if s.available_kw > 0 else 0.0,
            "103.TmpCab": 25.0 + 20.0 * s.power_kw / s.ac_kw, "103.TmpSnk": 25.0 + 30.0 * s.power_kw / s.ac_kw,
            "103.St": s.state, "103.StVnd": s.state, "103.Evt1": (1 << 15) if s.fault else 0,
            "123.Conn_RvrtTms": s.conn_rvrt_s, "123.Conn": int(s.conn), "123.WMaxLimPct": s.wmaxlim_pct,
            "123.WMaxLimPct_RvrtTms": s.wmaxlim_rvrt_s, "123.WMaxLim_Ena": int(s.wmaxlim_ena),
        }

    def apply(self, key: str, value: Any) -> None:
        s, t = self.unit, self.plant.t_s
        if key == "123.Conn":
            s.conn, s.conn_written_s = _flag(value), t
        elif key == "123.Conn_RvrtTms":
            s.conn_rvrt_s, s.conn_written_s = float(value), t
        elif key == "123.WMaxLimPct":
            s.wmaxlim_pct, s.wmaxlim_written_s = float(value), t
        elif key == "123.WMaxLimPct_RvrtTms":
            s.wmaxlim_rvrt_s, s.wmaxlim_written_s = float(value), t
        elif key == "123.WMaxLim_Ena":
            s.wmaxlim_ena, s.wmaxlim_written_s = _flag(value), t
        else:
            super().apply(key, value)

    def info(self) -> dict[str, Any]:
        return {"rated_kw": self.unit.ac_kw, "kwp": self.unit.kwp, "base_address": SUNSPEC_BASE}


class BatteryDevice(SunSpecDevice):
    """Battery inverter + storage: SunSpec 1, 103 (AC side, W + = discharge), 120, 124, 713."""

    kind = "battery"
    models = [1, 103, 120, 124, 713]

    def __init__(self, spec: BatterySpec, plant: Plant) -> None:
        self.spec = spec
        self.unit = plant.batteries[spec.asset_id]
        b = self.unit
        rated_w = max(b.max_charge_kw, b.max_discharge_kw) * 1000.0
        w_sf = sf_for(rated_w * 1.2, lowest=0)
        wh_sf = sf_for(b.capacity_kwh * 1000.0, 65534, lowest=0)
        ah = b.capacity_kwh * 1000.0 / b.nominal_voltage_v
        ah_sf = sf_for(ah, 65534, lowest=-1)
        static = _inverter_static(rated_w, spec.unit_id, spec.manufacturer,
                                  spec.model or f"SIM-BESS-{b.capacity_kwh:g}", spec.serial or f"SIM-{spec.asset_id}")
        static.update({
            "120.DERTyp": 82, "120.WHRtg": b.capacity_kwh * 1000.0, "120.WHRtg_SF": wh_sf, "120.AhrRtg": ah,
            "120.AhrRtg_SF": ah_sf, "120.MaxChaRte": b.max_charge_kw * 1000.0, "120.MaxChaRte_SF": w_sf,
            "120.MaxDisChaRte": b.max_discharge_kw * 1000.0, "120.MaxDisChaRte_SF": w_sf,
            "124.WChaGra": 100, "124.WDisChaGra": 100, "124.InOutWRte_WinTms": 0, "124.InOutWRte_RmpTms": 0,
            "124.VAChaMax": b.max_charge_kw * 1000.0,
            "124.WChaMax_SF": w_sf, "124.WChaDisChaGra_SF": 0, "124.VAChaMax_SF": w_sf, "124.MinRsvPct_SF": -1,
            "124.ChaState_SF": -1, "124.StorAval_SF": ah_sf, "124.InBatV_SF": -1, "124.InOutWRte_SF": -1,
            "713.WHRtg": b.capacity_kwh * 1000.0, "713.WH_SF": wh_sf, "713.Pct_SF": -1,
        })
        controls = {
            "124.WChaMax": Control(0, b.max_charge_kw * 1000.0),
            "124.WChaGra": Control(0, 10000), "124.WDisChaGra": Control(0, 10000),
            "124.StorCtl_Mod": Control(choices=frozenset({0, 1, 2, 3})),
            "124.VAChaMax": Control(0, b.max_charge_kw * 1000.0 * 1.2),
            "124.MinRsvPct": Control(0, 100),
            "124.OutWRte": Control(-100, 100), "124.InWRte": Control(-100, 100),
            "124.ChaGriSet": BOOL,
        }
        super().__init__(spec.asset_id, spec.unit_id, plant, controls, static)

    def values(self) -> dict[str, Any]:
        b: Battery = self.unit
        soc = b.soc_pct
        v_bat = b.nominal_voltage_v * (0.92 + 0.16 * soc / 100.0)
        dcw = b.power_kw * 1000.0 / (b.eta_discharge if b.power_kw > 0 else 1.0 / b.eta_charge)
        active = abs(b.power_kw) > 0.05
        return {
            **self.ac_values(b.power_kw, b.discharged_kwh),
            "103.DCV": v_bat, "103.DCW": dcw, "103.DCA": abs(dcw) / v_bat,
            "103.TmpCab": 25.0 + 15.0 * abs(b.power_kw) / b.max_discharge_kw, "103.TmpSnk": None,
            "103.St": ST_FAULT if b.fault else ST_MPPT if active else ST_STANDBY, "103.StVnd": b.cha_st,
            "103.Evt1": (1 << 15) if b.fault else 0,
            "124.WChaMax": b.wchamax_kw * 1000.0, "124.StorCtl_Mod": b.storctl_mod, "124.MinRsvPct": b.min_rsv_pct,
            "124.ChaState": soc, "124.StorAval": b.available_kwh * 1000.0 / b.nominal_voltage_v,
            "124.InBatV": v_bat, "124.ChaSt": b.cha_st, "124.OutWRte": b.out_wrte_pct, "124.InWRte": b.in_wrte_pct,
            "124.InOutWRte_RvrtTms": b.rvrt_s, "124.ChaGriSet": b.cha_gri_set,
            "713.WHAvail": b.available_kwh * 1000.0, "713.SoC": soc, "713.SoH": b.soh_pct,
            "713.Sta": 2 if b.fault else 0,
        }

    def apply(self, key: str, value: Any) -> None:
        b, t = self.unit, self.plant.t_s
        if key == "124.WChaMax":
            b.wchamax_kw = float(value) / 1000.0
        elif key == "124.StorCtl_Mod":
            b.storctl_mod, b.ctl_written_s = int(value), t
        elif key == "124.OutWRte":
            b.out_wrte_pct, b.ctl_written_s = float(value), t
        elif key == "124.InWRte":
            b.in_wrte_pct, b.ctl_written_s = float(value), t
        elif key == "124.InOutWRte_RvrtTms":
            b.rvrt_s, b.ctl_written_s = float(value), t
        elif key == "124.MinRsvPct":
            b.min_rsv_pct = float(value)
        elif key == "124.ChaGriSet":
            b.cha_gri_set = int(value)
        else:
            super().apply(key, value)

    def info(self) -> dict[str, Any]:
        b = self.unit
        return {"rated_kw": max(b.max_charge_kw, b.max_discharge_kw), "capacity_kwh": b.capacity_kwh,
                "max_charge_kw": b.max_charge_kw, "max_discharge_kw": b.max_discharge_kw,
                "base_address": SUNSPEC_BASE}


class BoilerDevice(SimDevice):
    """Electric hot-water boiler, vendor map."""

    kind = "boiler"
    protocol = "vendor"
    momentary = frozenset({"reset"})

    def __init__(self, spec: BoilerSpec, plant: Plant) -> None:
        self.spec = spec
        self.unit = plant.boilers[spec.asset_id]
        w = self.unit
        spaces = vendor_spaces(spec.device_type)
        controls = {"enable": BOOL, "setpoint_c": Control(w.min_temp_c, w.max_temp_c),
                    "power_limit_kw": Control(0, w.heater_kw), "reset": BOOL}
        static = {"min_temp_c": w.min_temp_c, "max_temp_c": w.max_temp_c, "rated_power_kw": w.heater_kw}
        super().__init__(spec.asset_id, spec.unit_id, plant, spaces, controls, static)

    def values(self) -> dict[str, Any]:
        w: Boiler = self.unit
        return {"water_temp_c": w.temp_c, "heater_power_kw": w.power_kw, "state": w.state,
                "fault_code": w.fault_code, "heater_energy_kwh": w.energy_kwh, "heat_demand_kw": w.demand_kw,
                "enable": int(w.enable), "setpoint_c": w.setpoint_c, "power_limit_kw": w.power_limit_kw,
                "reset": self.extra.get("reset", 0)}

    def apply(self, key: str, value: Any) -> None:
        w = self.unit
        if key == "enable":
            w.enable = _flag(value)
        elif key == "setpoint_c":
            w.setpoint_c = float(value)
        elif key == "power_limit_kw":
            w.power_limit_kw = float(value)
        elif key == "reset":
            self.extra["reset"] = int(value)
            if value:
                w.reset()

    def info(self) -> dict[str, Any]:
        w = self.unit
        return {"rated_kw": w.heater_kw, "tank_l": w.tank_l, "min_temp_c": w.min_temp_c, "max_temp_c": w.max_temp_c,
                "device_type": self.spec.device_type}


class ControllerDevice(SimDevice):
    """Microgrid controller / site meter at the PCC, vendor map."""

    kind = "microgrid_controller"
    protocol = "vendor"
    momentary = frozenset({"reset"})

    def __init__(self, spec: ControllerSpec, plant: Plant) -> None:
        self.spec = spec
        spaces = vendor_spaces(spec.device_type)
        controls = {"import_limit_w": Control(0, 100_000_000), "peak_shaving_enable": BOOL, "der_enable": BOOL,
                    "reset": BOOL}
        super().__init__(spec.asset_id, spec.unit_id, plant, spaces, controls, {})

    @property
    def meter(self) -> SiteMeter:
        return self.plant.meter

    def values(self) -> dict[str, Any]:
        m = self.meter
        return {"grid_import_w": m.grid_import_kw * 1000.0, "site_load_w": m.site_load_kw * 1000.0,
                "frequency_hz": m.frequency_hz, "voltage_v": m.voltage_v, "status": m.status,
                "import_energy_kwh": m.import_kwh, "export_energy_kwh": m.export_kwh, "fault_code": m.fault_code,
                "heartbeat": int(time.monotonic()) % 65536,  # the controller's own clock, not simulated time
                "import_limit_w": m.import_limit_kw * 1000.0, "peak_shaving_enable": int(m.peak_shaving_enable),
                "der_enable": int(m.der_enable), "reset": self.extra.get("reset", 0)}

    def apply(self, key: str, value: Any) -> None:
        m = self.meter
        if key == "import_limit_w":
            m.import_limit_kw = float(value) / 1000.0
        elif key == "peak_shaving_enable":
            m.peak_shaving_enable = _flag(value)
        elif key == "der_enable":
            m.der_enable = _flag(value)
        elif key == "reset":
            self.extra["reset"] = int(value)
            if value:
                m.fault_code = 0

    def info(self) -> dict[str, Any]:
        return {"import_limit_kw": self.meter.import_limit_kw, "device_type": self.spec.device_type}


DEVICE_CLASSES: dict[str, Callable[[Any, Plant], SimDevice]] = {
    "solar": SolarDevice, "battery": BatteryDevice, "boiler": BoilerDevice, "microgrid_controller": ControllerDevice,
}


def build_device(spec: SolarSpec | BatterySpec | BoilerSpec | ControllerSpec, plant: Plant) -> SimDevice:
    return DEVICE_CLASSES[spec.kind](spec, plant)
