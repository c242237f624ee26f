"""Operators and strangers on a live site: method payloads and twin patches (the table of what once got through,
then generated ones), raw traffic against the emulator and the simulator, modules and the hub killed, and a
configuration that must survive a rejected twin and a restart."""

from __future__ import annotations

import json
import math
import socket
import ssl
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energy_edge.hub.errors import parse_error_body
from energy_edge.hub.store import query_upstream
from energy_edge.service import ServiceClient
from tests.reliability.conftest import FUZZ_EXAMPLES, alive, record, upstream_events, wait_for, wait_status
from tests.support import Site, registry_manager

pytestmark = pytest.mark.integration


def raw_invoke(site: Site, module_id: str, body: bytes) -> tuple[int, Any]:
    """POST a method invocation as raw bytes (the service SDK would refuse to encode some of these)."""
    hub = site.hub.hub_json
    return ServiceClient.from_hub_json(hub, timeout_s=20).invoke(hub["device_id"], module_id, "", raw=body)


def method_body(name: str, payload: Any) -> bytes:
    return json.dumps({"methodName": name, "payload": payload, "responseTimeoutInSeconds": 10}).encode()


# (case, module, method, payload, the field the 400 names) — each got through before
STRICT: list[tuple[str, str, str, Any, str]] = [
    ("true as a percent (curtailed PV to 1 %)", "solar", "set_output", {"percent": True}, "percent"),
    ("true as a limit (set 1 kW)", "microgrid-controller", "set_import_limit", {"import_limit_kw": True},
     "import_limit_kw"),
    ("a string as a power", "battery", "set_power", {"power_kw": "30"}, "power_kw"),
    ("NaN as a power", "battery", "set_power", {"power_kw": math.nan}, "power_kw"),
    ("Infinity as a setpoint", "boiler", "set_temperature", {"setpoint_c": math.inf}, "setpoint_c"),
    ("a number as a switch", "microgrid-controller", "set_peak_shaving", {"enabled": 1}, "enabled"),
    ("NaN in a site dispatch", "controller", "dispatch", {"site_id": "site-1", "power_kw": math.nan,
                                                          "duration_s": 60}, "power_kw"),
]


@pytest.mark.parametrize(("module_id", "method", "payload", "field"), [c[1:] for c in STRICT],
                         ids=[c[0] for c in STRICT])
def test_method_payloads_are_strict(site: Site, module_id: str, method: str, payload: Any, field: str) -> None:
    status, body = raw_invoke(site, module_id, method_body(method, payload))
    assert status == 200, body  # the hub delivered it; the module's answer is in the body
    assert body["status"] == 400, body
    assert [e["field"] for e in body["payload"]["errors"]] == [field], body


@pytest.mark.parametrize("where", ["method payload", "method body"])
def test_the_emulator_answers_400_to_json_nested_3000_deep(site: Site, where: str) -> None:
    deep = "[" * 3000 + "]" * 3000
    body = (f'{{"methodName": "get_status", "payload": {deep}}}' if where == "method payload" else deep).encode()
    status, answer = raw_invoke(site, "controller", body)
    assert status == 400 and parse_error_body(answer)["errorCode"] == 400004, answer  # ArgumentInvalid
    assert site.call("controller", "get_status", {})[0] == 200  # nothing else was disturbed


def test_a_reported_patch_nested_too_deep_is_refused(site: Site) -> None:
    from energy_edge.hub.clients import module_client

    client = module_client(site.hub.hub_json, "telemetry", asyncio=False)
    client.connect()
    try:
        deep: Any = 1
        for _ in range(100):
            deep = {"a": deep}
        with pytest.raises(Exception):  # noqa: B017 - the SDK raises its own ServiceError for a 400
            client.patch_twin_reported_properties({"x": deep})
        client.patch_twin_reported_properties({"probe": 1})  # the link is still up
    finally:
        client.shutdown()


def test_connections_that_never_start_tls_are_closed(site: Site) -> None:
    """200 raw TCP connections to 8883 that never started TLS were still open after 20 s."""
    sockets = [socket.create_connection((site.host, 8883), timeout=5) for _ in range(200)]
    try:
        opened = time.monotonic()
        for sock in sockets:
            sock.settimeout(max(0.1, 25 - (time.monotonic() - opened)))
            assert sock.recv(1) == b"", "the hub should close an idle pre-TLS connection"
        record("tls_idle", connections=len(sockets), closed_after_s=round(time.monotonic() - opened, 1))
    finally:
        for sock in sockets:
            sock.close()
    assert site.call("controller", "get_status", {})[0] == 200


