"""The telemetry contract: every message a module sends, as versioned pydantic models.

Messages and their JSON
-----------------------
Every body is one flat JSON object. The constants that say what it is come first and are always
present: ``schema_version`` ("1.0"), ``message_type`` and, for telemetry, ``asset_type``.

| message_type       | model                          | sent by                              |
|--------------------|--------------------------------|--------------------------------------|
| `telemetry`        | one subclass of `Telemetry` per `asset_type`: `SolarTelemetry`, `BatteryTelemetry`,
|                    | `BoilerTelemetry`, `MicrogridControllerTelemetry` | the asset modules, every poll |
| `commandAck`       | `CommandAck`                   | a module that carried out a command  |
| `event`            | `Event`                        | any module                           |
| `capabilityStatus` | `CapabilityStatus`             | the controller                       |
| `siteSummary`      | `SiteSummary`                  | the controller                       |

Telemetry is a discriminated union on ``asset_type``: each asset type is a subclass of `Telemetry`
that adds its own fields *at the top level* next to the common core (no nested ``details``
object). A route reads ``$body.soc_pct`` or ``$body.grid_import_kw`` directly, and an analyst gets
one column per field; the field names never clash across asset types, and each carries its unit.

On the wire every key is always present: a value that is not known (device offline, point not
provided) is ``null``, never left out. `parse_message` insists on this, and the JSON Schemas in
docs/schemas (``python -m energy_edge_base.schemas``) list every property as required. In Python
the constants, ``fault``/``fault_code`` and the optional extras have defaults, so producers pass
only what they measure.

Values are checked strictly: numbers must be JSON numbers (not strings, not booleans), booleans
must be JSON booleans, numbers must be finite (JSON has no NaN), and timestamps must carry a time
zone. Naive datetimes are rejected; aware ones are converted to UTC and serialized in ISO 8601
with ``Z``, e.g. ``2025-06-01T12:00:00.250000Z``. Use `utc_now()`.

Sign convention
---------------
``power_kw`` of an asset is its power on the site bus, kW: **positive = delivered to the site bus**
(PV generation, battery discharge), **negative = drawn from it** (battery charging, boiler heating).
``setpoint_kw`` uses the same sign. The site meter (``microgrid_controller``) sees the grid as one
more source on the bus, so its ``power_kw`` equals ``grid_import_kw``: **positive = import from the
grid**, negative = export. Magnitudes that are ratings or limits (``max_charge_kw``,
``heater_power_kw``, ``rated_kw``) are never negative. Every numeric field's name ends in its unit
(``_kw``, ``_kwh``, ``_pct``, ``_c``, ``_hz``, ``_v``, ``_w_m2``) and its description says it again.

Faults
------
``fault_code`` is an integer or null: null = no fault; otherwise the device's own numeric fault
code, or 1 when the module itself found a fault (device unreachable, poll failed) and the device
gave no code. Integers because the devices report numbers (Modbus registers) and routes compare
them with ``=`` and ``>``; the human-readable text goes in ``fault``.

Versions
--------
``schema_version`` is a literal: any change to the shape of a message (a field added, removed,
renamed or re-typed) bumps `SCHEMA_VERSION`. Models reject unknown fields, so a consumer never
mistakes a newer message for one it understands; during a rollout a consumer that must read both
keeps the old models beside the new ones, told apart by ``schema_version``.

Routing
-------
`application_properties(message)` gives the properties every module sets on a message
(``messageType``, ``assetType`` for telemetry, ``schemaVersion``), so a route can select without
parsing the body: ``WHERE messageType = 'telemetry' AND assetType = 'battery'``.
`MESSAGE_MODELS` names every model as ``messageType`` or ``messageType.assetType`` — the same
name as its schema file, ``docs/schemas/<name>.schema.json``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails

__all__ = [
    "ASSET_TYPES",
    "MESSAGE_MODELS",
    "SCHEMA_VERSION",
    "TELEMETRY_MODELS",
    "AckStatus",
    "AnyMessage",
    "AssetType",
    "BaseMessage",
    "BatteryTelemetry",
    "BoilerState",
    "BoilerTelemetry",
    "Capability",
    "CapabilityState",
    "CapabilityStatus",
    "CommandAck",
    "Event",
    "MicrogridControllerTelemetry",
    "Severity",
    "SiteSummary",
    "SolarTelemetry",
    "Telemetry",
    "TelemetryMessage",
    "application_properties",
    "message_name",
    "parse_message",
    "utc_now",
]

SCHEMA_VERSION: Final = "1.0"

AssetType = Literal["solar", "battery", "boiler", "microgrid_controller"]
ASSET_TYPES: Final[tuple[str, ...]] = get_args(AssetType)
BoilerState = Literal["idle", "heating", "standby", "fault", "offline"]
AckStatus = Literal["ok", "clamped", "rejected", "failed"]
Severity = Literal["info", "warning", "critical"]
Capability = Literal["PEAK_SHAVING", "DER"]
CapabilityState = Literal["ON", "OFF"]


def utc_now() -> dt.datetime:
    """The current time, timezone-aware, in UTC: what every `timestamp` should be."""
    return dt.datetime.now(dt.timezone.utc)


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc)


# Strict: a JSON number (an int is fine for a float), never a string or a boolean; finite (see config).
Number = Annotated[float, Strict()]
Integer = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
# Timezone-aware (naive is rejected), normalised to UTC, serialized as ISO 8601 with "Z".
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]

ASSET_ID_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,64}$"  # the same rule as DeviceSettings.asset_id
STATUS_PATTERN: Final = r"^[a-z][a-z0-9_]{0,31}$"


def _site_id() -> Any:
    return Field(min_length=1, max_length=128, description="Site the message is about (the modules' site_id setting).")


class BaseMessage(BaseModel):
    """What every message has: its schema version and type. Immutable; unknown fields are rejected."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,  # JSON has no NaN; pydantic would write null where a number is required
        json_schema_serialization_defaults_required=True,  # on the wire every key is present
    )

    schema_version: Literal["1.0"] = Field(
        SCHEMA_VERSION, description="Version of this contract; changes with any change to a message's shape."
    )
    message_type: str


