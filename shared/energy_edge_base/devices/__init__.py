"""Device types as data: one JSON file per Modbus device type, next to this module.

A file holds everything known about a vendor's register map: every register's address, table, data
type, scale, unit, access and description, and the points that prove the device's data is live
(`energy_edge_base.liveness`). Three readers share it, so the facts have one owner:

- the asset module: `DeviceType.register_map()` (the codec in `energy_edge_base.modbus.registers`),
- the site simulator: its register image for the device (`energy_edge.sim.devices`),
- `python -m energy_edge_base.devices.doc`, which writes the vendor tables of docs/register-maps.md.

Adding a vendor's device means adding `<name>.json` here; the walking test
(tests/modules/test_device_types.py) reads every file against the simulator over Modbus TCP.
SunSpec devices are not described here: their maps come from the SunSpec model definitions
(`sunspec_models.json`, generated from pysunspec2's model JSON) and discovery.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from energy_edge_base.liveness import EnergyCounter, LivenessSpec
from energy_edge_base.modbus.registers import Register, RegisterMap

__all__ = ["DeviceType", "LivenessPoints", "SunSpecModel", "SunSpecPoint", "device_type_names", "load_device_type",
           "sunspec_model"]


class CounterPoint(BaseModel):
    """An energy counter and the power that drives it (see `energy_edge_base.liveness.EnergyCounter`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    counter: str = Field(description="Energy register.")
    power: str = Field(description="The power register that drives the counter.")
    power_to_kw: float = Field(gt=0, description="The power register's unit in kW (0.001 for W).")
    resolution_kwh: float = Field(gt=0, description="One step of the counter, kWh.")
    direction: Literal[1, -1] = Field(default=1, description="+1 counts positive power, -1 negative power.")


class LivenessPoints(BaseModel):
    """What the device offers to prove its data is live."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    heartbeat: str | None = Field(default=None, description="A register the device advances by itself.")
    counters: tuple[CounterPoint, ...] = ()


class DeviceType(BaseModel):
    """One device type's data file, validated: the register map plus its liveness points."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="The file's stem; also the scenario's device type.")
    title: str = Field(min_length=1, description="Human name, used as the register map's name.")
    kind: Literal["boiler", "microgrid_controller"] = Field(
        description="The asset kind: which asset module drives it and which simulated plant part it shows.")
    protocol: Literal["vendor"] = Field(description="vendor: fixed input/holding maps at 0-based PDU addresses.")
    liveness: LivenessPoints = LivenessPoints()
    registers: tuple[Register, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> DeviceType:
        names = {r.name for r in self.registers}
        self.register_map()  # overlaps, duplicates, scale factors: the codec's own checks
        referenced = [self.liveness.heartbeat] if self.liveness.heartbeat else []
        for c in self.liveness.counters:
            referenced += [c.counter, c.power]
        unknown = [n for n in referenced if n not in names]
        if unknown:
            raise ValueError(f"{self.name}: liveness names unknown registers {unknown}")
        return self

    def register_map(self) -> RegisterMap:
        """The map the asset module polls and writes through."""
        return RegisterMap(name=self.title, registers=self.registers)

    def liveness_spec(self) -> LivenessSpec:
        """The liveness checks `energy_edge_base.liveness` runs on every read."""
        return LivenessSpec(
            heartbeat=self.liveness.heartbeat,
            counters=tuple(EnergyCounter(c.counter, c.power, c.power_to_kw, c.resolution_kwh, c.direction)
                           for c in self.liveness.counters),
        )


def device_type_names() -> list[str]:
    """Every device type shipped in this package, sorted."""
    files = resources.files(__name__)
    return sorted(f.name.removesuffix(".json") for f in files.iterdir()
                  if f.name.endswith(".json") and f.name != "sunspec_models.json")


@cache
def load_device_type(name: str) -> DeviceType:
    """The validated data file `<name>.json`; an unknown name or a bad file raises ValueError naming it."""
    if name not in device_type_names():
        raise ValueError(f"unknown device type {name!r} (known: {', '.join(device_type_names())})")
    text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    try:
        device = DeviceType.model_validate(json.loads(text))
    except ValueError as exc:
        raise ValueError(f"device type file {name}.json: {exc}") from exc
    if device.name != name:
        raise ValueError(f"device type file {name}.json declares name {device.name!r}")
    return device


# ---------------------------------------------------------------- SunSpec models


class SunSpecPoint(BaseModel):
    """One point of a SunSpec model as its definition gives it (SunSpec names and types)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: str
    size: int = Field(ge=1)
    sf: str | None = None
    access: Literal["R", "RW"] = "R"
    units: str | None = None
    label: str = ""
    desc: str = ""


class SunSpecModel(BaseModel):
    """A SunSpec model: its points in register order from the ID register (offset 0) on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    label: str
    points: tuple[SunSpecPoint, ...]

    @property
    def length(self) -> int:
        """The model's L: registers after ID and L."""
        return sum(p.size for p in self.points[2:])

    def offset(self, name: str) -> int:
        """The point's offset from the model's ID register; KeyError names an unknown point."""
        offset = 0
        for point in self.points:
            if point.name == name:
                return offset
            offset += point.size
        raise KeyError(f"SunSpec model {self.name} has no point {name!r}")


@cache
def sunspec_model(model_id: int) -> SunSpecModel:
    """A SunSpec model from sunspec_models.json (generated from pysunspec2's model definitions)."""
    doc = json.loads(resources.files(__name__).joinpath("sunspec_models.json").read_text(encoding="utf-8"))
    try:
        return SunSpecModel.model_validate(doc["models"][str(model_id)])
    except KeyError:
        raise ValueError(f"SunSpec model {model_id} is not in sunspec_models.json "
                         f"(has {', '.join(doc['models'])})") from None
