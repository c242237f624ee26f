"""What the console keeps on the device (SQLite on the module's volume), in bounded space: chart points for
`history_hours`, billing quarters for 40 days (the month's peak survives a restart), the newest events."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUARTERS_KEPT_S = 40 * 86_400

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (t REAL PRIMARY KEY, import_kw REAL, limit_kw REAL, pv_kw REAL,
                                    battery_kw REAL, soc_pct REAL);
CREATE TABLE IF NOT EXISTS quarters (start REAL PRIMARY KEY, avg_kw REAL NOT NULL, max_kw REAL NOT NULL,
                                     limit_kw REAL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, t REAL NOT NULL, kind TEXT NOT NULL,
                                   severity TEXT NOT NULL, asset_id TEXT, text TEXT NOT NULL, detail TEXT);
"""

SAMPLE_FIELDS = ("t", "import_kw", "limit_kw", "pv_kw", "battery_kw", "soc_pct")


@dataclass(frozen=True)
class Quarter:
    start: float  # site time, epoch seconds
    avg_kw: float
    max_kw: float
    limit_kw: float | None


class ConsoleStore:
    def __init__(self, path: Path, history_s: float, events_kept: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.history_s, self.events_kept = history_s, events_kept
        self.db = sqlite3.connect(str(path), isolation_level=None)  # autocommit: each write is durable alone
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ chart points

    def add_sample(self, sample: dict[str, float | None]) -> None:
        t = sample["t"]
        assert t is not None
        self.db.execute("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?)",
                        tuple(sample.get(k) for k in SAMPLE_FIELDS))
        # keep the window; newer rows than `t` stay (a site clock set back must not wipe what is there)
        self.db.execute("DELETE FROM samples WHERE t < ?", (t - self.history_s,))

    def samples(self, since: float) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM samples WHERE t >= ? ORDER BY t", (since,)).fetchall()
        return [dict(zip(SAMPLE_FIELDS, row, strict=True)) for row in rows]

    # ------------------------------------------------------------ billing quarters

    def add_quarter(self, quarter: Quarter) -> None:
        self.db.execute("INSERT OR REPLACE INTO quarters VALUES (?, ?, ?, ?)",
                        (quarter.start, quarter.avg_kw, quarter.max_kw, quarter.limit_kw))
        self.db.execute("DELETE FROM quarters WHERE start < ?", (quarter.start - QUARTERS_KEPT_S,))

    def quarters(self, since: float) -> list[Quarter]:
        rows = self.db.execute("SELECT start, avg_kw, max_kw, limit_kw FROM quarters WHERE start >= ? ORDER BY start",
                               (since,)).fetchall()
        return [Quarter(*row) for row in rows]

    # ------------------------------------------------------------ events

    def add_event(self, event: dict[str, Any]) -> int:
        cursor = self.db.execute(
            "INSERT INTO events (t, kind, severity, asset_id, text, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (event["t"], event["kind"], event["severity"], event.get("asset_id"), event["text"],
             json.dumps(event.get("detail")) if event.get("detail") is not None else None),
        )
        event_id = int(cursor.lastrowid or 0)
        self.db.execute("DELETE FROM events WHERE id <= ?", (event_id - self.events_kept,))
        return event_id

    def events(self, *, kind: str | None = None, severity: str | None = None, asset_id: str | None = None,
               text: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Newest first, filtered."""
        where, args = [], []
        for column, value in (("kind", kind), ("severity", severity), ("asset_id", asset_id)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if text:
            where.append("text LIKE ? ESCAPE '\\'")
            args.append("%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        sql = "SELECT id, t, kind, severity, asset_id, text, detail FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [{"id": r[0], "t": r[1], "kind": r[2], "severity": r[3], "asset_id": r[4], "text": r[5],
                 "detail": json.loads(r[6]) if r[6] else None} for r in rows]

    def counts(self) -> dict[str, int]:
        return {table: int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in ("samples", "quarters", "events")}