# ====================================================================== telemetry


class Telemetry(BaseMessage):
    """The common core of every asset's telemetry (not sent itself: see the subclass per asset type)."""

    message_type: Literal["telemetry"] = Field("telemetry", description="Always 'telemetry'.")
    asset_type: AssetType = Field(description="Kind of asset; selects the fields that follow the core.")
    site_id: str = _site_id()
    asset_id: str = Field(pattern=ASSET_ID_PATTERN, description="Id of the asset on the site.")
    timestamp: UtcDatetime = Field(description="When the values were read, UTC, ISO 8601 (e.g. 2025-06-01T12:00:00Z).")
    power_kw: Number = Field(
        description="Active power on the site bus, kW: + delivered to the site bus (generation, battery "
        "discharge, grid import at the site meter), - drawn from it (battery charging, heating). 0 when offline."
    )
    setpoint_kw: Number | None = Field(
        description="Power setpoint in force, kW, with the sign of power_kw (+ deliver, - draw); "
        "null when the asset runs on its own control."
    )
    online: Bool = Field(description="The module reached the device on its last poll.")
    status: str = Field(
        pattern=STATUS_PATTERN,
        description="Short lower-case state word of the device (e.g. mppt, charging, heating, "
        "grid_connected), 'offline' when the device was not reached.",
    )
    fault_code: Integer | None = Field(
        None,
        description="Fault code, a number without unit: null = no fault, otherwise the device's own "
        "fault code, or 1 when the module found a fault the device gave no code for (unreachable, poll failed).",
    )
    fault: str | None = Field(None, description="Human-readable fault text; null when there is no fault.")


