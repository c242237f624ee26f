"""The simulator: plant + devices + clock + faults, independent of any socket.

Simulated time advances in fixed steps of `step_s` = clamp(0.1 x accel, 1, 60) simulated seconds, so a
run is a function of (scenario, seed, accel, commands at given simulated times) only: the real-time clock
decides how many steps are due, never their size. `advance()` drives it without a clock (tests, admin).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from energy_edge.sim.devices import SimDevice, build_device
from energy_edge.sim.plant import BOILER_FAULT_TRIP, Plant
from energy_edge.sim.profiles import SiteProfiles, build_profiles
from energy_edge.sim.scenario import Scenario
from energy_edge.sim.servers import FAULTS, DeviceEndpoint, FaultState

log = logging.getLogger(__name__)

MAX_STEPS_PER_TICK = 5000
MAX_ADVANCE_S = 31 * 86400.0


class Simulator:
    def __init__(self, scenario: Scenario, seed: int | None = None, accel: float = 1.0,
                 profiles: SiteProfiles | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.profiles = profiles if profiles is not None else build_profiles(scenario, self.seed)
        self.plant = Plant.from_scenario(scenario, self.profiles, self.seed)
        self.devices: dict[str, SimDevice] = {}
        for spec in scenario.devices:
            self.devices[spec.asset_id] = build_device(spec, self.plant)
        self.faults = {asset_id: FaultState() for asset_id in self.devices}
        self.endpoints: dict[str, DeviceEndpoint] = {}
        self.accel = 0.0
        self.set_accel(accel)
        self._carry_s = 0.0
        self._beat_s = 0
        self.steps = 0

    # ------------------------------------------------------------ time

    @property
    def step_s(self) -> float:
        return min(60.0, max(1.0, 0.1 * self.accel))

    @property
    def sim_time(self) -> datetime:
        return self.scenario.start + timedelta(seconds=self.plant.t_s)

    def set_accel(self, accel: float) -> None:
        if not accel >= 0 or accel > 1e6:
            raise ValueError("accel must be within 0 (paused) .. 1e6 simulated seconds per second")
        self.accel = float(accel)

    def advance(self, sim_s: float, max_steps: int | None = None) -> int:
        """Advance by sim_s simulated seconds in whole steps (the remainder is carried); returns the steps."""
        if sim_s < 0:
            raise ValueError("time only moves forward")
        step = self.step_s
        self._carry_s += sim_s
        n = int(self._carry_s / step + 1e-9)
        if max_steps is not None and n > max_steps:
            n, self._carry_s = max_steps, 0.0  # falling behind: drop the backlog rather than spiral
        else:
            self._carry_s = max(0.0, self._carry_s - n * step)
        for _ in range(n):
            self.plant.step(step)
        if n:
            self.steps += n
            for device in self.devices.values():
                device.end_of_step()
            self.refresh()
        return n

    async def run_clock(self, tick_s: float = 0.1) -> None:
        """Follow the wall clock times accel until cancelled."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(tick_s)
            now = loop.time()
            elapsed, last = now - last, now
            if self.accel > 0:
                self.advance(elapsed * self.accel, MAX_STEPS_PER_TICK)
            self._beat()

    def _beat(self) -> None:
        """Site controllers count their heartbeat on their own clock, paused or not, unless frozen."""
        second = int(time.monotonic())
        if second == self._beat_s:
            return
        self._beat_s = second
        for asset_id, device in self.devices.items():
            if device.kind == "microgrid_controller" and self.faults[asset_id].mode != "frozen":
                device.refresh()

    # ------------------------------------------------------------ commands

    def on_control(self, written: SimDevice | None = None) -> None:
        """A control value changed: recompute the powers now. After a device's own write only that device's
        and the meter's registers are re-encoded (a write changes that device's power and the site's import;
        re-encoding all 152 devices of a large site cost 12 ms per write); the others follow at the next plant
        step. Anything else (load, faults) refreshes every image."""
        self.plant.evaluate()
        if written is None:
            self.refresh()
            return
        for asset_id, device in self.devices.items():
            if (device is written or device.kind == "microgrid_controller") and self.faults[asset_id].mode != "frozen":
                device.refresh()

    def refresh(self) -> None:
        for asset_id, device in self.devices.items():
            if self.faults[asset_id].mode != "frozen":
                device.refresh()

    def set_load_offset(self, offset_kw: float) -> None:
        self.plant.load_offset_kw = float(offset_kw)
        self.on_control()

    async def set_fault(self, asset_id: str, mode: str, code: int | None = None) -> FaultState:
        """Inject a fault (replacing the previous one); `none` returns the device to normal."""
        if asset_id not in self.devices:
            raise KeyError(asset_id)
        if mode not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}")
        fault = self.faults[asset_id]
        self._trip(asset_id, mode == "trip")
        fault.mode = mode
        if code is not None:
            fault.code = code
        endpoint = self.endpoints.get(asset_id)
        if endpoint is not None:
            if mode == "offline":
                await endpoint.stop()
            elif not endpoint.listening:
                await endpoint.start()
        self.on_control()
        log.info("fault on %s: %s", asset_id, fault.to_dict())
        return fault

    def _trip(self, asset_id: str, on: bool) -> None:
        """The device-level fault behind `trip`: the asset stops and reports a fault until cleared."""
        p = self.plant
        if asset_id in p.solar:
            p.solar[asset_id].fault = on
        elif asset_id in p.batteries:
            p.batteries[asset_id].fault = on
        elif asset_id in p.boilers:
            boiler = p.boilers[asset_id]
            if on:
                boiler.fault_code = BOILER_FAULT_TRIP
            elif boiler.fault_code == BOILER_FAULT_TRIP:
                boiler.fault_code = 0
        elif p.meter.asset_id == asset_id:
            if on:
                p.meter.fault_code = 1
            elif p.meter.fault_code == 1:
                p.meter.fault_code = 0

    # ------------------------------------------------------------ views

    def state(self) -> dict[str, Any]:
        p = self.plant
        devices: dict[str, Any] = {}
        for asset_id, device in self.devices.items():
            if asset_id in p.solar:
                doc = p.solar[asset_id].snapshot()
            elif asset_id in p.batteries:
                doc = p.batteries[asset_id].snapshot()
            elif asset_id in p.boilers:
                doc = p.boilers[asset_id].snapshot()
            else:
                doc = p.meter.snapshot()
            doc = {"kind": device.kind, "unit_id": device.unit_id, **doc, **self.faults[asset_id].to_dict()}
            endpoint = self.endpoints.get(asset_id)
            if endpoint is not None:
                doc["port"] = endpoint.port
                doc["modbus"] = endpoint.stats()
            devices[asset_id] = doc
        return {
            "site_id": self.scenario.site_id,
            "scenario": self.scenario.name,
            "seed": self.seed,
            "sim_time": self.sim_time.isoformat(),
            "accel": self.accel,
            "step_s": self.step_s,
            "steps": self.steps,
            "site": p.snapshot(),
            "devices": devices,
        }

    def device_entries(self, host: str) -> list[dict[str, Any]]:
        out = []
        for asset_id, device in self.devices.items():
            endpoint = self.endpoints.get(asset_id)
            out.append({"asset_id": asset_id, "kind": device.kind, "host": host,
                        "port": endpoint.port if endpoint else None, "unit_id": device.unit_id,
                        "protocol": device.protocol, **device.info()})
        return out
