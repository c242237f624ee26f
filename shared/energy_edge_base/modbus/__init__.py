"""The device boundary: Modbus register maps as data, one codec, one async poller.

A device type is a :class:`RegisterMap` (a table of :class:`Register` rows); a device instance
is a :class:`ModbusPoller` over that map. ``energy_edge_base.modbus.fake`` provides an in-memory
device and poller with the same interface for unit tests.
"""

from .health import DeviceHealth, HealthChange
from .poller import (
    BackoffPolicy,
    DeviceRejected,
    DeviceUnavailable,
    ExceptionCode,
    ModbusError,
    ModbusPoller,
    ModbusTransport,
    PollerEvent,
    PymodbusTcpTransport,
    WriteVerificationError,
)
from .registers import (
    MAX_READ_REGISTERS,
    MAX_WRITE_REGISTERS,
    Access,
    DataType,
    ReadBlock,
    Register,
    RegisterMap,
    RegisterValue,
    RegisterValueError,
    Table,
    WordOrder,
)

__all__ = [
    "MAX_READ_REGISTERS",
    "MAX_WRITE_REGISTERS",
    "Access",
    "BackoffPolicy",
    "DataType",
    "DeviceHealth",
    "DeviceRejected",
    "DeviceUnavailable",
    "ExceptionCode",
    "HealthChange",
    "ModbusError",
    "ModbusPoller",
    "ModbusTransport",
    "PollerEvent",
    "PymodbusTcpTransport",
    "ReadBlock",
    "Register",
    "RegisterMap",
    "RegisterValue",
    "RegisterValueError",
    "Table",
    "WordOrder",
    "WriteVerificationError",
]
