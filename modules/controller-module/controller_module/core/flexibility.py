"""Flexible consumption and PV: boilers soak up the surplus the batteries leave and hold off during peaks; PV
is curtailed only when export would still exceed the limit. Pure functions of the configuration and the site."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from controller_module.core.config import ControllerConfig
from controller_module.core.state import BoilerView, SiteState


class BoilerMode(str, Enum):
    NORMAL = "normal"  # its own thermostat at the normal setpoint, full power
    SOAK = "soak"  # heat with PV surplus up to the soak setpoint, at a power limit
    HOLD = "hold"  # heater off during a peak


@dataclass(frozen=True)
class BoilerCommand:
    mode: BoilerMode
    power_kw: float  # heater power limit (SOAK), rating (NORMAL), 0 (HOLD)
    setpoint_c: float


def is_soaking(config: ControllerConfig, boiler: BoilerView) -> bool:
    """Heating above the normal setpoint band is ours to move; below it the boiler heats on its own."""
    temp = boiler.water_temp_c
    return bool(boiler.online and temp is not None and temp > config.boiler_normal_setpoint_c + 1)


def soaking_kw(config: ControllerConfig, site: SiteState, heat_now: float) -> float:
    """Heating that is ours to move (left out of the import the batteries answer for)."""
    soaking = sum(-b.power_kw for b in site.boilers if is_soaking(config, b))
    return min(soaking, heat_now)


def normal(config: ControllerConfig, boiler: BoilerView) -> BoilerCommand:
    return BoilerCommand(BoilerMode.NORMAL, boiler.rated_kw or 0.0, config.boiler_normal_setpoint_c)


def boiler_commands(config: ControllerConfig, site: SiteState, import_after_batteries: float, headroom_kw: float
                    ) -> tuple[dict[str, BoilerCommand], float]:
    """Soak up the surplus the batteries leave; hold off when heating would push import past the
    target, unless the water is too cold. Hold and release use the same test (would the heater's
    full power fit under the target?), so a boiler does not toggle as its own draw comes and goes."""
    cfg = config
    commands: dict[str, BoilerCommand] = {}
    surplus = max(0.0, -import_after_batteries)
    soak_total = 0.0
    for b in site.boilers:
        if not b.online or b.age_s > cfg.asset_stale_s:
            continue
        temp = b.water_temp_c
        low = b.min_temp_c if b.min_temp_c is not None else cfg.boiler_normal_setpoint_c - 10
        soak_setpoint = min(cfg.boiler_soak_setpoint_c, b.max_temp_c or cfg.boiler_soak_setpoint_c)
        own_draw = max(0.0, -b.power_kw)
        if headroom_kw + own_draw < (b.rated_kw or 0.0) and temp is not None and temp > low + 1:
            commands[b.asset_id] = BoilerCommand(BoilerMode.HOLD, 0.0, cfg.boiler_normal_setpoint_c)
        elif cfg.boiler_enabled and surplus > cfg.deadband_kw and temp is not None and temp < soak_setpoint - 1:
            # a boiler heating on its own thermostat is already in the import: only the extra counts
            already = 0.0 if is_soaking(config, b) else own_draw
            power = round(min(b.rated_kw or 0.0, surplus + already), 1)
            extra = max(0.0, power - already)
            surplus -= extra
            soak_total += extra
            commands[b.asset_id] = BoilerCommand(BoilerMode.SOAK, power, soak_setpoint)
        else:
            commands[b.asset_id] = normal(config, b)
    return commands, soak_total


def curtailment(config: ControllerConfig, site: SiteState, import_after_all: float) -> dict[str, float | None]:
    """PV output limits: only when export would still exceed the limit (split by rating)."""
    cfg = config
    solars = [s for s in site.solars if s.online and s.age_s <= cfg.asset_stale_s]
    if cfg.max_export_kw is None or not solars:
        return {s.asset_id: None for s in solars}
    excess = -import_after_all - cfg.max_export_kw  # > 0: too much export
    curtailed = any(s.limit_pct is not None and s.limit_pct < 100 for s in solars)
    if excess <= 0 and not curtailed:
        return {s.asset_id: None for s in solars}
    pv_now = sum(max(0.0, s.power_kw) for s in solars)
    rated = [s.rated_kw or max(s.power_kw, 1.0) for s in solars]
    total_limit = pv_now - excess
    if total_limit >= sum(rated) - 1e-6:
        return {s.asset_id: None for s in solars}
    total_limit = max(0.0, total_limit)
    return {s.asset_id: round(total_limit * r / sum(rated), 2) for s, r in zip(solars, rated, strict=True)}
