"""An operator's dispatch: the highest priority after safety, for a set time.

- the whole site's batteries: fixes their total power (a constraint on the site battery power, see controller.py);
- one battery: fixes that unit, which leaves the automatic allocation (clamped to what it can do now);
- one PV inverter: its output limit, kW, in place of the automatic curtailment;
- one boiler: soak at -power_kw (a consumption, kW) up to the soak setpoint, in place of the automatic command.

Solar and boiler dispatches replace the automatic command as the decision's last step, in every mode (the
fail-safe included): they are the operator's, not the controller's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from controller_module.core.config import ControllerConfig
from controller_module.core.flexibility import BoilerCommand, BoilerMode

DISPATCHABLE = ("battery", "solar", "boiler")


@dataclass(frozen=True)
class Dispatch:
    """An operator's override: `asset_id` None = the whole site's batteries."""

    power_kw: float
    until: dt.datetime
    asset_id: str | None = None


@dataclass(frozen=True)
class DispatchOutcome:
    """What a dispatch does now: the share of each battery (or the one asset's power), and whether the batteries
    cannot do all of it."""

    split_kw: dict[str, float]
    applied_kw: float
    limited: bool


class NotDispatchable(ValueError):
    """The asset's type takes no dispatch (a meter)."""


def override_solar(limits_kw: dict[str, float | None], overrides: dict[str, Dispatch]) -> dict[str, float | None]:
    """The PV output limits with the operator's in place of the automatic ones (for the inverters under control)."""
    return {asset_id: overrides[asset_id].power_kw if asset_id in overrides else limit
            for asset_id, limit in limits_kw.items()}


def override_boilers(commands: dict[str, BoilerCommand], overrides: dict[str, Dispatch], config: ControllerConfig
                     ) -> dict[str, BoilerCommand]:
    """The boiler commands with the operator's in place of the automatic ones: soak at the dispatched draw."""
    return {asset_id: BoilerCommand(BoilerMode.SOAK, max(0.0, -overrides[asset_id].power_kw),
                                    config.boiler_soak_setpoint_c) if asset_id in overrides else command
            for asset_id, command in commands.items()}