class SolarTelemetry(Telemetry):
    """Telemetry of a PV inverter."""

    model_config = ConfigDict(title="telemetry.solar")

    asset_type: Literal["solar"] = Field("solar", description="Always 'solar'.")
    ac_power_kw: Number = Field(
        description="AC output power of the inverter, kW (+ = generation; equals power_kw). 0 when offline."
    )
    irradiance_w_m2: Number | None = Field(
        None, ge=0, description="Plane-of-array irradiance, W/m2; null when no irradiance sensor is read."
    )
    power_limit_pct: Number | None = Field(
        ge=0, le=100,
        description="Active power limit in force, % of the rated power (100 = no limit); null when unknown.",
    )
    curtailed: Bool = Field(
        description="Output is held below what the panels could give (a limit < 100 % is in force)."
    )
    rated_kw: Number | None = Field(None, ge=0, description="Rated AC power of the inverter, kW; null when unknown.")


class BatteryTelemetry(Telemetry):
    """Telemetry of a battery (storage inverter and its battery)."""

    model_config = ConfigDict(title="telemetry.battery")

    asset_type: Literal["battery"] = Field("battery", description="Always 'battery'.")
    soc_pct: Number | None = Field(ge=0, le=100, description="State of charge, % (0..100); null when unknown.")
    soh_pct: Number | None = Field(ge=0, le=100, description="State of health, % (0..100); null when unknown.")
    energy_kwh: Number | None = Field(ge=0, description="Energy stored now (available), kWh; null when unknown.")
    capacity_kwh: Number | None = Field(ge=0, description="Usable capacity, kWh; null when unknown.")
    max_charge_kw: Number = Field(ge=0, description="Charge power limit, kW (a magnitude, >= 0; 0 = cannot charge).")
    max_discharge_kw: Number = Field(
        ge=0, description="Discharge power limit, kW (a magnitude, >= 0; 0 = cannot discharge)."
    )


class BoilerTelemetry(Telemetry):
    """Telemetry of an electric boiler (power-to-heat)."""

    model_config = ConfigDict(title="telemetry.boiler")

    asset_type: Literal["boiler"] = Field("boiler", description="Always 'boiler'.")
    water_temp_c: Number | None = Field(description="Tank water temperature, degrees Celsius; null when unknown.")
    setpoint_c: Number | None = Field(description="Water temperature setpoint, degrees Celsius; null when unknown.")
    heater_power_kw: Number = Field(
        ge=0, description="Electric power the heater draws, kW (a magnitude, >= 0; power_kw is its negative)."
    )
    state: BoilerState = Field(description="Heater state: idle, heating, standby, fault, or offline (not reached).")
    min_temp_c: Number | None = Field(
        None, description="Lowest water temperature allowed, degrees Celsius; null when unknown."
    )
    max_temp_c: Number | None = Field(
        None, description="Highest water temperature allowed, degrees Celsius; null when unknown."
    )
    rated_kw: Number | None = Field(None, ge=0, description="Rated heater power, kW; null when unknown.")


class MicrogridControllerTelemetry(Telemetry):
    """Telemetry of the site meter: the microgrid controller at the point of common coupling."""

    model_config = ConfigDict(title="telemetry.microgrid_controller")

    asset_type: Literal["microgrid_controller"] = Field(
        "microgrid_controller", description="Always 'microgrid_controller'."
    )
    grid_import_kw: Number = Field(
        description="Power at the grid connection, kW: + = import from the grid, - = export to it "
        "(equals power_kw). 0 when offline."
    )
    site_load_kw: Number | None = Field(description="Site consumption, kW (+ = consumed); null when unknown.")
    frequency_hz: Number | None = Field(ge=0, description="Grid frequency, Hz; null when unknown.")
    voltage_v: Number | None = Field(ge=0, description="Voltage at the connection point, V; null when unknown.")
    peak_shaving_active: Bool | None = Field(
        description="The device's own PEAK_SHAVING status boolean; null when not read (offline)."
    )
    der_active: Bool | None = Field(description="The device's own DER status boolean; null when not read (offline).")
    import_limit_kw: Number | None = Field(
        None, description="Grid import limit in force at the device, kW (+ = import); null when none or unknown."
    )


TelemetryMessage = Annotated[
    SolarTelemetry | BatteryTelemetry | BoilerTelemetry | MicrogridControllerTelemetry,
    Field(discriminator="asset_type"),
]

