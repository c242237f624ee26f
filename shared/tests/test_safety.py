"""What keeps a module from being misled or stopped by its inputs: strict method payloads, the event rate
limit, frozen-data detection, configuration kept on the volume, and devices required explicitly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from energy_edge_base.asset import AssetModuleConfig, DeviceSettings
from energy_edge_base.config import TwinConfig
from energy_edge_base.events import EventLimiter
from energy_edge_base.liveness import EnergyCounter, Liveness, LivenessSpec
from energy_edge_base.methods import MethodRegistry

# ---------------------------------------------------------------- strict method payloads


class OutputRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asset_id: str | None = None
    percent: float | None = Field(None, ge=0, le=100)
    enabled: bool | None = None


class Echo(BaseModel):
    percent: float | None
    enabled: bool | None


async def _echo(request: OutputRequest) -> Echo:
    return Echo(percent=request.percent, enabled=request.enabled)


def _nested(depth: int) -> Any:
    doc: Any = 1
    for _ in range(depth):
        doc = {"a": doc}
    return doc


PAYLOADS: list[tuple[str, Any, int, str | None]] = [
    ("a number", {"percent": 50}, 200, None),
    ("a boolean where a number belongs", {"percent": True}, 400, "percent"),
    ("a string where a number belongs", {"percent": "50"}, 400, "percent"),
    ("NaN", {"percent": math.nan}, 400, "percent"),
    ("infinity", {"percent": -math.inf}, 400, "percent"),
    ("a number where a boolean belongs", {"enabled": 1}, 400, "enabled"),
    ("a boolean", {"enabled": False}, 200, None),
    ("nested far too deep", {"percent": 1, "asset_id": _nested(40)}, 400, "asset_id"),
    ("a list, not an object", [1, 2], 400, "(payload)"),
    ("no payload", None, 200, None),
]


@pytest.mark.parametrize(("payload", "status", "field"), [c[1:] for c in PAYLOADS], ids=[c[0] for c in PAYLOADS])
async def test_method_payloads_are_checked_strictly(payload: Any, status: int, field: str | None) -> None:
    methods = MethodRegistry()
    methods.register("set_output", OutputRequest, Echo, _echo)
    result = await methods.dispatch("set_output", payload)
    assert result.status == status, result.payload
    if field is not None:
        assert any(e["field"].startswith(field) for e in result.payload["errors"]), result.payload


# ---------------------------------------------------------------- events rate limit


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


@pytest.mark.parametrize(
    ("burst", "per_day", "calls_at_s", "allowed", "held_back"),
    [
        (3, 24, [0, 0, 0, 0, 0], [True, True, True, False, False], 2),
        (3, 24, [0, 0, 0, 0, 3600], [True, True, True, False, True], 0),  # one token an hour refills one
        (1, 24, [0, 1800, 3600], [True, False, True], 0),
        (2, 0, [0, 0, 86_400, 10 * 86_400], [True, True, False, False], 2),
    ],
)
def test_events_are_rate_limited(burst: int, per_day: float, calls_at_s: list[float], allowed: list[bool],
                                 held_back: int) -> None:
    clock = Clock()
    limiter = EventLimiter(burst, per_day, clock)
    outcomes = []
    for at_s in calls_at_s:
        clock.now_s = at_s
        outcome = limiter.allow()
        outcomes.append(outcome)
        if outcome and at_s == calls_at_s[-1]:
            limiter.take_held_back()
    assert outcomes == allowed
    assert limiter.held_back == held_back


# ---------------------------------------------------------------- frozen data

PCC = LivenessSpec(heartbeat="beat", counters=(EnergyCounter("import_kwh", "grid_w", 0.001, 0.1, 1),
                                               EnergyCounter("export_kwh", "grid_w", 0.001, 0.1, -1)))
FROZEN_AFTER_S = 3.0


def _reads(beats: list[int], import_kwh: list[float], grid_w: float, export_kwh: float = 5.0) -> list[dict[str, Any]]:
    return [{"beat": b, "import_kwh": e, "export_kwh": export_kwh, "grid_w": grid_w}
            for b, e in zip(beats, import_kwh, strict=True)]


LIVENESS: list[tuple[str, LivenessSpec | None, list[dict[str, Any]], str | None]] = [
    ("heartbeat advancing", PCC, _reads([1, 2, 3, 4, 5, 6], [10.0] * 6, 100.0), None),
    ("heartbeat stops", PCC, _reads([1, 2, 2, 2, 2, 2], [10.0, 10.1, 10.1, 10.1, 10.1, 10.1], 100.0), "heartbeat"),
    ("heartbeat stops for less than the window", PCC,
     _reads([1, 2, 2, 2, 3, 4], [10.0, 10.1, 10.1, 10.1, 10.2, 10.2], 100.0), None),
    ("no heartbeat, import counter stands under 150 kW", LivenessSpec(counters=PCC.counters),
     _reads([0] * 10, [10.0] * 10, 150_000.0), "import_kwh stood still"),
    ("no heartbeat, counter stands at 1 kW (physics allows it)", LivenessSpec(counters=PCC.counters),
     _reads([0] * 10, [10.0] * 10, 1_000.0), None),
    ("no heartbeat, export counter stands while exporting 200 kW", LivenessSpec(counters=PCC.counters),
     _reads([0] * 10, [10.0] * 10, -200_000.0), "export_kwh stood still"),
    ("a device that offers nothing", None, _reads([0] * 6, [10.0] * 6, 150_000.0), None),
]


def test_a_counter_idle_for_long_is_not_frozen_when_the_power_rises() -> None:
    """An import counter idle for an hour (the site exported) must get its chance to tick once import starts."""
    liveness = Liveness(LivenessSpec(counters=PCC.counters))
    reads = [(0.0, -50_000.0, 10.0), (3600.0, -50_000.0, 10.0), (3601.0, 150_000.0, 10.0), (3602.0, 150_000.0, 10.0),
             (3603.0, 150_000.0, 10.1), (3604.0, 150_000.0, 10.1)]
    verdicts = [liveness.check({"import_kwh": kwh, "export_kwh": 5.0 + t / 1000, "grid_w": w}, t, FROZEN_AFTER_S)
                for t, w, kwh in reads]
    assert verdicts == [None] * len(reads)


@pytest.mark.parametrize(("spec", "reads", "frozen"), [c[1:] for c in LIVENESS], ids=[c[0] for c in LIVENESS])
def test_frozen_data_is_told_from_live_data(spec: LivenessSpec | None, reads: list[dict[str, Any]],
                                             frozen: str | None) -> None:
    liveness = Liveness(spec)
    verdicts = [liveness.check(values, float(second), FROZEN_AFTER_S) for second, values in enumerate(reads)]
    if frozen is None:
        assert verdicts == [None] * len(reads)
    else:
        assert verdicts[0] is None and verdicts[-1] is not None and frozen in verdicts[-1], verdicts


def test_frozen_data_recovers_when_the_heartbeat_moves_again() -> None:
    liveness = Liveness(PCC)
    reads = _reads([7, 7, 7, 7, 7, 8], [10.0] * 6, 0.0)
    verdicts = [liveness.check(values, float(second), FROZEN_AFTER_S) for second, values in enumerate(reads)]
    assert verdicts[4] is not None and verdicts[5] is None


# ---------------------------------------------------------------- configuration is never lost


class Device(DeviceSettings):
    pass


class Config(AssetModuleConfig):
    devices: list[Device] = Field(default_factory=list)


GOOD = {"site_id": "s", "poll_interval_s": 1.0, "devices": [{"asset_id": "bess-1", "host": "h"}]}


async def _applied(config: Config) -> None:
    applied.append(config)


applied: list[Config] = []


@pytest.mark.parametrize(
    ("stored", "desired", "fallback", "devices"),
    [
        (None, {**GOOD, "poll_interval_s": 0}, "defaults", []),
        (GOOD, {**GOOD, "poll_interval_s": 0}, "the last applied configuration (v3)", ["bess-1"]),
        (GOOD, {"site_id": "s"}, "the last applied configuration (v3)", ["bess-1"]),  # devices deleted by null
        ({"site_id": "s", "devices": [{"asset_id": "x"}]}, {"poll_interval_s": 0}, "defaults", []),  # stored invalid
        (GOOD, GOOD, None, ["bess-1"]),
    ],
    ids=["rejected, nothing stored", "rejected, stored", "devices missing, stored", "stored no longer valid",
         "valid"],
)
async def test_a_module_starts_from_its_last_applied_configuration(
        tmp_path: Path, stored: dict[str, Any] | None, desired: dict[str, Any], fallback: str | None,
        devices: list[str]) -> None:
    store = tmp_path / "module-config.json"
    if stored is not None:
        store.write_text(json.dumps({"version": 3, "desired": stored}))
    applied.clear()
    config = TwinConfig(Config, _applied, store=store)
    outcome = await config.initial({**desired, "$version": 9})
    assert (outcome.status == "applied") == (fallback is None)
    assert [d.asset_id for d in config.current.devices] == devices
    assert [d.asset_id for d in applied[-1].devices] == devices  # what the module runs on
    if fallback is None:
        assert json.loads(store.read_text()) == {"version": 9, "desired": GOOD}  # kept for the next start
    else:
        assert outcome.fallback is not None and outcome.fallback.startswith(fallback)
        assert config.reported(outcome)["config"]["fallback"] == outcome.fallback


@pytest.mark.parametrize(
    ("patch", "status", "field"),
    [
        ({"devices": None}, "rejected", "devices is required"),
        ({"devices": []}, "applied", None),  # dropping every device is allowed when said explicitly
        ({"poll_interval_s": 2.0}, "applied", None),
        ({"site_id": _nested(30)}, "rejected", "nested deeper"),
    ],
)
async def test_dropping_every_device_must_be_explicit(patch: dict[str, Any], status: str, field: str | None) -> None:
    config = TwinConfig(Config, _applied)
    assert (await config.initial(GOOD)).status == "applied"
    outcome = await config.patch(patch)
    assert outcome.status == status, outcome.errors
    if field is not None:
        assert any(field in e["message"] for e in outcome.errors), outcome.errors
        assert [d.asset_id for d in config.current.devices] == ["bess-1"]  # still in force
