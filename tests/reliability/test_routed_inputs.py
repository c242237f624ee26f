"""Messages that reach the controller by route: none may crash it or steer the batteries. The test plays the site
meter (a real device-SDK client with the meter module's identity) and sends, between good readings, each reading
that once stopped or misled the controller, then generated ones (Hypothesis)."""

from __future__ import annotations

import datetime as dt
import json
import math
import urllib.request
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.conftest import FUZZ_EXAMPLES, ForgedMeter, alive, record, wait_for, wait_status
from tests.support import Site

pytestmark = pytest.mark.integration


def _stamp(offset_s: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


# (case, what is sent, the kind the controller counts it as)
BAD_READINGS: list[tuple[str, Any, str]] = [
    ("NaN import", lambda m: m.reading(grid_import_kw=math.nan, power_kw=math.nan), "invalid"),
    ("+Inf import", lambda m: m.reading(grid_import_kw=math.inf), "invalid"),
    ("-Inf power", lambda m: m.reading(power_kw=-math.inf), "invalid"),
    ("import as a string", lambda m: m.reading(grid_import_kw="184"), "invalid"),
    ("import missing", lambda m: {k: v for k, v in m.reading().items() if k != "grid_import_kw"}, "invalid"),
    ("online as a string", lambda m: m.reading(online="false"), "invalid"),
    ("an hour old", lambda m: m.reading(timestamp=_stamp(-3600), grid_import_kw=400.0), "stale"),
    ("forged 400 kW in the future", lambda m: m.reading(timestamp=_stamp(600), grid_import_kw=400.0, power_kw=400.0),
     "future"),
    ("another site", lambda m: m.reading(site_id="site-2", grid_import_kw=400.0), "other_site"),
    ("an unknown battery", lambda m: {**m.reading(), "asset_type": "battery", "asset_id": "bess-phantom"},
     "invalid"),  # battery fields missing: the contract refuses it before the asset check
    ("not JSON", lambda m: b"\xff\xfe not json", None),
    ("JSON nested 3,000 deep", lambda m: _deep(3000), None),
]


def _refused(site: Site) -> dict[str, int]:
    code, payload = site.call("controller", "get_status", {})
    assert code == 200, payload
    return dict(payload["status"].get("inputs_refused", {}))


@pytest.mark.parametrize(("make", "kind"), [c[1:] for c in BAD_READINGS], ids=[c[0] for c in BAD_READINGS])
def test_a_bad_reading_is_refused_and_control_goes_on(forged_site: tuple[Site, ForgedMeter], make: Any,
                                                      kind: str | None) -> None:
    site, meter = forged_site
    meter.grid_import_kw = 120.0
    wait_status(site, lambda s: s.get("grid_import_kw") == 120.0 and s.get("mode") != "fail_safe", "good readings")
    before = _refused(site)
    peak_before = wait_status(site, lambda s: True, "status")["month_peak_kw"]
    for _ in range(10):  # ten at a time kept the controller down for 95 s
        body = make(meter)
        meter.send(body if isinstance(body, (bytes, str)) else json.dumps(body, allow_nan=True))
    if kind is not None:
        wait_for(lambda: _refused(site).get(kind, 0) >= before.get(kind, 0) + 10, f"10 refused as {kind}", 15)
    status = wait_status(site, lambda s: s.get("grid_import_kw") == 120.0, "the good reading still believed")
    assert status["mode"] != "fail_safe" and status["month_peak_kw"] == peak_before
    assert set(status["battery_setpoints_kw"]) == {"bess-1"}  # no phantom took a share
    assert alive(site, "controller", "battery", "telemetry")


def test_a_phantom_asset_reaches_neither_the_controller_nor_the_exporter(
        forged_site: tuple[Site, ForgedMeter]) -> None:
    """A phantom battery took 99.9 % of the setpoint for 29 s and held /healthz at 503."""
    site, meter = forged_site
    phantom = {"schema_version": "1.0", "message_type": "telemetry", "asset_type": "battery", "site_id": "site-1",
               "asset_id": "bess-phantom", "timestamp": _stamp(0), "power_kw": 0.0, "setpoint_kw": 0.0,
               "online": True, "status": "idle", "fault_code": None, "fault": None, "soc_pct": 90.0,
               "soh_pct": 100.0, "energy_kwh": 900.0, "capacity_kwh": 1000.0, "max_charge_kw": 1000.0,
               "max_discharge_kw": 1000.0}
    before = _refused(site).get("wrong_source", 0)
    meter.send(phantom)  # from the meter's module: the wrong source for a battery
    wait_for(lambda: _refused(site).get("wrong_source", 0) > before, "refused as from the wrong module", 15)
    status = wait_status(site, lambda s: True, "status")
    assert "bess-phantom" not in status["battery_setpoints_kw"]
    url = f"http://{site.host}:19601/healthz"
    with urllib.request.urlopen(url, timeout=5) as response:  # nothing stale: the phantom was never taken
        assert response.status == 200
    with urllib.request.urlopen(f"http://{site.host}:19601/metrics", timeout=5) as response:
        assert b"bess-phantom" not in response.read()


# ---------------------------------------------------------------- generated messages

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
READING_KEYS = ["schema_version", "message_type", "asset_type", "site_id", "asset_id", "timestamp", "power_kw",
                "setpoint_kw", "online", "status", "fault_code", "fault", "grid_import_kw", "site_load_kw",
                "frequency_hz", "voltage_v", "peak_shaving_active", "der_active", "import_limit_kw", "extra"]


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations=st.dictionaries(st.sampled_from(READING_KEYS), json_values, min_size=1, max_size=3),
       drop=st.sets(st.sampled_from(READING_KEYS), max_size=2), raw=st.one_of(st.none(), json_values))
def test_generated_readings_never_crash_or_steer_the_controller(forged_site: tuple[Site, ForgedMeter],
                                                                mutations: dict[str, Any], drop: set[str],
                                                                raw: Any) -> None:
    site, meter = forged_site
    if raw is not None:
        meter.send(json.dumps(raw, allow_nan=True))
    reading = {k: v for k, v in {**meter.reading(), **mutations}.items() if k not in drop}
    meter.send(json.dumps(reading, allow_nan=True))
    record("generated", target="routed reading", inputs=1 + (raw is not None))
    assert alive(site, "controller", "battery", "telemetry")


def test_after_the_generated_readings_the_controller_still_believes_only_good_ones(
        forged_site: tuple[Site, ForgedMeter]) -> None:
    site, meter = forged_site
    meter.grid_import_kw = 135.5
    status = wait_status(site, lambda s: s.get("grid_import_kw") == 135.5 and s.get("mode") != "fail_safe",
                         "control on good readings after the fuzzing")
    assert set(status["battery_setpoints_kw"]) == {"bess-1"}
    assert all(math.isfinite(v) for v in status["battery_setpoints_kw"].values())
    assert alive(site, "controller", "battery", "telemetry")
