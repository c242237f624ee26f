"""The microgrid controller's two device maps, as data: Modbus registers (its data file) and MQTT topics.

Both name the same points, so one telemetry function serves either transport.
"""

from __future__ import annotations

from dataclasses import dataclass

from energy_edge_base.devices import load_device_type

STATUS_PEAK_SHAVING = 0x1
STATUS_DER = 0x2
STATUS_GRID_CONNECTED = 0x4

# The Modbus map and the liveness points come from the device's data file
# (energy_edge_base/devices/microgrid_controller.json).
PCC_TYPE = load_device_type("microgrid_controller")
PCC_MAP = PCC_TYPE.register_map()


@dataclass(frozen=True)
class TopicPoint:
    """One MQTT point: `{prefix}/<topic>` carries the value (plain number or JSON {"value": x})."""

    name: str
    topic: str
    writable: bool = False


# The same points over MQTT. A writable point is commanded on `{prefix}/set/<topic>` and the
# device confirms by publishing the new value on `{prefix}/<topic>`.
PCC_TOPICS: tuple[TopicPoint, ...] = (
    TopicPoint("grid_import_w", "grid/import_w"),
    TopicPoint("site_load_w", "site/load_w"),
    TopicPoint("frequency_hz", "grid/frequency_hz"),
    TopicPoint("voltage_v", "grid/voltage_v"),
    TopicPoint("status", "status"),
    TopicPoint("import_energy_kwh", "energy/import_kwh"),
    TopicPoint("export_energy_kwh", "energy/export_kwh"),
    TopicPoint("fault_code", "fault_code"),
    TopicPoint("heartbeat", "heartbeat"),
    TopicPoint("import_limit_w", "control/import_limit_w", writable=True),
    TopicPoint("peak_shaving_enable", "control/peak_shaving_enable", writable=True),
    TopicPoint("der_enable", "control/der_enable", writable=True),
    TopicPoint("reset", "control/reset", writable=True),
)


# What proves the controller's data is live (energy_edge_base.liveness): its heartbeat, and its energy
# counters against the power at the connection point.
PCC_LIVENESS = PCC_TYPE.liveness_spec()
