"""The boiler's vendor register map, as data (docs/register-maps.md has the same table)."""

from __future__ import annotations

from energy_edge_base.liveness import EnergyCounter, LivenessSpec
from energy_edge_base.modbus import Register, RegisterMap

STATES = {0: "idle", 1: "heating", 2: "standby", 3: "fault"}

BOILER_MAP = RegisterMap(
    name="boiler (vendor map v1)",
    registers=(
        Register(name="water_temp_c", address=0, table="input", data_type="int16", scale=0.1, unit="degC",
                 description="Tank water temperature."),
        Register(name="heater_power_kw", address=1, table="input", scale=0.1, unit="kW",
                 description="Electric power the heater draws now."),
        Register(name="state", address=2, table="input", description="0 idle, 1 heating, 2 standby, 3 fault."),
        Register(name="fault_code", address=3, table="input", description="0 = no fault."),
        Register(name="min_temp_c", address=4, table="input", data_type="int16", scale=0.1, unit="degC",
                 description="Lowest allowed setpoint; below it the boiler heats regardless."),
        Register(name="max_temp_c", address=5, table="input", data_type="int16", scale=0.1, unit="degC",
                 description="Highest allowed setpoint."),
        Register(name="rated_power_kw", address=6, table="input", scale=0.1, unit="kW",
                 description="Heater rating."),
        Register(name="heater_energy_kwh", address=7, table="input", data_type="uint32", scale=0.1, unit="kWh",
                 description="Heater energy counter."),
        Register(name="heat_demand_kw", address=9, table="input", scale=0.1, unit="kW",
                 description="Heat drawn from the tank (measured flow)."),
        Register(name="enable", address=100, access="rw", description="0 standby, 1 enabled."),
        Register(name="setpoint_c", address=101, data_type="int16", scale=0.1, unit="degC", access="rw",
                 description="Water temperature setpoint (min..max temp)."),
        Register(name="power_limit_kw", address=102, scale=0.1, unit="kW", access="rw",
                 description="Largest heater power allowed (0..rated)."),
        Register(name="reset", address=103, access="rw", description="Write 1 to clear a fault."),
    ),
)

# What proves the boiler's data is live: its heater energy counter against the heater power.
BOILER_LIVENESS = LivenessSpec(counters=(EnergyCounter("heater_energy_kwh", "heater_power_kw", 1.0, 0.1),))
