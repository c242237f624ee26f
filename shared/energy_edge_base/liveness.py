"""Is a device's data live? Frozen values are the quiet way a meter lies: the device still answers, the
values stop changing, and a controller believing them charges the battery into a peak.

A device class declares what it offers to prove its data is live (`LivenessSpec`, data, not code):
- a **heartbeat**: a counter the device advances on its own at least once a second (vendor site
  controllers have one; the simulator's meter does too). It standing still beyond `frozen_after_s` is
  frozen data.
- **energy counters** against the power that drives them (SunSpec and vendor meters have them): the
  energy the power says went through since the counter last moved exceeding twice the counter's
  resolution, for longer than `frozen_after_s`, is frozen data. Physics allows a counter to stand still only
  while so little power flows that it has not crossed a step yet.
Points a device does not offer are not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EnergyCounter:
    counter: str  # energy register, kWh
    power: str  # the power register that drives it
    power_to_kw: float  # unit of `power` in kW (0.001 for W)
    resolution_kwh: float  # one step of the counter
    direction: int = 1  # +1: counts positive power (import); -1: counts negative power (export)


@dataclass(frozen=True)
class LivenessSpec:
    heartbeat: str | None = None
    counters: tuple[EnergyCounter, ...] = ()


@dataclass
class _CounterState:
    value: Any
    since_s: float
    last_s: float
    energy_kwh: float = 0.0


@dataclass
class Liveness:
    spec: LivenessSpec | None
    _heartbeat: tuple[Any, float] | None = None
    _counters: dict[str, _CounterState] = field(default_factory=dict)

    def check(self, values: dict[str, Any], now_s: float, frozen_after_s: float) -> str | None:
        """Why `values` (just read) are frozen, or None. Keeps what it needs from call to call."""
        if self.spec is None or frozen_after_s <= 0:
            return None
        reasons = []
        beat = values.get(self.spec.heartbeat) if self.spec.heartbeat else None
        if beat is not None:
            if self._heartbeat is None or beat != self._heartbeat[0]:
                self._heartbeat = (beat, now_s)
            elif now_s - self._heartbeat[1] > frozen_after_s:
                reasons.append(f"heartbeat {beat} unchanged for {now_s - self._heartbeat[1]:.1f} s")
        for c in self.spec.counters:
            value, power = values.get(c.counter), values.get(c.power)
            if not isinstance(value, (int, float)) or not isinstance(power, (int, float)):
                continue
            state = self._counters.get(c.counter)
            if state is None or value != state.value:
                self._counters[c.counter] = _CounterState(value, now_s, now_s)
                continue
            flow_kw = max(0.0, c.direction * power * c.power_to_kw)
            state.energy_kwh += flow_kw * max(0.0, now_s - state.last_s) / 3600
            state.last_s = now_s
            if state.energy_kwh > 2 * c.resolution_kwh and now_s - state.since_s > frozen_after_s:
                reasons.append(f"{c.counter} stood still for {now_s - state.since_s:.1f} s while {c.power} "
                               f"says {state.energy_kwh:.2f} kWh went through")
        return ("frozen data: " + "; ".join(reasons)) if reasons else None
