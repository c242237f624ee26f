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
    counter: str  # energy register
    power: str  # the power register that drives it
    power_to_kw: float  # unit of `power` in kW (0.001 for W)
    resolution_kwh: float  # one step of the counter, kWh (with `scale_factor`: one step at scale factor 0)
    direction: int = 1  # +1: counts positive power (import); -1: counts negative power (export)
    scale_factor: str | None = None  # SunSpec: the point whose value n makes a step resolution_kwh · 10^n

    def step_kwh(self, values: dict[str, Any]) -> float | None:
        if self.scale_factor is None:
            return self.resolution_kwh
        sf = values.get(self.scale_factor)
        return self.resolution_kwh * 10.0 ** sf if isinstance(sf, int) and -10 <= sf <= 10 else None


@dataclass(frozen=True)
class LivenessSpec:
    heartbeat: str | None = None
    counters: tuple[EnergyCounter, ...] = ()


@dataclass
class _CounterState:
    value: Any
    last_s: float
    flow_kw: float  # at the last read
    energy_kwh: float = 0.0  # what the power says went through since the counter last moved
    due_s: float | None = None  # when that energy reached one step of the counter: a tick was due from then


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
            value, power, step_kwh = values.get(c.counter), values.get(c.power), c.step_kwh(values)
            if not isinstance(value, (int, float)) or not isinstance(power, (int, float)) or step_kwh is None:
                continue
            flow_kw = max(0.0, c.direction * power * c.power_to_kw)
            state = self._counters.get(c.counter)
            if state is None or value != state.value:
                self._counters[c.counter] = _CounterState(value, now_s, flow_kw)
                continue
            # the lower of the two readings over the interval: a power that just rose has not yet moved energy
            state.energy_kwh += min(flow_kw, state.flow_kw) * max(0.0, now_s - state.last_s) / 3600
            state.last_s, state.flow_kw = now_s, flow_kw
            if state.due_s is None and state.energy_kwh >= step_kwh:
                state.due_s = now_s
            if (state.due_s is not None and state.energy_kwh > 2 * step_kwh
                    and now_s - state.due_s > frozen_after_s):
                reasons.append(f"{c.counter} stood still for {now_s - state.due_s:.1f} s while {c.power} "
                               f"says {state.energy_kwh:.3f} kWh went through")
        return ("frozen data: " + "; ".join(reasons)) if reasons else None
