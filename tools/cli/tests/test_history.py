"""The capability-status history on SQLite and on a real PostgreSQL server the tests start."""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from energy_edge.hub.store import HubMessage, HubStore
from energy_edge.ops.history import (
    CapabilityEvent,
    CapabilityHistory,
    events_from_routed_storage,
    events_from_upstream,
)
from tests.support import ENERGY_EDGE, REPO

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    assert found[-1], f"{name} not found: make install installs Debian's postgresql"
    return found[-1]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port (run as the postgres user when we are root)."""
    # not under pytest's root-only tmp dir: the server runs as the postgres user, which must reach it
    root = Path(tempfile.mkdtemp(prefix="energy-edge-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_user, pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, pg_bin("pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                    f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        yield url
    finally:
        subprocess.run([*as_user, pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def history(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CapabilityHistory]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'history.db'}"
    else:
        url = request.getfixturevalue("postgres")
        import psycopg

        with psycopg.connect(url, autocommit=True) as db:  # a clean slate per test
            db.execute("DROP TABLE IF EXISTS capability_events, microgrids")
    store = CapabilityHistory(url)
    yield store
    store.close()


def event(ref: str, minute: int, value: bool, source: str = "controller", capability: str = "PEAK_SHAVING",
          site: str = "site-1", conflict: bool = False) -> CapabilityEvent:
    return CapabilityEvent(ref, site, capability, "ON" if value else "OFF", value, source, "test", conflict,
                           T0 + dt.timedelta(minutes=minute))


def test_duplicates_are_recorded_once(history: CapabilityHistory) -> None:
    batch = [event("m1", 0, True), event("m2", 5, False)]
    assert history.record(batch) == (2, 0)
    assert history.record(batch) == (0, 2)  # a replayed delivery
    assert [e["source_ref"] for e in history.events("site-1")] == ["m1", "m2"]


def test_latest_state_follows_event_time_not_arrival(history: CapabilityHistory) -> None:
    history.record([event("late", 30, True), event("early", 10, False)])  # arrives out of order
    state = history.latest_state("site-1", "PEAK_SHAVING")
    assert state is not None
    assert (state.state, state.raw_value, state.source) == ("ON", True, "controller")
    assert state.event_time.startswith("2026-03-01T12:30")
    assert [e["source_ref"] for e in history.events("site-1", "PEAK_SHAVING")] == ["early", "late"]
    history.record([event("later", 40, False)])
    assert history.latest_state("site-1", "PEAK_SHAVING").state == "OFF"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("events", "conflict", "active"),
    [
        ([event("a", 0, True, "controller"), event("b", 1, True, "mgc-1")], True, ("controller", "mgc-1")),
        ([event("a", 0, True, "controller"), event("b", 1, True, "mgc-1"), event("c", 2, False, "mgc-1")], False,
         ("controller",)),
        ([event("a", 0, True, "controller", conflict=True)], True, ("controller",)),  # flagged at the source
        ([event("a", 0, True, "controller"), event("b", 1, True, "mgc-1", capability="DER")], False,
         ("controller",)),  # a different capability
    ],
)
def test_a_second_active_source_is_a_conflict(history: CapabilityHistory, events: list[CapabilityEvent],
                                              conflict: bool, active: tuple[str, ...]) -> None:
    history.record(events)
    state = history.latest_state("site-1", "PEAK_SHAVING")
    assert state is not None
    assert state.conflict is conflict
    assert state.active_sources == active


def test_one_canonical_record_per_site(history: CapabilityHistory) -> None:
    history.record([event("p1", 0, True), event("d1", 1, False, capability="DER"), event("x1", 2, True, site="s2")])
    history.record([event("p2", 3, False)])
    records = {m["site_id"]: m for m in history.microgrids()}
    assert set(records) == {"site-1", "s2"}
    site = records["site-1"]
    assert (site["peak_shaving_state"], site["peak_shaving_raw"], site["der_state"]) == ("OFF", 0, "OFF")
    assert site["first_event_time"].startswith("2026-03-01T12:00")
    assert site["last_event_time"].startswith("2026-03-01T12:03")


def capability_body(value: bool, minute: int, source: str = "controller") -> dict[str, Any]:
    return {"schema_version": "1.0", "message_type": "capabilityStatus", "site_id": "site-9",
            "capability": "DER", "state": "ON" if value else "OFF", "raw_value": value, "source": source,
            "reason": "r", "conflict": False, "timestamp": (T0 + dt.timedelta(minutes=minute)).isoformat()}


def test_ingest_from_the_upstream_store_and_the_cli(tmp_path: Path) -> None:
    store = HubStore(tmp_path / "hub" / "hub.db")
    for n, (value, minute) in enumerate([(True, 5), (False, 1), (True, 9)]):
        message = HubMessage(json.dumps(capability_body(value, minute)).encode(), {"messageType": "capabilityStatus"},
                             {"messageId": f"msg-{n}", "connectionModuleId": "controller", "enqueuedTime": "x"})
        [row_id] = store.enqueue([("$upstream", None)], message)
        store.deliver_upstream(next(q for q in store.pending("$upstream") if q.id == row_id))
    store.close()
    events = events_from_upstream(tmp_path / "hub" / "hub.db")
    assert [e.source_ref for e in events] == ["msg-0", "msg-1", "msg-2"]
    args = ["--data-dir", str(tmp_path / "hub"), "--db", f"sqlite:///{tmp_path / 'h.db'}"]
    for expected in ({"read": 3, "new": 3, "duplicates": 0}, {"read": 3, "new": 0, "duplicates": 3}):
        result = subprocess.run([*ENERGY_EDGE, "capability", "ingest", *args], cwd=REPO, capture_output=True,
                                text=True, check=True)
        assert json.loads(result.stdout) == expected
    shown = subprocess.run([*ENERGY_EDGE, "capability", "show", "--json", *args], cwd=REPO, capture_output=True,
                           text=True, check=True)
    [record] = json.loads(shown.stdout)
    assert (record["site_id"], record["der_state"], record["der_raw"]) == ("site-9", "ON", 1)
    assert record["der_time"].startswith("2026-03-01T12:09")
    listed = subprocess.run([*ENERGY_EDGE, "telemetry", "query", "--data-dir", str(tmp_path / "hub"), "--type",
                             "capabilityStatus", "--format", "csv"], cwd=REPO, capture_output=True, text=True,
                            check=True)
    lines = listed.stdout.strip().splitlines()
    assert lines[0].startswith("id,enqueuedTime,deviceId,moduleId")
    assert len(lines) == 4


def test_ingest_from_routed_storage_files(tmp_path: Path) -> None:
    """IoT Hub's storage route with JSON encoding: one record per line, body inline or base64."""
    import base64

    lines = [
        {"EnqueuedTimeUtc": "2026-03-01T12:01:00Z", "Properties": {"messageType": "capabilityStatus"},
         "SystemProperties": {"messageId": "a"}, "Body": capability_body(True, 1)},
        {"EnqueuedTimeUtc": "2026-03-01T12:02:00Z", "Properties": {"messageType": "capabilityStatus"},
         "SystemProperties": {"messageId": "b"},
         "Body": base64.b64encode(json.dumps(capability_body(False, 2, "mgc-1")).encode()).decode()},
        {"EnqueuedTimeUtc": "2026-03-01T12:02:00Z", "Properties": {"messageType": "siteSummary"},
         "SystemProperties": {"messageId": "c"}, "Body": {"ignored": True}},
    ]
    folder = tmp_path / "capability" / "2026" / "03" / "01"
    folder.mkdir(parents=True)
    (folder / "12.json").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    events = events_from_routed_storage([folder / "12.json"])
    assert [(e.source_ref, e.state, e.source) for e in events] == [("a", "ON", "controller"), ("b", "OFF", "mgc-1")]
    result = subprocess.run([*ENERGY_EDGE, "capability", "ingest", "--from-files", str(tmp_path / "capability"),
                             "--db", f"sqlite:///{tmp_path / 'h.db'}"], cwd=REPO, capture_output=True, text=True,
                            check=True)
    assert json.loads(result.stdout) == {"read": 2, "new": 2, "duplicates": 0}
