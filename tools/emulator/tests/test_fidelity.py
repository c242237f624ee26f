"""Where the emulator once accepted what Azure IoT Hub / edgeHub refuse: each row of the divergence table of
issue #18 (docs/emulator.md), driven through the real SDKs (raw HTTP or MQTT only where no SDK call exists).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as paho
import pytest
from azure.iot.device import MethodResponse
from azure.iot.device.exceptions import ClientError, ServiceError
from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties
from msrest.exceptions import HttpOperationError

from energy_edge.hub import identity, mqtt_codec
from energy_edge.hub.clients import module_client
from energy_edge.hub.errors import parse_error_body
from tests.support import HubProcess, registry_manager
from tools.emulator.tests.test_emulator import Inbox, connected

pytestmark = pytest.mark.integration

KB = 1024


def _error_of(exc: HttpOperationError) -> tuple[int, int]:
    """(HTTP status, IoT Hub errorCode) from the SDK's exception."""
    inner = parse_error_body(exc.response.json())
    return exc.response.status_code, inner.get("errorCode", 0)


def _values(total_bytes: int, prefix: str = "k") -> dict[str, str]:
    """String values of 3 KB each (under the 4 KB value limit) adding up to `total_bytes` (a multiple of 3 KB)."""
    assert total_bytes % (3 * KB) == 0
    return {f"{prefix}{n}": "x" * 3 * KB for n in range(total_bytes // (3 * KB))}


# ---------------------------------------------------------------- twin sizes, values and keys (edgeHub)


@pytest.mark.parametrize(
    ("case", "patches", "accepted"),
    [
        ("one reported patch of 39 KB", [_values(39 * KB)], [False]),
        ("three patches of 15 KB: the third passes 32 KB", [_values(15 * KB, p) for p in "abc"],
         [True, True, False]),
        ("one value of 5 KB", [{"big": "x" * 5 * KB}], [False]),
        ("one value of 4 KB", [{"big": "x" * 4000}], [True]),
        ("an integer of 2^53", [{"n": 2**53}], [False]),
        ("an integer of 2^52 - 1", [{"n": 2**52 - 1}], [True]),
        ("a key of 1,100 characters", [{"k" * 1100: 1}], [False]),
        ("nesting 11 levels", [{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {"k": 1}}}}}}}}}}}],
         [False]),
    ],
)
async def test_reported_patch_limits(probe_hub: HubProcess, case: str, patches: list[dict[str, Any]],
                                     accepted: list[bool]) -> None:
    async with connected(probe_hub, "sink") as client:
        # Start from an empty reported section so each case measures only its own patches.
        twin = await client.get_twin()
        await client.patch_twin_reported_properties({k: None for k in twin["reported"] if not k.startswith("$")})
        outcomes = []
        for patch in patches:
            try:
                await client.patch_twin_reported_properties(patch)
                outcomes.append(True)
            except ClientError as exc:
                # The SDK wraps the hub's twin response status in ServiceError ("returned status 400").
                assert isinstance(exc.__cause__, ServiceError), exc
                assert "status 400" in str(exc.__cause__)
                outcomes.append(False)
        assert outcomes == accepted, case
        reported = (await client.get_twin())["reported"]
        for patch, ok in zip(patches, accepted, strict=True):
            assert all((key in reported) == ok for key in patch), f"{case}: a refused patch left no trace"


@pytest.mark.parametrize(
    ("case", "twin", "accepted"),
    [
        ("desired of 39 KB", Twin(properties=TwinProperties(desired=_values(39 * KB))), False),
        ("desired of 30 KB", Twin(properties=TwinProperties(desired=_values(30 * KB))), True),
        ("tags of 9 KB", Twin(tags=_values(9 * KB)), False),
        ("tags of 6 KB", Twin(tags=_values(6 * KB)), True),
    ],
)
async def test_service_twin_section_limits(probe_hub: HubProcess, case: str, twin: Twin, accepted: bool) -> None:
    manager = registry_manager(probe_hub)
    device_id = probe_hub.hub_json["device_id"]
    try:
        # replace (PUT) so the cases do not add up
        await asyncio.to_thread(manager.replace_module_twin, device_id, "sink", twin)
        outcome = True
    except HttpOperationError as exc:
        assert _error_of(exc) == (400, 400004), case
        outcome = False
    assert outcome == accepted, case
    await asyncio.to_thread(manager.replace_module_twin, device_id, "sink", Twin())


