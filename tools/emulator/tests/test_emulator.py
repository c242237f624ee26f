"""The emulator driven only through the real Azure SDKs (azure-iot-device, azure-iot-hub)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from azure.iot.device import Message, MethodResponse
from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties
from msrest.exceptions import HttpOperationError

from energy_edge.hub import identity
from energy_edge.hub.store import query_upstream
from energy_edge.service import ServiceClient
from tests.support import ENERGY_EDGE, REPO, HubProcess, module_client, registry_manager
from tools.emulator.tests.conftest import FIXTURES

pytestmark = pytest.mark.integration

RECEIVE_TIMEOUT_S = 15


class Inbox:
    """Collects what SDK handlers (which run on the SDK's own loop) receive, for the test's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(self, item: Any) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    async def get(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> Any:
        return await asyncio.wait_for(self.queue.get(), timeout_s)

    async def assert_empty(self, settle_s: float = 0.5) -> None:
        # Only used to prove a message is NOT delivered; the wait bounds how long we look.
        with pytest.raises(asyncio.TimeoutError):
            item = await asyncio.wait_for(self.queue.get(), settle_s)
            pytest.fail(f"unexpected delivery: {item}")


@contextlib.asynccontextmanager
async def connected(hub: HubProcess, module_id: str, inbox: Inbox | None = None) -> AsyncIterator[Any]:
    client = module_client(hub, module_id)
    if inbox is not None:

        async def on_message(message: Any) -> None:
            inbox.put(message)

        client.on_message_received = on_message
    await client.connect()
    try:
        yield client
    finally:
        await client.shutdown()


def json_message(body: dict[str, Any], **properties: str) -> Message:
    message = Message(json.dumps(body), message_id=str(uuid.uuid4()),
                      content_encoding="utf-8", content_type="application/json")
    message.custom_properties.update(properties)
    return message


# ---------------------------------------------------------------- routing


async def test_routed_message_keeps_properties_and_where_filters(probe_hub: HubProcess) -> None:
    inbox = Inbox()
    async with connected(probe_hub, "probeB", inbox), connected(probe_hub, "probeA") as sender:
        await sender.send_message_to_output(json_message({"n": 1}, alert="yes", site="s1"), "out1")
        await sender.send_message_to_output(json_message({"n": 2}, alert="no"), "out1")  # WHERE false
        await sender.send_message_to_output(json_message({"n": 3}, alert="yes"), "out1")
        first, second = await inbox.get(), await inbox.get()
        await inbox.assert_empty()
    assert [json.loads(m.data)["n"] for m in (first, second)] == [1, 3]
    assert first.input_name == "alerts"
    assert first.custom_properties["alert"] == "yes"
    assert first.custom_properties["site"] == "s1"
    assert first.custom_properties["$.cmid"] == "probeA"  # edgeHub's connection module id
    assert first.custom_properties["$.cdid"] == probe_hub.hub_json["device_id"]
    assert first.content_type == "application/json"


@pytest.mark.parametrize(
    ("power_kw", "delivered"),
    [(5, False), (11, True), (60, True)],  # 60 matches two routes to one endpoint: delivered once
)
async def test_body_condition_routes_and_deduplicates(probe_hub: HubProcess, power_kw: int, delivered: bool) -> None:
    inbox = Inbox()
    async with connected(probe_hub, "probeB", inbox), connected(probe_hub, "probeA") as sender:
        await sender.send_message_to_output(json_message({"power_kw": power_kw}), "telemetry")
        if delivered:
            message = await inbox.get()
            assert message.input_name == "high"
            assert json.loads(message.data) == {"power_kw": power_kw}
        await inbox.assert_empty()


async def test_input_messages_wait_for_their_module_in_order(probe_hub: HubProcess) -> None:
    async with connected(probe_hub, "probeA") as sender:
        for n in range(5):
            await sender.send_message_to_output(json_message({"n": n}), "sink")
    inbox = Inbox()
    async with connected(probe_hub, "sink", inbox):
        received = [json.loads((await inbox.get()).data)["n"] for _ in range(5)]
    assert received == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- twins


async def test_twin_get_desired_push_and_reported_patch(probe_hub: HubProcess) -> None:
    patches = Inbox()
    async with connected(probe_hub, "probeA") as client:

        async def on_patch(patch: dict[str, Any]) -> None:
            patches.put(patch)

        client.on_twin_desired_properties_patch_received = on_patch
        twin = await client.get_twin()
        assert twin["desired"]["interval_s"] == 5  # from the manifest
        version = twin["desired"]["$version"]

        manager = registry_manager(probe_hub)
        device_id = probe_hub.hub_json["device_id"]
        await asyncio.to_thread(
            manager.update_module_twin, device_id, "probeA",
            Twin(properties=TwinProperties(desired={"interval_s": 2, "nested": {"a": None}})),
        )
        patch = await patches.get()
        assert patch["interval_s"] == 2
        assert patch["$version"] == version + 1
        twin = await client.get_twin()
        assert twin["desired"]["nested"] == {"b": 2}  # null deleted the key, as IoT Hub does

        await client.patch_twin_reported_properties({"config": {"status": "applied", "version": version + 1}})
        service_twin = await asyncio.to_thread(manager.get_module_twin, device_id, "probeA")
        assert service_twin.properties.reported["config"]["status"] == "applied"
        assert service_twin.connection_state == "Connected"


async def test_service_update_with_stale_etag_is_refused(probe_hub: HubProcess) -> None:
    manager = registry_manager(probe_hub)
    device_id = probe_hub.hub_json["device_id"]
    twin = await asyncio.to_thread(manager.get_module_twin, device_id, "probeB")
    await asyncio.to_thread(
        manager.update_module_twin, device_id, "probeB",
        Twin(properties=TwinProperties(desired={"threshold_kw": 12})), twin.etag,
    )
    with pytest.raises(HttpOperationError) as refused:
        await asyncio.to_thread(
            manager.update_module_twin, device_id, "probeB",
            Twin(properties=TwinProperties(desired={"threshold_kw": 13})), twin.etag,
        )
    assert refused.value.response.status_code == 412
    current = await asyncio.to_thread(manager.get_module_twin, device_id, "probeB")
    assert current.properties.desired["threshold_kw"] == 12


# ---------------------------------------------------------------- direct methods


def _echo_handler(client: Any, status: int = 200) -> Any:
    async def on_method(request: Any) -> None:
        if request.name == "echo":
            response = MethodResponse.create_from_method_request(request, status, {"echo": request.payload})
        else:
            response = MethodResponse.create_from_method_request(request, 404, {"error": "unknown method"})
        await client.send_method_response(response)

    return on_method


async def test_module_to_module_invoke_method(probe_hub: HubProcess) -> None:
    device_id = probe_hub.hub_json["device_id"]
    async with connected(probe_hub, "probeB") as callee, connected(probe_hub, "probeA") as caller:
        callee.on_method_request_received = _echo_handler(callee)
        result = await caller.invoke_method(
            {"methodName": "echo", "payload": {"x": 1}, "responseTimeoutInSeconds": 10}, device_id, "probeB"
        )
        assert result == {"status": 200, "payload": {"echo": {"x": 1}}}
        result = await caller.invoke_method({"methodName": "nope", "payload": None}, device_id, "probeB")
        assert result["status"] == 404


async def test_service_invoke_method_answers_404_and_504(probe_hub: HubProcess) -> None:
    manager = registry_manager(probe_hub)
    device_id = probe_hub.hub_json["device_id"]
    call = CloudToDeviceMethod(method_name="echo", payload={"v": 2}, response_timeout_in_seconds=5)
    with pytest.raises(HttpOperationError) as offline:
        await asyncio.to_thread(manager.invoke_device_module_method, device_id, "sink", call)
    assert offline.value.response.status_code == 404  # sink is not connected

    async with connected(probe_hub, "sink") as client:
        client.on_method_request_received = _echo_handler(client)
        result = await asyncio.to_thread(manager.invoke_device_module_method, device_id, "sink", call)
        assert (result.status, result.payload) == (200, {"echo": {"v": 2}})

        async def silent(request: Any) -> None:
            return None  # never answers

        client.on_method_request_received = silent
        with pytest.raises(HttpOperationError) as timed_out:
            await asyncio.to_thread(manager.invoke_device_module_method, device_id, "sink", call)
        assert timed_out.value.response.status_code == 504


# ---------------------------------------------------------------- authentication


def _raw_connect(hub: HubProcess, module_id: str, password: str) -> int:
    """CONNACK return code for a raw paho MQTT 3.1.1 client, to check the exact code."""
    info = hub.hub_json
    codes: list[int] = []
    client = paho.Client(client_id=f"{info['device_id']}/{module_id}", clean_session=False,
                         protocol=paho.MQTTv311)
    client.username_pw_set(f"{info['hostname']}/{info['device_id']}/{module_id}/?api-version=2019-10-01", password)
    client.tls_set(ca_certs=info["ca_cert"])
    client.on_connect = lambda c, u, f, rc: codes.append(rc)
    client.connect(hub.host, 8883)
    deadline = time.monotonic() + 10
    while not codes and time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    return codes[0]


def _module_key(hub: HubProcess, module_id: str) -> str:
    fields = dict(p.split("=", 1) for p in hub.hub_json["modules"][module_id]["connection_string"].split(";"))
    return fields["SharedAccessKey"]


@pytest.mark.parametrize(
    ("case", "expected_rc"),
    [
        ("valid", 0),
        ("wrong key", 5),
        ("wrong resource", 5),
        ("expired", 5),
        ("not a SAS", 4),
    ],
)
def test_sas_authentication_connack_codes(probe_hub: HubProcess, case: str, expected_rc: int) -> None:
    info = probe_hub.hub_json
    resource = identity.module_resource(info["hostname"], info["device_id"], "probeB")
    key = _module_key(probe_hub, "probeB")
    password = {
        "valid": identity.make_sas(resource, key),
        "wrong key": identity.make_sas(resource, identity.new_key()),
        "wrong resource": identity.make_sas(resource.replace("probeB", "probeA"), key),
        "expired": identity.make_sas(resource, key, ttl_s=-60),
        "not a SAS": "hunter2",
    }[case]
    assert _raw_connect(probe_hub, "probeB", password) == expected_rc


async def test_sdk_with_wrong_key_is_refused(probe_hub: HubProcess) -> None:
    from azure.iot.device.aio import IoTHubModuleClient
    from azure.iot.device.exceptions import ClientError, CredentialError

    good = probe_hub.hub_json["modules"]["probeB"]["connection_string"]
    bad = good.replace(_module_key(probe_hub, "probeB"), identity.new_key())
    client = IoTHubModuleClient.create_from_connection_string(
        bad, server_verification_cert=Path(probe_hub.hub_json["ca_cert"]).read_text(), connection_retry=False
    )
    with pytest.raises((CredentialError, ClientError)):
        await client.connect()
    await client.shutdown()


# ---------------------------------------------------------------- upstream and store-and-forward


async def test_upstream_offline_then_delivered_in_order(probe_hub: HubProcess) -> None:
    data_dir = str(probe_hub.data_dir)
    tag = uuid.uuid4().hex
    subprocess.run([*ENERGY_EDGE, "hub", "upstream", "offline", "--data-dir", data_dir], cwd=REPO, check=True,
                   capture_output=True)
    async with connected(probe_hub, "probeA") as sender:
        for n in range(10):
            await sender.send_message_to_output(json_message({"n": n, "tag": tag}, messageType="test"), "out2")

    def tagged() -> list[int]:
        records = query_upstream(probe_hub.data_dir / "hub.db", module_id="probeA")
        return [r.body_json()["n"] for r in records if (r.body_json() or {}).get("tag") == tag]

    assert tagged() == []  # held while offline
    status = subprocess.run([*ENERGY_EDGE, "hub", "upstream", "online", "--data-dir", data_dir], cwd=REPO,
                            check=True, capture_output=True, text=True)
    assert json.loads(status.stdout)["upstream_online"] is True
    deadline = time.monotonic() + RECEIVE_TIMEOUT_S
    while len(tagged()) < 10 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # polling a file another process writes
    assert tagged() == list(range(10))

    listed = subprocess.run(
        [*ENERGY_EDGE, "hub", "messages", "--data-dir", data_dir, "--module", "probeA", "--since", "10m", "--json"],
        cwd=REPO, check=True, capture_output=True, text=True,
    )
    rows = [r for r in json.loads(listed.stdout) if isinstance(r["body"], dict) and r["body"].get("tag") == tag]
    assert [r["body"]["n"] for r in rows] == list(range(10))
    assert rows[0]["properties"]["messageType"] == "test"
    assert rows[0]["outputName"] == "out2"


async def test_emulator_restart_clients_reconnect_and_resume(tmp_path: Path) -> None:
    hub = HubProcess(FIXTURES / "probe.deployment.json", tmp_path).start()
    try:
        inbox = Inbox()
        async with connected(hub, "probeB", inbox), connected(hub, "probeA") as sender:
            await sender.send_message_to_output(json_message({"n": 1}, alert="yes"), "out1")
            assert json.loads((await inbox.get()).data) == {"n": 1}
            # QoS 1 is at-least-once: a message whose PUBACK the hub has not processed yet is delivered again
            # after a restart. Stop only once the hub has removed it from its queue, so a second delivery of
            # n=1 below would be a real duplicate.
            admin = ServiceClient.from_hub_json(hub.hub_json)
            deadline = time.monotonic() + 10
            while admin.call("GET", "/admin/status")[1]["queue_depth"] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert hub.stop() == 0
            hub.start()
            # Both clients reconnect by themselves; the session (subscriptions) survived the restart.
            await asyncio.wait_for(sender.send_message_to_output(json_message({"n": 2}, alert="yes"), "out1"), 60)
            assert json.loads((await inbox.get(60)).data) == {"n": 2}
    finally:
        hub.stop()


# ---------------------------------------------------------------- bad configuration


def test_bad_route_is_refused_with_its_name_and_position(tmp_path: Path) -> None:
    manifest = json.loads((FIXTURES / "probe.deployment.json").read_text())
    routes = manifest["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    routes["broken"] = "FROM /messages/modules/probeA/outputs/* WHERE alert = INTO $upstream"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(manifest))
    result = subprocess.run(
        [*ENERGY_EDGE, "hub", "--manifest", str(path), "--data-dir", str(tmp_path / "hub"), "--host", "127.0.0.1"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "broken" in result.stderr
    assert "column" in result.stderr


def test_port_in_use_exits_non_zero_naming_the_port(probe_hub: HubProcess, tmp_path: Path) -> None:
    result = subprocess.run(
        [*ENERGY_EDGE, "hub", "--manifest", str(FIXTURES / "probe.deployment.json"),
         "--data-dir", str(tmp_path), "--host", probe_hub.host],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert f"{probe_hub.host}:8883" in result.stderr
    assert "--host" in result.stderr
