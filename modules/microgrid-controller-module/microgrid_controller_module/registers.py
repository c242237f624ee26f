"""The microgrid controller's two device maps, as data: Modbus registers and MQTT topics.

Both name the same points, so one telemetry function serves either transport.
"""

from __future__ import annotations

from dataclasses import dataclass

from energy_edge_base.liveness import EnergyCounter, LivenessSpec
from energy_edge_base.modbus import Register, RegisterMap

STATUS_PEAK_SHAVING = 0x1
STATUS_DER = 0x2
STATUS_GRID_CONNECTED = 0x4

PCC_MAP = RegisterMap(
    name="microgrid controller (vendor map v1)",
    registers=(
        Register(name="grid_import_w", address=0, table="input", data_type="int32", unit="W",
                 description="Power at the point of common coupling, + = import."),
        Register(name="site_load_w", address=2, table="input", data_type="int32", unit="W",
                 description="Site consumption."),
        Register(name="frequency_hz", address=4, table="input", scale=0.01, unit="Hz"),
        Register(name="voltage_v", address=5, table="input", scale=0.1, unit="V"),
        Register(name="status", address=6, table="input", data_type="bitfield16",
                 description="bit0 PEAK_SHAVING active, bit1 DER active, bit2 grid connected."),
        Register(name="import_energy_kwh", address=7, table="input", data_type="uint32", scale=0.1, unit="kWh"),
        Register(name="export_energy_kwh", address=9, table="input", data_type="uint32", scale=0.1, unit="kWh"),
        Register(name="fault_code", address=11, table="input", description="0 = no fault."),
        Register(name="heartbeat", address=12, table="input", data_type="uint16",
                 description="Counts the controller's seconds of uptime (wraps): standing still = frozen data."),
        Register(name="import_limit_w", address=100, data_type="int32", unit="W", access="rw",
                 description="Contracted import limit the device guards."),
        Register(name="peak_shaving_enable", address=102, access="rw", description="0/1."),
        Register(name="der_enable", address=103, access="rw", description="0/1: DER participation."),
        Register(name="reset", address=104, access="rw", description="Write 1 to clear a fault."),
    ),
)


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
PCC_LIVENESS = LivenessSpec(
    heartbeat="heartbeat",
    counters=(EnergyCounter("import_energy_kwh", "grid_import_w", 0.001, 0.1, direction=1),
              EnergyCounter("export_energy_kwh", "grid_import_w", 0.001, 0.1, direction=-1)),
)