async def test_tags_only_patch_updates_tags(probe_hub: HubProcess) -> None:
    manager = registry_manager(probe_hub)
    device_id = probe_hub.hub_json["device_id"]
    before = await asyncio.to_thread(manager.get_module_twin, device_id, "probeB")
    after = await asyncio.to_thread(manager.update_module_twin, device_id, "probeB",
                                    Twin(tags={"site": "s1", "role": {"kind": "probe"}}))
    assert after.tags == {"site": "s1", "role": {"kind": "probe"}}
    assert after.properties.desired["threshold_kw"] == before.properties.desired["threshold_kw"]
    assert after.etag != before.etag
    again = await asyncio.to_thread(manager.get_module_twin, device_id, "probeB")
    assert again.tags == after.tags


async def test_twins_carry_metadata_last_updated(probe_hub: HubProcess) -> None:
    manager = registry_manager(probe_hub)
    device_id = probe_hub.hub_json["device_id"]
    async with connected(probe_hub, "probeA") as client:
        await client.patch_twin_reported_properties({"meta_probe": {"n": 1}})
        twin = await asyncio.to_thread(manager.get_module_twin, device_id, "probeA")
    desired_meta = twin.properties.desired["$metadata"]
    assert desired_meta["interval_s"]["$lastUpdatedVersion"] >= 1
    assert desired_meta["$lastUpdated"].endswith("Z")
    reported_meta = twin.properties.reported["$metadata"]
    assert reported_meta["meta_probe"]["n"]["$lastUpdated"].endswith("Z")
    assert "$lastUpdatedVersion" not in reported_meta["meta_probe"]  # only desired carries versions


# ---------------------------------------------------------------- direct methods


@pytest.mark.parametrize(("payload_kb", "accepted"), [(100, True), (200, False)])
async def test_method_payload_limit(probe_hub: HubProcess, payload_kb: int, accepted: bool) -> None:
    manager = registry_manager(probe_hub)
    device_id = probe_hub.hub_json["device_id"]
    call = CloudToDeviceMethod(method_name="echo", payload={"blob": "x" * payload_kb * KB},
                               response_timeout_in_seconds=5)
    async with connected(probe_hub, "sink") as client:

        async def on_method(request: Any) -> None:
            await client.send_method_response(MethodResponse.create_from_method_request(request, 200, {"ok": 1}))

        client.on_method_request_received = on_method
        if accepted:
            result = await asyncio.to_thread(manager.invoke_device_module_method, device_id, "sink", call)
            assert result.status == 200
        else:
            with pytest.raises(HttpOperationError) as refused:
                await asyncio.to_thread(manager.invoke_device_module_method, device_id, "sink", call)
            assert _error_of(refused.value) == (413, 413001)


async def test_method_errors_carry_numeric_codes(probe_hub: HubProcess) -> None:
    manager = registry_manager(probe_hub)
    device_id = probe_hub.hub_json["device_id"]
    call = CloudToDeviceMethod(method_name="echo", payload={}, response_timeout_in_seconds=5)
    with pytest.raises(HttpOperationError) as offline:
        await asyncio.to_thread(manager.invoke_device_module_method, device_id, "sink", call)
    assert _error_of(offline.value) == (404, 404103)
    async with connected(probe_hub, "sink") as client:

        async def silent(request: Any) -> None:
            return None

        client.on_method_request_received = silent
        with pytest.raises(HttpOperationError) as timed_out:
            await asyncio.to_thread(manager.invoke_device_module_method, device_id, "sink", call)
    assert _error_of(timed_out.value) == (504, 504101)
    body = timed_out.value.response.json()
    inner = json.loads(body["Message"])
    assert set(inner) == {"errorCode", "trackingId", "message", "timestampUtc"}
    assert "ExceptionMessage" in body


# ---------------------------------------------------------------- a module's token reaches only its own identity


def _module_headers(hub: HubProcess, module_id: str) -> dict[str, str]:
    info = hub.hub_json
    fields = dict(p.split("=", 1) for p in info["modules"][module_id]["connection_string"].split(";"))
    resource = identity.module_resource(info["hostname"], info["device_id"], module_id)
    return {"Authorization": identity.make_sas(resource, fields["SharedAccessKey"]),
            "x-ms-edge-moduleId": f"{info['device_id']}/{module_id}"}


