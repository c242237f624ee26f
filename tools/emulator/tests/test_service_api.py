"""The IoT Hub service API operators and pipelines use, through the real azure-iot-hub SDK: module identities,
the device twin and identity, the query language subset, and bad input answered as IoT Hub answers it.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from azure.iot.hub.models import QuerySpecification, Twin, TwinProperties
from msrest.exceptions import HttpOperationError

from energy_edge.hub import identity
from energy_edge.hub.errors import parse_error_body
from tests.support import HubProcess, module_client, registry_manager
from tools.emulator.tests.conftest import FIXTURES
from tools.emulator.tests.test_emulator import connected
from tools.emulator.tests.test_fidelity import _call, _error_of

pytestmark = pytest.mark.integration


# ---------------------------------------------------------------- module identities


async def test_module_identity_crud_and_the_new_module_connects(probe_hub: HubProcess) -> None:
    manager = registry_manager(probe_hub)
    device_id = probe_hub.hub_json["device_id"]
    module_id = f"extra-{uuid.uuid4().hex[:6]}"
    primary, secondary = identity.new_key(), identity.new_key()
    created = await asyncio.to_thread(manager.create_module_with_sas, device_id, module_id, "ops", primary,
                                      secondary)
    assert (created.module_id, created.managed_by) == (module_id, "ops")
    assert created.authentication.symmetric_key.primary_key == primary
    listed = await asyncio.to_thread(manager.get_modules, device_id)
    assert module_id in {m.module_id for m in listed}

    # The new identity connects with its key, exactly as a module created on Azure would.
    assert module_id in probe_hub.hub_json["modules"]  # hub.json follows the registry
    client = module_client(probe_hub, module_id)
    await client.connect()
    assert (await asyncio.to_thread(manager.get_module, device_id, module_id)).connection_state == "Connected"
    await client.shutdown()

    new_primary = identity.new_key()
    updated = await asyncio.to_thread(manager.update_module_with_sas, device_id, module_id, "ops", created.etag,
                                      new_primary, secondary)
    assert updated.authentication.symmetric_key.primary_key == new_primary
    with pytest.raises(HttpOperationError) as stale:
        await asyncio.to_thread(manager.update_module_with_sas, device_id, module_id, "ops", created.etag,
                                primary, secondary)
    assert _error_of(stale.value) == (412, 412001)

    await asyncio.to_thread(manager.delete_module, device_id, module_id)
    with pytest.raises(HttpOperationError) as gone:
        await asyncio.to_thread(manager.get_module, device_id, module_id)
    assert _error_of(gone.value) == (404, 404010)
    assert module_id not in probe_hub.hub_json["modules"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"moduleId": "m1", "authentication": {"type": "selfSigned"}}, (501, 501000)),
        ({"moduleId": "m1", "authentication": {"type": "sas", "symmetricKey": {"primaryKey": "short"}}},
         (400, 400004)),
        ({"moduleId": "other"}, (400, 400004)),
        ({"moduleId": "m1", "colour": "blue"}, (400, 400004)),
    ],
)
async def test_module_create_refusals(probe_hub: HubProcess, body: dict[str, Any],
                                      expected: tuple[int, int]) -> None:
    status, answer = await _call(probe_hub, "PUT", f"/devices/{probe_hub.hub_json['device_id']}/modules/m1",
                                 _service_headers(probe_hub), body)
    assert (status, parse_error_body(answer).get("errorCode")) == expected, answer


def _service_headers(hub: HubProcess) -> dict[str, str]:
    fields = dict(p.split("=", 1) for p in hub.service_connection_string().split(";"))
    return {"Authorization": identity.make_sas(fields["HostName"], fields["SharedAccessKey"], policy="iothubowner")}


# ---------------------------------------------------------------- device twin and identity


async def test_device_identity_and_twin(probe_hub: HubProcess) -> None:
    manager = registry_manager(probe_hub)
    device_id = probe_hub.hub_json["device_id"]
    device = await asyncio.to_thread(manager.get_device, device_id)
    assert device.device_id == device_id
    assert device.capabilities.iot_edge is True
    assert device.authentication.symmetric_key.primary_key is None  # no device credential is advertised

    twin = await asyncio.to_thread(manager.get_twin, device_id)
    assert twin.device_id == device_id
    updated = await asyncio.to_thread(manager.update_twin, device_id,
                                      Twin(tags={"site": "s1", "ring": "canary"}), twin.etag)
    assert updated.tags == {"site": "s1", "ring": "canary"}
    merged = await asyncio.to_thread(manager.update_twin, device_id, Twin(tags={"ring": None, "zone": 3}))
    assert merged.tags == {"site": "s1", "zone": 3}  # PATCH merges, null deletes
    replaced = await asyncio.to_thread(manager.replace_twin, device_id,
                                       Twin(tags={"only": True}, properties=TwinProperties(desired={"d": 1})))
    assert replaced.tags == {"only": True}
    assert replaced.properties.desired["d"] == 1
    with pytest.raises(HttpOperationError) as stale:
        await asyncio.to_thread(manager.update_twin, device_id, Twin(tags={"x": 1}), twin.etag)
    assert _error_of(stale.value) == (412, 412001)
    with pytest.raises(HttpOperationError) as unknown:
        await asyncio.to_thread(manager.get_twin, "no-such-device")
    assert _error_of(unknown.value) == (404, 404001)
    await asyncio.to_thread(manager.replace_twin, device_id, Twin())


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "expected"),
    [
        ("PATCH", "/twins/{d}/modules/probeA", b"{not json", {}, (400, 400006)),
        ("PATCH", "/twins/{d}/modules/probeA", {"tagz": {"a": 1}}, {}, (400, 400004)),
        ("PATCH", "/twins/{d}/modules/probeA", {"properties": {"wanted": {}}}, {}, (400, 400004)),
        ("PATCH", "/twins/{d}/modules/probeA", {"properties": {"reported": {"a": 1}}}, {}, (400, 400004)),
        ("PATCH", "/twins/{d}/modules/probeA", {"tags": "x"}, {}, (400, 400004)),
        ("PATCH", "/twins/{d}/modules/probeA", {"tags": {"a.b": 1}}, {}, (400, 400004)),
        ("PATCH", "/twins/{d}/modules/probeA", {"tags": {"a": 1}}, {"If-Match": '"AAAAAAAAAAA="'}, (412, 412001)),
        ("PATCH", "/twins/{d}/modules/nosuch", {"tags": {"a": 1}}, {}, (404, 404010)),
        ("GET", "/twins/other-device/modules/probeA", None, {}, (404, 404001)),
        ("POST", "/twins/{d}/modules/probeA/methods", {"methodName": ""}, {}, (400, 400004)),
        ("POST", "/devices/query", {"question": "?"}, {}, (400, 400004)),
        ("GET", "/configurations/nosuch", None, {}, (404, 404004)),
        ("GET", "/twins/{d}", None, {"Authorization": "SharedAccessSignature sr=x&sig=y&se=1&skn=iothubowner"},
         (401, 401003)),
        ("GET", "/twins/{d}", None, {"Authorization": ""}, (401, 401003)),
    ],
)
async def test_bad_input_gets_iot_hubs_status_and_body(probe_hub: HubProcess, method: str, path: str, body: Any,
                                                       headers: dict[str, str], expected: tuple[int, int]) -> None:
    path = path.replace("{d}", probe_hub.hub_json["device_id"])
    all_headers = {**_service_headers(probe_hub), **headers}
    context = ssl.create_default_context(cafile=probe_hub.hub_json["ca_cert"])
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with aiohttp.ClientSession() as session, session.request(
        method, f"https://{probe_hub.host}{path}", headers=all_headers, ssl=context, **kwargs
    ) as response:
        answer = await response.json(content_type=None)
        assert response.content_type == "application/json"
    assert (response.status, parse_error_body(answer).get("errorCode")) == expected, answer


# ---------------------------------------------------------------- query language


@pytest.fixture(scope="module")
def query_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """A hub of its own with known tags and reported properties on each module twin."""
    hub = HubProcess(FIXTURES / "probe.deployment.json", tmp_path_factory.mktemp("query-hub")).start()

    async def prepare() -> None:
        manager = registry_manager(hub)
        device_id = hub.hub_json["device_id"]
        tags = {"probeA": {"site": "s1", "tier": 1}, "probeB": {"site": "s2", "tier": 2}, "sink": {"tier": 3}}
        for module_id, module_tags in tags.items():
            await asyncio.to_thread(manager.update_module_twin, device_id, module_id, Twin(tags=module_tags))
        async with connected(hub, "probeA") as client:
            await client.patch_twin_reported_properties({"config": {"status": "applied"}, "power_kw": 4.5})
        async with connected(hub, "probeB") as client:
            await client.patch_twin_reported_properties({"config": {"status": "rejected"}, "power_kw": 12})
        await asyncio.to_thread(manager.update_twin, device_id, Twin(tags={"site": "s1"}))

    asyncio.run(prepare())
    yield hub
    assert hub.stop() == 0


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # $edgeAgent and $edgeHub are module twins of an edge device too, holding the applied deployment
        ("SELECT * FROM devices.modules", ["$edgeAgent", "$edgeHub", "probeA", "probeB", "sink"]),
        ("SELECT * FROM devices.modules WHERE IS_DEFINED(properties.desired.routes)", ["$edgeHub"]),
        ("SELECT * FROM devices.modules WHERE tags.site = 's1'", ["probeA"]),
        ('select * from devices.modules where tags.site = "s2"', ["probeB"]),
        ("SELECT * FROM devices.modules WHERE tags.tier >= 2", ["probeB", "sink"]),
        ("SELECT * FROM devices.modules WHERE tags.tier > 1 AND tags.tier < 3", ["probeB"]),
        ("SELECT * FROM devices.modules WHERE tags.site = 's1' OR tags.tier = 3", ["probeA", "sink"]),
        ("SELECT * FROM devices.modules WHERE NOT (tags.site = 's1')", ["probeB"]),  # undefined stays undefined
        ("SELECT * FROM devices.modules WHERE NOT IS_DEFINED(tags.site) AND tags.tier = 3", ["sink"]),
        ("SELECT * FROM devices.modules WHERE IS_DEFINED(properties.reported.config)", ["probeA", "probeB"]),
        ("SELECT * FROM devices.modules WHERE properties.reported.config.status = 'rejected'", ["probeB"]),
        ("SELECT * FROM devices.modules WHERE properties.reported.power_kw > 10", ["probeB"]),
        ("SELECT * FROM devices.modules WHERE properties.desired.interval_s = 5", ["probeA"]),
        ("SELECT * FROM devices.modules WHERE moduleId = 'sink'", ["sink"]),
        ("SELECT * FROM devices.modules WHERE moduleId != 'sink' AND tags.site <> 's2'", ["probeA"]),
        ("SELECT * FROM devices.modules WHERE tags.site = 1", []),  # no conversion between types
        ("SELECT * FROM devices WHERE tags.site = 's1'", ["(device)"]),
        ("SELECT * FROM devices WHERE tags.site = 's2'", []),
    ],
)
async def test_query(query_hub: HubProcess, query: str, expected: list[str]) -> None:
    manager = registry_manager(query_hub)
    result = await asyncio.to_thread(manager.query_iot_hub, QuerySpecification(query=query))
    found = sorted(t.module_id or "(device)" for t in result.items)
    assert found == expected


async def test_query_pages(query_hub: HubProcess) -> None:
    manager = registry_manager(query_hub)
    spec = QuerySpecification(query="SELECT * FROM devices.modules WHERE IS_DEFINED(tags.tier)")
    first = await asyncio.to_thread(manager.query_iot_hub, spec, None, 2)
    assert len(first.items) == 2 and first.continuation_token
    second = await asyncio.to_thread(manager.query_iot_hub, spec, first.continuation_token, 2)
    assert [t.module_id for t in [*first.items, *second.items]] == ["probeA", "probeB", "sink"]
    assert not second.continuation_token


@pytest.mark.parametrize(
    ("query", "expected", "reason"),
    [
        ("SELECT deviceId FROM devices", (501, 501000), "projections"),
        ("SELECT TOP 2 * FROM devices.modules", (501, 501000), "TOP"),
        ("SELECT * FROM devices.jobs", (501, 501000), "devices.jobs"),
        ("SELECT * FROM devices GROUP BY tags.site", (501, 501000), "GROUP BY"),
        ("SELECT * FROM devices WHERE tags.site IN ['s1']", (501, 501000), "IN"),
        ("SELECT * FROM devices WHERE STARTSWITH(tags.site, 's')", (501, 501000), "STARTSWITH"),
        ("SELECT * FROM devices WHERE", (400, 400004), "ends too early"),
        ("SELEKT * FROM devices", (400, 400004), "expected SELECT"),
        ("SELECT * FROM devices WHERE tags.site = 's1' tags", (400, 400004), "unexpected"),
    ],
)
async def test_query_refusals_name_the_reason(query_hub: HubProcess, query: str, expected: tuple[int, int],
                                              reason: str) -> None:
    manager = registry_manager(query_hub)
    with pytest.raises(HttpOperationError) as refused:
        await asyncio.to_thread(manager.query_iot_hub, QuerySpecification(query=query))
    assert _error_of(refused.value) == expected
    assert reason in parse_error_body(refused.value.response.json())["message"]

