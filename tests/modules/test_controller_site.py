"""The controller on the real stack: simulator, emulator, the four asset modules and the controller.

The tests run in file order on one site (its state carries over): a load step, a site dispatch,
PV surplus and curtailment, capability reports upstream, and a meter that goes away.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from energy_edge.hub.store import query_upstream
from tests.support import Site, wait_status

pytestmark = pytest.mark.integration

LIMIT_KW = 150.0
CONTROLLER = {
    "import_limit_kw": LIMIT_KW, "limit_margin_kw": 3, "reserve_soc_pct": 60, "recharge_kw": 10,
    "max_export_kw": 20, "meter_stale_s": 3, "capability_refresh_s": 10, "summary_interval_s": 5,
    "command_refresh_s": 5,
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = Site(tmp_path_factory.mktemp("controller-site"),
                ("solar", "battery", "boiler", "microgrid-controller", "controller"),
                desired={"controller": CONTROLLER}).start()
    try:
        assert site.probe is not None
        site.probe.wait_for(lambda p: len(p.latest) == 4 and all(m["online"] for m in p.latest.values()), 60,
                            "every asset online")
        status = wait_status(site, lambda s: s.get("mode") not in (None, "fail_safe"), "controller running")
        assert status["limit_kw"] == LIMIT_KW
        yield site
    finally:
        site.stop()


def wait_sim(site: Site, predicate: Any, what: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = site.sim.state()
        if predicate(state):
            return state
        time.sleep(0.1)
    raise AssertionError(f"simulator never showed {what}: {site_report(site, state)}")


def site_report(site: Site, state: dict[str, Any]) -> str:
    """The simulator's site and devices, the controller's status and the logs behind them, for a failure."""
    status = site.call("controller", "get_status", {})[1]
    devices = state.get("devices", {})
    return (f"site={state.get('site')}, battery={devices.get('bess-1')}, pv={devices.get('pv-1')}, "
            f"controller={status}\ncontroller log:\n{site.modules['controller'].output()[-2500:]}"
            f"\nbattery log:\n{site.modules['battery'].output()[-1500:]}")


def test_load_step_above_the_limit_is_held_under_it(site: Site) -> None:
    base = site.sim.state()["site"]["base_load_kw"]
    site.sim.post("/load", {"offset_kw": LIMIT_KW + 30 - base})  # load now 30 kW above the limit
    try:
        stepped = time.monotonic()
        state = wait_sim(site, lambda s: s["site"]["grid_import_kw"] <= LIMIT_KW and
                         s["devices"]["bess-1"]["power_kw"] > 25, "import back under the limit", timeout_s=15)
        reaction_s = time.monotonic() - stepped
        assert reaction_s < 10, f"took {reaction_s:.1f} s (asset poll 1 s + controller cycle 1 s + methods)"
        assert state["site"]["load_kw"] > LIMIT_KW
        status = wait_status(site, lambda s: s["mode"] == "peak_shaving", "peak shaving mode")
        assert status["margin_kw"] is not None
        # it stays under while the step lasts
        for _ in range(10):
            state = site.sim.state()
            if state["site"]["grid_import_kw"] > LIMIT_KW + 2:
                raise AssertionError(f"import rose above the limit during the step: {site_report(site, state)}")
            time.sleep(0.3)
    finally:
        site.sim.post("/load", {"offset_kw": 0})


def test_site_dispatch_is_split_and_applied(site: Site) -> None:
    status, got = site.call("controller", "dispatch", {"site_id": "site-1", "power_kw": -40, "duration_s": 20})
    assert status == 200, got
    assert got["split"] == {"bess-1": pytest.approx(-40, abs=0.1)}
    assert got["limited"] is False
    wait_sim(site, lambda s: abs(s["devices"]["bess-1"]["command_kw"] + 40) < 1, "battery charging at 40 kW")
    assert wait_status(site, lambda s: s["mode"] == "dispatch", "dispatch mode")["battery_kw"] == pytest.approx(
        -40, abs=1)


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"power_kw": 10, "duration_s": 10}, 400),  # no target
        ({"site_id": "site-1", "power_kw": 10, "duration_s": 0}, 400),
        ({"site_id": "elsewhere", "power_kw": 10, "duration_s": 10}, 404),
        ({"asset_id": "bess-9", "power_kw": 10, "duration_s": 10}, 404),
    ],
)
def test_bad_dispatch_requests(site: Site, payload: dict[str, Any], status: int) -> None:
    assert site.call("controller", "dispatch", payload)[0] == status


def test_pv_surplus_is_absorbed_then_curtailed_at_the_export_limit(site: Site) -> None:
    site.call("controller", "dispatch", {"site_id": "site-1", "power_kw": 0, "duration_s": 0.1})
    site.sim.post("/time", {"advance_s": 6 * 3600})  # to noon: PV near its peak
    pv = site.sim.state()["site"]["pv_kw"]
    assert pv > 100
    base = site.sim.state()["site"]["base_load_kw"]
    site.sim.post("/load", {"offset_kw": 10 - base})  # almost no load: a large surplus
    try:
        # first the battery (unless the six hours just skipped left it full) and the boiler absorb it
        wait_sim(
            site,
            lambda s: (s["devices"]["bess-1"]["power_kw"] < -20 or s["devices"]["bess-1"]["soc_pct"] >= 90)
            and s["devices"]["boiler-1"]["heater_kw"] > 1
            and -s["site"]["grid_import_kw"] <= CONTROLLER["max_export_kw"] + 5,
            "surplus absorbed by battery and boiler", timeout_s=45,
        )
        # with the battery held at 0 by an operator, the surplus exceeds what the boiler takes: PV is curtailed
        status, got = site.call("controller", "dispatch", {"asset_id": "bess-1", "power_kw": 0, "duration_s": 60})
        assert status == 200, got
        state = wait_sim(
            site,
            lambda s: abs(s["devices"]["bess-1"]["power_kw"]) < 1 and s["devices"]["pv-1"]["wmaxlim_ena"]
            and -s["site"]["grid_import_kw"] <= CONTROLLER["max_export_kw"] + 5,
            "PV curtailed to the export limit", timeout_s=45,
        )
        assert state["devices"]["pv-1"]["wmaxlim_pct"] < 100
        assert state["devices"]["pv-1"]["power_kw"] < state["devices"]["pv-1"]["available_kw"] - 5
    finally:
        site.sim.post("/load", {"offset_kw": 0})
        site.call("controller", "dispatch", {"asset_id": "bess-1", "power_kw": 0, "duration_s": 0.1})


def test_capability_status_reaches_the_upstream_store(site: Site) -> None:
    db = Path(site.hub.data_dir) / "hub.db"
    deadline = time.monotonic() + 30
    seen: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(seen) < 2:
        for record in query_upstream(db, module_id="controller", message_type="capabilityStatus"):
            body = record.body_json()
            seen[body["capability"]] = body
        time.sleep(0.2)
    assert set(seen) == {"PEAK_SHAVING", "DER"}
    assert seen["PEAK_SHAVING"]["state"] in ("ON", "OFF")
    assert seen["PEAK_SHAVING"]["source"]
    while time.monotonic() < deadline and not query_upstream(db, module_id="controller", message_type="siteSummary"):
        time.sleep(0.2)
    summaries = query_upstream(db, module_id="controller", message_type="siteSummary")
    assert summaries, "no site summary upstream"
    assert summaries[-1].body_json()["import_limit_kw"] == LIMIT_KW


def test_lost_meter_puts_the_batteries_on_hold(site: Site) -> None:
    site.call("controller", "dispatch", {"site_id": "site-1", "power_kw": 30, "duration_s": 60})
    wait_sim(site, lambda s: s["devices"]["bess-1"]["command_kw"] > 25, "battery discharging")
    site.sim.post("/faults", {"asset_id": "mgc-1", "fault": "offline"})
    try:
        status = wait_status(site, lambda s: s["mode"] == "fail_safe", "fail-safe", timeout_s=30)
        assert "meter" in status["reason"]
        wait_sim(site, lambda s: s["devices"]["bess-1"]["command_kw"] == 0, "battery on hold", timeout_s=15)
        db = Path(site.hub.data_dir) / "hub.db"
        deadline = time.monotonic() + 15
        while True:
            latest = [r.body_json() for r in query_upstream(db, module_id="controller",
                                                            message_type="capabilityStatus")]
            peak = [b for b in latest if b["capability"] == "PEAK_SHAVING"]
            if peak and peak[-1]["state"] == "OFF" and "fail-safe" in peak[-1]["reason"]:
                break
            assert time.monotonic() < deadline, peak[-1:]
            time.sleep(0.2)
    finally:
        site.sim.post("/faults", {"asset_id": "mgc-1", "fault": "none"})
        site.call("controller", "dispatch", {"site_id": "site-1", "power_kw": 0, "duration_s": 0.1})
    wait_status(site, lambda s: s["mode"] != "fail_safe", "recovery from fail-safe", timeout_s=60)
