"""Split a site battery setpoint across batteries: by headroom and state of charge.

Discharge goes first to the batteries with the most energy above their floor; charge to those with
the most room below their ceiling (the most under-served). Each share is clamped to the unit's
power limit and what is left over is handed to the others (water filling).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    asset_id: str
    soc_pct: float
    capacity_kwh: float
    max_charge_kw: float  # ≥ 0, already derated for SOC
    max_discharge_kw: float  # ≥ 0, already derated for SOC


def split(total_kw: float, units: list[Unit], floor_soc_pct: float, ceiling_soc_pct: float) -> dict[str, float]:
    """Shares of `total_kw` (+ discharge) per unit; the sum is less than the total only when units saturate."""
    shares = {u.asset_id: 0.0 for u in units}
    if abs(total_kw) < 1e-9 or not units:
        return shares
    discharging = total_kw > 0
    remaining = abs(total_kw)
    caps = {u.asset_id: u.max_discharge_kw if discharging else u.max_charge_kw for u in units}
    weights = {
        u.asset_id: max(0.0, (u.soc_pct - floor_soc_pct if discharging else ceiling_soc_pct - u.soc_pct))
        * max(u.capacity_kwh, 1e-6)
        for u in units
    }
    active = [u.asset_id for u in units if caps[u.asset_id] > 0 and weights[u.asset_id] > 0]
    while remaining > 1e-9 and active:
        weight_sum = sum(weights[a] for a in active)
        saturated = []
        handed = 0.0
        for asset_id in active:
            room = caps[asset_id] - shares[asset_id]
            give = min(room, remaining * weights[asset_id] / weight_sum)
            shares[asset_id] += give
            handed += give
            if caps[asset_id] - shares[asset_id] <= 1e-9:
                saturated.append(asset_id)
        remaining -= handed
        if not saturated:
            break
        active = [a for a in active if a not in saturated]
    sign = 1.0 if discharging else -1.0
    return {asset_id: round(sign * share, 3) for asset_id, share in shares.items()}


def derated_limits(soc_pct: float, max_charge_kw: float, max_discharge_kw: float, floor_soc_pct: float,
                   ceiling_soc_pct: float, taper_pct: float = 5.0) -> tuple[float, float]:
    """(charge, discharge) limits, tapering to 0 within `taper_pct` of the floor / ceiling."""
    charge = max_charge_kw * _taper(ceiling_soc_pct - soc_pct, taper_pct)
    discharge = max_discharge_kw * _taper(soc_pct - floor_soc_pct, taper_pct)
    return charge, discharge


def _taper(distance_pct: float, taper_pct: float) -> float:
    if distance_pct <= 0:
        return 0.0
    if taper_pct <= 0 or distance_pct >= taper_pct:
        return 1.0
    return max(0.1, distance_pct / taper_pct)


# One-way efficiency assumed when the energy left for one cycle is turned into a power limit. Batteries report
# their SOC after losses and the core is not told their efficiency; 0.9 one way (81 % round trip) errs on the
# safe side for any battery better than that.
CYCLE_EFFICIENCY = 0.9


def energy_limits(soc_pct: float, capacity_kwh: float, floor_soc_pct: float, ceiling_soc_pct: float,
                  cycle_s: float) -> tuple[float, float]:
    """(charge, discharge) limits that keep the SOC inside [floor, ceiling] if held for one more cycle.

    At a 1-second cycle they never bind; at a cycle as long as a billing quarter they are what keeps a held
    setpoint from running the battery past its floor or ceiling. Unknown capacity: no limit."""
    hours = cycle_s / 3600.0
    if hours <= 0 or capacity_kwh <= 0:
        return float("inf"), float("inf")
    charge = max(0.0, ceiling_soc_pct - soc_pct) / 100.0 * capacity_kwh / hours  # stores at most what it draws
    discharge = max(0.0, soc_pct - floor_soc_pct) / 100.0 * capacity_kwh * CYCLE_EFFICIENCY / hours
    return charge, discharge