TELEMETRY_MODELS: Final[dict[str, type[Telemetry]]] = {
    "solar": SolarTelemetry,
    "battery": BatteryTelemetry,
    "boiler": BoilerTelemetry,
    "microgrid_controller": MicrogridControllerTelemetry,
}


# ====================================================================== other messages


class CommandAck(BaseMessage):
    """What became of a command to an asset: requested vs applied, and the outcome."""

    model_config = ConfigDict(title="commandAck")

    message_type: Literal["commandAck"] = Field("commandAck", description="Always 'commandAck'.")
    site_id: str | None = Field(
        None, min_length=1, max_length=128, description="Site of the asset; null when not known."
    )
    asset_id: str = Field(pattern=ASSET_ID_PATTERN, description="Asset the command was for.")
    command: str = Field(min_length=1, max_length=64, description="Command (direct method) name, e.g. set_power.")
    command_id: str | None = Field(
        None, max_length=128, description="Id the sender gave the command (to correlate); null when none."
    )
    requested: dict[str, Any] = Field(description="Parameters as requested, e.g. {\"power_kw\": 50}.")
    applied: dict[str, Any] = Field(
        description="Parameters as applied (after clamping to ratings), e.g. {\"power_kw\": 30}; {} when nothing was."
    )
    status: AckStatus = Field(
        description="ok = applied as requested; clamped = applied within the asset's limits; "
        "rejected = refused (invalid, not allowed); failed = the device could not be reached or did not take it."
    )
    message: str = Field("", description="Explanation for people (why clamped, rejected or failed); may be empty.")
    timestamp: UtcDatetime = Field(description="When the outcome was known, UTC, ISO 8601.")


class Event(BaseMessage):
    """Something that happened and that an operator may need to know."""

    model_config = ConfigDict(title="event")

    message_type: Literal["event"] = Field("event", description="Always 'event'.")
    site_id: str | None = Field(
        None, min_length=1, max_length=128, description="Site the event is about; null when not known."
    )
    severity: Severity = Field(description="info, warning or critical.")
    code: str = Field(
        min_length=1, max_length=64, description="Stable machine-readable code of the event, e.g. asset_offline."
    )
    text: str = Field(description="What happened, for people.")
    asset_id: str | None = Field(
        None, pattern=ASSET_ID_PATTERN, description="Asset the event is about; null for the site or a module."
    )
    timestamp: UtcDatetime = Field(description="When it happened, UTC, ISO 8601.")


class CapabilityStatus(BaseMessage):
    """State of one site capability (PEAK_SHAVING or DER), normalised to ON/OFF, with where it comes from."""

    model_config = ConfigDict(title="capabilityStatus")

    message_type: Literal["capabilityStatus"] = Field("capabilityStatus", description="Always 'capabilityStatus'.")
    site_id: str = _site_id()
    capability: Capability = Field(description="PEAK_SHAVING or DER.")
    state: CapabilityState = Field(description="Normalised state: ON or OFF.")
    raw_value: Bool = Field(description="The boolean the source reported (true = active).")
    source: str = Field(
        min_length=1,
        description="Which device or module the state comes from: 'controller', the microgrid controller's "
        "asset id, or 'none' when no source reports it.",
    )
    reason: str = Field(description="Why the capability is in this state, for people.")
    conflict: Bool = Field(description="More than one source reports the capability active at once.")
    timestamp: UtcDatetime = Field(description="When the state was determined, UTC, ISO 8601.")


