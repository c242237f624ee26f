"""Unit tables: MQTT codec, IoT Hub topic property bags, twin merge semantics, SAS tokens."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from energy_edge.hub import identity, mqtt_codec, topics
from energy_edge.hub.mqtt_codec import Connect, MqttProtocolError, PacketType, Publish, Subscribe
from energy_edge.hub.query import parse_condition
from energy_edge.hub.store import HubMessage
from energy_edge.hub.twins import Twin, TwinError, merge_patch, removal_patch


@pytest.mark.parametrize(
    ("length", "encoded"),
    [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"), (16_384, b"\x80\x80\x01"),
     (268_435_455, b"\xff\xff\xff\x7f")],
)
def test_remaining_length(length: int, encoded: bytes) -> None:
    assert mqtt_codec.encode_remaining_length(length) == encoded


async def _roundtrip(raw: bytes) -> mqtt_codec.Packet:
    reader = asyncio.StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    return mqtt_codec.decode(*await mqtt_codec.read_packet(reader))


@pytest.mark.parametrize(
    "packet",
    [
        Connect("dev/mod", "hub/dev/mod/?api-version=2019-10-01", b"SharedAccessSignature sr=x", False, 60, 4),
        Connect("c", None, None, True, 0, 4),
        Publish("devices/d/modules/m/messages/events/%24.on=o", b'{"a":1}', qos=1, packet_id=7),
        Publish("t", b"", qos=0),
        Publish("t", b"x" * 300, qos=1, packet_id=65535, dup=True),
        Subscribe(3, [("devices/d/modules/m/inputs/#", 1), ("$iothub/methods/POST/#", 0)]),
    ],
)
async def test_packets_roundtrip(packet: Any) -> None:
    if isinstance(packet, Connect):
        raw = mqtt_codec.encode_connect(packet)
    elif isinstance(packet, Publish):
        raw = mqtt_codec.encode_publish(packet)
    else:
        raw = mqtt_codec.encode_subscribe(packet)
    assert await _roundtrip(raw) == packet


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (bytes([0x36, 0x03, 0x00, 0x01, 0x74]), "QoS 3"),  # PUBLISH flags with QoS 3
        (bytes([0x80, 0x02, 0x00, 0x01]), "reserved flags"),  # SUBSCRIBE flags 0000
        (bytes([0x82, 0x02, 0x00, 0x01]), "without topic filters"),
        (bytes([0x30, 0x03, 0x00, 0x09, 0x74]), "truncated"),  # topic length beyond the body
        (bytes([0xF0, 0x00]), "unknown packet type"),
    ],
)
async def test_malformed_packets_are_protocol_errors(raw: bytes, error: str) -> None:
    with pytest.raises(MqttProtocolError, match=error):
        await _roundtrip(raw)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("devices/d/modules/m/inputs/#", "devices/d/modules/m/inputs/in1/%24.mid=1", True),
        ("$iothub/methods/POST/#", "$iothub/methods/POST/reset/?$rid=1", True),
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/b", "a/b/c", False),
    ],
)
def test_topic_filter_matching(topic_filter: str, topic: str, matches: bool) -> None:
    assert mqtt_codec.topic_matches(topic_filter, topic) is matches


def test_events_topic_splits_system_and_application_properties() -> None:
    # As captured from azure-iot-device 2.14 on the wire.
    topic = ("devices/dev1/modules/modA/messages/events/%24.on=output1&%24.mid=m-1&%24.ct=application%2Fjson"
             "&%24.ce=utf-8&alert=yes&note=a%26b%3Dc")
    device, module, message = topics.message_from_events_topic(topic, b"{}") or ("", "", HubMessage(b""))
    assert (device, module) == ("dev1", "modA")
    assert message.system_properties == {
        "outputName": "output1", "messageId": "m-1", "contentType": "application/json", "contentEncoding": "utf-8",
    }
    assert message.app_properties == {"alert": "yes", "note": "a&b=c"}


def test_input_properties_survive_the_sdk_parser() -> None:
    from azure.iot.device import Message
    from azure.iot.device.iothub.pipeline import mqtt_topic_iothub

    message = HubMessage(b"{}", {"alert": "yes", "path": "a/b&c"},
                         {"messageId": "m1", "contentType": "application/json", "connectionModuleId": "modA"})
    topic = f"devices/d/modules/m/inputs/in1/{topics.encode_input_properties(message)}"
    received = Message(b"{}")
    mqtt_topic_iothub.extract_message_properties_from_topic(topic, received)
    assert received.message_id == "m1"
    assert received.content_type == "application/json"
    assert received.custom_properties == {"alert": "yes", "path": "a/b&c", "$.cmid": "modA"}
    assert mqtt_topic_iothub.get_input_name_from_topic(topic) == "in1"


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
        ({"a": 1}, {"a": None}, {}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": None, "z": 3}}, {"a": {"y": 2, "z": 3}}),
        ({"a": {"x": 1}}, {"a": 5}, {"a": 5}),
        ({"a": 1}, {"$version": 9, "b": [1, 2]}, {"a": 1, "b": [1, 2]}),
    ],
)
def test_merge_patch(target: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]) -> None:
    assert merge_patch(target, patch) == expected
    assert merge_patch(target, removal_patch(target, expected)) == expected


def test_twin_versions_and_notifications() -> None:
    twin = Twin("d", "m")
    note = twin.patch_desired({"a": 1})
    assert note == {"a": 1, "$version": 2}
    assert twin.replace_desired({"a": 1}) is None  # unchanged: no notification, no new version
    assert twin.replace_desired({"b": 2}) == {"a": None, "b": 2, "$version": 3}
    assert twin.patch_reported({"r": True}) == 2
    assert twin.device_view() == {"desired": {"b": 2, "$version": 3}, "reported": {"r": True, "$version": 2}}
    assert twin.version == 4


@pytest.mark.parametrize("bad", [[1, 2], {"a.b": 1}, {"has space": 1}, {"$x": 1}])
def test_twin_refuses_bad_documents(bad: Any) -> None:
    with pytest.raises(TwinError):
        Twin("d", "m").patch_desired(bad)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda t: t, None),
        (lambda t: t.replace("sig=", "sig=A"), "signature"),
        (lambda t: t.replace("&se=", "&se=1"), "signature"),
    ],
)
def test_sas_verify(mutate: Any, reason: str | None) -> None:
    key = identity.new_key()
    token = identity.SasToken.parse(mutate(identity.make_sas("hub/devices/d/modules/m", key)))
    if reason is None:
        token.verify(key, "hub/devices/d/modules/m")
    else:
        with pytest.raises(identity.SasError, match=reason):
            token.verify(key, "hub/devices/d/modules/m")


def test_sas_matches_the_device_sdk_signature() -> None:
    from azure.iot.device.common.auth.sastoken import RenewableSasToken
    from azure.iot.device.common.auth.signing_mechanism import SymmetricKeySigningMechanism

    key = identity.new_key()
    sdk_token = str(RenewableSasToken("hub/devices/d/modules/m", SymmetricKeySigningMechanism(key)))
    identity.SasToken.parse(sdk_token).verify(key, "hub/devices/d/modules/m")
    with pytest.raises(identity.SasError, match="not"):
        identity.SasToken.parse(sdk_token).verify(key, "hub/devices/d/modules/other")


def test_packet_type_values_follow_the_spec() -> None:
    assert [PacketType.CONNECT, PacketType.PUBACK, PacketType.DISCONNECT] == [1, 4, 14]


def test_twin_metadata_follows_patches() -> None:
    twin = Twin("d", "m")
    twin.patch_desired({"a": {"b": 1}, "c": 2})
    meta = twin.desired_metadata
    assert meta["a"]["b"]["$lastUpdatedVersion"] == 2 and meta["c"]["$lastUpdatedVersion"] == 2
    twin.patch_desired({"a": {"b": None}, "c": 3})
    meta = twin.desired_metadata
    assert "b" not in meta["a"]  # deleted with its property
    assert meta["c"]["$lastUpdatedVersion"] == 3 and meta["$lastUpdatedVersion"] == 3
    twin.replace_desired({"x": 1})
    assert set(twin.desired_metadata) == {"$lastUpdated", "$lastUpdatedVersion", "x"}
    twin.patch_reported({"r": {"s": 1}})
    assert "$lastUpdatedVersion" not in twin.reported_metadata["r"]["s"]
    assert twin.service_view(False)["properties"]["desired"]["$metadata"]["x"]["$lastUpdatedVersion"] == 4


@pytest.mark.parametrize(
    ("condition", "doc", "expected"),
    [
        ("tags.a = 1", {"tags": {"a": 1}}, True),
        ("tags.a = 1", {"tags": {}}, None),  # undefined, not false
        ("NOT tags.a = 1", {"tags": {}}, None),
        ("tags.a = 1 OR tags.b = 2", {"tags": {"b": 2}}, True),
        ("tags.a = 1 AND tags.b = 2", {"tags": {"b": 2}}, None),
        ("tags.a = 1 AND tags.b = 2", {"tags": {"a": 2, "b": 2}}, False),
        ("tags.a = '1'", {"tags": {"a": 1}}, False),  # no conversion between types
        ("tags.a < 'b'", {"tags": {"a": "a"}}, True),
        ("tags.a < 2", {"tags": {"a": "a"}}, None),
        ("IS_DEFINED(tags.a.b)", {"tags": {"a": {"b": None}}}, True),
        ("tags.a = null", {"tags": {"a": None}}, True),
        ("tags.a = true", {"tags": {"a": True}}, True),
        ("tags.a = 1.5", {"tags": {"a": 1.5}}, True),
        ("*", {}, True),
    ],
)
def test_query_conditions(condition: str, doc: dict[str, Any], expected: Any) -> None:
    assert parse_condition(condition)(doc) is expected
