"""Helpers for the simulator tests: the simulator in a background thread, HTTP and Modbus clients."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pymodbus.client import ModbusTcpClient

from energy_edge.sim.main import RunningSim, SimOptions, start_sim
from energy_edge.sim.runtime import Simulator

T = TypeVar("T")


class SimThread:
    """A simulator with its own event loop in a daemon thread, so blocking clients can talk to it."""

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="sim-loop")
        self.running: RunningSim | None = None

    def start(self) -> SimThread:
        self.thread.start()
        self.running = self.run(start_sim(self.options, clock=self.options.accel > 0))
        return self

    def run(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 10) -> T:
        async def wrapper() -> T:
            return fn()

        result: T = self.run(wrapper(), timeout)
        return result

    def stop(self) -> None:
        if self.running is not None:
            self.run(self.running.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    @property
    def sim(self) -> Simulator:
        assert self.running is not None
        return self.running.sim

    @property
    def sim_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((Path(self.options.data_dir) / "sim.json").read_text())
        return doc

    def device(self, asset_id: str) -> dict[str, Any]:
        return next(d for d in self.sim_json["devices"] if d["asset_id"] == asset_id)

    @property
    def admin_url(self) -> str:
        return str(self.sim_json["admin_url"])

    def http(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.admin_url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def state(self) -> dict[str, Any]:
        status, doc = self.http("GET", "/state")
        assert status == 200, doc
        return dict(doc)

    def fault(self, asset_id: str, fault: str, **extra: Any) -> None:
        status, doc = self.http("POST", "/faults", {"asset_id": asset_id, "fault": fault, **extra})
        assert status == 200, doc

    def advance(self, seconds: float) -> None:
        status, doc = self.http("POST", "/time", {"advance_s": seconds})
        assert status == 200, doc

    @contextmanager
    def client(self, asset_id: str, timeout: float = 2.0) -> Iterator[ModbusTcpClient]:
        entry = self.device(asset_id)
        client = ModbusTcpClient(entry["host"], port=entry["port"], timeout=timeout, retries=0)
        assert client.connect(), f"cannot connect to {asset_id}"
        try:
            yield client
        finally:
            client.close()


def s16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


def u32(regs: Sequence[int]) -> int:
    return (regs[0] << 16) | regs[1]


def s32(regs: Sequence[int]) -> int:
    v = u32(regs)
    return v - 0x100000000 if v & 0x80000000 else v
