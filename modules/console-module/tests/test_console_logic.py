"""The console's pure parts as tables of cases: billing quarters and peaks, events from telemetry, bounded
storage, sign-in lock-out, and the validation of operator actions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from console_module.auth import Credentials, Sessions
from console_module.config import ConsoleConfig
from console_module.state import QUARTER_S, QuarterTracker, SiteView, peaks_of
from console_module.store import ConsoleStore, Quarter
from console_module.web import ACTIONS, FieldError, SignIn, validate
from energy_edge_base.credentials import hash_password, set_password, verify_password

DAY = dt.datetime(2026, 6, 10, tzinfo=dt.timezone.utc).timestamp()


@pytest.fixture()
def store(tmp_path: Path) -> ConsoleStore:
    return ConsoleStore(tmp_path / "console.db", history_s=3600, events_kept=100)


# ---------------------------------------------------------------- quarters and peaks


@pytest.mark.parametrize(
    ("readings", "completed"),
    [
        # (seconds into the day, kW) -> the quarters that completed, as (start offset, avg, max)
        ([(0, 100), (300, 110), (899, 120)], []),
        ([(0, 100), (300, 110), (600, 120), (900, 50)], [(0, 110.0, 120.0)]),
        ([(0, 100), (900, 200), (1800, 10)], [(0, 100.0, 100.0), (900, 200.0, 200.0)]),
        ([(0, 100), (2700, 80)], [(0, 100.0, 100.0)]),  # a gap: the quarter with readings is billed, none invented
    ],
)
def test_quarter_tracker(readings: list[tuple[float, float]], completed: list[tuple[float, float, float]]) -> None:
    tracker = QuarterTracker()
    done = [q for t, kw in readings if (q := tracker.add(DAY + t, kw, 150.0)) is not None]
    assert [(q.start - DAY, q.avg_kw, q.max_kw) for q in done] == completed


def q(index: int, avg_kw: float, limit_kw: float | None = 150.0, day: int = 0) -> Quarter:
    return Quarter(DAY + day * 86_400 + index * QUARTER_S, avg_kw, avg_kw + 5, limit_kw)


@pytest.mark.parametrize(
    ("quarters", "today_kw", "month_kw", "near", "exceeded", "closest_margin_kw"),
    [
        ([], None, None, 0, [], None),
        ([q(0, 100), q(1, 140), q(2, 120)], 140, 140, 1, [], 10),
        ([q(0, 100), q(1, 160), q(2, 151)], 160, 160, 2, [10, 1], -10),
        ([q(0, 170, day=-3), q(1, 100)], 100, 170, 0, [], 50),  # a higher peak earlier this month
        ([q(0, 160, limit_kw=None)], 160, 160, 0, [], None),  # without a limit nothing is near or over
    ],
)
def test_peaks(quarters: list[Quarter], today_kw: float | None, month_kw: float | None, near: int,
               exceeded: list[float], closest_margin_kw: float | None) -> None:
    month_start = DAY - 9 * 86_400
    peaks = peaks_of(quarters, None, DAY, month_start, near_pct=90)
    assert (peaks["today"] or {}).get("kw") == today_kw
    assert (peaks["month"] or {}).get("kw") == month_kw
    assert peaks["near_count"] == near
    assert [e["over_kw"] for e in peaks["exceeded"]] == exceeded
    assert (peaks["closest"] or {}).get("margin_kw") == closest_margin_kw


# ---------------------------------------------------------------- events from telemetry


def battery(**fields: Any) -> dict[str, Any]:
    return {"message_type": "telemetry", "asset_type": "battery", "asset_id": "bess-1", "online": True,
            "fault": None, "power_kw": 0.0, "setpoint_kw": 0.0, "soc_pct": 50.0, **fields}


@pytest.mark.parametrize(
    ("before", "after", "events"),
    [
        (battery(), battery(power_kw=1), []),
        (battery(), battery(online=False, fault="unreachable: refused"),
         [("fault", "bess-1 offline: unreachable: refused")]),
        (battery(online=False, fault="retry 1"), battery(online=False, fault="retry 2"), []),
        (battery(online=False, fault="x"), battery(), [("fault", "bess-1 back online")]),
        (battery(), battery(fault="over temperature"), [("fault", "bess-1 fault: over temperature")]),
        (battery(), battery(setpoint_kw=2.0), []),  # trimming, not worth a line
        (battery(), battery(setpoint_kw=40.0, power_kw=39.5),
         [("command", "bess-1 setpoint 40.0 kW acknowledged (reads 39.5 kW)")]),
        ({"message_type": "capabilityStatus", "capability": "DER", "state": "OFF", "source": "mgc-1"},
         {"message_type": "capabilityStatus", "capability": "DER", "state": "ON", "source": "mgc-1", "conflict": True,
          "reason": "both"}, [("capability", "DER ON (source mgc-1: both) — CONFLICT between sources")]),
    ],
)
def test_events_from_messages(store: ConsoleStore, before: dict[str, Any], after: dict[str, Any],
                              events: list[tuple[str, str]]) -> None:
    view = SiteView(ConsoleConfig(), store)
    now = dt.datetime.fromtimestamp(DAY, dt.timezone.utc)
    view.take(before, DAY, now)
    first = store.counts()["events"]
    assert view.take(after, DAY + 1, now)
    new = store.events(limit=100)[: store.counts()["events"] - first]
    assert [(e["kind"], e["text"]) for e in reversed(new)] == events


@pytest.mark.parametrize(
    ("code", "kind"),
    [("module_started", "restart"), ("config_rejected", "twin"), ("device_command_refused", "fault"),
     ("something_new", "event"), ("device_offline", None)],  # offline: the console's own line from the readings
)
def test_module_events(store: ConsoleStore, code: str, kind: str | None) -> None:
    view = SiteView(ConsoleConfig(), store)
    view.take({"message_type": "event", "code": code, "severity": "warning", "text": "t", "asset_id": None},
              DAY, dt.datetime.now(dt.timezone.utc))
    assert [(e["kind"], e["text"]) for e in store.events()] == ([(kind, f"{code}: t")] if kind else [])


@pytest.mark.parametrize("body", [None, [], {"message_type": "telemetry"}, {"message_type": "weather"}, "x"])
def test_unreadable_messages_are_refused(store: ConsoleStore, body: Any) -> None:
    assert not SiteView(ConsoleConfig(), store).take(body, DAY, dt.datetime.now(dt.timezone.utc))


def test_module_restarts_and_rejected_twins_are_events(store: ConsoleStore) -> None:
    view = SiteView(ConsoleConfig(), store)
    ok = {"started": "t0", "config": {"status": "applied", "desired_version": 2}}
    view.set_module("battery", ok, None, DAY)
    view.set_module("battery", {"started": "t1", "config": {"status": "rejected", "desired_version": 3,
                                                            "errors": [{"field": "poll_interval_s"}]}}, None, DAY)
    view.set_module("battery", None, "504: no answer", DAY)
    texts = [e["text"] for e in reversed(store.events(kind=None))]
    assert texts == ["module battery restarted (started t1)",
                     "module battery rejected desired v3: [{'field': 'poll_interval_s'}]",
                     "module battery not answering: 504: no answer"]
    assert store.events(kind="twin", severity="warning")[0]["text"].startswith("module battery rejected")


# ---------------------------------------------------------------- bounded storage


def test_storage_is_bounded(tmp_path: Path) -> None:
    store = ConsoleStore(tmp_path / "c.db", history_s=600, events_kept=100)
    for i in range(200):
        store.add_sample({"t": DAY + 10 * i, "import_kw": float(i)})
        store.add_event({"t": DAY + i, "kind": "fault", "severity": "info", "text": f"e{i}"})
        store.add_quarter(Quarter(DAY + i * 86_400, 1.0, 1.0, None))
    counts = store.counts()
    assert counts["samples"] == 61 and counts["events"] == 100 and counts["quarters"] == 41
    assert store.events(limit=1)[0]["text"] == "e199"
    assert store.events(text="e1%") == []  # a % in the filter is a character, not a wildcard
    assert [e["text"] for e in store.events(text="e19", limit=3)] == ["e199", "e198", "e197"]
    store.close()
    again = ConsoleStore(tmp_path / "c.db", history_s=600, events_kept=100)  # survives a restart
    assert again.counts() == counts


# ---------------------------------------------------------------- sign-in


def test_password_hashes(tmp_path: Path) -> None:
    encoded = hash_password("secret words", iterations=1000)
    assert verify_password("secret words", encoded) and not verify_password("secret word", encoded)
    assert not verify_password("x", "garbage") and not verify_password("x", "md5$1$a$b")
    path = tmp_path / "creds.json"
    set_password(path, "technician", "one two three")
    set_password(path, "auditor", "four five six")
    assert Credentials(path).check("technician", "one two three")
    assert not Credentials(path).check("nobody", "one two three")
    assert path.stat().st_mode & 0o077 == 0  # the owner's only


@pytest.mark.parametrize(
    ("failures", "from_addresses", "user_locked", "address_locked"),
    [
        (4, 1, False, False),
        (5, 1, True, False),
        (5, 5, True, False),  # one name tried from many places
        (20, 20, True, False),
    ],
)
def test_lockout(failures: int, from_addresses: int, user_locked: bool, address_locked: bool) -> None:
    sessions = Sessions()
    for i in range(failures):
        sessions.failed("technician", f"10.0.0.{i % from_addresses}", 1000.0 + i, max_failures=5, lockout_s=300)
    now = 1000.0 + failures
    assert bool(sessions.locked_until(["user:technician"], now)) is user_locked
    assert bool(sessions.locked_until(["addr:10.0.0.0"], now)) is address_locked
    assert not sessions.locked_until(["user:technician"], now + 301)


def test_one_address_trying_many_names_is_locked() -> None:
    sessions = Sessions()
    for i in range(20):
        sessions.failed(f"user{i}", "10.0.0.9", 1000.0 + i, max_failures=5, lockout_s=300)
    assert sessions.locked_until(["addr:10.0.0.9"], 1020.0)


# ---------------------------------------------------------------- operator action validation


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("import-limit", {"import_limit_kw": 140}, None),
        ("import-limit", {"import_limit_kw": "140"}, None),  # a numeric string, as pydantic's lax mode takes it
        ("import-limit", {"import_limit_kw": "lots"}, "import_limit_kw"),
        ("import-limit", {"import_limit_kw": -1}, "import_limit_kw"),
        ("import-limit", {"import_limit_kw": float("inf")}, "import_limit_kw"),
        ("import-limit", {"import_limit_kw": 1, "extra": 2}, "extra"),
        ("import-limit", [1], "(body)"),
        ("peak-shaving", {"enabled": True}, None),
        ("peak-shaving", {"enabled": "maybe"}, "enabled"),
        ("dispatch", {"power_kw": -40, "duration_s": 600}, None),
        ("dispatch", {"power_kw": -40, "duration_s": 0}, "duration_s"),
        ("dispatch", {"power_kw": -40}, "duration_s"),
        ("dispatch", {"power_kw": 2e6, "duration_s": 10}, "power_kw"),
    ],
)
def test_action_validation(action: str, body: Any, field: str | None) -> None:
    spec = ACTIONS[action]
    if field is None:
        payload = spec.payload(validate(spec.model, body), ConsoleConfig(site_id="site-9"))
        assert payload and (action != "dispatch" or payload["site_id"] == "site-9")
    else:
        with pytest.raises(FieldError) as caught:
            validate(spec.model, body)
        assert caught.value.status == 400 and caught.value.field == field


def test_sign_in_body_is_validated() -> None:
    with pytest.raises(FieldError) as caught:
        validate(SignIn, {"user": "technician"})
    assert caught.value.field == "password"
