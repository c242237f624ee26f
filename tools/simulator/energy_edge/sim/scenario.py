"""The scenario: one site, its devices, their ratings and initial state, and where the profiles come from.

A scenario is either a built-in name (`default`, `small`) or a JSON file that validates against `Scenario`.
Relative profile paths in a file are resolved against the file's folder.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from energy_edge_base.devices import load_device_type


class ScenarioError(ValueError):
    """The scenario name or file is unknown or invalid."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


ProfileSource = Literal["synthetic", "csv", "constant", "demandlib", "pvlib"]


class ProfileSpec(_Model):
    """Where one time series comes from.

    - `synthetic`: pure numpy, seeded (a commercial day for the load, a clear-sky day with cloud noise for PV,
      hot-water draws for the heat demand); one day, repeated.
    - `csv`: `path` with a `timestamp` column and `column` (load/heat: `power_kw`; PV: `ghi_w_m2`, `poa_w_m2`
      or `pv_kw`); any step; matched by local wall-clock time and repeated over the file's span.
    - `constant`: `value` (kW, or W/m² for PV).
    - `demandlib` (load only): a BDEW standard load profile (`slp`, e.g. `g0`; `g25` for the 2025 revision),
      scaled to `annual_kwh` or to `peak_kw`.
    - `pvlib` (PV only): plane-of-array irradiance from a TMY3 file shipped with pvlib (`tmy_file`).
    """

    source: ProfileSource = "synthetic"
    path: str | None = None
    column: str | None = None
    value: float = 0.0
    scale: float = Field(1.0, ge=0)
    # synthetic load / heat demand: the range of the generated curve
    min_kw: float | None = Field(None, ge=0)
    max_kw: float | None = Field(None, ge=0)
    noise_kw: float | None = Field(None, ge=0)
    # synthetic PV: 0 clear sky .. 1 heavily overcast
    cloudiness: float = Field(0.15, ge=0, le=1)
    # demandlib
    slp: str = "g0"
    annual_kwh: float | None = Field(None, gt=0)
    peak_kw: float | None = Field(None, gt=0)
    # pvlib
    tmy_file: str = "723170TYA.CSV"
    tilt_deg: float = Field(30.0, ge=0, le=90)
    azimuth_deg: float = Field(180.0, ge=0, lt=360)

    @model_validator(mode="after")
    def _check(self) -> ProfileSpec:
        if self.source == "csv" and not self.path:
            raise ValueError("a csv profile needs a path")
        if self.min_kw is not None and self.max_kw is not None and self.min_kw > self.max_kw:
            raise ValueError("min_kw must not exceed max_kw")
        return self


class _DeviceBase(_Model):
    asset_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    unit_id: int = Field(1, ge=1, le=247)
    port: int | None = Field(None, ge=0, le=65535, description="fixed port; default: base port + index")
    manufacturer: str = "energy-edge"
    model: str = ""
    serial: str = ""


class _VendorDeviceBase(_DeviceBase):
    device_type: str = Field("", description=(
        "the device type data file (energy_edge_base/devices/<type>.json) whose register map the device "
        "serves; default: the kind's own (boiler, microgrid_controller)"))

    @model_validator(mode="after")
    def _check_device_type(self) -> _VendorDeviceBase:
        kind = str(type(self).model_fields["kind"].default)  # the subclass's Literal
        if not self.device_type:
            self.device_type = kind
        try:
            device_type = load_device_type(self.device_type)
        except ValueError as exc:
            raise ValueError(f"device_type: {exc}") from None
        if device_type.kind != kind:
            raise ValueError(f"device_type: {self.device_type!r} describes a {device_type.kind}, not a {kind}")
        return self


class SolarSpec(_DeviceBase):
    """A PV inverter (SunSpec 1, 103, 120, 123)."""

    kind: Literal["solar"] = "solar"
    kwp: float = Field(200.0, gt=0, description="DC peak power")
    ac_kw: float | None = Field(None, gt=0, description="inverter AC rating (WMax); default 0.9 x kWp")
    performance_ratio: float = Field(0.86, gt=0, le=1)
    connected: bool = True
    wmaxlim_pct: float = Field(100.0, ge=0, le=100)
    wmaxlim_ena: bool = False

    @property
    def rated_kw(self) -> float:
        return self.ac_kw if self.ac_kw is not None else round(self.kwp * 0.9, 1)


