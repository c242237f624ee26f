"""Live sites for the reliability suite: the simulator, the emulator and every module as real processes.

`site` runs the real modules (the fault matrix drives the simulator's fault API and the processes).
`forged_site` runs them all but the site meter: the test itself is the meter, a real device-SDK client with
the microgrid-controller module's identity, so it can send the controller any reading or any bytes at all
(the routes and the controller's checks are the real ones).

`ENERGY_EDGE_FUZZ_EXAMPLES` sets how many generated inputs each Hypothesis test tries (short form: 25;
`make reliability` runs the long form).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from energy_edge.hub.clients import module_client
from energy_edge.hub.store import query_upstream
from tests.support import Site, wait_status

LIMIT_KW = 150.0
CONTROLLER = {
    "import_limit_kw": LIMIT_KW, "limit_margin_kw": 3, "reserve_soc_pct": 30, "min_soc_pct": 5, "recharge_kw": 10,
    "meter_stale_s": 3, "capability_refresh_s": 10, "summary_interval_s": 5, "command_refresh_s": 5,
}
ASSET_MODULES = ("solar", "battery", "boiler", "microgrid-controller", "controller", "telemetry")
FUZZ_EXAMPLES = int(os.environ.get("ENERGY_EDGE_FUZZ_EXAMPLES", "25"))


def _start(root: Any, modules: tuple[str, ...]) -> Site:
    site = Site(root, modules, desired={"controller": CONTROLLER,
                                        "telemetry": {"metrics_port": 19601, "stale_after_s": 5}})
    site.extra_env["ENERGY_EDGE_BIND_ADDRESS"] = site.host
    site.extra_env["ENERGY_EDGE_EVENT_BURST"] = "1000"  # the matrix injects more faults in minutes than a site a day
    return site.start()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = _start(tmp_path_factory.mktemp("reliability"), ASSET_MODULES)
    try:
        assert site.probe is not None
        site.probe.wait_for(lambda p: len(p.latest) == 4 and all(m["online"] for m in p.latest.values()), 60,
                            "every asset online")
        wait_status(site, lambda s: s.get("mode") not in (None, "fail_safe"), "control running", 60)
        yield site
    finally:
        site.stop()


class ForgedMeter:
    """The site meter, played by the test through the microgrid-controller module's identity."""

    def __init__(self, site: Site) -> None:
        self.client = module_client(site.hub.hub_json, "microgrid-controller", asyncio=False)
        self.client.connect()
        self.grid_import_kw = 100.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def reading(self, **changes: Any) -> dict[str, Any]:
        stamp = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
        return {
            "schema_version": "1.0", "message_type": "telemetry", "asset_type": "microgrid_controller",
            "site_id": "site-1", "asset_id": "mgc-1", "timestamp": stamp, "power_kw": self.grid_import_kw,
            "setpoint_kw": None, "online": True, "status": "grid_connected", "fault_code": None, "fault": None,
            "grid_import_kw": self.grid_import_kw, "site_load_kw": None, "frequency_hz": 50.0, "voltage_v": 400.0,
            "peak_shaving_active": False, "der_active": True, "import_limit_kw": LIMIT_KW, **changes,
        }

    def send(self, body: bytes | str | dict[str, Any]) -> None:
        from azure.iot.device import Message

        data = body if isinstance(body, (bytes, str)) else json.dumps(body, allow_nan=True)
        message = Message(data, content_encoding="utf-8", content_type="application/json")
        message.custom_properties.update({"messageType": "telemetry", "assetType": "microgrid_controller",
                                          "schemaVersion": "1.0"})
        self.client.send_message_to_output(message, "telemetry")

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.send(self.reading())
            except Exception:  # the hub restarting; the next reading goes out when it is back
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.shutdown()


@pytest.fixture(scope="module")
def forged_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, ForgedMeter]]:
    site = _start(tmp_path_factory.mktemp("forged"), ("battery", "controller", "telemetry"))
    meter = ForgedMeter(site)
    try:
        wait_status(site, lambda s: s.get("mode") not in (None, "fail_safe"), "control on the forged meter", 60)
        yield site, meter
    finally:
        meter.close()
        site.stop()


def wait_for(predicate: Any, what: str, timeout_s: float = 30, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}")


def upstream_events(site: Site, since_epoch_s: float = 0.0) -> list[dict[str, Any]]:
    """The `event` messages that reached IoT Hub (the emulator's upstream store)."""
    records = query_upstream(site.hub.data_dir / "hub.db", since_epoch_s=since_epoch_s, message_type="event")
    return [json.loads(r.body) for r in records]


def record(kind: str, **figures: Any) -> None:
    """Append figures to the reliability report (`ENERGY_EDGE_RELIABILITY_REPORT`, JSON lines) when one is asked
    for: `make reliability` turns them into the table in benchmarks/README.md."""
    path = os.environ.get("ENERGY_EDGE_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(json.dumps({"kind": kind, **figures}) + "\n")


def alive(site: Site, *module_ids: str) -> bool:
    return all(site.modules[m].proc is not None and site.modules[m].proc.poll() is None for m in module_ids)
