"""The cloud side of PEAK_SHAVING / DER: a capability-status history per microgrid.

Capability events (`capabilityStatus` messages that reached IoT Hub) are appended to an event table,
once each: the source event reference (the message id) is unique, so a duplicate delivery is recorded
once. Each site has one canonical microgrid record whose latest state per capability is derived from
the history by event time (not arrival order): the raw boolean, ON/OFF, the source and its timestamp.
A second source reporting the capability active at the same time is flagged as a conflict.

SQLite by default; PostgreSQL when a `postgresql://` URL is given — the same SQL, through psycopg.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CAPABILITIES = ("PEAK_SHAVING", "DER")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS microgrids (
        site_id TEXT PRIMARY KEY,
        first_event_time TEXT NOT NULL,
        last_event_time TEXT NOT NULL,
        peak_shaving_state TEXT, peak_shaving_raw INTEGER, peak_shaving_source TEXT,
        peak_shaving_time TEXT, peak_shaving_conflict INTEGER,
        der_state TEXT, der_raw INTEGER, der_source TEXT, der_time TEXT, der_conflict INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS capability_events (
        source_ref TEXT PRIMARY KEY,
        site_id TEXT NOT NULL,
        capability TEXT NOT NULL,
        state TEXT NOT NULL,
        raw_value INTEGER NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        conflict INTEGER NOT NULL,
        event_time TEXT NOT NULL,
        received_time TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS capability_events_by_time ON capability_events (site_id, capability, event_time)",
)


@dataclass(frozen=True)
class CapabilityEvent:
    source_ref: str
    site_id: str
    capability: str
    state: str  # ON | OFF
    raw_value: bool
    source: str
    reason: str
    conflict: bool
    event_time: dt.datetime

    @classmethod
    def from_message(cls, body: dict[str, Any], source_ref: str | None = None) -> CapabilityEvent:
        if body.get("message_type") != "capabilityStatus" or body.get("capability") not in CAPABILITIES:
            raise ValueError("not a capabilityStatus message")
        ref = source_ref or hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return cls(ref, str(body["site_id"]), body["capability"], "ON" if body["raw_value"] else "OFF",
                   bool(body["raw_value"]), str(body["source"]), str(body.get("reason", "")),
                   bool(body.get("conflict")), _utc(body["timestamp"]))


def _utc(value: str | dt.datetime) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    if moment.tzinfo is None:
        raise ValueError("event time without a time zone")
    return moment.astimezone(dt.timezone.utc)


def _text(moment: dt.datetime) -> str:
    """Fixed-width UTC text: sorts as time in SQL on both databases."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class CapabilityState:
    capability: str
    state: str
    raw_value: bool
    source: str
    event_time: str
    reason: str
    conflict: bool
    active_sources: tuple[str, ...]


