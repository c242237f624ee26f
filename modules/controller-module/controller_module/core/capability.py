"""PEAK_SHAVING / DER capability state: booleans from several sources normalised to ON / OFF.

Sources: the controller itself and the site's external microgrid controller (its own status
booleans). One source is active per capability: the one reporting True, the controller first.
Two sources reporting True at once is a conflict (two controllers guarding the same thing), and
is flagged; the raw value, source, reason and timestamp are kept beside the normalised state.
A fallback source (the controller's own view of DER) counts only while no primary source reports:
the site controller is the authority on whether its DER are active.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

CAPABILITIES = ("PEAK_SHAVING", "DER")


@dataclass(frozen=True)
class SourceReading:
    source: str  # "controller" or the microgrid controller's asset id
    value: bool | None  # None: the source says nothing (offline, not reporting)
    reason: str
    fallback: bool = False  # only counts when no primary source says anything


@dataclass(frozen=True)
class CapabilityState:
    capability: str
    state: str  # "ON" | "OFF"
    raw_value: bool
    source: str
    reason: str
    conflict: bool
    timestamp: dt.datetime
    sources: tuple[SourceReading, ...] = ()

    def same_as(self, other: CapabilityState | None) -> bool:
        """Equal apart from the timestamp (what 'changed' means for emitting events)."""
        return other is not None and (self.state, self.source, self.conflict, self.reason) == (
            other.state, other.source, other.conflict, other.reason,
        )


def combine(capability: str, readings: list[SourceReading], now: dt.datetime) -> CapabilityState:
    considered = [r for r in readings if not r.fallback]
    if not any(r.value is not None for r in considered):
        considered = readings  # no primary source reports: the fallbacks speak
    on = [r for r in considered if r.value is True]
    known = [r for r in considered if r.value is not None]
    if on:
        active = on[0]
        conflict = len(on) > 1
        reason = active.reason
        if conflict:
            reason = f"{reason}; also ON at {', '.join(r.source for r in on[1:])}"
        return CapabilityState(capability, "ON", True, active.source, reason, conflict, now, tuple(readings))
    if known:
        reasons = "; ".join(f"{r.source}: {r.reason}" for r in known)
        return CapabilityState(capability, "OFF", False, known[0].source, reasons, False, now, tuple(readings))
    return CapabilityState(capability, "OFF", False, "none", "no source reports this capability", False, now,
                           tuple(readings))
