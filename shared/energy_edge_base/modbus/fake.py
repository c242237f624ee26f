"""In-memory Modbus device for modules' unit tests: no sockets, same boundary as the real thing.

:class:`FakeModbusDevice` implements :class:`~energy_edge_base.modbus.poller.ModbusTransport`
over two register images (``holding`` and ``input``: address -> 16-bit word), so a
:class:`FakePoller` is the real :class:`ModbusPoller` (decoding, write verification, backoff)
with the network swapped out. Values go in and out through the same RegisterMap codec.

    device = FakeModbusDevice(INVERTER_MAP, {"ac_power_w": 1500.0, "power_limit_pct": 100})
    poller = FakePoller(device)
    assert (await poller.read_all())["ac_power_w"] == 1500.0
    device.fail_transport()                    # next call raises DeviceUnavailable
    device.reject_next(ExceptionCode.SERVER_DEVICE_BUSY)   # next request gets an exception reply
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from .poller import (
    BackoffPolicy,
    DeviceRejected,
    DeviceUnavailable,
    EventCallback,
    ExceptionCode,
    ModbusPoller,
    OnlineCallback,
)
from .registers import MAX_READ_REGISTERS, MAX_WRITE_REGISTERS, RegisterMap, RegisterValue, Table

__all__ = ["FakeModbusDevice", "FakePoller", "FakeRequest"]


@dataclass(frozen=True)
class FakeRequest:
    """One request that reached the fake device (``values`` for writes)."""

    function_code: int
    address: int
    count: int
    values: tuple[int, ...] = ()


class FakeModbusDevice:
    """Register images plus fault injection; a :class:`ModbusTransport` in its own right.

    Every address of every register in the map exists (initially 0); other addresses answer
    ILLEGAL DATA ADDRESS, like a device that does not serve them. The connection state is the
    device's, so pollers sharing one fake share its connection.
    """

    def __init__(
        self,
        register_map: RegisterMap,
        values: Mapping[str, Any] | None = None,
        *,
        not_implemented: Iterable[str] = (),
        label: str | None = None,
    ) -> None:
        self.register_map = register_map
        self.label = label or f"fake:{register_map.name}"
        self.holding: dict[int, int] = {}
        self.input: dict[int, int] = {}
        for register in register_map.registers:
            image = self._image(register.table)
            image.update(dict.fromkeys(range(register.address, register.end_address), 0))
        self.requests: list[FakeRequest] = []
        #: Called after each accepted write, e.g. to clamp a setpoint like a real device would.
        self.on_write: Callable[[FakeModbusDevice, FakeRequest], None] | None = None
        self.connect_count = 0
        self._connected = False
        self._transport_failure: str | None = None
        self._rejections: list[int] = []
        self._reject_always: int | None = None
        if values:
            self.set_values(values)
        for name in not_implemented:
            self.set_not_implemented(name)

    # ------------------------------------------------------------------ images

    def _image(self, table: Table) -> dict[int, int]:
        return self.holding if table == "holding" else self.input

    def set_words(self, table: Table, address: int, words: Sequence[int]) -> None:
        """Put raw words into an image (addresses need not be in the map)."""
        image = self._image(table)
        for offset, word in enumerate(words):
            if not 0 <= word <= 0xFFFF:
                raise ValueError(f"register word {word!r} is not 16-bit")
            image[address + offset] = word

    def get_words(self, table: Table, address: int, count: int) -> list[int]:
        """Raw words from an image (KeyError for addresses the device does not serve)."""
        image = self._image(table)
        return [image[address + offset] for offset in range(count)]

    def set_value(self, name: str, value: Any) -> None:
        """Set an engineering value through the codec (read-only registers included)."""
        register = self.register_map[name]
        scale_factor = self._scale_factor(name)
        words = self.register_map.encode(name, value, scale_factor=scale_factor, check_access=False)
        self.set_words(register.table, register.address, words)

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Set several values; scale factors first, so scaled values encode with them."""
        scale_factors = {r.scale_factor_register for r in self.register_map.registers} - {None}
        for name in sorted(values, key=lambda n: n not in scale_factors):
            self.set_value(name, values[name])

    def get_value(self, name: str) -> RegisterValue:
        """Decode a register's current engineering value."""
        register = self.register_map[name]
        words = self.get_words(register.table, register.address, register.word_count)
        return register.decode(words, self._scale_factor(name))

    def set_not_implemented(self, name: str) -> None:
        """Store the SunSpec not-implemented sentinel for ``name``."""
        register = self.register_map[name]
        self.set_words(register.table, register.address, register.not_implemented_words())

    def _scale_factor(self, name: str) -> int | None:
        ref = self.register_map[name].scale_factor_register
        if ref is None:
            return None
        sf_register = self.register_map[ref]
        raw = sf_register.decode_raw(self.get_words(sf_register.table, sf_register.address, 1))
        return raw if isinstance(raw, int) else None

    # ------------------------------------------------------------------ faults

    def fail_transport(self, reason: str = "connection refused") -> None:
        """Drop the connection; connects and requests raise DeviceUnavailable until restored."""
        self._transport_failure = reason
        self._connected = False

    def restore_transport(self) -> None:
        """Undo :meth:`fail_transport`; the next call reconnects."""
        self._transport_failure = None

    def drop_connection(self) -> None:
        """Close the connection from the device side (idle timeout); the next call reconnects."""
        self._connected = False

    def reject_next(
        self, exception_code: int = ExceptionCode.SERVER_DEVICE_BUSY, times: int | None = 1
    ) -> None:
        """Answer the next ``times`` requests (every request when None) with an exception reply."""
        if times is None:
            self._reject_always = int(exception_code)
        else:
            self._rejections.extend([int(exception_code)] * times)

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._transport_failure = None
        self._rejections.clear()
        self._reject_always = None

    # ------------------------------------------------------------------ ModbusTransport

    @property
    def connected(self) -> bool:
        """True while connected (and not failing)."""
        return self._connected and self._transport_failure is None

    async def connect(self) -> None:
        """Connect unless a transport failure is injected."""
        self.connect_count += 1
        await asyncio.sleep(0)  # behave like I/O: give other tasks a turn
        if self._transport_failure is not None:
            raise DeviceUnavailable(self.label, f"cannot connect: {self._transport_failure}")
        self._connected = True

    async def close(self) -> None:
        """Drop the connection."""
        self._connected = False

    async def _request(self, request: FakeRequest) -> None:
        await asyncio.sleep(0)
        if self._transport_failure is not None or not self._connected:
            self._connected = False
            reason = self._transport_failure or "not connected"
            raise DeviceUnavailable(self.label, f"FC{request.function_code}: {reason}")
        self.requests.append(request)
        code = self._rejections.pop(0) if self._rejections else self._reject_always
        if code is not None:
            self._reject(request, code)

    def _reject(self, request: FakeRequest, code: int) -> NoReturn:
        raise DeviceRejected(
            self.label, function_code=request.function_code, exception_code=code, address=request.address
        )

    async def read_registers(self, table: Table, address: int, count: int) -> list[int]:
        """FC3/FC4 read."""
        request = FakeRequest(3 if table == "holding" else 4, address, count)
        await self._request(request)
        if not 1 <= count <= MAX_READ_REGISTERS:
            self._reject(request, ExceptionCode.ILLEGAL_DATA_VALUE)
        try:
            return self.get_words(table, address, count)
        except KeyError:
            self._reject(request, ExceptionCode.ILLEGAL_DATA_ADDRESS)

    async def write_register(self, address: int, value: int) -> None:
        """FC6 write."""
        await self._write(FakeRequest(6, address, 1, (value,)))

    async def write_registers(self, address: int, values: Sequence[int]) -> None:
        """FC16 write."""
        await self._write(FakeRequest(16, address, len(values), tuple(values)))

    async def _write(self, request: FakeRequest) -> None:
        await self._request(request)
        limit = 1 if request.function_code == 6 else MAX_WRITE_REGISTERS
        if not 1 <= request.count <= limit or any(not 0 <= v <= 0xFFFF for v in request.values):
            self._reject(request, ExceptionCode.ILLEGAL_DATA_VALUE)
        if any(request.address + i not in self.holding for i in range(request.count)):
            self._reject(request, ExceptionCode.ILLEGAL_DATA_ADDRESS)
        self.set_words("holding", request.address, request.values)
        if self.on_write is not None:
            self.on_write(self, request)

    def writes(self) -> list[FakeRequest]:
        """The FC6/FC16 requests received so far."""
        return [r for r in self.requests if r.function_code in (6, 16)]


class FakePoller(ModbusPoller):
    """A :class:`ModbusPoller` wired to a :class:`FakeModbusDevice`: same interface, no sockets."""

    def __init__(
        self,
        device: FakeModbusDevice,
        register_map: RegisterMap | None = None,
        *,
        unit_id: int = 1,
        timeout_s: float = 1.0,
        backoff: BackoffPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_online_change: OnlineCallback | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        super().__init__(
            device.label,
            0,
            unit_id,
            register_map or device.register_map,
            timeout_s,
            backoff=backoff,
            clock=clock,
            rng=rng,
            transport=device,
            on_online_change=on_online_change,
            on_event=on_event,
        )
        self.device = device
