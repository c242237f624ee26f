"""The device type data files: every shipped file loads, and a bad file is refused naming what is wrong."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest

from energy_edge_base.devices import DeviceType, device_type_names, load_device_type
from energy_edge_base.modbus import RegisterMap

BOILER_ROW = {"name": "water_temp_c", "address": 0, "table": "input", "data_type": "int16", "scale": 0.1,
              "unit": "degC", "description": "Tank water temperature."}


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": "x", "title": "x", "kind": "boiler", "protocol": "vendor",
                           "registers": [BOILER_ROW]}
    doc.update(changes)
    return doc


def test_the_shipped_device_types() -> None:
    assert device_type_names() == ["boiler", "boiler_float32", "boiler_nordvarme", "microgrid_controller"]


@pytest.mark.parametrize("name", device_type_names())
def test_every_file_loads_with_descriptions_and_liveness(name: str) -> None:
    device = load_device_type(name)
    assert device.name == name
    register_map = device.register_map()
    assert isinstance(register_map, RegisterMap) and len(register_map) == len(device.registers)
    assert all(r.description for r in device.registers), "every register is described"
    spec = device.liveness_spec()
    assert spec.heartbeat is not None or spec.counters, "every device type says how its data is proven live"


def test_files_are_package_data() -> None:
    """Declared in shared/pyproject.toml, so wheels and container images carry them."""
    files = {f.name for f in resources.files("energy_edge_base.devices").iterdir()}
    assert {f"{n}.json" for n in device_type_names()} <= files


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_doc(registers=[]), "registers"),
        (_doc(registers=[{**BOILER_ROW, "unit": "kW"}]), "must end with one of"),
        (_doc(registers=[BOILER_ROW, {**BOILER_ROW, "name": "other_c"}]), "overlaps"),
        (_doc(registers=[{**BOILER_ROW, "colour": "red"}]), "colour"),
        (_doc(kind="heat_pump"), "kind"),
        (_doc(liveness={"heartbeat": "beat"}), "unknown registers ['beat']"),
        (_doc(liveness={"counters": [{"counter": "water_temp_c", "power": "p", "power_to_kw": 1,
                                      "resolution_kwh": 0.1}]}), "unknown registers ['p']"),
        (_doc(name="Bad Name"), "name"),
    ],
)
def test_bad_files_are_refused(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        DeviceType.model_validate(json.loads(json.dumps(doc)))


def test_unknown_device_type_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown device type 'heatpump'.*boiler"):
        load_device_type("heatpump")
