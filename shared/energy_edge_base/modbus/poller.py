"""Async device I/O: one :class:`ModbusPoller` per Modbus TCP device (host, port, unit id).

The poller owns the device's health: ``online``, ``last_error``, consecutive transport
failures and the reconnect backoff. Transport problems (refused, reset, timeout) surface as
:class:`DeviceUnavailable`; a Modbus exception reply surfaces as :class:`DeviceRejected` and
does *not* take the device offline, because the device did answer.

The network sits behind the small :class:`ModbusTransport` protocol. :class:`PymodbusTcpTransport`
is the real one; ``energy_edge_base.modbus.fake.FakeModbusDevice`` is an in-memory one for tests.

Operations: ``read_all`` and ``read`` (block reads planned from the map), ``write`` (one register,
read back and verified) and ``write_many`` (adjacent registers in one FC16 request, one read-back).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from .health import DeviceHealth
from .registers import (
    MAX_WRITE_REGISTERS,
    ReadBlock,
    Register,
    RegisterMap,
    RegisterValue,
    RegisterValueError,
    Table,
)

__all__ = [
    "BackoffPolicy",
    "DeviceRejected",
    "DeviceUnavailable",
    "ErrorKind",
    "EventCallback",
    "ExceptionCode",
    "ModbusError",
    "ModbusPoller",
    "ModbusTransport",
    "OnlineCallback",
    "PollerEvent",
    "PymodbusTcpTransport",
    "WriteVerificationError",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- errors


class ExceptionCode(enum.IntEnum):
    """Modbus exception codes (Modbus Application Protocol v1.1b3, section 7)."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    SERVER_DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    SERVER_DEVICE_BUSY = 0x06
    NEGATIVE_ACKNOWLEDGE = 0x07
    MEMORY_PARITY_ERROR = 0x08
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_NO_RESPONSE = 0x0B


class ModbusError(Exception):
    """Base of the device I/O errors; ``device`` is ``host:port#unit``."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"{device}: {message}")
        self.device = device


class DeviceUnavailable(ModbusError):
    """Transport failure (refused, reset, timeout, or backing off): retry later.

    ``retry_in_s`` is set when the poller refused to try because it is backing off.
    """

    def __init__(self, device: str, message: str, *, retry_in_s: float | None = None) -> None:
        super().__init__(device, message)
        self.retry_in_s = retry_in_s


class DeviceRejected(ModbusError):
    """The device answered with a Modbus exception reply; retrying the same request won't help."""

    def __init__(self, device: str, *, function_code: int, exception_code: int, address: int) -> None:
        self.function_code = function_code
        self.exception_code = exception_code
        self.address = address
        super().__init__(
            device,
            f"FC{function_code} at {address} rejected: exception {exception_code} ({self.exception_name})",
        )

    @property
    def exception_name(self) -> str:
        """Symbolic name of the exception code (``ILLEGAL_DATA_ADDRESS`` ...)."""
        try:
            return ExceptionCode(self.exception_code).name
        except ValueError:
            return f"UNKNOWN_{self.exception_code:#04x}"


class WriteVerificationError(ModbusError):
    """The write was accepted but reading it back gave a different value (clamped, ignored ...)."""

    def __init__(self, device: str, name: str, requested: Any, read_back: RegisterValue) -> None:
        self.name = name
        self.requested = requested
        self.read_back = read_back
        super().__init__(device, f"wrote {name}={requested!r}, read back {read_back!r}")


# ---------------------------------------------------------------------------- transport


class ModbusTransport(Protocol):
    """The device boundary the poller talks through (one device, unit id bound at construction).

    Implementations raise :class:`DeviceUnavailable` for transport failures and
    :class:`DeviceRejected` for exception replies, and nothing else for I/O problems.
    """

    @property
    def connected(self) -> bool:
        """True while a connection is believed to be up."""
        ...

    async def connect(self) -> None:
        """Open the connection (raise DeviceUnavailable when it cannot)."""
        ...

    async def read_registers(self, table: Table, address: int, count: int) -> list[int]:
        """FC3 (holding) or FC4 (input) read of ``count`` registers."""
        ...

    async def write_register(self, address: int, value: int) -> None:
        """FC6 write of one holding register."""
        ...

    async def write_registers(self, address: int, values: Sequence[int]) -> None:
        """FC16 write of consecutive holding registers."""
        ...

    async def close(self) -> None:
        """Drop the connection; safe to call twice."""
        ...


