"""Energy shifting: what the battery earns on the energy bill with the capacity peak shaving does not need.

Peak shaving keeps the battery full for the peaks. When the tariff pays less for export than it charges for
import, or prices import by time of use, the energy above what the coming peaks need can earn instead:

- PV surplus is stored rather than exported (worth the import price later, not the export price now);
- above the peak reserve the battery covers the site's import in the expensive hours of a time-of-use tariff;
  at any hour of a flat one above what the PV surplus expected will refill (capacity less that surplus);
- at a flat price the grid keeps the battery there only while the coming load comes near what the tariff bills
  already (that energy is the peaks' margin beyond the forecast); far below it (a summer under a winter's
  annual peak) the grid refills only the peak reserve: energy bought to be kept is bought back at a loss when
  it is spent, and it takes the room of the PV surplus;
- in the cheapest hours of a time-of-use tariff whose spread pays for the round trip, the grid fills the
  battery under the limit, leaving room for the PV surplus expected before the dearer hours; in the dearer hours
  the grid refills only the peak reserve.

The peak reserve is the energy the planner's forecast (the upper envelope, planner.py) says the battery
needs to hold the limit until the end of the forecast, refilling below the limit as the planner assumes,
times a margin. Nothing here touches the limit: the peak priority (controller.py) still bounds the
battery's power from below, so shifting only chooses within what peak shaving leaves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controller_module.core.tariff import Tariff

STEP_H = 0.25  # the forecast's quarters


@dataclass(frozen=True)
class Prices:
    """The tariff's import prices as shifting reads them."""

    now_per_kwh: float
    lowest_per_kwh: float
    export_per_kwh: float
    grid_shift_pays: bool  # buying in the cheapest hours to sell back in the dearest pays for the round trip

    @classmethod
    def of(cls, tariff: Tariff, now_per_kwh: float, round_trip_efficiency: float) -> Prices:
        prices = [tariff.energy_price_per_kwh, *(p.price_per_kwh for p in tariff.energy_prices)]
        lowest, highest = min(prices), max(prices)
        return cls(now_per_kwh, lowest, tariff.export_price_per_kwh,
                   highest * round_trip_efficiency > lowest + 1e-9)

    @property
    def worth_shifting(self) -> bool:
        """Is there anything to earn: export paid below import, or a time-of-use spread that pays?"""
        return self.export_per_kwh < self.lowest_per_kwh - 1e-9 or self.grid_shift_pays

    @property
    def cheap_now(self) -> bool:
        return self.now_per_kwh <= self.lowest_per_kwh + 1e-9


def peak_reserve_kwh(net_kw: list[float], limits_kw: list[float | None], max_charge_kw: float,
                     max_discharge_kw: float, charge_efficiency: float, discharge_efficiency: float) -> float:
    """The battery energy (above its floor) needed now to keep import ≤ `limits_kw[k]` in each quarter of the
    forecast `net_kw`, refilling below the limit (freely in the quarters whose limit is None: no demand is billed
    then), as the planner's `holds` assumes. One limit per quarter, because a tariff's demand charges count at
    different times (an on-peak window held lower than the all-hours peak, nothing at all outside the windows).

    Backward: what a quarter needs is what it spends plus what the following quarters need, less what it can
    refill; never below zero."""
    need_kwh = 0.0
    for k in range(len(net_kw) - 1, -1, -1):
        limit_kw = limits_kw[k]
        if limit_kw is None:
            need_kwh = max(0.0, need_kwh - max_charge_kw * STEP_H * charge_efficiency)
            continue
        excess_kw = net_kw[k] - limit_kw
        if excess_kw > 0:
            need_kwh += min(excess_kw, max_discharge_kw) * STEP_H / discharge_efficiency
        else:
            need_kwh = max(0.0, need_kwh - min(-excess_kw, max_charge_kw) * STEP_H * charge_efficiency)
    return need_kwh


def pv_surplus_kwh(net_kw: list[float], charge_efficiency: float) -> float:
    """The PV surplus the forecast `net_kw` (import + , export −) expects, as energy stored in the battery."""
    return sum(max(0.0, -x) for x in net_kw) * STEP_H * charge_efficiency


# the coming load "comes near" what a demand charge bills already above this share of it (core/controller.py)
NEAR_BILLED_SHARE = 0.6


def comes_near_billed(net_kw: list[float], billed_kw: Iterable[float | None]) -> bool:
    """Does the forecast `net_kw` come near what is billed already (`billed_kw`: per quarter, the lowest billed
    demand of the charges counting then; None where none counts)? Only then is energy kept from the grid above the
    peak reserve worth its cost at a flat price: it is the margin for the peaks the forecast does not see. Far
    below (a summer against a winter's annual peak) it only takes the room of the PV surplus."""
    return any(billed is not None and x > NEAR_BILLED_SHARE * billed
               for x, billed in zip(net_kw, billed_kw, strict=True))


def shifting_kw(g_free: float, energy_kwh: float, reserve_kwh: float, keep_kwh: float, capacity_kwh: float,
                max_charge_kw: float, max_discharge_kw: float, headroom_kw: float, prices: Prices, cycle_h: float,
                peaks_near: bool) -> float:
    """The battery power shifting prefers (+ discharge), before the peak priority bounds it.

    `energy_kwh` is the energy above the floor now, `capacity_kwh` the window between floor and ceiling,
    `reserve_kwh` what the peaks need, `keep_kwh` (≥ reserve) what the grid keeps in the battery outside the
    dearer hours of a time-of-use tariff: the capacity less the PV surplus expected to refill it before them, so
    that energy spent on import is energy the sun gives back (filled from the grid in the cheap hours, the battery
    exported the noon surplus at a third of the price); `headroom_kw` how far import may rise before the target
    (inf: nothing billed); `peaks_near`: the coming load comes near what is billed already (comes_near_billed)."""
    if g_free < 0:  # export: store the surplus
        return max(g_free, -max_charge_kw)
    room_kw = max(0.0, headroom_kw)
    if prices.grid_shift_pays and not prices.cheap_now:
        keep_kwh = reserve_kwh  # dearer hours: what is spent above the reserve is bought back cheaper
    # (in the cheapest hours of a time-of-use tariff, as at any hour of a flat one: the grid fills the battery
    # under the limit up to what the PV surplus expected before the next dearer hour leaves to fill)
    if energy_kwh > keep_kwh:
        # cover the import, no faster than the energy above what is kept lasts this cycle
        return min(g_free, max_discharge_kw, (energy_kwh - keep_kwh) / max(cycle_h, 1e-9))
    # the grid refills it under the limit: to what is kept where buying cheap to spend dear pays or the peaks come
    # near what is billed; else only the reserve (at a flat price the energy kept is bought back at a loss)
    fill_kwh = keep_kwh if prices.grid_shift_pays or peaks_near else reserve_kwh
    if energy_kwh < fill_kwh:
        return -min(max_charge_kw, room_kw, (fill_kwh - energy_kwh) / max(cycle_h, 1e-9))
    return 0.0