class SiteSummary(BaseMessage):
    """The site over a time window, from the controller: grid import in the window against its limit, and
    the power of each asset kind (and the battery state of charge) as it stood at the window's end."""

    model_config = ConfigDict(title="siteSummary")

    message_type: Literal["siteSummary"] = Field("siteSummary", description="Always 'siteSummary'.")
    site_id: str = _site_id()
    window_start: UtcDatetime = Field(description="Start of the window summarised, UTC, ISO 8601.")
    window_end: UtcDatetime = Field(description="End of the window summarised (>= window_start), UTC, ISO 8601.")
    grid_import_avg_kw: Number = Field(
        description="Mean of the grid import readings in the window, kW (+ = import, - = export)."
    )
    grid_import_max_kw: Number = Field(
        description="Highest grid import reading in the window, kW (+ = import, - = export)."
    )
    import_limit_kw: Number | None = Field(
        None, description="Grid import limit in force, kW (+ = import); null when there is none."
    )
    margin_kw: Number | None = Field(
        None,
        description="Headroom to the limit, kW: import_limit_kw - the 15-min mean import the limit is judged on "
        "(negative = over the limit); null without a limit.",
    )
    pv_kw: Number = Field(
        description="PV power of the online inverters at window_end, kW; + = delivered to the site bus."
    )
    battery_kw: Number = Field(
        description="Power of the online batteries at window_end, kW; + = discharge to the site bus, - = charging."
    )
    battery_soc_pct: Number | None = Field(
        None, ge=0, le=100,
        description="Mean state of charge of the online batteries at window_end, %; null when none reports it."
    )
    boiler_kw: Number = Field(
        description="Power of the online boilers at window_end, kW, on the site bus: - = heating (drawn), 0 = off."
    )
    mode: str = Field(
        min_length=1,
        max_length=32,
        description="Controller mode at window_end, e.g. idle, balancing, peak_shaving, dispatch, fail_safe.",
    )

    @model_validator(mode="after")
    def _window_in_order(self) -> SiteSummary:
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        return self


# ====================================================================== helpers

AnyMessage = Annotated[
    TelemetryMessage | CommandAck | Event | CapabilityStatus | SiteSummary,
    Field(discriminator="message_type"),
]
"""Any message of the contract; `parse_message` returns one."""

MESSAGE_MODELS: Final[dict[str, type[BaseMessage]]] = {
    **{f"telemetry.{asset_type}": model for asset_type, model in TELEMETRY_MODELS.items()},
    "commandAck": CommandAck,
    "event": Event,
    "capabilityStatus": CapabilityStatus,
    "siteSummary": SiteSummary,
}
"""Every message model by name: `messageType`, or `messageType.assetType` for telemetry (its schema file's name)."""

_MESSAGE_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyMessage)


def message_name(message: BaseMessage) -> str:
    """The model's name in `MESSAGE_MODELS`: `telemetry.battery`, `commandAck`, ..."""
    if isinstance(message, Telemetry):
        return f"{message.message_type}.{message.asset_type}"
    return message.message_type


def parse_message(body: bytes | bytearray | str | Mapping[str, Any]) -> AnyMessage:
    """One message from its JSON body (bytes or text) or from a decoded dict.

    Picks the model by `message_type` (and `asset_type` for telemetry). Raises pydantic's
    `ValidationError` for anything that breaks the contract, including a key left out (on the wire
    every key is present, null when unknown). Error locations name the field, prefixed by the
    message and asset type tags, e.g. ``('telemetry', 'battery', 'soc_pct')``.
    """
    if isinstance(body, (bytes, bytearray, str)):
        message: AnyMessage = _MESSAGE_ADAPTER.validate_json(body)
    elif isinstance(body, Mapping):
        message = _MESSAGE_ADAPTER.validate_python(dict(body))
    else:
        raise TypeError(f"parse_message takes bytes, str or a mapping, not {type(body).__name__}")
    missing = [name for name in type(message).model_fields if name not in message.model_fields_set]
    if missing:
        tags: tuple[str, ...] = tuple(message_name(message).split("."))
        raw = body if isinstance(body, Mapping) else json.loads(body)
        errors = [InitErrorDetails(type="missing", loc=(*tags, name), input=raw) for name in missing]
        raise ValidationError.from_exception_data(type(message).__name__, errors)
    return message


def application_properties(message: BaseModel) -> dict[str, str]:
    """Routing properties for a message: `messageType`, `assetType` (telemetry only), `schemaVersion`."""
    if not isinstance(message, BaseMessage):
        raise TypeError(f"{type(message).__name__} is not a message of the telemetry contract")
    properties = {"messageType": message.message_type}
    if isinstance(message, Telemetry):
        properties["assetType"] = message.asset_type
    properties["schemaVersion"] = message.schema_version
    return properties