class BatterySpec(_DeviceBase):
    """A battery inverter with its storage (SunSpec 1, 103, 120, 124, 713)."""

    kind: Literal["battery"] = "battery"
    capacity_kwh: float = Field(200.0, gt=0)
    max_charge_kw: float = Field(100.0, gt=0)
    max_discharge_kw: float = Field(100.0, gt=0)
    round_trip_efficiency: float = Field(0.9, gt=0, le=1)
    soc_pct: float = Field(50.0, ge=0, le=100)
    soh_pct: float = Field(100.0, gt=0, le=100)
    min_reserve_pct: float = Field(0.0, ge=0, le=100)
    derate_low_pct: float = Field(10.0, ge=0, lt=100, description="discharge tapers linearly below reserve+this")
    derate_high_pct: float = Field(90.0, gt=0, le=100, description="charge tapers linearly above this SOC")
    nominal_voltage_v: float = Field(600.0, gt=0)

    @property
    def rated_kw(self) -> float:
        return max(self.max_charge_kw, self.max_discharge_kw)


class BoilerSpec(_VendorDeviceBase):
    """An electric hot-water boiler: heater + tank (vendor map)."""

    kind: Literal["boiler"] = "boiler"
    heater_kw: float = Field(30.0, gt=0)
    tank_l: float = Field(2000.0, gt=0)
    min_temp_c: float = Field(55.0)
    max_temp_c: float = Field(80.0)
    setpoint_c: float = Field(60.0)
    hysteresis_k: float = Field(4.0, gt=0)
    temp_c: float = Field(62.0, description="initial water temperature")
    loss_w_per_k: float = Field(8.0, ge=0, description="standing losses to the ambient")
    ambient_c: float = 20.0
    inlet_temp_c: float = 10.0
    enabled: bool = True
    power_limit_kw: float | None = Field(None, ge=0)

    @property
    def rated_kw(self) -> float:
        return self.heater_kw

    @model_validator(mode="after")
    def _check(self) -> BoilerSpec:
        if not self.min_temp_c < self.max_temp_c:
            raise ValueError("min_temp_c must be below max_temp_c")
        if not self.min_temp_c <= self.setpoint_c <= self.max_temp_c:
            raise ValueError("setpoint_c must lie within min_temp_c..max_temp_c")
        if self.power_limit_kw is not None and self.power_limit_kw > self.heater_kw:
            raise ValueError("power_limit_kw must not exceed heater_kw")
        return self


class ControllerSpec(_VendorDeviceBase):
    """The microgrid controller / site meter at the point of common coupling (vendor map)."""

    kind: Literal["microgrid_controller"] = "microgrid_controller"
    nominal_frequency_hz: float = Field(50.0, gt=0)
    nominal_voltage_v: float = Field(400.0, gt=0)
    peak_shaving_enable: bool = True
    der_enable: bool = True


DeviceSpec = Annotated[SolarSpec | BatterySpec | BoilerSpec | ControllerSpec, Field(discriminator="kind")]


class Scenario(_Model):
    """One site: the devices, the site limits and the profile sources."""

    name: str = "custom"
    description: str = ""
    site_id: str = Field(min_length=1, max_length=64)
    start: datetime = Field(description="simulated start; profiles are matched by its local wall-clock time")
    latitude: float = Field(51.0, ge=-90, le=90)
    longitude: float = Field(10.0, ge=-180, le=180)
    import_limit_kw: float = Field(150.0, gt=0)
    seed: int = 0
    load: ProfileSpec = Field(default_factory=ProfileSpec)
    pv: ProfileSpec = Field(default_factory=ProfileSpec)
    heat_demand: ProfileSpec = Field(default_factory=ProfileSpec)
    devices: list[DeviceSpec] = Field(min_length=1)
    base_dir: str | None = Field(None, description="folder that relative profile paths are resolved against")

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        ids = [d.asset_id for d in self.devices]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate asset_id: {', '.join(dupes)}")
        if sum(d.kind == "microgrid_controller" for d in self.devices) > 1:
            raise ValueError("at most one microgrid_controller (the meter at the point of common coupling)")
        ports = [d.port for d in self.devices if d.port]
        if len(ports) != len(set(ports)):
            raise ValueError("two devices share a port")
        for spec, what in ((self.load, "load"), (self.heat_demand, "heat_demand")):
            if spec.source == "pvlib":
                raise ValueError(f"{what}: pvlib makes PV profiles only")
        if self.pv.source == "demandlib" or self.heat_demand.source == "demandlib":
            raise ValueError("demandlib makes the load profile only")
        return self

    def resolve(self, path: str) -> Path:
        p = Path(path)
        if not p.is_absolute() and self.base_dir:
            p = Path(self.base_dir) / p
        return p