@pytest.mark.parametrize("garbage", [b"\x00" * 64, b"\x10\xff\xff\xff\xff\x7f", b"GET / HTTP/1.1\r\n\r\n",
                                     b"\x30\x05\x00\x03abc" * 100])
def test_mqtt_garbage_after_tls_closes_that_connection_only(site: Site, garbage: bytes) -> None:
    context = ssl.create_default_context(cafile=site.hub.hub_json["ca_cert"])
    with socket.create_connection((site.host, 8883), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=site.host) as tls:
        tls.sendall(garbage)
        tls.settimeout(15)
        try:
            while tls.recv(4096):
                pass
        except (ConnectionResetError, ssl.SSLError):
            pass  # closed: what matters is that the hub went on
    assert site.call("controller", "get_status", {})[0] == 200


def _modbus_port(site: Site, asset_id: str) -> int:
    return next(int(d["port"]) for d in site.sim.state_devices() if d["asset_id"] == asset_id)


@pytest.mark.parametrize("frame", [
    b"\xff" * 12,  # nonsense header
    struct.pack(">HHHBB", 1, 0, 6, 1, 0x2B) + b"\x0e\x01\x00",  # device identification, not served
    struct.pack(">HHHBBHH", 1, 0, 6, 1, 0x03, 0, 2000),  # a read past every limit
    struct.pack(">HHHBBHH", 1, 0, 60000, 1, 0x03, 0, 1),  # a length field far beyond the frame
    struct.pack(">HHHBBHHB", 1, 0, 8, 1, 0x10, 0, 100, 200),  # FC16 claiming more data than it brings
])
def test_modbus_garbage_leaves_the_simulator_serving(site: Site, frame: bytes) -> None:
    port = _modbus_port(site, "mgc-1")
    with socket.create_connection((site.host, port), timeout=5) as sock:
        sock.sendall(frame)
        sock.settimeout(3)
        try:
            sock.recv(260)
        except (TimeoutError, ConnectionResetError):
            pass
    # a well-formed FC4 read on a fresh connection still answers
    with socket.create_connection((site.host, port), timeout=5) as sock:
        sock.sendall(struct.pack(">HHHBBHH", 7, 0, 6, 1, 0x04, 0, 2))
        reply = sock.recv(260)
    assert reply[:2] == b"\x00\x07" and reply[7] == 0x04, reply


# ---------------------------------------------------------------- generated method payloads and twin patches

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3),
    max_leaves=10,
)
FIELDS = ["asset_id", "power_kw", "percent", "enabled", "setpoint_c", "import_limit_kw", "commands", "site_id",
          "duration_s"]
METHODS = [("battery", "set_power"), ("battery", "set_powers"), ("solar", "set_output"), ("boiler", "start"),
           ("boiler", "set_temperature"), ("microgrid-controller", "set_import_limit"),
           ("microgrid-controller", "set_der"), ("controller", "dispatch"), ("controller", "get_status"),
           ("solar", "no_such_method")]


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(target=st.sampled_from(METHODS),
       payload=st.one_of(json_values, st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4)))
def test_generated_method_payloads_get_an_answer_never_a_crash(site: Site, target: tuple[str, str],
                                                               payload: Any) -> None:
    module_id, method = target
    status, body = raw_invoke(site, module_id, method_body(method, payload))
    record("generated", target="method payload", inputs=1, status=body.get("status"))
    assert status == 200, body
    assert body["status"] in (200, 400, 404, 409, 502, 503), body  # never 500: the handler did not fail
    if body["status"] == 400:
        assert body["payload"].get("errors") or body["payload"].get("error"), body
    assert alive(site, module_id)


TWIN_KEYS = ["poll_interval_s", "watchdog_s", "frozen_after_s", "site_id", "devices", "unknown"]


