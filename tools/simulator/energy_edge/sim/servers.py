"""One pymodbus asynchronous Modbus TCP server per simulated device, with fault injection.

The server is given pymodbus' documented simulator devices (`pymodbus.simulator.SimDevice`, pymodbus 3.13
and later) with an `action`: pymodbus calls it on every request with the function code, the address, the
count and the values to write, and answers with the exception code it returns. Each device's one register
block spans the whole address space (0..65535), so pymodbus' own address checks never decide anything and
`DeviceEndpoint` decides every reply from the device's register image: ILLEGAL ADDRESS for an address
outside the map or a write to a read-only register, ILLEGAL VALUE for an out-of-range control value,
ILLEGAL FUNCTION for the bit functions. A read copies the image's registers into pymodbus' block just
before pymodbus answers from it. A valid write goes to the plant at once (`on_write`). A second SimDevice
with id 0 (pymodbus: "all devices, except those specifically defined") answers other unit ids. The server
runs with ignore_missing_devices, so raising NoSuchIdException makes it answer nothing at all (the `silent`
fault).
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData
from pymodbus.simulator import SimDevice as PymodbusDevice

from energy_edge.sim.devices import SimDevice

log = logging.getLogger(__name__)

COMM_FAULTS = ("none", "offline", "exception", "frozen", "silent")
FAULTS = (*COMM_FAULTS, "trip")
_READ_SPACE = {3: "hr", 4: "ir", 6: "hr", 16: "hr", 23: "hr"}
_WRITE_FCS = {6, 16, 23}
_ADDRESS_SPACE = 0x10000  # Modbus addresses 0..65535


class PortInUseError(OSError):
    """A port could not be bound; the message names it."""


@dataclass
class FaultState:
    """The fault injected into one device (one at a time)."""

    mode: str = "none"
    code: int = int(ExcCodes.DEVICE_FAILURE)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fault": self.mode}
        if self.mode == "exception":
            out["code"] = self.code
        return out


@dataclass
class Counters:
    reads: int = 0
    writes: int = 0
    exceptions: int = 0
    by_fc: dict[int, int] = field(default_factory=dict)


def _pymodbus_devices(endpoint: DeviceEndpoint) -> list[PymodbusDevice]:
    """The device's unit id and a catch-all (id 0) for any other unit id, both answered by `endpoint`."""

    async def serve(device_id: int, func_code: int, start_address: int, address: int, count: int,
                    registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        if set_values is not None:
            return endpoint.handle_write(device_id, func_code, address, [int(v) for v in set_values])
        result = endpoint.handle_read(device_id, func_code, address, count)
        if isinstance(result, ExcCodes):
            return result
        offset = address - start_address
        registers[offset:offset + len(result)] = result  # pymodbus answers from its block right after this
        return None

    def device(device_id: int) -> PymodbusDevice:
        return PymodbusDevice(id=device_id, simdata=SimData(0, count=_ADDRESS_SPACE, datatype=DataType.REGISTERS),
                              action=functools.partial(serve, device_id))

    unit_id = endpoint.device.unit_id
    return [device(unit_id)] if unit_id == 0 else [device(unit_id), device(0)]


class DeviceEndpoint:
    """A device's Modbus TCP server: start, stop, go offline and back, answer requests."""

    def __init__(self, device: SimDevice, host: str, port: int, fault: FaultState,
                 on_write: Callable[[SimDevice], None]) -> None:
        self.device = device
        self.host = host
        self.port = port  # the bound port once started (0 = ephemeral until then)
        self.fault = fault
        self.on_write = on_write
        self.counters = Counters()
        self.server: ModbusTcpServer | None = None

    @property
    def listening(self) -> bool:
        return self.server is not None

    # ------------------------------------------------------------ requests

    def _check(self, device_id: int, func_code: int, count: bool = True) -> ExcCodes | None:
        if count:
            self.counters.by_fc[func_code] = self.counters.by_fc.get(func_code, 0) + 1
        if self.fault.mode == "silent":
            raise NoSuchIdException(f"{self.device.asset_id} is silent")  # no answer at all
        if device_id != self.device.unit_id:
            return ExcCodes.GATEWAY_NO_RESPONSE
        if self.fault.mode == "exception":
            return ExcCodes(self.fault.code)
        if func_code not in _READ_SPACE:
            return ExcCodes.ILLEGAL_FUNCTION
        return None

    def handle_read(self, device_id: int, func_code: int, address: int, count: int) -> list[int] | ExcCodes:
        readback = func_code in _WRITE_FCS  # pymodbus reads a written register back for the FC6 echo
        rc = self._check(device_id, func_code, count=not readback)
        result = rc if rc is not None else self.device.read(_READ_SPACE[func_code], address, count)
        if isinstance(result, ExcCodes):
            self.counters.exceptions += 1
        elif not readback:
            self.counters.reads += 1
        return result

    def handle_write(self, device_id: int, func_code: int, address: int, values: list[int]) -> ExcCodes | None:
        rc = self._check(device_id, func_code)
        if rc is None and func_code not in _WRITE_FCS:
            rc = ExcCodes.ILLEGAL_FUNCTION
        if rc is None:
            rc = self.device.write(address, values)
        if rc is not None:
            self.counters.exceptions += 1
            return rc
        self.counters.writes += 1
        self.on_write(self.device)
        return None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen on host:port; PortInUseError names the port if it cannot be bound."""
        if self.server is not None:
            return
        server = ModbusTcpServer(_pymodbus_devices(self), address=(self.host, self.port), ignore_missing_devices=True)
        if not await server.listen():
            await server.shutdown()
            raise PortInUseError(_bind_failure(self.host, self.port, f"device {self.device.asset_id}"))
        sockets = getattr(server.transport, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self.server = server
        log.info("%s (%s, unit %d) listening on %s:%d", self.device.asset_id, self.device.kind,
                 self.device.unit_id, self.host, self.port)

    async def stop(self) -> None:
        """Close the listening socket and every open connection."""
        server, self.server = self.server, None
        if server is not None:
            await server.shutdown()

    def stats(self) -> dict[str, Any]:
        c = self.counters
        return {"listening": self.listening, "reads": c.reads, "writes": c.writes, "exceptions": c.exceptions,
                "by_function_code": {str(k): v for k, v in sorted(c.by_fc.items())}}


def _bind_failure(host: str, port: int, what: str) -> str:
    """Why host:port cannot be bound (pymodbus only reports that it failed)."""
    reason = "cannot be bound"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, addr = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(addr)
    except OSError as exc:
        reason = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    return f"cannot listen on {host}:{port} for {what}: {reason}"
