"""The site as the console sees it: the latest message per asset, the controller's status, capabilities,
module twin status, billing quarters, chart points and events. Pure logic on messages and times (no I/O
besides the store), so the page's numbers are tested as tables of cases."""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field
from typing import Any

from console_module.config import ConsoleConfig
from console_module.store import ConsoleStore, Quarter

QUARTER_S = 900
# a setpoint change smaller than this is the controller trimming, not a command worth an event line
COMMAND_EVENT_KW = 5.0
RECENT_EVENTS = 30
# a module's event code -> the console's kind of event
EVENT_KINDS = {"module_started": "restart", "config_rejected": "twin", "device_command_refused": "fault",
               "device_commands_recovered": "fault", "device_released_unsafe": "fault",
               "fail_safe_entered": "mode", "fail_safe_left": "mode"}
# the console sees these in every reading (and the modules' events are rate-limited for the upstream budget):
# one line each, from the readings
DERIVED_EVENT_CODES = {"device_offline", "device_recovered"}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _iso(t: float, tz: dt.tzinfo | None = None) -> str:
    """Site-time instants in the site's own offset (billing days and quarters are local); others in UTC."""
    text = dt.datetime.fromtimestamp(t, tz or dt.timezone.utc).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


@dataclass
class AssetEntry:
    body: dict[str, Any]
    received_s: float  # wall clock, when the console got it


@dataclass
class QuarterTracker:
    """The running billing quarter (site time): mean and max of the meter's readings in it."""

    start: float | None = None
    total_kw: float = 0.0
    count: int = 0
    max_kw: float = -math.inf
    limit_kw: float | None = None

    def add(self, site_s: float, import_kw: float, limit_kw: float | None) -> Quarter | None:
        """Add a reading; returns the quarter it completed, if it started a new one."""
        start = site_s - site_s % QUARTER_S
        done = None
        if self.start is not None and start != self.start and self.count:
            done = Quarter(self.start, round(self.total_kw / self.count, 3), round(self.max_kw, 3), self.limit_kw)
        if self.start != start:
            self.start, self.total_kw, self.count, self.max_kw = start, 0.0, 0, -math.inf
        self.total_kw += import_kw
        self.count += 1
        self.max_kw = max(self.max_kw, import_kw)
        if limit_kw is not None:
            self.limit_kw = limit_kw
        return done

    @property
    def avg_kw(self) -> float | None:
        return round(self.total_kw / self.count, 3) if self.count else None


@dataclass
class ChartBucket:
    start: float | None = None
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, values: dict[str, float | None]) -> None:
        for key, value in values.items():
            if value is not None:
                self.sums[key] = self.sums.get(key, 0.0) + value
                self.counts[key] = self.counts.get(key, 0) + 1

    def point(self) -> dict[str, float | None]:
        assert self.start is not None
        point: dict[str, float | None] = {"t": self.start}
        for key in ("import_kw", "limit_kw", "pv_kw", "battery_kw", "soc_pct"):
            n = self.counts.get(key, 0)
            point[key] = round(self.sums[key] / n, 3) if n else None
        return point


