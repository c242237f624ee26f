"""ModbusPoller over real Modbus TCP (a pymodbus 3.16 server on 127.0.0.1) and over the in-memory fake.

Behaviour both must share (decoding, FC6/FC16, read-back verification, exception replies,
backoff and recovery) runs against both backends, so the fake cannot drift from the real thing.
"""

from __future__ import annotations

import asyncio
import math
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimDataType
from pymodbus.simulator import SimData, SimDevice

from energy_edge_base.modbus import (
    BackoffPolicy,
    DeviceRejected,
    DeviceUnavailable,
    ExceptionCode,
    ModbusPoller,
    PollerEvent,
    PymodbusTcpTransport,
    Register,
    RegisterMap,
    RegisterValueError,
    Table,
    WriteVerificationError,
)
from energy_edge_base.modbus.fake import FakeModbusDevice, FakePoller, FakeRequest

UNIT_ID = 1
SERVED_REGISTERS = 100  # both test devices serve addresses 0..99 of each table, nothing else

INVERTER = RegisterMap(
    name="test_inverter",
    registers=(
        Register(name="power_limit_pct", address=0, scale=0.1, unit="%", access="rw"),
        Register(name="ac_power_w", address=1, data_type="int16", scale_factor_register="w_sf", unit="W"),
        Register(name="w_sf", address=2, data_type="int16"),
        Register(name="export_limit_w", address=3, data_type="int32", unit="W", access="rw"),
        Register(
            name="reactive_setpoint_var",
            address=5,
            data_type="int16",
            scale_factor_register="w_sf",
            unit="var",
            access="rw",
        ),
        Register(name="operating_mode", address=6, access="rw"),
        Register(name="energy_total_wh", address=0, table="input", data_type="uint64", unit="Wh"),
        Register(
            name="frequency_hz", address=4, table="input", data_type="float32", word_order="little", unit="Hz"
        ),
        Register(name="status_bits", address=6, table="input", data_type="bitfield16"),
        Register(name="serial_number", address=10, table="input", data_type="string", length=4),
        Register(
            name="dc_voltage_v",
            address=14,
            table="input",
            scale=0.1,
            unit="V",
            not_implemented=True,
        ),
    ),
)
INITIAL_VALUES: dict[str, Any] = {
    "power_limit_pct": 100.0,
    "w_sf": -1,
    "ac_power_w": 1234.5,
    "export_limit_w": -5000,
    "reactive_setpoint_var": 0.0,
    "operating_mode": 1,
    "energy_total_wh": 2**40 + 7,
    "frequency_hz": 50.0,
    "status_bits": 0b101,
    "serial_number": "INV-0042",
}
EXPECTED_READ = {**INITIAL_VALUES, "dc_voltage_v": None}

# SunSpec 124's storage controls at their model offsets from address 20: the two rates are adjacent
# and share one scale factor, which is what write_many exists for.
STORAGE = RegisterMap(
    name="test_storage",
    registers=(
        Register(name="storage_control_mode", address=25, data_type="bitfield16", access="rw"),
        Register(
            name="discharge_rate_pct",
            address=32,
            data_type="int16",
            scale_factor_register="rate_sf",
            unit="%",
            access="rw",
        ),
        Register(
            name="charge_rate_pct",
            address=33,
            data_type="int16",
            scale_factor_register="rate_sf",
            unit="%",
            access="rw",
        ),
        Register(name="rate_revert_s", address=35, unit="s", access="rw"),
        Register(name="rate_sf", address=45, data_type="int16"),
    ),
)
STORAGE_VALUES: dict[str, Any] = {"rate_sf": -1, "discharge_rate_pct": 10.0, "charge_rate_pct": 0.0}
# Both maps on one device: write_many cases may span either.
DEVICE_MAP = RegisterMap(name="test_device", registers=INVERTER.registers + STORAGE.registers)

# Registers the devices do not serve: every request for them earns ILLEGAL DATA ADDRESS.
OUT_OF_RANGE = RegisterMap(
    name="out_of_range",
    registers=(
        Register(name="operating_mode", address=6, access="rw"),
        Register(name="far_holding", address=SERVED_REGISTERS + 100, access="rw"),
        Register(name="far_input", address=SERVED_REGISTERS + 100, table="input"),
        Register(name="far_pair", address=SERVED_REGISTERS + 200, data_type="uint32", access="rw"),
    ),
)


