"""The boiler's vendor register map: read from its data file (energy_edge_base/devices/boiler.json)."""

from __future__ import annotations

from energy_edge_base.devices import load_device_type

STATES = {0: "idle", 1: "heating", 2: "standby", 3: "fault"}

BOILER_TYPE = load_device_type("boiler")
BOILER_MAP = BOILER_TYPE.register_map()
# What proves the boiler's data is live: its heater energy counter against the heater power.
BOILER_LIVENESS = BOILER_TYPE.liveness_spec()