def peaks_of(quarters: list[Quarter], running: Quarter | None, day_start: float, month_start: float,
             near_pct: float, tz: dt.tzinfo | None = None) -> dict[str, Any]:
    """Today's and this month's peak (completed billing quarters), how often and how close the limit came,
    and the quarters that exceeded it."""
    today = [q for q in quarters if q.start >= day_start]
    month = [q for q in quarters if q.start >= month_start]

    def peak(qs: list[Quarter]) -> dict[str, Any] | None:
        if not qs:
            return None
        top = max(qs, key=lambda q: q.avg_kw)
        return {"kw": top.avg_kw, "at": _iso(top.start, tz), "limit_kw": top.limit_kw}

    with_limit = [q for q in today if q.limit_kw]
    near = [q for q in with_limit if q.avg_kw >= near_pct / 100 * (q.limit_kw or 0)]
    over = [q for q in with_limit if q.avg_kw > (q.limit_kw or 0)]
    closest = min(with_limit, key=lambda q: (q.limit_kw or 0) - q.avg_kw, default=None)
    return {
        "today": peak(today), "month": peak(month),
        "quarters": [{"start": _iso(q.start, tz), "avg_kw": q.avg_kw, "max_kw": q.max_kw, "limit_kw": q.limit_kw,
                      "over_kw": round(q.avg_kw - q.limit_kw, 3) if q.limit_kw and q.avg_kw > q.limit_kw else None}
                     for q in today],
        "running": None if running is None else {"start": _iso(running.start, tz), "avg_kw": running.avg_kw,
                                                  "limit_kw": running.limit_kw},
        "quarters_today": len(today), "near_count": len(near), "near_pct": near_pct,
        "near_label": f"quarters at or above {near_pct:g} % of the limit", "exceeded_count": len(over),
        "exceeded": [{"start": _iso(q.start, tz), "avg_kw": q.avg_kw, "limit_kw": q.limit_kw,
                      "over_kw": round(q.avg_kw - (q.limit_kw or 0), 3)} for q in over],
        "closest": None if closest is None else {
            "start": _iso(closest.start, tz), "avg_kw": closest.avg_kw, "limit_kw": closest.limit_kw,
            "margin_kw": round((closest.limit_kw or 0) - closest.avg_kw, 3)},
    }