def fast_backoff(**overrides: Any) -> BackoffPolicy:
    """Deterministic backoff (no jitter) for assertions on exact delays."""
    return BackoffPolicy(**{"initial_s": 1.0, "max_s": 4.0, "jitter_ratio": 0.0, **overrides})


class FakeClock:
    """Monotonic clock the test moves by hand, so backoff never costs real time."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


# ------------------------------------------------------------------------ backends


class Backend(Protocol):
    """A device under test plus the hooks the tests need, for TCP and fake alike."""

    def make_poller(self, register_map: RegisterMap = ..., **kwargs: Any) -> ModbusPoller: ...

    def writes(self) -> list[tuple[int, int, list[int]]]: ...

    def requests(self) -> list[tuple[int, int, int]]: ...

    async def registers(self, table: Table, address: int, count: int) -> list[int]: ...

    def clamp(self, address: int, max_raw: int) -> None: ...

    async def go_down(self) -> None: ...

    async def come_back(self) -> None: ...


class ModbusTestServer:
    """One device on a pymodbus 3.16 ``ModbusTcpServer`` (SimDevice/SimData datastore).

    The SimDevice ``action`` hook sees every request: it logs writes (function code, address,
    words), can clamp written values like a device limiting a setpoint, and can stall replies.
    """

    def __init__(self, holding: list[int], input_: list[int]) -> None:
        self.images: dict[str, list[int]] = {"holding": holding, "input": input_}
        self.write_log: list[tuple[int, int, list[int]]] = []
        #: (function code, address, count) of every read and write, in arrival order.
        self.request_log: list[tuple[int, int, int]] = []
        self.max_raw: dict[int, int] = {}
        self.stall: asyncio.Event | None = None
        self.server: ModbusTcpServer | None = None
        self.port = 0  # 0 until started: the OS picks a free port, restarts reuse it

    async def _action(
        self,
        function_code: int,
        _start_address: int,
        address: int,
        count: int,
        _registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        if self.stall is not None:
            await self.stall.wait()
        # pymodbus also calls the hook without values while serving an FC6: that is not a request.
        if function_code in (3, 4) or set_values is not None:
            self.request_log.append((function_code, address, count))
        if set_values is not None:
            for offset, value in enumerate(set_values):
                limit = self.max_raw.get(address + offset)
                if limit is not None:
                    set_values[offset] = min(int(value), limit)  # in place: this is what gets stored
            self.write_log.append((function_code, address, [int(v) for v in set_values]))

    async def start(self) -> None:
        bits = [SimData(0, values=[False] * 16, datatype=SimDataType.BITS)]
        device = SimDevice(
            id=UNIT_ID,
            # Separate (non-shared) blocks: coils, discrete inputs, holding registers, input registers.
            simdata=(
                bits,
                list(bits),
                [SimData(0, values=list(self.images["holding"]), datatype=SimDataType.REGISTERS)],
                [SimData(0, values=list(self.images["input"]), datatype=SimDataType.REGISTERS)],
            ),
            action=self._action,
        )
        self.server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self.server.serve_forever(background=True)
        self.port = self.server.transport.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is None:
            return
        # Keep the register contents across a restart, like a device that reboots its network stack.
        for table in ("holding", "input"):
            self.images[table] = await self.registers(table, 0, SERVED_REGISTERS)  # type: ignore[arg-type]
        await self.server.shutdown()
        self.server = None

    async def registers(self, table: Table, address: int, count: int) -> list[int]:
        assert self.server is not None
        values = await self.server.async_getValues(UNIT_ID, 3 if table == "holding" else 4, address, count)
        return [int(v) for v in values]


class TcpBackend:
    """The real path: ModbusPoller -> pymodbus client -> TCP -> pymodbus server."""

    def __init__(self, server: ModbusTestServer) -> None:
        self.server = server
        self.pollers: list[ModbusPoller] = []

    def make_poller(self, register_map: RegisterMap = INVERTER, **kwargs: Any) -> ModbusPoller:
        kwargs.setdefault("timeout_s", 2.0)
        kwargs.setdefault("backoff", fast_backoff())
        poller = ModbusPoller("127.0.0.1", self.server.port, UNIT_ID, register_map, **kwargs)
        self.pollers.append(poller)
        return poller

    def writes(self) -> list[tuple[int, int, list[int]]]:
        return self.server.write_log

    def requests(self) -> list[tuple[int, int, int]]:
        return self.server.request_log

    async def registers(self, table: Table, address: int, count: int) -> list[int]:
        return await self.server.registers(table, address, count)

    def clamp(self, address: int, max_raw: int) -> None:
        self.server.max_raw[address] = max_raw

    async def go_down(self) -> None:
        await self.server.stop()

    async def come_back(self) -> None:
        await self.server.start()


class FakeBackend:
    """The unit-test path: FakePoller -> FakeModbusDevice, no sockets."""

    def __init__(self) -> None:
        self.device = FakeModbusDevice(
            DEVICE_MAP, {**INITIAL_VALUES, **STORAGE_VALUES}, not_implemented=["dc_voltage_v"]
        )
        self.max_raw: dict[int, int] = {}
        self.device.on_write = self._clamp_after_write
        self.pollers: list[ModbusPoller] = []

    def _clamp_after_write(self, device: FakeModbusDevice, request: FakeRequest) -> None:
        for offset in range(request.count):
            limit = self.max_raw.get(request.address + offset)
            if limit is not None:
                word = device.holding[request.address + offset]
                device.holding[request.address + offset] = min(word, limit)

    def make_poller(self, register_map: RegisterMap = INVERTER, **kwargs: Any) -> ModbusPoller:
        kwargs.setdefault("backoff", fast_backoff())
        kwargs.pop("timeout_s", None)
        poller = FakePoller(self.device, register_map, **kwargs)
        self.pollers.append(poller)
        return poller

    def writes(self) -> list[tuple[int, int, list[int]]]:
        return [(r.function_code, r.address, list(r.values)) for r in self.device.writes()]

    def requests(self) -> list[tuple[int, int, int]]:
        return [(r.function_code, r.address, r.count) for r in self.device.requests]

    async def registers(self, table: Table, address: int, count: int) -> list[int]:
        return self.device.get_words(table, address, count)

    def clamp(self, address: int, max_raw: int) -> None:
        self.max_raw[address] = max_raw

    async def go_down(self) -> None:
        self.device.fail_transport()

    async def come_back(self) -> None:
        self.device.restore_transport()


def served_images() -> tuple[list[int], list[int]]:
    """The INITIAL_VALUES encoded by the codec under test, as the TCP server's register blocks."""
    fake = FakeModbusDevice(DEVICE_MAP, {**INITIAL_VALUES, **STORAGE_VALUES}, not_implemented=["dc_voltage_v"])
    return (
        [fake.holding.get(a, 0) for a in range(SERVED_REGISTERS)],
        [fake.input.get(a, 0) for a in range(SERVED_REGISTERS)],
    )