def _default() -> Scenario:
    return Scenario(
        name="default",
        description=(
            "A commercial site's day: load 50-190 kW with morning and late-afternoon peaks above the 150 kW "
            "import limit, 200 kWp PV peaking around noon, a 200 kWh / 100 kW battery at 50 %, "
            "a 30 kW boiler with a 2000 L tank kept at 55-80 degC."
        ),
        site_id="site-sim-01",
        start=datetime.fromisoformat("2024-04-10T06:00:00+02:00"),
        latitude=51.0,
        longitude=10.0,
        import_limit_kw=150.0,
        seed=42,
        load=ProfileSpec(source="synthetic", min_kw=60.0, max_kw=190.0, noise_kw=3.0),
        pv=ProfileSpec(source="synthetic", cloudiness=0.15),
        heat_demand=ProfileSpec(source="synthetic", min_kw=1.0, max_kw=12.0),
        devices=[
            SolarSpec(asset_id="pv-1", unit_id=1, kwp=200.0, ac_kw=180.0, model="SIM-PV-180"),
            BatterySpec(asset_id="bess-1", unit_id=1, capacity_kwh=200.0, max_charge_kw=100.0,
                        max_discharge_kw=100.0, soc_pct=50.0, model="SIM-BESS-200"),
            BoilerSpec(asset_id="boiler-1", unit_id=1, heater_kw=30.0, tank_l=2000.0, min_temp_c=55.0,
                       max_temp_c=80.0, setpoint_c=60.0, temp_c=62.0, model="SIM-EWH-30"),
            # energy-edge guards the import limit: the site controller's own peak shaving is off
            ControllerSpec(asset_id="mgc-1", unit_id=1, model="SIM-MGC", peak_shaving_enable=False),
        ],
    )


def _small() -> Scenario:
    return Scenario(
        name="small",
        description="A tiny site for fast tests: 10 kW load, 12 kWp PV, 10 kWh / 5 kW battery, 3 kW boiler.",
        site_id="site-sim-small",
        start=datetime.fromisoformat("2024-06-18T12:00:00+02:00"),
        import_limit_kw=8.0,
        seed=7,
        load=ProfileSpec(source="constant", value=6.0),
        pv=ProfileSpec(source="constant", value=800.0),
        heat_demand=ProfileSpec(source="constant", value=0.5),
        devices=[
            SolarSpec(asset_id="pv-1", unit_id=1, kwp=12.0, ac_kw=10.0),
            BatterySpec(asset_id="bess-1", unit_id=2, capacity_kwh=10.0, max_charge_kw=5.0, max_discharge_kw=5.0,
                        soc_pct=50.0, nominal_voltage_v=400.0),
            BoilerSpec(asset_id="boiler-1", unit_id=3, heater_kw=3.0, tank_l=200.0, min_temp_c=45.0,
                       max_temp_c=75.0, setpoint_c=55.0, temp_c=56.0, loss_w_per_k=2.0),
            ControllerSpec(asset_id="mgc-1", unit_id=4),
        ],
    )


BUILTIN = {"default": _default, "small": _small}


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or a JSON scenario file."""
    text = str(name_or_path)
    if text in BUILTIN:
        return BUILTIN[text]()
    path = Path(text)
    if not path.is_file():
        raise ScenarioError(f"no scenario {text!r}: neither a built-in ({', '.join(BUILTIN)}) nor a file")
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    if isinstance(doc, dict):
        doc.setdefault("base_dir", str(path.resolve().parent))
        doc.setdefault("name", path.stem)
    try:
        return Scenario.model_validate(doc)
    except ValidationError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc


def utc_offset_h(when: datetime) -> float:
    """The start's UTC offset in hours (0 for a naive start): places solar noon for the synthetic PV."""
    offset = when.utcoffset()
    return 0.0 if offset is None else offset.total_seconds() / 3600.0
