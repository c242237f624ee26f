"""The telemetry contract: examples round-trip, bad messages are refused naming the field, routing
properties, units and signs in the descriptions, and the committed JSON Schemas are current."""

from __future__ import annotations

import copy
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from energy_edge_base import contract, schemas
from energy_edge_base.contract import (
    ASSET_TYPES,
    MESSAGE_MODELS,
    SCHEMA_VERSION,
    TELEMETRY_MODELS,
    BatteryTelemetry,
    BoilerTelemetry,
    CommandAck,
    MicrogridControllerTelemetry,
    SiteSummary,
    SolarTelemetry,
    Telemetry,
    application_properties,
    message_name,
    parse_message,
    utc_now,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "docs" / "schemas"
T0 = "2025-06-01T12:00:00Z"
CORE = {"schema_version": "1.0", "site_id": "site-1", "timestamp": T0, "fault_code": None, "fault": None}

# ------------------------------------------------------------------------ valid examples (the wire format)

EXAMPLES: list[tuple[str, str, dict[str, Any]]] = [
    # id, name in MESSAGE_MODELS, body as sent
    ("solar", "telemetry.solar", {
        **CORE, "message_type": "telemetry", "asset_type": "solar", "asset_id": "pv-1",
        "power_kw": 80.5, "setpoint_kw": None, "online": True, "status": "mppt",
        "ac_power_kw": 80.5, "irradiance_w_m2": 845.0, "power_limit_pct": 100.0, "curtailed": False, "rated_kw": 100.0,
    }),
    ("solar-curtailed", "telemetry.solar", {
        **CORE, "message_type": "telemetry", "asset_type": "solar", "asset_id": "pv-2",
        "power_kw": 30.0, "setpoint_kw": 30.0, "online": True, "status": "throttled",
        "ac_power_kw": 30.0, "irradiance_w_m2": None, "power_limit_pct": 30.0, "curtailed": True, "rated_kw": None,
    }),
    ("battery-charging", "telemetry.battery", {
        **CORE, "message_type": "telemetry", "asset_type": "battery", "asset_id": "bat-1",
        "power_kw": -25.0, "setpoint_kw": -25.0, "online": True, "status": "charging",
        "soc_pct": 62.5, "soh_pct": 97.0, "energy_kwh": 125.0, "capacity_kwh": 200.0,
        "max_charge_kw": 100.0, "max_discharge_kw": 100.0,
    }),
    ("battery-offline", "telemetry.battery", {
        **CORE, "message_type": "telemetry", "asset_type": "battery", "asset_id": "bat-2",
        "power_kw": 0.0, "setpoint_kw": None, "online": False, "status": "offline",
        "fault_code": 1, "fault": "unreachable: connection refused",
        "soc_pct": None, "soh_pct": None, "energy_kwh": None, "capacity_kwh": 200.0,
        "max_charge_kw": 0.0, "max_discharge_kw": 0.0,
    }),
    ("boiler", "telemetry.boiler", {
        **CORE, "message_type": "telemetry", "asset_type": "boiler", "asset_id": "boiler-1",
        "power_kw": -12.0, "setpoint_kw": -12.0, "online": True, "status": "heating",
        "water_temp_c": 55.5, "setpoint_c": 65.0, "heater_power_kw": 12.0, "state": "heating",
        "min_temp_c": 40.0, "max_temp_c": 85.0, "rated_kw": 18.0,
    }),
    ("microgrid-controller", "telemetry.microgrid_controller", {
        **CORE, "message_type": "telemetry", "asset_type": "microgrid_controller", "asset_id": "mgc-1",
        "power_kw": 42.0, "setpoint_kw": None, "online": True, "status": "grid_connected",
        "grid_import_kw": 42.0, "site_load_kw": 160.0, "frequency_hz": 50.01, "voltage_v": 400.2,
        "peak_shaving_active": True, "der_active": False, "import_limit_kw": 250.0,
    }),
    ("microgrid-controller-exporting", "telemetry.microgrid_controller", {
        **CORE, "message_type": "telemetry", "asset_type": "microgrid_controller", "asset_id": "mgc-1",
        "power_kw": -15.5, "setpoint_kw": None, "online": True, "status": "grid_connected", "fault_code": 7,
        "fault": "phase imbalance", "grid_import_kw": -15.5, "site_load_kw": 40.0, "frequency_hz": 49.98,
        "voltage_v": 398.0, "peak_shaving_active": False, "der_active": True, "import_limit_kw": None,
    }),
    ("commandAck", "commandAck", {
        "schema_version": "1.0", "message_type": "commandAck", "site_id": "site-1", "asset_id": "bat-1",
        "command": "set_power", "command_id": "c-42", "requested": {"power_kw": 150.0},
        "applied": {"power_kw": 100.0}, "status": "clamped", "message": "limited to max_discharge_kw 100",
        "timestamp": T0,
    }),
    ("event", "event", {
        "schema_version": "1.0", "message_type": "event", "site_id": "site-1", "severity": "warning",
        "code": "asset_offline", "text": "bat-1 did not answer for 30 s", "asset_id": "bat-1", "timestamp": T0,
    }),
    ("capabilityStatus", "capabilityStatus", {
        "schema_version": "1.0", "message_type": "capabilityStatus", "site_id": "site-1",
        "capability": "PEAK_SHAVING", "state": "ON", "raw_value": True, "source": "controller",
        "reason": "import 248 kW near the 250 kW limit", "conflict": False, "timestamp": T0,
    }),
    ("siteSummary", "siteSummary", {
        "schema_version": "1.0", "message_type": "siteSummary", "site_id": "site-1",
        "window_start": T0, "window_end": "2025-06-01T12:15:00Z",
        "grid_import_avg_kw": 231.4, "grid_import_max_kw": 249.0, "import_limit_kw": 250.0, "margin_kw": 18.6,
        "pv_kw": 80.2, "battery_kw": 35.0, "battery_soc_pct": 58.0, "boiler_kw": -6.0, "mode": "peak_shaving",
    }),
]
EXAMPLE_IDS = [case[0] for case in EXAMPLES]


def example(case_id: str) -> dict[str, Any]:
    return copy.deepcopy(next(body for cid, _, body in EXAMPLES if cid == case_id))


@pytest.mark.parametrize(("name", "body"), [case[1:] for case in EXAMPLES], ids=EXAMPLE_IDS)
def test_examples_round_trip_through_json(name: str, body: dict[str, Any]) -> None:
    text = json.dumps(body)
    message = parse_message(text)
    assert type(message) is MESSAGE_MODELS[name]
    assert message_name(message) == name
    assert json.loads(message.model_dump_json()) == body  # same keys, same values, timestamps with Z
    assert parse_message(message.model_dump_json()) == message
    assert parse_message(text.encode()) == message == parse_message(body)


@pytest.mark.parametrize(("name", "body"), [case[1:] for case in EXAMPLES], ids=EXAMPLE_IDS)
def test_examples_carry_every_key_of_the_schema(name: str, body: dict[str, Any]) -> None:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    assert set(body) == set(schema["properties"]) == set(schema["required"])


def test_every_message_model_has_an_example() -> None:
    assert {name for _, name, _ in EXAMPLES} == set(MESSAGE_MODELS)
    assert set(TELEMETRY_MODELS) == set(ASSET_TYPES)


# ------------------------------------------------------------------------ what producers write in Python

PRODUCED = [
    # the keyword arguments a module passes; constants and the optional extras come from defaults
    (SolarTelemetry, {"ac_power_kw": 5.0, "power_limit_pct": None, "curtailed": False}, "solar"),
    (BatteryTelemetry, {"soc_pct": 50, "soh_pct": None, "energy_kwh": None, "capacity_kwh": None,
                        "max_charge_kw": 0.0, "max_discharge_kw": 0.0}, "battery"),
    (BoilerTelemetry, {"water_temp_c": None, "setpoint_c": None, "heater_power_kw": 0.0, "state": "idle"}, "boiler"),
    (MicrogridControllerTelemetry, {"grid_import_kw": 5.0, "site_load_kw": None, "frequency_hz": None,
                                    "voltage_v": None, "peak_shaving_active": None, "der_active": None},
     "microgrid_controller"),
]


@pytest.mark.parametrize(("model", "details", "asset_type"), PRODUCED, ids=[p[2] for p in PRODUCED])
def test_producers_pass_only_what_they_measure(model: type[Telemetry], details: dict[str, Any],
                                               asset_type: str) -> None:
    message = model(site_id="site-1", asset_id="a-1", timestamp=utc_now(), power_kw=5.0, setpoint_kw=None,
                    online=True, status="running", **details)
    body = json.loads(message.model_dump_json())
    assert body["schema_version"] == SCHEMA_VERSION == "1.0"
    assert body["message_type"] == "telemetry"
    assert body["asset_type"] == asset_type
    assert body["fault_code"] is None and body["fault"] is None
    assert body["timestamp"].endswith("Z")
    assert set(body) == set(model.model_fields)  # every key on the wire, null when not known
    assert parse_message(message.model_dump_json()) == message


def test_timestamps_are_normalised_to_utc() -> None:
    body = example("battery-charging")
    body["timestamp"] = "2025-06-01T14:00:00.250+02:00"
    message = parse_message(body)
    assert isinstance(message, BatteryTelemetry)
    assert message.timestamp == dt.datetime(2025, 6, 1, 12, 0, 0, 250_000, tzinfo=dt.timezone.utc)
    assert json.loads(message.model_dump_json())["timestamp"] == "2025-06-01T12:00:00.250000Z"
    local = dt.datetime(2025, 6, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert CommandAck(asset_id="b", command="c", requested={}, applied={}, status="ok",
                      timestamp=local).timestamp.utcoffset() == dt.timedelta(0)


def test_utc_now_is_aware_utc() -> None:
    now = utc_now()
    assert now.tzinfo is not None and now.utcoffset() == dt.timedelta(0)


def test_messages_are_frozen() -> None:
    message = parse_message(example("boiler"))
    assert isinstance(message, BoilerTelemetry)
    with pytest.raises(ValidationError):
        message.power_kw = 1.0  # type: ignore[misc]


# ------------------------------------------------------------------------ refused, naming the field

DROP = object()
INVALID = [
    # id, example, changes (DROP removes the key), field named in the error, pydantic error type
    ("soc-above-100", "battery-charging", {"soc_pct": 120}, "soc_pct", "less_than_equal"),
    ("soc-negative", "battery-charging", {"soc_pct": -1}, "soc_pct", "greater_than_equal"),
    ("soh-above-100", "battery-charging", {"soh_pct": 100.5}, "soh_pct", "less_than_equal"),
    ("negative-max-charge", "battery-charging", {"max_charge_kw": -5.0}, "max_charge_kw", "greater_than_equal"),
    ("negative-max-discharge", "battery-charging", {"max_discharge_kw": -1}, "max_discharge_kw",
     "greater_than_equal"),
    ("naive-timestamp", "battery-charging", {"timestamp": "2025-06-01T12:00:00"}, "timestamp", "timezone_aware"),
    ("not-a-timestamp", "solar", {"timestamp": "yesterday"}, "timestamp", "datetime_from_date_parsing"),
    ("unknown-asset-type", "battery-charging", {"asset_type": "wind"}, "asset_type", "union_tag_invalid"),
    ("no-asset-type", "battery-charging", {"asset_type": DROP}, "asset_type", "union_tag_not_found"),
    ("unknown-message-type", "event", {"message_type": "alarm"}, "message_type", "union_tag_invalid"),
    ("extra-field", "battery-charging", {"temperature_c": 25.0}, "temperature_c", "extra_forbidden"),
    ("other-asset-type-field", "solar", {"soc_pct": 50.0}, "soc_pct", "extra_forbidden"),
    ("key-left-out", "battery-charging", {"soh_pct": DROP}, "soh_pct", "missing"),
    ("fault-left-out", "boiler", {"fault": DROP}, "fault", "missing"),
    ("version-left-out", "event", {"schema_version": DROP}, "schema_version", "missing"),
    ("other-version", "battery-charging", {"schema_version": "2.0"}, "schema_version", "literal_error"),
    ("power-as-string", "solar", {"power_kw": "80.5"}, "power_kw", "float_type"),
    ("power-as-bool", "solar", {"power_kw": True}, "power_kw", "float_type"),
    ("power-null", "solar", {"power_kw": None}, "power_kw", "float_type"),
    ("online-as-string", "solar", {"online": "true"}, "online", "bool_type"),
    ("online-as-int", "solar", {"online": 1}, "online", "bool_type"),
    ("nan", "microgrid-controller", {"grid_import_kw": float("nan")}, "grid_import_kw", "finite_number"),
    ("fault-code-as-string", "boiler", {"fault_code": "E7"}, "fault_code", "int_type"),
    ("status-not-a-word", "boiler", {"status": "Heating Up"}, "status", "string_pattern_mismatch"),
    ("bad-asset-id", "boiler", {"asset_id": "boiler 1"}, "asset_id", "string_pattern_mismatch"),
    ("empty-site-id", "boiler", {"site_id": ""}, "site_id", "string_too_short"),
    ("negative-heater-power", "boiler", {"heater_power_kw": -3.0}, "heater_power_kw", "greater_than_equal"),
    ("unknown-boiler-state", "boiler", {"state": "boiling"}, "state", "literal_error"),
    ("power-limit-above-100", "solar", {"power_limit_pct": 110.0}, "power_limit_pct", "less_than_equal"),
    ("negative-irradiance", "solar", {"irradiance_w_m2": -1.0}, "irradiance_w_m2", "greater_than_equal"),
    ("peak-shaving-as-int", "microgrid-controller", {"peak_shaving_active": 1}, "peak_shaving_active",
     "bool_type"),
    ("ack-status", "commandAck", {"status": "done"}, "status", "literal_error"),
    ("ack-requested-not-object", "commandAck", {"requested": [1]}, "requested", "dict_type"),
    ("event-severity", "event", {"severity": "fatal"}, "severity", "literal_error"),
    ("capability", "capabilityStatus", {"capability": "FREQUENCY"}, "capability", "literal_error"),
    ("capability-state", "capabilityStatus", {"state": "on"}, "state", "literal_error"),
    ("capability-raw-value", "capabilityStatus", {"raw_value": "ON"}, "raw_value", "bool_type"),
    ("summary-soc", "siteSummary", {"battery_soc_pct": 101.0}, "battery_soc_pct", "less_than_equal"),
    ("summary-naive-window", "siteSummary", {"window_end": "2025-06-01T12:15:00"}, "window_end", "timezone_aware"),
]


def _errors_of(body: Any) -> list[Any]:
    with pytest.raises(ValidationError) as info:
        parse_message(json.dumps(body, allow_nan=True))
    return info.value.errors()


@pytest.mark.parametrize(("base", "changes", "field", "error_type"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid_messages_are_refused_naming_the_field(base: str, changes: dict[str, Any], field: str,
                                                       error_type: str) -> None:
    body = example(base)
    for key, value in changes.items():
        if value is DROP:
            del body[key]
        else:
            body[key] = value
    errors = _errors_of(body)
    named = [e for e in errors if e["type"] == error_type and (field in e["loc"] or field in e["msg"])]
    assert named, errors
    # the same from a decoded dict (the path for bodies already parsed by a consumer)
    with pytest.raises(ValidationError, match=field):
        parse_message(body)


def test_window_end_before_start_is_refused() -> None:
    body = example("siteSummary")
    body["window_end"] = "2025-06-01T11:45:00Z"
    with pytest.raises(ValidationError, match="window_end is before window_start"):
        parse_message(body)


@pytest.mark.parametrize("body", [b"not json", b"", "[1, 2]", b'{"message_type": "telemetry"}'],
                         ids=["not-json", "empty", "array", "telemetry-without-asset-type"])
def test_bodies_that_are_no_message_are_refused(body: bytes | str) -> None:
    with pytest.raises(ValidationError):
        parse_message(body)


def test_parse_message_refuses_other_python_types() -> None:
    with pytest.raises(TypeError, match="parse_message takes"):
        parse_message([("message_type", "event")])  # type: ignore[arg-type]


# ------------------------------------------------------------------------ routing properties

PROPERTIES = [
    ("solar", {"messageType": "telemetry", "assetType": "solar", "schemaVersion": "1.0"}),
    ("battery-charging", {"messageType": "telemetry", "assetType": "battery", "schemaVersion": "1.0"}),
    ("boiler", {"messageType": "telemetry", "assetType": "boiler", "schemaVersion": "1.0"}),
    ("microgrid-controller", {"messageType": "telemetry", "assetType": "microgrid_controller",
                              "schemaVersion": "1.0"}),
    ("commandAck", {"messageType": "commandAck", "schemaVersion": "1.0"}),
    ("event", {"messageType": "event", "schemaVersion": "1.0"}),
    ("capabilityStatus", {"messageType": "capabilityStatus", "schemaVersion": "1.0"}),
    ("siteSummary", {"messageType": "siteSummary", "schemaVersion": "1.0"}),
]


@pytest.mark.parametrize(("case_id", "expected"), PROPERTIES, ids=[p[0] for p in PROPERTIES])
def test_application_properties(case_id: str, expected: dict[str, str]) -> None:
    properties = application_properties(parse_message(example(case_id)))
    assert properties == expected
    assert all(isinstance(v, str) for v in properties.values())


def test_application_properties_refuses_other_models() -> None:
    class Other(BaseModel):
        message_type: str = "telemetry"

    with pytest.raises(TypeError, match="not a message of the telemetry contract"):
        application_properties(Other())


# ------------------------------------------------------------------------ units, signs, configuration

UNIT_OF_SUFFIX = {  # name suffix -> what the description must say
    "_kwh": "kWh", "_kw": "kW", "_pct": "%", "_c": "degrees Celsius", "_hz": "Hz", "_v": "V", "_w_m2": "W/m2",
}
NUMERIC_FIELDS = [
    (name, field)
    for name, model in MESSAGE_MODELS.items()
    for field, prop in schemas.build_schema(name, model)["properties"].items()
    if {"number", "integer"} & {p.get("type") for p in prop.get("anyOf", [prop])}
]


@pytest.mark.parametrize(("name", "field"), NUMERIC_FIELDS, ids=[f"{n}.{f}" for n, f in NUMERIC_FIELDS])
def test_numeric_fields_name_and_describe_their_unit(name: str, field: str) -> None:
    description = MESSAGE_MODELS[name].model_fields[field].description or ""
    if field == "fault_code":
        assert "without unit" in description
        return
    suffix = next((s for s in UNIT_OF_SUFFIX if field.endswith(s)), None)
    assert suffix, f"{name}.{field}: the name does not end in a unit"
    assert UNIT_OF_SUFFIX[suffix] in description, f"{name}.{field}: {description!r}"


SIGNS = [
    ("telemetry.battery", "power_kw", "+ delivered to the site bus"),
    ("telemetry.battery", "power_kw", "- drawn from it"),
    ("telemetry.solar", "setpoint_kw", "with the sign of power_kw"),
    ("telemetry.microgrid_controller", "grid_import_kw", "+ = import from the grid"),
    ("telemetry.boiler", "heater_power_kw", "power_kw is its negative"),
    ("siteSummary", "battery_kw", "+ = discharge"),
    ("siteSummary", "boiler_kw", "- = heating"),
]


@pytest.mark.parametrize(("name", "field", "phrase"), SIGNS, ids=[f"{n}.{f}" for n, f, _ in SIGNS])
def test_sign_convention_is_in_the_descriptions(name: str, field: str, phrase: str) -> None:
    assert phrase in (MESSAGE_MODELS[name].model_fields[field].description or "")


def test_sign_convention_is_in_the_module_docstring() -> None:
    doc = contract.__doc__ or ""
    assert "positive = delivered to the site bus" in doc
    assert "positive = import from the" in doc


@pytest.mark.parametrize("name", list(MESSAGE_MODELS))
def test_models_are_frozen_strict_and_titled(name: str) -> None:
    config = MESSAGE_MODELS[name].model_config
    assert config.get("frozen") is True
    assert config.get("extra") == "forbid"
    assert config.get("title") == name


# ------------------------------------------------------------------------ JSON Schemas


def test_committed_schemas_are_current() -> None:
    """Messages and every installed module's twin configuration (registered by entry point)."""
    extra = schemas.discover_extra_models()
    assert {"config.battery", "config.solar", "config.boiler", "config.microgrid-controller",
            "config.controller"} <= set(extra)
    stale = schemas.check(SCHEMA_DIR, extra)
    assert stale == [], f"regenerate with `make schemas` in {REPO}: {stale}"


@pytest.mark.parametrize("name", list(MESSAGE_MODELS))
def test_schema_file_shape(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.schema.json"
    text = path.read_text(encoding="utf-8")
    schema = json.loads(text)
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text == json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == path.name
    assert schema["title"] == name
    assert schema["additionalProperties"] is False
    assert schema["required"] == list(MESSAGE_MODELS[name].model_fields)  # every key, in field order
    assert all("default" not in prop and "title" not in prop for prop in schema["properties"].values())


class ExampleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", title="example module configuration")
    poll_interval_s: float = Field(1.0, gt=0, description="Interval between polls, seconds.")


def test_generate_is_byte_stable_and_check_names_what_is_off(tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    assert sorted(schemas.check(out)) == sorted(f"{n}.schema.json" for n in MESSAGE_MODELS)  # all missing
    paths = schemas.generate(out)
    assert [p.name for p in paths] == [f"{n}.schema.json" for n in MESSAGE_MODELS]
    first = {p.name: p.read_bytes() for p in paths}
    assert schemas.check(out) == []
    schemas.generate(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    assert first["event.schema.json"] == (SCHEMA_DIR / "event.schema.json").read_bytes()

    (out / "event.schema.json").write_text("{}\n")
    (out / "siteSummary.schema.json").unlink()
    (out / "telemetry.wind.schema.json").write_text("{}\n")  # left over from a model that is gone
    (out / "config.other.schema.json").write_text("{}\n")  # not this run's business
    (out / "notes.md").write_text("not a schema\n")
    assert schemas.check(out) == ["event.schema.json", "siteSummary.schema.json", "telemetry.wind.schema.json"]


def test_extra_models_get_their_own_files(tmp_path: Path) -> None:
    extra = {"config.example": ExampleConfig}
    paths = schemas.generate(tmp_path, extra)
    assert paths[-1] == tmp_path / "config.example.schema.json"
    schema = json.loads(paths[-1].read_text())
    assert schema["$id"] == "config.example.schema.json"
    assert schema["title"] == "example module configuration"
    assert schema["properties"]["poll_interval_s"]["default"] == 1.0  # twin input: defaults kept
    assert "required" not in schema
    assert schemas.check(tmp_path, extra) == []
    assert schemas.check(tmp_path) == []  # config files are only checked when their models are given
    (tmp_path / "config.removed.schema.json").write_text("{}\n")
    assert schemas.check(tmp_path, extra) == ["config.removed.schema.json"]


@pytest.mark.parametrize(("extra", "error"), [
    ({"../escape": ExampleConfig}, ValueError),
    ({"config/example": ExampleConfig}, ValueError),
    ({"event": ExampleConfig}, ValueError),
    ({"config.example": dict}, TypeError),
], ids=["path", "slash", "message-name", "not-a-model"])
def test_extra_models_are_checked(tmp_path: Path, extra: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        schemas.generate(tmp_path, extra)
    assert list(tmp_path.iterdir()) == []


def test_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(schemas, "discover_extra_models", lambda: {"config.example": ExampleConfig})
    out = tmp_path / "out"
    assert schemas.main(["--check", str(out)]) == 1
    err = capsys.readouterr().err
    assert "telemetry.battery.schema.json: missing" in err and "config.example.schema.json: missing" in err
    assert "python -m energy_edge_base.schemas" in err
    assert schemas.main([str(out)]) == 0
    assert (out / "config.example.schema.json").is_file()
    assert schemas.main(["--check", str(out)]) == 0
    (out / "commandAck.schema.json").write_text("{}\n")
    assert schemas.main(["--check", str(out)]) == 1
    assert "commandAck.schema.json: stale" in capsys.readouterr().err


def test_module_command_defaults_to_docs_schemas_under_cwd(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "energy_edge_base.schemas"]
    checked = subprocess.run([*command, "--check"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 1
    assert "telemetry.solar.schema.json: missing" in checked.stderr
    written = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert written.returncode == 0, written.stderr
    for name in MESSAGE_MODELS:
        generated = (tmp_path / "docs" / "schemas" / f"{name}.schema.json").read_bytes()
        assert generated == (SCHEMA_DIR / f"{name}.schema.json").read_bytes()
    assert subprocess.run([*command, "--check"], cwd=tmp_path, timeout=60).returncode == 0


def test_site_summary_python_defaults() -> None:
    summary = SiteSummary(site_id="s", window_start=utc_now(), window_end=utc_now(), grid_import_avg_kw=1.0,
                          grid_import_max_kw=2.0, pv_kw=0.0, battery_kw=0.0, boiler_kw=0.0, mode="idle")
    assert summary.import_limit_kw is None and summary.margin_kw is None and summary.battery_soc_pct is None
    assert application_properties(summary) == {"messageType": "siteSummary", "schemaVersion": "1.0"}
