"""The fault matrix: every way a device can fail, injected through the simulator's fault API on a live site, with
the outcome each must have. The quiet ways matter most: a meter that freezes or answers exception replies once
fed the controller its last good values under fresh timestamps, and the battery was charged into a peak."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.reliability.conftest import LIMIT_KW, alive, record, upstream_events, wait_for, wait_status
from tests.support import Site

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Fault:
    asset_id: str
    fault: str
    reported_fault: str  # how the module's telemetry names it (the start of `fault`)
    fail_safe: bool  # the controller holds the batteries
    code: int | None = None
    hold_s: float = 0.0  # how long the fault lasts at least


MATRIX: dict[str, Fault] = {
    "meter frozen": Fault("mgc-1", "frozen", "frozen data", fail_safe=True),
    "meter answers exception 4": Fault("mgc-1", "exception", "modbus exception", fail_safe=True, code=4),
    "meter answers exception 6 (busy)": Fault("mgc-1", "exception", "modbus exception", fail_safe=True, code=6),
    "meter offline": Fault("mgc-1", "offline", "unreachable", fail_safe=True),
    "meter silent (timeouts)": Fault("mgc-1", "silent", "unreachable", fail_safe=True),
    "battery answers exception 4": Fault("bess-1", "exception", "modbus exception", fail_safe=False, code=4),
    "battery offline": Fault("bess-1", "offline", "unreachable", fail_safe=False),
    # long enough for the old reconnect backoff (1, 2, 4, 8 s …) to leave it offline 8 s after it came back
    "battery offline for 15 s": Fault("bess-1", "offline", "unreachable", fail_safe=False, hold_s=15),
    # its lifetime energy counter stands still while its power says it discharges (SunSpec 103 WH against W)
    "battery frozen while discharging": Fault("bess-1", "frozen", "frozen data", fail_safe=False),
}


def _load_step(site: Site, above_limit_kw: float) -> None:
    base = site.sim.state()["site"]["base_load_kw"]
    site.sim.post("/load", {"offset_kw": LIMIT_KW + above_limit_kw - base})


@pytest.mark.parametrize("case", list(MATRIX))
def test_fault_is_reported_and_the_controller_is_not_misled(site: Site, case: str) -> None:
    fault = MATRIX[case]
    assert site.probe is not None
    _load_step(site, 40)  # the battery is discharging against a peak when the fault comes
    wait_status(site, lambda s: s.get("mode") == "peak_shaving", "peak shaving before the fault")
    injected_s, injected_epoch = time.monotonic(), time.time()
    fail_safe_s: float | None = None
    site.sim.post("/faults", {"asset_id": fault.asset_id, "fault": fault.fault,
                              **({"code": fault.code} if fault.code else {})})
    try:
        # the module reports the device offline with its fault: never the last good values under a fresh stamp
        reported = site.probe.wait_for(
            lambda p: (m := p.latest[fault.asset_id]) and not m["online"]
            and (m["fault"] or "").startswith(fault.reported_fault) and m, 20, f"{case} reported")
        assert reported["power_kw"] == 0.0 and reported["fault_code"] is not None
        if fault.fail_safe:
            # a load step while the meter lies: the batteries hold, they never charge into the peak
            _load_step(site, 150)
            # (a silent meter may first read as stale data: its poll takes the request timeout to fail)
            kind = fault.reported_fault.split(" ")[0]
            wait_status(site, lambda s: s.get("mode") == "fail_safe", "the fail-safe", 20)
            fail_safe_s = time.monotonic() - injected_s
            status = wait_status(site, lambda s: s.get("mode") == "fail_safe" and kind in s["reason"],
                                 f"the fail-safe ({kind})", 20)
            assert status["battery_setpoints_kw"] == {"bess-1": 0.0}
            wait_for(lambda: abs(site.sim.state()["devices"]["bess-1"]["power_kw"]) < 0.5, "the battery holding", 20)
            wait_for(lambda: [e for e in upstream_events(site, injected_epoch)
                              if e["code"] == "fail_safe_entered" and kind in e["text"]], "fail_safe_entered upstream",
                     20)
        else:
            # the controller runs on, the faulted battery takes no share of the peak
            wait_status(site, lambda s: s.get("mode") not in (None, "fail_safe")
                        and s["battery_setpoints_kw"].get(fault.asset_id, 0.0) == 0.0, "control without it")
            offline = wait_for(lambda: [e for e in upstream_events(site, injected_epoch)
                                        if e["code"] == "device_offline" and e["asset_id"] == fault.asset_id],
                               "device_offline upstream", 20)
            assert fault.reported_fault.split(" ")[0] in offline[0]["text"]
        time.sleep(max(0.0, fault.hold_s - (time.monotonic() - injected_s)))
    finally:
        cleared_s = time.monotonic()
        site.sim.post("/faults", {"asset_id": fault.asset_id, "fault": "none"})
        _load_step(site, 40)
    # back on its own: online within two poll intervals (1 s) plus 1 s, control resumed, recovery said upstream
    back = site.probe.wait_for(lambda p: p.latest[fault.asset_id]["online"] and p.latest[fault.asset_id], 20,
                               f"{fault.asset_id} back online")
    assert back["fault"] is None
    recovered_s = time.monotonic() - cleared_s
    assert recovered_s < 1.0 + 2.0 + 1.0, f"{fault.asset_id} took {recovered_s:.1f} s to come back"
    wait_status(site, lambda s: s.get("mode") == "peak_shaving", "control resumed", 20)
    record("fault", case=case, fail_safe_s=None if fail_safe_s is None else round(fail_safe_s, 2),
           online_again_s=round(recovered_s, 2), control_resumed_s=round(time.monotonic() - cleared_s, 2))
    if fault.fail_safe:
        wait_for(lambda: [e for e in upstream_events(site, injected_epoch) if e["code"] == "fail_safe_left"],
                 f"fail_safe_left upstream (events: {upstream_events(site, injected_epoch)})", 20)
    assert alive(site, *site.modules)