class SiteView:
    def __init__(self, config: ConsoleConfig, store: ConsoleStore) -> None:
        self.config = config
        self.store = store
        self.assets: dict[str, AssetEntry] = {}
        self.capabilities: dict[str, dict[str, Any]] = {}
        self.controller: dict[str, Any] = {}
        self.controller_checked_s: float | None = None
        self.modules: dict[str, dict[str, Any]] = {}
        self.quarter = QuarterTracker()
        self.bucket = ChartBucket()
        self.version = 0
        self.last_meter: dict[str, Any] | None = None  # the reading and when it arrived, for the latency figure
        self.recent: list[dict[str, Any]] = store.events(limit=RECENT_EVENTS)

    # ------------------------------------------------------------ events

    def event(self, kind: str, severity: str, text: str, asset_id: str | None = None,
              detail: Any = None, now_s: float | None = None) -> dict[str, Any]:
        entry = {"t": now_s if now_s is not None else time.time(), "kind": kind, "severity": severity,
                 "asset_id": asset_id, "text": text, "detail": detail}
        entry["id"] = self.store.add_event(entry)
        self.recent = [entry, *self.recent][:RECENT_EVENTS]
        self.version += 1
        return entry

    # ------------------------------------------------------------ messages

    def take(self, body: Any, now_s: float, site_now: dt.datetime) -> bool:
        """One routed message (telemetry, capabilityStatus, siteSummary, commandAck, event). False: unreadable."""
        if not isinstance(body, dict):
            return False
        kind = body.get("message_type")
        if kind == "telemetry" and isinstance(body.get("asset_id"), str):
            self._telemetry(body, now_s, site_now)
        elif kind == "capabilityStatus" and isinstance(body.get("capability"), str):
            previous = self.capabilities.get(body["capability"])
            self.capabilities[body["capability"]] = body
            if previous is None or any(previous.get(k) != body.get(k) for k in ("state", "source", "conflict")):
                conflict = " — CONFLICT between sources" if body.get("conflict") else ""
                self.event("capability", "warning" if body.get("conflict") else "info",
                           f"{body['capability']} {body.get('state')} (source {body.get('source')}: "
                           f"{body.get('reason') or 'no reason given'}){conflict}", now_s=now_s)
        elif kind == "commandAck" and isinstance(body.get("asset_id"), str):
            status = body.get("status")
            self.event("command", "info" if status in ("ok", "clamped") else "warning",
                       f"{body.get('command')} {body.get('requested')} → {status} {body.get('applied')}"
                       f"{': ' + body['message'] if body.get('message') else ''}", body["asset_id"], now_s=now_s)
        elif kind == "event" and isinstance(body.get("code"), str):
            code = body["code"]
            severity = body.get("severity") if body.get("severity") in ("info", "warning", "critical") else "info"
            if code not in DERIVED_EVENT_CODES:
                self.event(EVENT_KINDS.get(code, "event"), str(severity), f"{code}: {body.get('text', '')}",
                           body.get("asset_id"), now_s=now_s)
        elif kind == "siteSummary":
            pass  # the controller's minute summary: the console has finer data of its own
        else:
            return False
        self.version += 1
        return True

    def _telemetry(self, body: dict[str, Any], now_s: float, site_now: dt.datetime) -> None:
        asset_id = body["asset_id"]
        previous = self.assets.get(asset_id)
        self.assets[asset_id] = AssetEntry(body, now_s)
        if previous is not None:
            self._telemetry_events(previous.body, body, now_s)
        elif body.get("online") is False:
            self.event("fault", "warning", f"{asset_id} offline: {body.get('fault') or 'no reply'}", asset_id,
                       now_s=now_s)
        if body.get("asset_type") == "microgrid_controller":
            self.last_meter = {"timestamp": body.get("timestamp"), "received_s": now_s}
            import_kw = _num(body.get("grid_import_kw"))
            if import_kw is not None and body.get("online") is not False:
                self._meter_reading(import_kw, site_now)

    def _telemetry_events(self, old: dict[str, Any], new: dict[str, Any], now_s: float) -> None:
        asset_id = new["asset_id"]
        if old.get("online") is not False and new.get("online") is False:
            self.event("fault", "critical" if new.get("asset_type") == "microgrid_controller" else "warning",
                       f"{asset_id} offline: {new.get('fault') or 'no reply'}", asset_id, now_s=now_s)
        elif old.get("online") is False and new.get("online") is not False:
            self.event("fault", "info", f"{asset_id} back online", asset_id, now_s=now_s)
        elif new.get("online") is not False and new.get("fault") and new.get("fault") != old.get("fault"):
            # (while offline the text changes with every retry: the transition above is the event)
            self.event("fault", "warning", f"{asset_id} fault: {new['fault']}", asset_id, now_s=now_s)
        elif old.get("fault") and not new.get("fault") and new.get("online") is not False:
            self.event("fault", "info", f"{asset_id} fault cleared", asset_id, now_s=now_s)
        before, after = _num(old.get("setpoint_kw")), _num(new.get("setpoint_kw"))
        if after is not None and (before is None or abs(after - before) >= COMMAND_EVENT_KW):
            read_back = _num(new.get("power_kw"))
            self.event("command", "info", f"{asset_id} setpoint {after:.1f} kW acknowledged (reads "
                       f"{'—' if read_back is None else f'{read_back:.1f}'} kW)", asset_id, now_s=now_s)

    def _meter_reading(self, import_kw: float, site_now: dt.datetime) -> None:
        site_s = site_now.timestamp()
        limit_kw = self.limit_kw()
        done = self.quarter.add(site_s, import_kw, limit_kw)
        if done is not None:
            self.store.add_quarter(done)
            if done.limit_kw and done.avg_kw > done.limit_kw:
                quarter = _iso(done.start, site_now.tzinfo)
                self.event("peak", "warning", f"billing quarter {quarter} averaged {done.avg_kw:.1f} kW, "
                           f"{done.avg_kw - done.limit_kw:.1f} kW over the {done.limit_kw:.0f} kW limit")
        step = self.config.chart_step_s
        start = site_s - site_s % step
        if self.bucket.start is not None and start != self.bucket.start:
            self.store.add_sample(self.bucket.point())
            self.bucket = ChartBucket()
        self.bucket.start = start
        site = self.site_values()
        self.bucket.add({"import_kw": import_kw, "limit_kw": limit_kw, "pv_kw": site["pv_kw"],
                         "battery_kw": site["battery_kw"], "soc_pct": site["soc_pct"]})

    # ------------------------------------------------------------ polled state

    def set_controller(self, status: dict[str, Any], now_s: float) -> None:
        old_mode = self.controller.get("mode")
        self.controller, self.controller_checked_s = status, now_s
        if status.get("mode") != old_mode and status.get("mode") is not None:
            self.event("mode", "warning" if status.get("mode") == "fail_safe" else "info",
                       f"controller mode {status.get('mode')}: {status.get('reason') or ''}".rstrip(": "),
                       now_s=now_s)
        self.version += 1

    def set_module(self, module_id: str, answer: dict[str, Any] | None, error: str | None, now_s: float) -> None:
        """The outcome of asking a module for its twin status (get_config)."""
        old = self.modules.get(module_id, {})
        entry: dict[str, Any] = {"module": module_id, "checked": now_s, "reachable": answer is not None,
                                 "error": error}
        if answer is not None:
            config = answer.get("config") or {}
            entry.update(started=answer.get("started"), status=config.get("status"),
                         desired_version=config.get("desired_version"), applied_version=config.get("applied_version"),
                         errors=config.get("errors") or [], updated=config.get("updated"))
            if old.get("started") and answer.get("started") != old.get("started"):
                self.event("restart", "warning", f"module {module_id} restarted (started {answer.get('started')})",
                           now_s=now_s)
            if config.get("status") == "rejected" and (old.get("status") != "rejected"
                                                       or old.get("desired_version") != config.get("desired_version")):
                self.event("twin", "warning", f"module {module_id} rejected desired v{config.get('desired_version')}: "
                           f"{config.get('errors')}", now_s=now_s)
            elif config.get("status") == "applied" and old.get("status") == "rejected":
                self.event("twin", "info", f"module {module_id} applied desired v{config.get('desired_version')}",
                           now_s=now_s)
        elif old.get("reachable"):
            self.event("restart", "warning", f"module {module_id} not answering: {error}", now_s=now_s)
        self.modules[module_id] = entry
        self.version += 1

    # ------------------------------------------------------------ views

    def of_type(self, asset_type: str) -> list[dict[str, Any]]:
        return [e.body for e in sorted(self.assets.values(), key=lambda e: e.body["asset_id"])
                if e.body.get("asset_type") == asset_type]

    def meter(self) -> dict[str, Any] | None:
        meters = self.of_type("microgrid_controller")
        return meters[0] if meters else None

    def limit_kw(self) -> float | None:
        """The limit the site is held to: the controller's, else the site controller's register."""
        limit = _num(self.controller.get("limit_kw"))
        if limit is None and (meter := self.meter()) is not None:
            limit = _num(meter.get("import_limit_kw"))
        return limit

    def site_values(self) -> dict[str, Any]:
        online = [b for b in self.of_type("battery") if b.get("online") is not False]
        socs = [s for b in online if (s := _num(b.get("soc_pct"))) is not None]
        return {
            "pv_kw": round(sum(_num(s.get("power_kw")) or 0.0 for s in self.of_type("solar")
                               if s.get("online") is not False), 3),
            "battery_kw": round(sum(_num(b.get("power_kw")) or 0.0 for b in online), 3),
            "soc_pct": round(sum(socs) / len(socs), 2) if socs else None,
        }

    def snapshot(self, now_s: float, site_now: dt.datetime) -> dict[str, Any]:
        meter = self.meter()
        c = self.controller
        # the billing day and month are the site's own (its clock's offset), not UTC's
        midnight = site_now.replace(hour=0, minute=0, second=0, microsecond=0)
        day_start, month = midnight.timestamp(), midnight.replace(day=1)
        tz = site_now.tzinfo
        running = None
        if self.quarter.start is not None and self.quarter.avg_kw is not None:
            running = Quarter(self.quarter.start, self.quarter.avg_kw, self.quarter.max_kw, self.quarter.limit_kw)
        quarters = self.store.quarters(min(day_start, month.timestamp()))
        limit_kw = self.limit_kw()
        import_kw = _num(meter.get("grid_import_kw")) if meter else None
        avg_kw = _num(c.get("grid_import_avg_15min_kw"))
        return {
            "site_id": self.config.site_id,
            "server_time": _iso(now_s), "site_time": site_now.isoformat(timespec="seconds"),
            "utc_offset_s": (site_now.utcoffset() or dt.timedelta()).total_seconds(),
            "site": {
                **self.site_values(),
                "grid_import_kw": import_kw,
                "site_load_kw": _num(meter.get("site_load_kw")) if meter else None,
                "meter_online": None if meter is None else meter.get("online") is not False,
                "meter_timestamp": meter.get("timestamp") if meter else None,
                "meter_age_s": self._age(meter, now_s),
                "limit_kw": limit_kw, "limit_source": c.get("limit_source"),
                "site_controller_limit_kw": _num(meter.get("import_limit_kw")) if meter else None,
                "target_kw": _num(c.get("target_kw")),
                "avg_15min_kw": avg_kw,
                "quarter_avg_kw": self.quarter.avg_kw,
                "margin_kw": (round(limit_kw - avg_kw, 3) if limit_kw is not None and avg_kw is not None
                              else _num(c.get("margin_kw"))),
                "month_peak_kw": _num(c.get("month_peak_kw")),
                "mode": c.get("mode"), "reason": c.get("reason"), "limited_by": c.get("limited_by") or [],
                "controller_age_s": None if self.controller_checked_s is None
                else round(now_s - self.controller_checked_s, 1),
                "peak_shaving_enabled": meter.get("peak_shaving_active") if meter else None,
            },
            "batteries": [{"asset_id": b["asset_id"], "power_kw": _num(b.get("power_kw")),
                           "soc_pct": _num(b.get("soc_pct")), "online": b.get("online") is not False}
                          for b in self.of_type("battery")],
            "boilers": [{"asset_id": b["asset_id"], "water_temp_c": _num(b.get("water_temp_c")),
                         "setpoint_c": _num(b.get("setpoint_c")), "state": b.get("state"),
                         "power_kw": _num(b.get("power_kw")), "online": b.get("online") is not False}
                        for b in self.of_type("boiler")],
            "capabilities": {name: {k: cap.get(k) for k in ("state", "raw_value", "source", "reason", "conflict",
                                                             "timestamp")}
                             for name, cap in sorted(self.capabilities.items())},
            "peaks": peaks_of(quarters, running, day_start, month.timestamp(), self.config.near_limit_pct, tz),
            "devices": [self._device(e, now_s) for e in sorted(self.assets.values(), key=lambda e: e.body["asset_id"])],
            "stale_after_s": self.config.stale_after_s,
            "modules": [self.modules.get(m, {"module": m, "reachable": None}) for m in self.config.modules],
            "events": self.recent,
        }

    def _age(self, body: dict[str, Any] | None, now_s: float) -> float | None:
        entry = self.assets.get(body["asset_id"]) if body else None
        return None if entry is None else round(now_s - entry.received_s, 1)

    def _device(self, entry: AssetEntry, now_s: float) -> dict[str, Any]:
        b = entry.body
        kind = b.get("asset_type")
        module_id = self.config.asset_modules.get(str(kind))
        module = self.modules.get(module_id or "", {})
        setpoint, read_back, unit = _num(b.get("setpoint_kw")), _num(b.get("power_kw")), "kW"
        if kind == "boiler":
            setpoint, read_back, unit = _num(b.get("setpoint_c")), _num(b.get("water_temp_c")), "°C"
        elif kind == "solar" and b.get("curtailed"):
            setpoint = _num(b.get("power_limit_pct"))
            unit = "% / kW"
        elif kind == "microgrid_controller":
            setpoint, read_back = _num(b.get("import_limit_kw")), _num(b.get("grid_import_kw"))
        age_s = round(now_s - entry.received_s, 1)
        return {
            "asset_id": b["asset_id"], "asset_type": kind, "online": b.get("online") is not False,
            "status": b.get("status"), "fault": b.get("fault"), "fault_code": b.get("fault_code"),
            "timestamp": b.get("timestamp"), "age_s": age_s, "stale": age_s > self.config.stale_after_s,
            "setpoint": setpoint, "read_back": read_back, "unit": unit, "module": module_id,
            "twin_status": module.get("status"), "twin_errors": module.get("errors") or [],
            "soc_pct": _num(b.get("soc_pct")),
        }

    def flush(self) -> None:
        """Write the chart bucket in progress (on shutdown, so a restart loses no point)."""
        if self.bucket.start is not None and self.bucket.counts:
            self.store.add_sample(self.bucket.point())
        if self.quarter.start is not None and self.quarter.count:
            pass  # the running quarter is not billed yet: it restarts empty (its readings are in the chart)