async def _call(hub: HubProcess, method: str, path: str, headers: dict[str, str],
                body: Any = None) -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context(cafile=hub.hub_json["ca_cert"])
    async with aiohttp.ClientSession() as session, session.request(
        method, f"https://{hub.host}{path}", json=body, headers=headers, ssl=context
    ) as response:
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize(
    ("method", "path", "body", "expected_status"),
    [
        ("GET", "/twins/{d}/modules/probeA", None, 200),  # its own twin
        ("GET", "/twins/{d}/modules/probeB", None, 401),  # another module's twin
        ("PATCH", "/twins/{d}/modules/probeB", {"properties": {"desired": {"x": 1}}}, 401),
        ("PATCH", "/twins/{d}/modules/probeA", {"properties": {"desired": {"x": 1}}}, 401),  # desired: service
        ("GET", "/admin/status", None, 401),
        ("POST", "/admin/upstream", {"online": False}, 401),
        ("POST", "/devices/{d}/applyConfigurationContent", {"modulesContent": {}}, 401),
        ("GET", "/devices/{d}/modules", None, 401),
        ("PUT", "/configurations/c1", {"content": {}}, 401),
        ("POST", "/devices/query", {"query": "SELECT * FROM devices"}, 401),
    ],
)
async def test_module_token_rights(probe_hub: HubProcess, method: str, path: str, body: Any,
                                   expected_status: int) -> None:
    path = path.replace("{d}", probe_hub.hub_json["device_id"])
    status, answer = await _call(probe_hub, method, path, _module_headers(probe_hub, "probeA"), body)
    assert status == expected_status, answer
    if status == 401:
        assert parse_error_body(answer)["errorCode"] == 401003


async def test_module_may_invoke_another_modules_method(probe_hub: HubProcess) -> None:
    # What edgeHub does allow a module: methods of other modules on its device (the SDK's invoke_method).
    device_id = probe_hub.hub_json["device_id"]
    async with connected(probe_hub, "probeB") as callee, connected(probe_hub, "probeA") as caller:

        async def on_method(request: Any) -> None:
            await callee.send_method_response(MethodResponse.create_from_method_request(request, 200, {"hi": 1}))

        callee.on_method_request_received = on_method
        result = await caller.invoke_method({"methodName": "m", "payload": {}}, device_id, "probeB")
    assert result["status"] == 200


# ---------------------------------------------------------------- workload API: signs only for the calling module


async def _sign(uri: str, module_id: str, generation_id: str) -> tuple[int, dict[str, Any]]:
    body = {"keyId": "primary", "algo": "HMACSHA256", "data": "aGVsbG8="}
    path = f"/modules/{module_id}/genid/{generation_id}/sign?api-version=2019-01-30"
    if uri.startswith("unix://"):
        connector: aiohttp.BaseConnector = aiohttp.UnixConnector(path=uri[len("unix://"):])
        base = "http://localhost"
    else:
        connector, base = aiohttp.TCPConnector(), uri.rstrip("/")
    async with aiohttp.ClientSession(connector=connector) as session, session.post(base + path, json=body) as r:
        return r.status, await r.json(content_type=None)


@pytest.mark.parametrize(
    ("case", "socket_of", "signs_for", "expected_status"),
    [
        ("own socket, own module", "probeA", "probeA", 200),
        ("own socket, another module", "probeA", "probeB", 403),
        ("TCP listener, any module", None, "probeA", 403),
    ],
)
async def test_workload_api_signs_only_for_the_calling_module(
    probe_hub: HubProcess, case: str, socket_of: str | None, signs_for: str, expected_status: int
) -> None:
    info = probe_hub.hub_json
    uri = info["modules"][socket_of]["env"]["IOTEDGE_WORKLOADURI"] if socket_of else info["workload_uri"]
    generation_id = info["modules"][signs_for]["env"]["IOTEDGE_MODULEGENERATIONID"]
    status, body = await _sign(uri, signs_for, generation_id)
    assert status == expected_status, (case, body)
    if status == 200:
        key = dict(p.split("=", 1) for p in info["modules"][signs_for]["connection_string"].split(";"))
        assert body["digest"] == identity.sign(key["SharedAccessKey"], b"hello")


# ---------------------------------------------------------------- SAS expiry ends an MQTT session


def test_sas_expiry_disconnects_an_mqtt_session(probe_hub: HubProcess) -> None:
    info = probe_hub.hub_json
    key = dict(p.split("=", 1) for p in info["modules"]["sink"]["connection_string"].split(";"))["SharedAccessKey"]
    resource = identity.module_resource(info["hostname"], info["device_id"], "sink")
    connected_event, disconnected_event = threading.Event(), threading.Event()
    client = paho.Client(client_id=f"{info['device_id']}/sink", clean_session=False, protocol=paho.MQTTv311)
    client.username_pw_set(f"{info['hostname']}/{info['device_id']}/sink/?api-version=2019-10-01",
                           identity.make_sas(resource, key, ttl_s=3))
    client.tls_set(ca_certs=info["ca_cert"])
    client.on_connect = lambda c, u, f, rc: connected_event.set() if rc == 0 else None
    client.on_disconnect = lambda c, u, rc: disconnected_event.set()
    client.reconnect_delay_set(60, 60)  # no reconnect within the test: the token would be expired anyway
    client.connect(probe_hub.host, 8883, keepalive=60)
    client.loop_start()
    try:
        assert connected_event.wait(10)
        assert not disconnected_event.wait(1)  # still inside the token's lifetime
        assert disconnected_event.wait(10)  # closed by the hub when `se` passed
    finally:
        client.loop_stop()
        client.disconnect()