@pytest.fixture
async def tcp_server() -> AsyncIterator[ModbusTestServer]:
    server = ModbusTestServer(*served_images())
    await server.start()
    yield server
    if server.stall is not None:
        server.stall.set()
    await server.stop()


@pytest.fixture(params=["tcp", "fake"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    chosen: TcpBackend | FakeBackend
    server: ModbusTestServer | None = None
    if request.param == "tcp":
        server = ModbusTestServer(*served_images())
        await server.start()
        chosen = TcpBackend(server)
    else:
        chosen = FakeBackend()
    yield chosen
    for poller in chosen.pollers:
        await poller.close()
    if server is not None:
        await server.stop()


# ------------------------------------------------------------------------ reads


async def test_read_all_decodes_the_whole_map(backend: Backend) -> None:
    events: list[PollerEvent] = []
    poller = backend.make_poller(on_event=events.append)
    assert not poller.online  # nothing is known before the first exchange
    values = await poller.read_all()
    assert values == EXPECTED_READ
    assert list(values) == list(INVERTER.names)  # declaration order
    assert poller.online and poller.consecutive_failures == 0
    # Holding 0..6 in one read; input 0..6 and 10..14 in two (the 3-register gap is not bridged).
    assert [(b.table, b.address, b.count) for b in poller.read_plan] == [
        ("holding", 0, 7),
        ("input", 0, 7),
        ("input", 10, 5),
    ]
    assert [(e.operation, e.error_kind) for e in events] == [("connect", None), ("poll", None)]
    assert all(e.duration_s >= 0 for e in events)


async def test_read_subset_brings_its_scale_factor(backend: Backend) -> None:
    poller = backend.make_poller()
    assert await poller.read(["ac_power_w", "frequency_hz"]) == {"ac_power_w": 1234.5, "frequency_hz": 50.0}


# ------------------------------------------------------------------------ writes

WRITES = [
    # name, value, function code, address, words on the wire, value read back
    pytest.param("power_limit_pct", 55.5, 6, 0, [555], 55.5, id="uint16-scaled-fc6"),
    pytest.param("operating_mode", 3, 6, 6, [3], 3, id="uint16-fc6"),
    # The SunSpec exponent (-1) is read from the device before encoding.
    pytest.param("reactive_setpoint_var", -12.3, 6, 5, [0xFF85], -12.3, id="int16-sunspec-fc6"),
    pytest.param("export_limit_w", -70000, 16, 3, [0xFFFE, 0xEE90], -70000, id="int32-fc16"),
    pytest.param("export_limit_w", 0x12345, 16, 3, [0x0001, 0x2345], 0x12345, id="int32-positive-fc16"),
]


@pytest.mark.parametrize(("name", "value", "function_code", "address", "words", "read_back"), WRITES)
async def test_write_uses_fc6_for_one_register_and_fc16_for_more(
    backend: Backend,
    name: str,
    value: Any,
    function_code: int,
    address: int,
    words: list[int],
    read_back: Any,
) -> None:
    events: list[PollerEvent] = []
    poller = backend.make_poller(on_event=events.append)
    assert await poller.write(name, value) == read_back
    assert backend.writes() == [(function_code, address, words)]
    assert await backend.registers("holding", address, len(words)) == words
    assert (await poller.read([name]))[name] == read_back
    assert [(e.operation, e.error_kind) for e in events] == [("connect", None), ("write", None), ("poll", None)]


async def test_map_can_ask_for_fc16_even_for_one_register(backend: Backend) -> None:
    fc16_only = RegisterMap(name="fc16_only", registers=INVERTER.registers, write_single_with_fc16=True)
    poller = backend.make_poller(fc16_only)
    await poller.write("operating_mode", 2)
    assert backend.writes() == [(16, 6, [2])]


async def test_write_read_back_mismatch_raises_verification_error(backend: Backend) -> None:
    backend.clamp(address=0, max_raw=1000)  # the device silently caps power_limit_pct at 100.0 %
    events: list[PollerEvent] = []
    poller = backend.make_poller(on_event=events.append)
    assert await poller.write("power_limit_pct", 80.0) == 80.0
    with pytest.raises(WriteVerificationError) as caught:
        await poller.write("power_limit_pct", 150.0)
    error = caught.value
    assert (error.name, error.requested, error.read_back) == ("power_limit_pct", 150.0, 100.0)
    assert poller.online  # the device answered; only the value is wrong
    assert poller.last_error is caught.value
    assert [e.error_kind for e in events if e.operation == "write"] == [None, "verification"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ac_power_w", 1, "read-only"),
        ("power_limit_pct", 7000.0, "outside uint16"),
        ("no_such_register", 1, "unknown register"),
        ("operating_mode", "fast", "expected a number"),
        ("export_limit_w", 2**31, "outside int32"),
    ],
)
async def test_invalid_write_is_refused_before_any_io(
    backend: Backend, name: str, value: Any, message: str
) -> None:
    events: list[PollerEvent] = []
    poller = backend.make_poller(on_event=events.append)
    with pytest.raises(RegisterValueError, match=message):
        await poller.write(name, value)
    assert backend.writes() == []
    assert events == []  # not even a connection


# ------------------------------------------------------------------------ write_many

WRITE_MANY: list[Any] = [
    # values, requests on the wire (function code, address, count), words written, read-back
    pytest.param(
        {"discharge_rate_pct": 40.0, "charge_rate_pct": 0},
        # rate_sf read once for both rates, one FC16, one read-back of the pair
        [(3, 45, 1), (16, 32, 2), (3, 32, 2)],
        [(16, 32, [400, 0])],
        {"discharge_rate_pct": 40.0, "charge_rate_pct": 0.0},
        id="two-rates-one-fc16",
    ),
    pytest.param(
        {"charge_rate_pct": 12.5, "discharge_rate_pct": 0},
        [(3, 45, 1), (16, 32, 2), (3, 32, 2)],
        [(16, 32, [0, 125])],
        {"charge_rate_pct": 12.5, "discharge_rate_pct": 0.0},  # keys in the caller's order
        id="any-order-in-the-mapping",
    ),
    pytest.param(
        {"operating_mode": 2, "export_limit_w": -70000, "reactive_setpoint_var": -12.3},
        [(3, 2, 1), (16, 3, 4), (3, 3, 4)],
        [(16, 3, [0xFFFE, 0xEE90, 0xFF85, 2])],
        {"operating_mode": 2, "export_limit_w": -70000, "reactive_setpoint_var": -12.3},
        id="mixed-widths-one-fc16",
    ),
    pytest.param(
        {"operating_mode": 3},
        [(6, 6, 1), (3, 6, 1)],
        [(6, 6, [3])],
        {"operating_mode": 3},
        id="one-register-like-write-fc6",
    ),
]


@pytest.mark.parametrize(("values", "requests", "writes", "read_back"), WRITE_MANY)
async def test_write_many_sends_one_request_and_reads_back_once(
    backend: Backend,
    values: dict[str, Any],
    requests: list[tuple[int, int, int]],
    writes: list[tuple[int, int, list[int]]],
    read_back: dict[str, Any],
) -> None:
    events: list[PollerEvent] = []
    poller = backend.make_poller(DEVICE_MAP, on_event=events.append)
    got = await poller.write_many(values)
    assert got == read_back and list(got) == list(read_back)
    assert backend.requests() == requests
    assert backend.writes() == writes
    assert await poller.read(list(values)) == read_back
    assert [(e.operation, e.error_kind) for e in events] == [("connect", None), ("write", None), ("poll", None)]


WRITE_MANY_REFUSED: list[Any] = [
    # values, error message, whether the device was asked anything before the refusal
    pytest.param({"discharge_rate_pct": 10.0, "rate_revert_s": 60}, "not contiguous", False, id="gap"),
    pytest.param({"storage_control_mode": 2, "charge_rate_pct": 10.0}, "not contiguous", False, id="far-apart"),
    pytest.param({"power_limit_pct": 50.0, "ac_power_w": 1}, "read-only", False, id="read-only"),
    pytest.param({"discharge_rate_pct": 1.0, "no_such_register": 1}, "unknown register", False, id="unknown"),
    pytest.param({"export_limit_w": 2**31, "reactive_setpoint_var": 1.0}, "outside int32", False, id="range"),
    pytest.param({}, "nothing to write", False, id="empty"),
    # 5000 % is raw 50000 at rate_sf -1: only known once the exponent is read, still before any write.
    pytest.param(
        {"discharge_rate_pct": 40.0, "charge_rate_pct": 5000.0}, "outside int16", True, id="range-after-sf"
    ),
]


async def holding_image(backend: Backend) -> dict[str, list[int]]:
    """The words of every holding register of the device, by name."""
    return {
        r.name: await backend.registers("holding", r.address, r.word_count)
        for r in DEVICE_MAP.registers
        if r.table == "holding"
    }


@pytest.mark.parametrize(("values", "message", "asked_device"), WRITE_MANY_REFUSED)
async def test_write_many_refuses_before_writing_anything(
    backend: Backend, values: dict[str, Any], message: str, asked_device: bool
) -> None:
    events: list[PollerEvent] = []
    poller = backend.make_poller(DEVICE_MAP, on_event=events.append)
    before = await holding_image(backend)
    with pytest.raises(RegisterValueError, match=message):
        await poller.write_many(values)
    assert backend.writes() == []
    assert await holding_image(backend) == before
    # Refused before any I/O, or (a scale factor read first) after connecting, as an invalid write.
    asked = [("connect", None), ("write", "invalid")] if asked_device else []
    assert [(e.operation, e.error_kind) for e in events] == asked


async def test_write_many_read_back_mismatch_names_the_register(backend: Backend) -> None:
    backend.clamp(address=33, max_raw=500)  # the device caps the charge rate at 50.0 %
    events: list[PollerEvent] = []
    poller = backend.make_poller(DEVICE_MAP, on_event=events.append)
    with pytest.raises(WriteVerificationError) as caught:
        await poller.write_many({"discharge_rate_pct": 0, "charge_rate_pct": 80.0})
    error = caught.value
    assert (error.name, error.requested, error.read_back) == ("charge_rate_pct", 80.0, 50.0)
    assert [(code, address) for code, address, _ in backend.writes()] == [(16, 32)]
    assert poller.online and poller.last_error is error
    assert [(e.error_kind, e.register) for e in events if e.operation == "write"] == [
        ("verification", "discharge_rate_pct+charge_rate_pct")
    ]


# ------------------------------------------------------------------------ exception replies

REJECTED_REQUESTS: list[Any] = [
    pytest.param(lambda p: p.read(["far_holding"]), 3, id="FC3"),
    pytest.param(lambda p: p.read(["far_input"]), 4, id="FC4"),
    pytest.param(lambda p: p.write("far_holding", 1), 6, id="FC6"),
    pytest.param(lambda p: p.write("far_pair", 70000), 16, id="FC16"),
    pytest.param(lambda p: p.write_many({"far_holding": 1}), 6, id="write_many-FC6"),
]


@pytest.mark.parametrize(("request_fn", "function_code"), REJECTED_REQUESTS)
async def test_exception_reply_raises_device_rejected_and_device_stays_online(
    backend: Backend, request_fn: Callable[[ModbusPoller], Awaitable[Any]], function_code: int
) -> None:
    events: list[PollerEvent] = []
    poller = backend.make_poller(OUT_OF_RANGE, on_event=events.append)
    with pytest.raises(DeviceRejected) as caught:
        await request_fn(poller)
    assert caught.value.exception_code == ExceptionCode.ILLEGAL_DATA_ADDRESS
    assert caught.value.exception_name == "ILLEGAL_DATA_ADDRESS"
    assert caught.value.function_code == function_code
    assert poller.online and poller.consecutive_failures == 0 and poller.backoff_remaining_s == 0.0
    assert [e.error_kind for e in events if e.operation != "connect"] == ["rejected"]
    # No backoff after a rejection: the next request goes straight out.
    assert await poller.read(["operating_mode"]) == {"operating_mode": 1}


# ------------------------------------------------------------------------ transport failures


async def test_device_down_backs_off_then_recovers(backend: Backend) -> None:
    clock = FakeClock()
    transitions: list[bool] = []
    events: list[PollerEvent] = []
    poller = backend.make_poller(
        clock=clock, on_online_change=lambda online, _error: transitions.append(online), on_event=events.append
    )
    assert await poller.read_all() == EXPECTED_READ

    await backend.go_down()
    with pytest.raises(DeviceUnavailable):
        await poller.read_all()
    assert not poller.online and poller.consecutive_failures == 1
    assert isinstance(poller.last_error, DeviceUnavailable)
    assert poller.backoff_remaining_s == 1.0

    # While backing off nothing touches the network, reads and writes alike.
    requests, seen = len(backend.requests()), len(events)
    for call in (poller.read_all, lambda: poller.write("operating_mode", 2)):
        with pytest.raises(DeviceUnavailable, match="backing off") as refused:
            await call()
        assert refused.value.retry_in_s == 1.0
    assert len(backend.requests()) == requests
    assert [(e.operation, e.error_kind) for e in events[seen:]] == [("refused", "unavailable")] * 2

    # Each failed attempt doubles the delay, up to max_s (4 s here).
    for failures, delay_s in [(2, 2.0), (3, 4.0), (4, 4.0)]:
        clock.advance(poller.backoff_remaining_s)
        with pytest.raises(DeviceUnavailable, match="cannot connect"):
            await poller.read_all()
        assert poller.consecutive_failures == failures and poller.backoff_remaining_s == delay_s
    connects = [e.error_kind for e in events if e.operation == "connect"]
    assert connects[-3:] == ["unavailable"] * 3

    await backend.come_back()
    clock.advance(poller.backoff_remaining_s)
    assert await poller.read_all() == EXPECTED_READ
    assert poller.online and poller.consecutive_failures == 0 and poller.backoff_remaining_s == 0.0
    assert transitions == [True, False, True]
    assert await poller.write("operating_mode", 2) == 2
    failed = [(e.operation, e.error_kind) for e in events if e.error_kind and e.operation in ("poll", "write")]
    assert failed == [("poll", "unavailable")] * 4


async def test_events_feed_the_metrics_layer(backend: Backend) -> None:
    events: list[PollerEvent] = []
    clock = FakeClock()
    poller = backend.make_poller(clock=clock, on_event=events.append)
    rejecting = backend.make_poller(OUT_OF_RANGE, on_event=events.append)
    backend.clamp(address=0, max_raw=1000)

    await poller.read_all()
    await poller.write("operating_mode", 4)
    with pytest.raises(WriteVerificationError):
        await poller.write("power_limit_pct", 150.0)
    with pytest.raises(DeviceRejected):
        await rejecting.read(["far_holding"])
    await backend.go_down()
    with pytest.raises(DeviceUnavailable):
        await poller.read_all()
    with pytest.raises(DeviceUnavailable, match="backing off"):
        await poller.read_all()  # no I/O: a refusal

    # (The fake backend's pollers share one device, so only the TCP one connects twice: connects aside.)
    assert (events[0].operation, events[0].error_kind) == ("connect", None)
    assert [(e.operation, e.error_kind, e.register) for e in events if e.operation != "connect"] == [
        ("poll", None, None),
        ("write", None, "operating_mode"),
        ("write", "verification", "power_limit_pct"),
        ("poll", "rejected", None),
        ("poll", "unavailable", None),
        ("refused", "unavailable", None),
    ]
    assert all(e.duration_s >= 0 for e in events) and events[0].ok and not events[-1].ok
    assert events[-1].duration_s == 0.0


async def test_closed_poller_refuses_calls(backend: Backend) -> None:
    poller = backend.make_poller()
    await poller.read_all()
    await poller.close()
    assert not poller.online
    with pytest.raises(DeviceUnavailable, match="closed"):
        await poller.read_all()


async def test_no_reply_times_out_as_unavailable(tcp_server: ModbusTestServer) -> None:
    poller = ModbusPoller(
        "127.0.0.1", tcp_server.port, UNIT_ID, INVERTER, timeout_s=0.2, backoff=fast_backoff()
    )
    try:
        await poller.read_all()
        tcp_server.stall = asyncio.Event()  # the device accepts requests but never answers
        started_s = time.perf_counter()
        with pytest.raises(DeviceUnavailable):
            await poller.read_all()
        assert time.perf_counter() - started_s < 2.0
        assert not poller.online and poller.consecutive_failures == 1
    finally:
        await poller.close()


async def test_nothing_listening_is_unavailable() -> None:
    with socket.socket() as probe:  # a port that was just free and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    events: list[PollerEvent] = []
    poller = ModbusPoller("127.0.0.1", port, UNIT_ID, INVERTER, timeout_s=1.0, backoff=fast_backoff(),
                          on_event=events.append)
    try:
        with pytest.raises(DeviceUnavailable, match="cannot connect"):
            await poller.read_all()
        assert not poller.online and poller.consecutive_failures == 1
        assert [(e.operation, e.error_kind) for e in events] == [("connect", "unavailable"), ("poll", "unavailable")]
    finally:
        await poller.close()


async def test_peer_closing_the_connection_is_reconnected_transparently(tcp_server: ModbusTestServer) -> None:
    events: list[PollerEvent] = []
    poller = ModbusPoller("127.0.0.1", tcp_server.port, UNIT_ID, INVERTER, backoff=fast_backoff(),
                          on_event=events.append)
    try:
        await poller.read_all()
        transport = poller.transport
        assert isinstance(transport, PymodbusTcpTransport)
        await tcp_server.stop()  # closes the connection from the device side
        await asyncio.wait_for(transport.disconnected.wait(), timeout=2.0)
        await tcp_server.start()  # same port
        # The close was noticed, so the next call simply reconnects: no error, no backoff.
        assert await poller.read_all() == EXPECTED_READ
        assert [(e.operation, e.error_kind) for e in events] == [("connect", None), ("poll", None)] * 2
    finally:
        await poller.close()


# ------------------------------------------------------------------------ backoff policy and the fake


@pytest.mark.parametrize(
    ("failures", "delay_s"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (50, 60.0), (100_000, 60.0)],
)
def test_backoff_doubles_to_the_cap(failures: int, delay_s: float) -> None:
    assert BackoffPolicy(jitter_ratio=0.0).delay_s(failures) == delay_s


def test_backoff_survives_a_very_long_outage_with_a_steep_factor() -> None:
    assert BackoffPolicy(factor=1e10, jitter_ratio=0.0).delay_s(10_000) == 60.0


def test_backoff_jitter_only_shortens() -> None:
    policy = BackoffPolicy(jitter_ratio=0.2)
    rng = random.Random(7)
    for failures in range(1, 10):
        plain_s = BackoffPolicy(jitter_ratio=0.0).delay_s(failures)
        delays = {policy.delay_s(failures, rng) for _ in range(50)}
        assert all(0.8 * plain_s <= d <= plain_s for d in delays)
        assert len(delays) > 1


@pytest.mark.parametrize(
    "fields",
    [{"initial_s": -1.0}, {"initial_s": 10.0, "max_s": 5.0}, {"factor": 0.5}, {"jitter_ratio": 1.0}],
)
def test_backoff_policy_refuses_nonsense(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid backoff"):
        BackoffPolicy(**fields)


async def test_fake_fault_injection() -> None:
    device = FakeModbusDevice(INVERTER, INITIAL_VALUES)
    poller = FakePoller(device, backoff=fast_backoff(), clock=FakeClock())
    assert isinstance(poller, ModbusPoller)

    device.reject_next(ExceptionCode.SERVER_DEVICE_BUSY)
    with pytest.raises(DeviceRejected) as caught:
        await poller.read_all()
    assert caught.value.exception_code == 6 and poller.online
    assert (await poller.read_all())["ac_power_w"] == 1234.5  # one-shot

    device.reject_next(ExceptionCode.GATEWAY_TARGET_NO_RESPONSE, times=None)
    for _ in range(2):
        with pytest.raises(DeviceRejected, match="GATEWAY_TARGET_NO_RESPONSE"):
            await poller.read(["operating_mode"])
    device.clear_faults()

    device.drop_connection()  # e.g. an idle timeout on the device side
    assert (await poller.read(["operating_mode"])) == {"operating_mode": 1}
    assert device.connect_count == 2

    device.set_value("ac_power_w", -99.9)
    device.set_not_implemented("frequency_hz")  # float32 has no sentinel handling unless asked
    values = await poller.read_all()
    assert values["ac_power_w"] == -99.9 and math.isnan(values["frequency_hz"])
    assert device.get_value("ac_power_w") == -99.9
    assert [r.function_code for r in device.requests].count(3) >= 3


async def test_unusable_scale_factor_on_the_device_refuses_the_write() -> None:
    device = FakeModbusDevice(INVERTER, INITIAL_VALUES)
    device.set_words("holding", INVERTER["w_sf"].address, [0x8000])  # -32768: not a SunSpec exponent
    events: list[PollerEvent] = []
    poller = FakePoller(device, on_event=events.append)
    with pytest.raises(RegisterValueError, match="scale factor"):
        await poller.write("reactive_setpoint_var", 10.0)
    assert device.writes() == []  # nothing was written with a made-up exponent
    assert poller.online
    assert [(e.operation, e.error_kind) for e in events] == [("connect", None), ("write", "invalid")]
    assert (await poller.read(["ac_power_w"])) == {"ac_power_w": None}
