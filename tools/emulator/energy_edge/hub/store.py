"""The emulator's SQLite store: twins, the store-and-forward queue, and the upstream store.

- `queue` holds every routed message until its endpoint acknowledges it (a module's PUBACK, or
  the upstream link taking it), in insertion order, until it expires.
- `upstream` is what reached "IoT Hub": what an analyst would find in IoT Hub's routed storage.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS twins (
    device_id TEXT NOT NULL, module_id TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (device_id, module_id)
);
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    expires_at REAL,
    app_properties TEXT NOT NULL,
    system_properties TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_by_endpoint ON queue (endpoint, id);
CREATE INDEX IF NOT EXISTS queue_by_expiry ON queue (endpoint, expires_at);
CREATE TABLE IF NOT EXISTS upstream (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT, module_id TEXT, output_name TEXT,
    message_type TEXT,
    enqueued_time TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    app_properties TEXT NOT NULL,
    system_properties TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS upstream_by_time ON upstream (enqueued_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class HubMessage:
    """A message inside the hub: body and the two property bags, named as IoT Hub names them."""

    body: bytes
    app_properties: dict[str, str] = field(default_factory=dict)
    system_properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    endpoint: str
    enqueued_at: float
    message: HubMessage


class HubStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One connection, used only from the event loop's thread.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._expired_at: dict[str, float] = {}

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------ meta

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------ twins

    def load_twins(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for device_id, module_id, record in self.db.execute("SELECT device_id, module_id, record FROM twins"):
            yield device_id, module_id, json.loads(record)

    def save_twin(self, device_id: str, module_id: str, record: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO twins (device_id, module_id, record) VALUES (?, ?, ?)",
            (device_id, module_id, json.dumps(record)),
        )

    def delete_twin(self, device_id: str, module_id: str) -> None:
        self.db.execute("DELETE FROM twins WHERE device_id = ? AND module_id = ?", (device_id, module_id))

    # ------------------------------------------------------------ store and forward

    def enqueue(self, endpoints: list[tuple[str, float | None]], message: HubMessage) -> list[int]:
        """Persist one message for each (endpoint, ttl seconds or None for no expiry)."""
        now = time.time()
        app = json.dumps(message.app_properties)
        system = json.dumps(message.system_properties)
        ids = []
        with self.db:
            for endpoint, ttl_s in endpoints:
                cursor = self.db.execute(
                    "INSERT INTO queue (endpoint, enqueued_at, expires_at, app_properties, system_properties,"
                    " body) VALUES (?, ?, ?, ?, ?, ?)",
                    (endpoint, now, None if ttl_s is None else now + ttl_s, app, system, message.body),
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def pending(self, endpoint: str, after_id: int = 0, limit: int = 100) -> list[QueuedMessage]:
        """Messages for `endpoint` after `after_id`, oldest first; expired ones are dropped here."""
        now = time.time()
        # Expiry is checked at most once a second per endpoint: a backlog drains in linear time.
        if now - self._expired_at.get(endpoint, 0.0) >= 1.0:
            self._expired_at[endpoint] = now
            self.db.execute(
                "DELETE FROM queue WHERE endpoint = ? AND expires_at IS NOT NULL AND expires_at < ?",
                (endpoint, now),
            )
        rows = self.db.execute(
            "SELECT id, endpoint, enqueued_at, app_properties, system_properties, body FROM queue"
            " WHERE endpoint = ? AND id > ? ORDER BY id LIMIT ?",
            (endpoint, after_id, limit),
        ).fetchall()
        return [
            QueuedMessage(row[0], row[1], row[2], HubMessage(row[5], json.loads(row[3]), json.loads(row[4])))
            for row in rows
        ]

    def ack(self, message_id: int) -> None:
        self.db.execute("DELETE FROM queue WHERE id = ?", (message_id,))

    def queue_depth(self, endpoint: str | None = None) -> int:
        if endpoint is None:
            row = self.db.execute("SELECT COUNT(*) FROM queue").fetchone()
        else:
            row = self.db.execute("SELECT COUNT(*) FROM queue WHERE endpoint = ?", (endpoint,)).fetchone()
        return int(row[0])

    # ------------------------------------------------------------ upstream store

    def deliver_upstream(self, queued: QueuedMessage) -> None:
        """Move one queued message into the upstream store, atomically."""
        msg = queued.message
        sys_props = msg.system_properties
        with self.db:
            self.db.execute(
                "INSERT INTO upstream (device_id, module_id, output_name, message_type, enqueued_time,"
                " enqueued_at, app_properties, system_properties, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sys_props.get("connectionDeviceId"),
                    sys_props.get("connectionModuleId"),
                    sys_props.get("outputName"),
                    msg.app_properties.get("messageType"),
                    sys_props.get("enqueuedTime", ""),
                    queued.enqueued_at,
                    json.dumps(msg.app_properties),
                    json.dumps(sys_props),
                    msg.body,
                ),
            )
            self.db.execute("DELETE FROM queue WHERE id = ?", (queued.id,))


@dataclass(frozen=True)
class UpstreamRecord:
    id: int
    device_id: str | None
    module_id: str | None
    output_name: str | None
    message_type: str | None
    enqueued_time: str
    app_properties: dict[str, str]
    system_properties: dict[str, str]
    body: bytes

    def body_json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def to_dict(self) -> dict[str, Any]:
        body = self.body_json()
        return {
            "id": self.id,
            "enqueuedTime": self.enqueued_time,
            "deviceId": self.device_id,
            "moduleId": self.module_id,
            "outputName": self.output_name,
            "messageType": self.message_type,
            "properties": self.app_properties,
            "systemProperties": self.system_properties,
            "body": body if body is not None else self.body.decode("utf-8", "replace"),
        }


def query_upstream(
    db_path: Path,
    module_id: str | None = None,
    since_epoch_s: float | None = None,
    message_type: str | None = None,
    limit: int | None = None,
) -> list[UpstreamRecord]:
    """Read the upstream store (read-only; safe while the emulator runs, thanks to WAL)."""
    if not db_path.exists():
        raise FileNotFoundError(f"no upstream store at {db_path}")
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        clauses, args = [], []  # type: list[str], list[Any]
        if module_id:
            clauses.append("module_id = ?")
            args.append(module_id)
        if since_epoch_s is not None:
            clauses.append("enqueued_at >= ?")
            args.append(since_epoch_s)
        if message_type:
            clauses.append("message_type = ?")
            args.append(message_type)
        sql = (
            "SELECT id, device_id, module_id, output_name, message_type, enqueued_time, app_properties,"
            " system_properties, body FROM upstream"
        )
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [
            UpstreamRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), json.loads(r[7]), bytes(r[8]))
            for r in db.execute(sql, args)
        ]
    finally:
        db.close()
