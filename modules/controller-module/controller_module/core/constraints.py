"""Priorities composed as constraints: each layer narrows an interval; none pins a value.

A layer proposes bounds (≥, ≤) on a quantity, here the site's total battery power (+ discharge).
Layers are applied in priority order; a lower layer's bound is clipped by what the higher layers
left, and the clipping is recorded so the status can say which priority limited which.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Interval:
    low: float
    high: float
    limited_by: list[str] = field(default_factory=list)
    trace: list[tuple[str, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.low > self.high:
            self.low = self.high = (self.low + self.high) / 2

    def at_least(self, value: float, layer: str) -> None:
        """`layer` wants the quantity ≥ value; clipped to what higher layers allow."""
        if value > self.high:
            self.limited_by.append(layer)
            value = self.high
        self.low = max(self.low, value)
        self.trace.append((layer, self.low, self.high))

    def at_most(self, value: float, layer: str) -> None:
        if value < self.low:
            self.limited_by.append(layer)
            value = self.low
        self.high = min(self.high, value)
        self.trace.append((layer, self.low, self.high))

    def exactly(self, value: float, layer: str) -> None:
        self.at_least(value, layer)
        self.at_most(value, layer)

    def pick(self, wanted: float) -> float:
        """The point of the interval closest to `wanted` (the lowest priority's preference)."""
        return min(self.high, max(self.low, wanted))