@settings(max_examples=max(5, FUZZ_EXAMPLES // 3), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(patch=st.dictionaries(st.sampled_from(TWIN_KEYS), json_values, min_size=1, max_size=3))
def test_generated_twin_patches_are_applied_or_rejected_and_the_device_stays(site: Site,
                                                                             patch: dict[str, Any]) -> None:
    from azure.iot.hub.models import Twin, TwinProperties

    if "devices" in patch and patch["devices"] == []:
        patch["devices"] = None  # dropping every device is legal when explicit; here we want it kept
    manager = registry_manager(site.hub)
    device_id = site.hub.hub_json["device_id"]
    record("generated", target="twin patch", inputs=1)
    try:
        twin = manager.update_module_twin(device_id, "solar", Twin(properties=TwinProperties(
            desired=json.loads(json.dumps(patch, allow_nan=False)))))
    except ValueError:
        return  # NaN cannot even be written to a twin: JSON has none
    except Exception as exc:  # the service API refused it (400): fine, nothing reached the module
        assert "400" in str(exc) or "Bad Request" in str(exc), exc
        return
    version = twin.properties.desired["$version"]
    config = wait_for(lambda: (c := manager.get_module_twin(device_id, "solar").properties.reported["config"])
                      and c["desired_version"] == version and c, "the module's verdict", 15)
    assert config["status"] in ("applied", "rejected")
    assert [d["asset_id"] for d in config["applied"]["devices"]] == ["pv-1"]
    assert alive(site, "solar")


def test_after_the_generated_patches_the_original_configuration_applies(site: Site) -> None:
    from azure.iot.hub.models import Twin, TwinProperties

    manager = registry_manager(site.hub)
    device_id = site.hub.hub_json["device_id"]
    original = json.loads(site.manifest_path.read_text())["modulesContent"]["solar"]["properties.desired"]
    current = manager.get_module_twin(device_id, "solar").properties.desired
    reset = {k: None for k in current if not k.startswith("$") and k not in original}
    twin = manager.update_module_twin(device_id, "solar", Twin(properties=TwinProperties(
        desired={**reset, **original})))
    version = twin.properties.desired["$version"]
    config = wait_for(lambda: (c := manager.get_module_twin(device_id, "solar").properties.reported["config"])
                      and c["desired_version"] == version and c, "the original configuration", 15)
    assert config["status"] == "applied", config
    assert site.probe is not None
    site.probe.wait_for(lambda p: p.latest["pv-1"]["online"], 15, "pv-1 polled")


# ---------------------------------------------------------------- configuration across restarts


def _set_desired(site: Site, module_id: str, desired: dict[str, Any]) -> dict[str, Any]:
    from azure.iot.hub.models import Twin, TwinProperties

    manager = registry_manager(site.hub)
    device_id = site.hub.hub_json["device_id"]
    twin = manager.update_module_twin(device_id, module_id, Twin(properties=TwinProperties(desired=desired)))
    version = twin.properties.desired["$version"]
    config: dict[str, Any] = wait_for(
        lambda: (c := manager.get_module_twin(device_id, module_id).properties.reported.get("config"))
        and c["desired_version"] == version and c, f"{module_id}'s verdict", 20)
    return config


def test_a_module_restarted_on_a_rejected_twin_runs_on_its_last_applied_configuration(site: Site) -> None:
    """It came up on defaults with `devices: []`: the battery was neither polled nor watched."""
    assert site.probe is not None
    config = _set_desired(site, "battery", {"poll_interval_s": 0})  # rejected
    assert config["status"] == "rejected" and config["errors"][0]["field"] == "poll_interval_s"
    site.modules["battery"].stop()
    started = time.time()
    site.start_module("battery")
    config = _set_desired(site, "battery", {"frozen_after_s": 3.0})  # still rejected: poll_interval_s is 0
    assert config["status"] == "rejected" and "last applied configuration" in (config["fallback"] or ""), config
    assert [d["asset_id"] for d in config["applied"]["devices"]] == ["bess-1"]
    site.probe.wait_for(lambda p: p.latest["bess-1"]["online"] and p.latest["bess-1"]["timestamp"] > time.strftime(
        "%Y-%m-%dT%H:%M:%S", time.gmtime(started)), 20, "bess-1 polled after the restart")
    assert any(e["code"] == "config_rejected" and "last applied" in e["text"] for e in upstream_events(site, started))
    assert _set_desired(site, "battery", {"poll_interval_s": 1.0})["status"] == "applied"


def test_a_null_delete_of_devices_is_rejected(site: Site) -> None:
    config = _set_desired(site, "boiler", {"devices": None})
    assert config["status"] == "rejected" and config["errors"][0]["field"] == "devices"
    assert [d["asset_id"] for d in config["applied"]["devices"]] == ["boiler-1"]
    config = _set_desired(site, "boiler", {"devices": json.loads(site.manifest_path.read_text())
                                           ["modulesContent"]["boiler"]["properties.desired"]["devices"]})
    assert config["status"] == "applied"


# ---------------------------------------------------------------- processes killed


@pytest.mark.parametrize("module_id", ["solar", "battery", "boiler", "microgrid-controller", "controller",
                                       "telemetry"])
def test_a_killed_module_comes_back_with_its_configuration(site: Site, module_id: str) -> None:
    site.modules[module_id].proc.kill()  # type: ignore[union-attr]
    site.modules[module_id].proc.wait(10)  # type: ignore[union-attr]
    restarted = time.time()
    site.start_module(module_id)
    events = wait_for(lambda: [e for e in upstream_events(site, restarted) if e["code"] == "module_started"
                               and e["text"].startswith(module_id)], f"{module_id} started, upstream", 30)
    assert "applied" in events[0]["text"]
    wait_status(site, lambda s: s.get("mode") not in (None, "fail_safe"), "control running", 30)


def test_acknowledged_upstream_messages_survive_the_hub_killed(site: Site) -> None:
    db = Path(site.hub.data_dir) / "hub.db"
    before = {r.id for r in query_upstream(db)}
    assert before
    assert site.hub.proc is not None
    site.hub.proc.kill()
    site.hub.proc.wait(10)
    site.hub.start()
    after = query_upstream(db)
    assert before <= {r.id for r in after}
    bodies = [r.body for r in after]
    assert len(bodies) == len(set(bodies)), "an upstream message was stored twice"
    wait_status(site, lambda s: s.get("mode") not in (None, "fail_safe"), "control running after the hub", 60)


def test_a_device_removed_from_the_configuration_is_left_in_its_safe_state(site: Site) -> None:
    """Released while discharging, a battery went on discharging with nobody to command or watch it."""
    from tests.reliability.conftest import LIMIT_KW

    base = site.sim.state()["site"]["base_load_kw"]
    site.sim.post("/load", {"offset_kw": LIMIT_KW + 40 - base})
    try:
        wait_for(lambda: site.sim.state()["devices"]["bess-1"]["command_kw"] > 5, "the battery discharging", 30)
        devices = json.loads(site.manifest_path.read_text())["modulesContent"]["battery"]["properties.desired"][
            "devices"]
        assert _set_desired(site, "battery", {"devices": []})["status"] == "applied"  # explicit: allowed
        wait_for(lambda: site.sim.state()["devices"]["bess-1"]["command_kw"] == 0, "bess-1 held at 0 kW", 15)
        assert _set_desired(site, "battery", {"devices": devices})["status"] == "applied"
    finally:
        site.sim.post("/load", {"offset_kw": 0})
    assert site.probe is not None
    site.probe.wait_for(lambda p: p.latest["bess-1"]["online"], 20, "bess-1 back under control")


def test_upstream_offline_and_back_delivers_in_order_without_duplicates(site: Site) -> None:
    """Messages wait in the store while the upstream link is down, then arrive in order, each once."""
    import subprocess

    from tests.support import ENERGY_EDGE

    db = Path(site.hub.data_dir) / "hub.db"

    def upstream(state: str) -> None:
        subprocess.run([*ENERGY_EDGE, "hub", "upstream", state, "--data-dir", str(site.hub.data_dir)], check=True,
                       capture_output=True, timeout=30)

    upstream("offline")
    went_offline = time.time()
    try:
        time.sleep(11)  # two summaries (every 5 s) and a capability refresh are due meanwhile
        assert not [r for r in query_upstream(db, since_epoch_s=went_offline + 1)]
    finally:
        upstream("online")
    arrived = wait_for(lambda: (rows := [r for r in query_upstream(db, since_epoch_s=went_offline)
                                         if r.message_type == "siteSummary"]) and len(rows) >= 2 and rows,
                       "the held summaries upstream", 30)
    windows = [json.loads(r.body)["window_start"] for r in arrived]
    assert windows == sorted(windows) and len(set(windows)) == len(windows)