class CapabilityHistory:
    """One store, SQLite or PostgreSQL. Use as a context manager or call close()."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.db: Any = psycopg.connect(url, autocommit=False)
            self.placeholder = "%s"
        else:
            path = Path(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path)
            self.placeholder = "?"
        for statement in _SCHEMA:
            self._execute(statement)
        self.db.commit()

    def __enter__(self) -> CapabilityHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cursor = self.db.cursor()
        cursor.execute(sql.replace("?", self.placeholder), tuple(params))
        return cursor

    # ------------------------------------------------------------ writing

    def record(self, events: Iterable[CapabilityEvent]) -> tuple[int, int]:
        """Append events (idempotent on source_ref); returns (new, duplicates). Re-derives the sites touched."""
        new = duplicates = 0
        sites: set[str] = set()
        received = _text(dt.datetime.now(dt.timezone.utc))
        for event in events:
            cursor = self._execute(
                "INSERT INTO capability_events (source_ref, site_id, capability, state, raw_value, source, reason,"
                " conflict, event_time, received_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (source_ref) DO NOTHING",
                (event.source_ref, event.site_id, event.capability, event.state, int(event.raw_value), event.source,
                 event.reason, int(event.conflict), _text(event.event_time), received),
            )
            if cursor.rowcount == 1:
                new += 1
                sites.add(event.site_id)
            else:
                duplicates += 1
        for site_id in sites:
            self._derive(site_id)
        self.db.commit()
        return new, duplicates

    def _derive(self, site_id: str) -> None:
        span = self._execute("SELECT MIN(event_time), MAX(event_time) FROM capability_events WHERE site_id = ?",
                             (site_id,)).fetchone()
        values: dict[str, Any] = {}
        for capability in CAPABILITIES:
            state = self.latest_state(site_id, capability)
            prefix = capability.lower()
            values.update({
                f"{prefix}_state": state.state if state else None,
                f"{prefix}_raw": int(state.raw_value) if state else None,
                f"{prefix}_source": state.source if state else None,
                f"{prefix}_time": state.event_time if state else None,
                f"{prefix}_conflict": int(state.conflict) if state else None,
            })
        columns = list(values)
        assignments = ", ".join(f"{c} = excluded.{c}" for c in [*columns, "first_event_time", "last_event_time"])
        self._execute(
            f"INSERT INTO microgrids (site_id, first_event_time, last_event_time, {', '.join(columns)})"
            f" VALUES (?, ?, ?, {', '.join('?' for _ in columns)})"
            f" ON CONFLICT (site_id) DO UPDATE SET {assignments}",
            (site_id, span[0], span[1], *values.values()),
        )

    # ------------------------------------------------------------ reading

    def latest_state(self, site_id: str, capability: str) -> CapabilityState | None:
        rows = self._execute(
            "SELECT state, raw_value, source, event_time, reason, conflict FROM capability_events"
            " WHERE site_id = ? AND capability = ? ORDER BY event_time DESC, source_ref",
            (site_id, capability),
        ).fetchall()
        if not rows:
            return None
        latest = rows[0]
        # the latest word of each source: a second source ON at the same time is a conflict
        by_source: dict[str, Any] = {}
        for row in rows:
            by_source.setdefault(row[2], row)
        active = tuple(sorted(s for s, row in by_source.items() if row[1]))
        conflict = bool(latest[5]) or len(active) > 1
        return CapabilityState(capability, latest[0], bool(latest[1]), latest[2], latest[3], latest[4], conflict,
                               active)

    def events(self, site_id: str, capability: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT source_ref, site_id, capability, state, raw_value, source, reason, conflict, event_time"
               " FROM capability_events WHERE site_id = ?")
        params: list[Any] = [site_id]
        if capability:
            sql += " AND capability = ?"
            params.append(capability)
        sql += " ORDER BY event_time, source_ref"
        keys = ("source_ref", "site_id", "capability", "state", "raw_value", "source", "reason", "conflict",
                "event_time")
        return [{**dict(zip(keys, row, strict=True)), "raw_value": bool(row[4]), "conflict": bool(row[7])}
                for row in self._execute(sql, params).fetchall()]

    def microgrids(self) -> list[dict[str, Any]]:
        cursor = self._execute("SELECT * FROM microgrids ORDER BY site_id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def events_from_upstream(hub_db: Path, since_epoch_s: float | None = None) -> list[CapabilityEvent]:
    """Capability events in the emulator's upstream store (what IoT Hub's routed storage would hold)."""
    from energy_edge.hub.store import query_upstream

    events = []
    for record in query_upstream(hub_db, message_type="capabilityStatus", since_epoch_s=since_epoch_s):
        body = record.body_json()
        if isinstance(body, dict):
            events.append(CapabilityEvent.from_message(body, record.system_properties.get("messageId")))
    return events


def events_from_routed_storage(paths: Iterable[Path]) -> list[CapabilityEvent]:
    """Capability events from IoT Hub's routing to Azure Storage (JSON encoding: one record per line,
    `{"EnqueuedTimeUtc", "Properties", "SystemProperties": {"messageId", …}, "Body"}`; the body is the
    JSON document itself when the message said application/json + utf-8, base64 text otherwise)."""
    import base64

    events = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if record.get("Properties", {}).get("messageType") != "capabilityStatus":
                continue
            body = record.get("Body")
            if isinstance(body, str):
                body = json.loads(base64.b64decode(body))
            events.append(CapabilityEvent.from_message(body, record.get("SystemProperties", {}).get("messageId")))
    return events