def _consume_outcome(task: asyncio.Future[Any]) -> None:
    # An abandoned request may still fail later; fetch its exception so asyncio does not log it.
    if not task.cancelled():
        task.exception()


class PymodbusTcpTransport:
    """:class:`ModbusTransport` over pymodbus' ``AsyncModbusTcpClient`` (pymodbus 3.16 API)."""

    def __init__(self, host: str, port: int, unit_id: int, timeout_s: float, *, retries: int = 0) -> None:
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.timeout_s = timeout_s
        self.retries = retries
        self.label = f"{host}:{port}#{unit_id}"
        self._client: AsyncModbusTcpClient | None = None
        self._lost = asyncio.Event()

    @property
    def connected(self) -> bool:
        """True while pymodbus holds an open socket."""
        return self._client is not None and self._client.connected

    @property
    def disconnected(self) -> asyncio.Event:
        """Set when the current connection drops (peer close/reset) or is closed."""
        return self._lost

    async def connect(self) -> None:
        """Open a fresh client; a reused client could carry stale transaction state."""
        await self.close()
        lost = asyncio.Event()

        def on_connection_change(up: bool) -> None:
            if not up:
                lost.set()

        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            name=self.label,
            timeout=self.timeout_s,
            retries=self.retries,
            # The poller owns reconnection (with jittered backoff and an injectable clock), so
            # pymodbus' own background reconnect task is switched off.
            reconnect_delay=0,
            reconnect_delay_max=0,
            trace_connect=on_connection_change,
        )
        try:
            ok = await client.connect()
        except (OSError, ModbusException, asyncio.TimeoutError) as exc:
            client.close()
            raise DeviceUnavailable(self.label, f"cannot connect: {exc}") from exc
        if not ok:
            client.close()
            raise DeviceUnavailable(self.label, "cannot connect (refused or timed out)")
        self._client, self._lost = client, lost

    async def close(self) -> None:
        """Close the socket and fail any in-flight request at once instead of at its timeout."""
        self._drop()

    def _drop(self) -> None:
        client, self._client = self._client, None
        self._lost.set()
        if client is not None:
            client.close()

    async def _execute(
        self, what: str, address: int, call: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        client, lost = self._client, self._lost
        if client is None or not client.connected:
            raise DeviceUnavailable(self.label, f"{what}: not connected")
        request = asyncio.ensure_future(call(client))
        request.add_done_callback(_consume_outcome)
        watcher = asyncio.ensure_future(lost.wait())
        # pymodbus only notices a dropped socket at its response timeout; racing the request
        # against the disconnect event turns a peer reset into an immediate DeviceUnavailable.
        guard_s = self.timeout_s * (self.retries + 1) + 1.0
        try:
            done, _ = await asyncio.wait(
                {request, watcher}, timeout=guard_s, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            # Cancelled mid-request: drop the socket too, or the late reply would sit in the
            # stream waiting to be mistaken for the answer to the next request.
            request.cancel()
            self._drop()
            raise
        finally:
            watcher.cancel()
        if request not in done:
            request.cancel()
            reason = "connection lost" if lost.is_set() else "no response"
            raise DeviceUnavailable(self.label, f"{what}: {reason}")
        try:
            response = request.result()
        except (ModbusException, OSError, asyncio.TimeoutError) as exc:
            raise DeviceUnavailable(self.label, f"{what}: {exc}") from exc
        if response is None:
            raise DeviceUnavailable(self.label, f"{what}: no response")
        if response.isError():
            raise DeviceRejected(
                self.label,
                function_code=response.function_code & 0x7F,
                exception_code=response.exception_code,
                address=address,
            )
        return response

    async def read_registers(self, table: Table, address: int, count: int) -> list[int]:
        """FC3/FC4 read; a short answer counts as a transport fault."""
        if table == "holding":
            response = await self._execute(
                f"FC3 read {count} at {address}",
                address,
                lambda c: c.read_holding_registers(address, count=count, device_id=self.unit_id),
            )
        else:
            response = await self._execute(
                f"FC4 read {count} at {address}",
                address,
                lambda c: c.read_input_registers(address, count=count, device_id=self.unit_id),
            )
        registers = list(response.registers)
        if len(registers) != count:
            raise DeviceUnavailable(self.label, f"asked {count} registers at {address}, got {len(registers)}")
        return registers

    async def write_register(self, address: int, value: int) -> None:
        """FC6 write."""
        await self._execute(
            f"FC6 write at {address}",
            address,
            lambda c: c.write_register(address, value, device_id=self.unit_id),
        )

    async def write_registers(self, address: int, values: Sequence[int]) -> None:
        """FC16 write."""
        await self._execute(
            f"FC16 write {len(values)} at {address}",
            address,
            lambda c: c.write_registers(address, list(values), device_id=self.unit_id),
        )


# ---------------------------------------------------------------------------- poller


@dataclass(frozen=True)
class BackoffPolicy:
    """Reconnect delays: ``initial_s`` doubling (``factor``) up to ``max_s``, with jitter.

    Jitter only shortens a delay (uniform in ``[d * (1 - jitter_ratio), d]``), so ``max_s`` is a
    hard bound; it keeps pollers behind one gateway from reconnecting in lockstep after it reboots.
    """

    initial_s: float = 1.0
    max_s: float = 60.0
    factor: float = 2.0
    jitter_ratio: float = 0.2

    def __post_init__(self) -> None:
        if not (0 <= self.initial_s <= self.max_s and self.factor >= 1 and 0 <= self.jitter_ratio < 1):
            raise ValueError(f"invalid backoff policy {self!r}")

    def delay_s(self, failures: int, rng: random.Random | None = None) -> float:
        """Delay after the ``failures``-th consecutive failure (1-based)."""
        # Cap the exponent: after a long outage factor ** failures would overflow a float.
        exponent = min(max(failures - 1, 0), 64)
        try:
            delay_s: float = min(self.max_s, self.initial_s * self.factor**exponent)
        except OverflowError:
            delay_s = self.max_s
        if self.jitter_ratio and rng is not None:
            delay_s *= 1.0 - self.jitter_ratio * rng.random()
        return delay_s


ErrorKind = Literal["unavailable", "rejected", "verification", "invalid"]
Operation = Literal["poll", "write", "connect", "refused"]


@dataclass(frozen=True)
class PollerEvent:
    """One thing the poller did with the device, for the module's metrics and the tests.

    ``operation``: ``poll`` and ``write`` are exchanges (``duration_s`` their time on the wire);
    ``connect`` is a connection attempt (made lazily before an exchange); ``refused`` is a call
    refused without I/O while backing off (``duration_s`` 0, ``error_kind`` ``unavailable``).
    ``error_kind``: ``unavailable`` (transport), ``rejected`` (exception reply), ``verification``
    (read-back differs), ``invalid`` (value unusable, e.g. a broken scale factor); None when ok.
    ``register`` names what a write wrote; a ``write_many`` joins its names with ``+`` in address
    order (``discharge_rate_pct+charge_rate_pct``): it was one exchange, so it is one event.
    """

    operation: Operation
    duration_s: float
    error_kind: ErrorKind | None = None
    register: str | None = None

    @property
    def ok(self) -> bool:
        """True when the exchange succeeded."""
        return self.error_kind is None


def _error_kind(error: BaseException) -> ErrorKind:
    if isinstance(error, DeviceUnavailable):
        return "unavailable"
    if isinstance(error, DeviceRejected):
        return "rejected"
    if isinstance(error, WriteVerificationError):
        return "verification"
    return "invalid"


OnlineCallback = Callable[[bool, BaseException | None], None]
EventCallback = Callable[[PollerEvent], None]


@dataclass(frozen=True)
class _WriteRun:
    """Registers written by one request: contiguous, in address order, with the values asked for.

    ``words`` holds what could be encoded without I/O; None where a scale factor must be read first.
    """

    registers: tuple[Register, ...]
    values: dict[str, Any]
    words: dict[str, list[int] | None]

    @property
    def table(self) -> Table:
        return self.registers[0].table

    @property
    def address(self) -> int:
        return self.registers[0].address

    @property
    def count(self) -> int:
        return self.registers[-1].end_address - self.address

    @property
    def label(self) -> str:
        return "+".join(r.name for r in self.registers)

    @property
    def scale_factor_names(self) -> list[str]:
        """Each scale-factor register the run needs, once (the two battery rates share one)."""
        return list(dict.fromkeys(r.scale_factor_register for r in self.registers if r.scale_factor_register))


class ModbusPoller:
    """Reads and writes one device's :class:`RegisterMap` over Modbus TCP.

    Connects lazily. After a transport failure every call raises :class:`DeviceUnavailable`
    immediately, without I/O, until the backoff delay has passed on ``clock``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        unit_id: int,
        register_map: RegisterMap,
        timeout_s: float = 3.0,
        *,
        retries: int = 0,
        backoff: BackoffPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        transport: ModbusTransport | None = None,
        on_online_change: OnlineCallback | None = None,
        on_event: EventCallback | None = None,
        health: DeviceHealth | None = None,
    ) -> None:
        if not 0 <= unit_id <= 255:
            raise ValueError(f"unit id {unit_id} outside 0..255")
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.register_map = register_map
        self.timeout_s = timeout_s
        self.label = f"{host}:{port}#{unit_id}"
        # retries=0: a poll that times out is reported at once; the next poll is the retry.
        self._transport: ModbusTransport = transport or PymodbusTcpTransport(
            host, port, unit_id, timeout_s, retries=retries
        )
        # The device's health is written here (the link) and by the poll loop (the data); a module passes the
        # device's own, so both read one record.
        self.health = health or DeviceHealth(backoff, clock=clock, rng=rng)
        if health is not None and backoff is not None:
            health.backoff = backoff
        self._on_online_change = on_online_change
        self._on_event = on_event
        self._plan_all = register_map.plan_reads()
        self._io_lock = asyncio.Lock()
        self._closed = False

    # ------------------------------------------------------------------ state

    @property
    def online(self) -> bool:
        """True after the last exchange reached the device (exception replies included)."""
        return self.health.link_up

    @property
    def last_error(self) -> BaseException | None:
        """The most recent error of any kind; kept after recovery as context."""
        return self.health.last_error

    @property
    def consecutive_failures(self) -> int:
        """Transport failures since the last exchange that reached the device."""
        return self.health.consecutive_failures

    @property
    def backoff_remaining_s(self) -> float:
        """Seconds until the next attempt is allowed (0.0 when not backing off)."""
        return self.health.backoff_remaining_s()

    @property
    def transport(self) -> ModbusTransport:
        """The device boundary in use (a :class:`PymodbusTcpTransport` unless one was injected)."""
        return self._transport

    @property
    def read_plan(self) -> tuple[ReadBlock, ...]:
        """The block reads ``read_all`` issues."""
        return self._plan_all

    # ------------------------------------------------------------------ I/O

    async def read_all(self) -> dict[str, RegisterValue]:
        """Read every register of the map; ``{name: engineering value}``."""
        return await self._read_blocks(self._plan_all)

    async def read(self, names: Iterable[str]) -> dict[str, RegisterValue]:
        """Read only ``names`` (plus the scale factors they need); returns just ``names``."""
        wanted = list(names)
        values = await self._read_blocks(self.register_map.plan_reads(wanted))
        return {name: values[name] for name in wanted}

    async def write(self, name: str, value: Any) -> RegisterValue:
        """Write ``value`` (engineering units) to ``name``, read it back and return the read-back.

        FC6 for one-register values, FC16 otherwise. Raises :class:`RegisterValueError` before
        any I/O for unknown/read-only registers and out-of-range values, and
        :class:`WriteVerificationError` when the read-back differs beyond the resolution.
        """
        read_backs = await self._write_run(self._plan_write({name: value}))
        return read_backs[name]

    async def write_many(self, values: Mapping[str, Any]) -> dict[str, RegisterValue]:
        """Write adjacent registers in one request, read them back in one read; ``{name: read-back}``.

        The registers must form one contiguous run of holding registers (in any order in
        ``values``); otherwise :class:`RegisterValueError` says they are not contiguous. There is
        no fallback to one write per register: the point of one request is that the device never
        holds half of the values, so the caller decides whether separate writes are acceptable.
        Each scale factor the run needs is read once, fresh. A run of one register goes out like
        :meth:`write` (FC6 unless the map asks for FC16); a longer run is one FC16.

        Raises :class:`RegisterValueError` before any I/O for unknown/read-only/non-contiguous
        registers and for out-of-range values of registers without a scale-factor register; those
        with one are checked once the exponent is read, still before anything is written.
        :class:`WriteVerificationError` names the first register whose read-back differs.
        """
        return await self._write_run(self._plan_write(values))

    async def close(self) -> None:
        """Close the connection; later calls raise :class:`DeviceUnavailable`."""
        self._closed = True
        await self._transport.close()
        if self.health.link_closed():
            self._say_online(False, None)

    async def __aenter__(self) -> ModbusPoller:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ internals

    async def _read_blocks(self, blocks: Sequence[ReadBlock]) -> dict[str, RegisterValue]:
        async with self._io_lock:
            self._refuse_if_backing_off()
            started_s = time.perf_counter()
            try:
                async with self._exchange():
                    await self._ensure_connected()
                    results = [
                        (block, await self._transport.read_registers(block.table, block.address, block.count))
                        for block in blocks
                    ]
                values = self.register_map.decode_blocks(results)
            except Exception as exc:
                self._emit("poll", started_s, exc)
                raise
            self._emit("poll", started_s, None)
            return values

    def _plan_write(self, values: Mapping[str, Any]) -> _WriteRun:
        """Check names, access, contiguity and (where no exponent is needed) values; no I/O."""
        map_name = self.register_map.name
        if not values:
            raise RegisterValueError(f"{map_name}: nothing to write")
        registers = [self.register_map[name] for name in values]
        for register in registers:
            if not register.writable:
                raise RegisterValueError(f"{map_name}: {register.name!r} is read-only")
        # Validate now when we can, so a bad value is reported even while the device is offline.
        words = {
            r.name: None if r.scale_factor_register else self.register_map.encode(r.name, values[r.name])
            for r in registers
        }
        registers.sort(key=lambda r: r.address)
        for previous, current in itertools.pairwise(registers):
            if current.table != previous.table or current.address != previous.end_address:
                raise RegisterValueError(
                    f"{map_name}: {previous.name!r} and {current.name!r} are not contiguous registers; "
                    "write them separately"
                )
        run = _WriteRun(tuple(registers), dict(values), words)
        if run.count > MAX_WRITE_REGISTERS:
            raise RegisterValueError(f"{map_name}: {run.count} registers are more than one FC16 write")
        return run

    async def _write_run(self, run: _WriteRun) -> dict[str, RegisterValue]:
        async with self._io_lock:
            self._refuse_if_backing_off()
            started_s = time.perf_counter()
            try:
                read_backs = await self._write_and_verify(run)
            except Exception as exc:
                self._emit("write", started_s, exc, run.label)
                raise
            self._emit("write", started_s, None, run.label)
            return read_backs

    async def _write_and_verify(self, run: _WriteRun) -> dict[str, RegisterValue]:
        async with self._exchange():
            await self._ensure_connected()
            scale_factors: dict[str, int | None] = {}
            for ref in run.scale_factor_names:
                scale_factors[ref] = await self._read_scale_factor(ref)
            # Encode everything before writing anything: a value the exponent puts out of range
            # must leave the whole run untouched.
            words: list[int] = []
            for register in run.registers:
                encoded = run.words[register.name]
                if encoded is None:
                    encoded = self.register_map.encode(
                        register.name, run.values[register.name], scale_factor=self._exponent(register, scale_factors)
                    )
                words.extend(encoded)
            if len(words) == 1 and not self.register_map.write_single_with_fc16:
                await self._transport.write_register(run.address, words[0])
            else:
                await self._transport.write_registers(run.address, words)
            echo = await self._transport.read_registers(run.table, run.address, run.count)
        block = ReadBlock(run.table, run.address, run.count, tuple(r.name for r in run.registers))
        read_backs = self.register_map.decode_block(block, echo, scale_factors)
        for register in run.registers:
            scale_factor = self._exponent(register, scale_factors)
            requested, read_back = run.values[register.name], read_backs[register.name]
            if not register.values_match(requested, read_back, scale_factor):
                error = WriteVerificationError(self.label, register.name, requested, read_back)
                self.health.last_error = error
                raise error
        return {name: read_backs[name] for name in run.values}

    @staticmethod
    def _exponent(register: Register, scale_factors: Mapping[str, int | None]) -> int | None:
        ref = register.scale_factor_register
        return None if ref is None else scale_factors[ref]

    def _emit(
        self,
        operation: Operation,
        started_s: float | None,
        error: BaseException | None,
        register: str | None = None,
    ) -> None:
        duration_s = 0.0 if started_s is None else time.perf_counter() - started_s
        kind = None if error is None else _error_kind(error)
        if self._on_event is not None:
            try:
                self._on_event(PollerEvent(operation, duration_s, kind, register))
            except Exception:
                log.exception("%s: event callback failed", self.label)  # observers must not break I/O

    async def _read_scale_factor(self, sf_name: str) -> int | None:
        # Read fresh rather than trust the last poll: writes are rare, a stale exponent is costly.
        sf_register: Register = self.register_map[sf_name]
        words = await self._transport.read_registers(sf_register.table, sf_register.address, 1)
        raw = sf_register.decode_raw(words)
        return raw if isinstance(raw, int) else None

    def _refuse_if_backing_off(self) -> None:
        if self._closed:
            raise DeviceUnavailable(self.label, "poller is closed")
        health = self.health
        remaining_s = health.retry_at_s - health.clock()
        if remaining_s > 0:
            refused = DeviceUnavailable(
                self.label,
                f"backing off {remaining_s:.1f} s after {health.consecutive_failures} failure(s): "
                f"{health.last_error}",
                retry_in_s=remaining_s,
            )
            self._emit("refused", None, refused)
            raise refused

    async def _ensure_connected(self) -> None:
        if not self._transport.connected:
            started_s = time.perf_counter()
            try:
                await self._transport.connect()
            except Exception as exc:
                self._emit("connect", started_s, exc)
                raise
            self._emit("connect", started_s, None)

    @asynccontextmanager
    async def _exchange(self) -> AsyncIterator[None]:
        """Map the outcome of one device exchange onto the health state."""
        try:
            yield
        except DeviceUnavailable as exc:
            await self._record_unavailable(exc)
            raise
        except DeviceRejected as exc:
            self.health.last_error = exc
            self._record_reached()
            raise
        except RegisterValueError:
            # Raised after the device answered (e.g. an unusable scale factor): link is fine.
            self._record_reached()
            raise
        else:
            self._record_reached()

    def _record_reached(self) -> None:
        if self.health.link_reached():
            self._say_online(True, None)

    async def _record_unavailable(self, exc: DeviceUnavailable) -> None:
        delay_s, went_down = self.health.link_failed(exc)
        # Drop the socket: after a timeout a late reply could be matched to the next request.
        await self._transport.close()
        if went_down:
            self._say_online(False, exc)
        log.debug(
            "%s: unavailable (%d in a row), next try in %.1f s",
            self.label,
            self.health.consecutive_failures,
            delay_s,
        )

    def _say_online(self, online: bool, error: BaseException | None) -> None:
        """Log a change of the link and tell the observer."""
        if online:
            log.info("%s: device online", self.label)
        elif not self._closed:
            log.warning("device offline: %s", error)  # the error text names the device
        if self._on_online_change is not None:
            try:
                self._on_online_change(online, error)
            except Exception:
                # A broken observer must not break polling.
                log.exception("%s: online-change callback failed", self.label)