async def test_sdk_renews_its_token_and_keeps_working(probe_hub: HubProcess) -> None:
    # The device SDK renews a SAS token 120 s before it expires: with a 124 s lifetime it reconnects with a
    # token newly signed by its workload socket about every 4 s, the path every long-running module takes.
    client = module_client(probe_hub.hub_json, "sink", sastoken_ttl=124)
    reconnects = Inbox()

    async def on_state_change() -> None:
        if client.connected:
            reconnects.put(True)

    client.on_connection_state_change = on_state_change
    await client.connect()
    try:
        for _ in range(3):  # the first connect, then two renewals (each a reconnect with the new token)
            await reconnects.get(30)
        twin = await client.get_twin()
        assert "$version" in twin["desired"]
        await client.send_message_to_output("after renewal", "out")
    finally:
        await client.shutdown()


def _raw_publish_outcome(hub: HubProcess, payload: bytes, qos: int) -> str:
    """Connect as `sink` over raw TLS, publish once, and report what the hub did: "puback" or "closed".

    Raw sockets, because paho's network thread dies on the TLS error of a connection the server has
    closed mid-write and then never reports the disconnect."""
    info = hub.hub_json
    key = dict(p.split("=", 1) for p in info["modules"]["sink"]["connection_string"].split(";"))["SharedAccessKey"]
    resource = identity.module_resource(info["hostname"], info["device_id"], "sink")
    connect = mqtt_codec.encode_connect(mqtt_codec.Connect(
        f"{info['device_id']}/sink", f"{info['hostname']}/{info['device_id']}/sink/?api-version=2019-10-01",
        identity.make_sas(resource, key).encode(), True, 60, 4))
    publish = mqtt_codec.encode_publish(mqtt_codec.Publish(
        f"devices/{info['device_id']}/modules/sink/messages/events/", payload, qos=qos, packet_id=7))
    context = ssl.create_default_context(cafile=info["ca_cert"])
    with socket.create_connection((hub.host, 8883), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=hub.host) as tls:
        tls.sendall(connect)
        assert tls.recv(4)[:1] == b"\x20"  # CONNACK
        try:
            tls.sendall(publish)
            answer = tls.recv(4)
        except (ConnectionError, ssl.SSLError):
            return "closed"
        return "puback" if answer[:1] == b"\x40" else "closed" if answer == b"" else f"unexpected {answer!r}"


@pytest.mark.parametrize(
    ("case", "payload_bytes", "qos", "outcome"),
    [
        ("200 KB at QoS 1", 200 * KB, 1, "puback"),
        ("300 KB at QoS 1: over IoT Hub's 256 KB", 300 * KB, 1, "closed"),
        ("QoS 2, which IoT Hub does not support", 10, 2, "closed"),
    ],
)
def test_mqtt_message_limits(probe_hub: HubProcess, case: str, payload_bytes: int, qos: int, outcome: str) -> None:
    assert _raw_publish_outcome(probe_hub, b"x" * payload_bytes, qos) == outcome, case


# ---------------------------------------------------------------- unimplemented operations, hub.json


async def test_unimplemented_operations_answer_501_json(probe_hub: HubProcess) -> None:
    manager = registry_manager(probe_hub)
    with pytest.raises(HttpOperationError) as refused:
        await asyncio.to_thread(manager.create_device_with_sas, "leaf-1", None, None, "enabled")
    assert _error_of(refused.value) == (501, 501000)
    assert "not implemented in the energy-edge emulator" in parse_error_body(refused.value.response.json())["message"]
    service_headers = {"Authorization": identity.make_sas(
        probe_hub.hub_json["hostname"], dict(p.split("=", 1) for p in
                                             probe_hub.service_connection_string().split(";"))["SharedAccessKey"],
        policy="iothubowner")}
    for method, path in [("GET", "/jobs/v2/query"), ("DELETE", "/admin/status"), ("GET", "/no/such/thing")]:
        status, body = await _call(probe_hub, method, path, service_headers)
        assert (status, parse_error_body(body).get("errorCode")) == (501, 501000), path


def test_hub_json_advertises_only_what_works(probe_hub: HubProcess) -> None:
    # Leaf devices are not served: no device connection string is advertised (a CONNACK 2 waiting to happen).
    info = probe_hub.hub_json
    assert "device_connection_string" not in info
    for module in info["modules"].values():
        assert Path(module["env"]["IOTEDGE_WORKLOADURI"].removeprefix("unix://")).is_socket()
