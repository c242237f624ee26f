"""The IoT Hub MQTT topic dialect for modules: property bags in topics, and their meaning.

Property bags are `k=v` pairs joined by `&`, each side percent-encoded (`quote(safe="")`),
appended to the topic without a `?` (messages) or after `?` (twin, methods).
"""

from __future__ import annotations

import re
import urllib.parse

from energy_edge.hub.store import HubMessage

# Message system properties as the device SDK writes them, and their IoT Hub names.
SYSTEM_PROPERTY_KEYS = {
    "$.on": "outputName",
    "$.mid": "messageId",
    "$.cid": "correlationId",
    "$.uid": "userId",
    "$.ct": "contentType",
    "$.ce": "contentEncoding",
    "$.ifid": "interfaceId",
    "$.exp": "expiryTimeUtc",
    "$.to": "to",
}
# What edgeHub adds when it delivers to a module input.
_INPUT_SYSTEM_KEYS = [
    ("messageId", "$.mid"),
    ("correlationId", "$.cid"),
    ("userId", "$.uid"),
    ("contentType", "$.ct"),
    ("contentEncoding", "$.ce"),
    ("expiryTimeUtc", "$.exp"),
    ("connectionDeviceId", "$.cdid"),
    ("connectionModuleId", "$.cmid"),
]

_EVENTS = re.compile(r"^devices/(?P<device>[^/]+)/modules/(?P<module>[^/]+)/messages/events/?(?P<props>.*)$")
_TWIN_GET = re.compile(r"^\$iothub/twin/GET/\?(?P<query>.*)$")
_TWIN_REPORTED = re.compile(r"^\$iothub/twin/PATCH/properties/reported/\?(?P<query>.*)$")
_METHOD_RESPONSE = re.compile(r"^\$iothub/methods/res/(?P<status>[^/]+)/\?(?P<query>.*)$")


def parse_property_bag(text: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for pair in text.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        props[urllib.parse.unquote(key)] = urllib.parse.unquote(value)
    return props


def encode_property_bag(pairs: list[tuple[str, str]]) -> str:
    return "&".join(
        f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}" for k, v in pairs
    )


def message_from_events_topic(topic: str, payload: bytes) -> tuple[str, str, HubMessage] | None:
    """Parse `devices/{d}/modules/{m}/messages/events/{props}` into (device, module, message)."""
    match = _EVENTS.match(topic)
    if not match:
        return None
    bag = parse_property_bag(match["props"])
    app: dict[str, str] = {}
    system: dict[str, str] = {}
    for key, value in bag.items():
        if key in SYSTEM_PROPERTY_KEYS:
            system[SYSTEM_PROPERTY_KEYS[key]] = value
        else:
            app[key] = value
    return match["device"], match["module"], HubMessage(payload, app, system)


def encode_input_properties(message: HubMessage) -> str:
    sys_props = message.system_properties
    pairs = [(wire, sys_props[name]) for name, wire in _INPUT_SYSTEM_KEYS if sys_props.get(name)]
    pairs += sorted(message.app_properties.items())
    return encode_property_bag(pairs)


def twin_get_rid(topic: str) -> str | None:
    match = _TWIN_GET.match(topic)
    return parse_property_bag(match["query"]).get("$rid") if match else None


def twin_reported_rid(topic: str) -> str | None:
    match = _TWIN_REPORTED.match(topic)
    return parse_property_bag(match["query"]).get("$rid") if match else None


def method_response(topic: str) -> tuple[int, str] | None:
    match = _METHOD_RESPONSE.match(topic)
    if not match:
        return None
    rid = parse_property_bag(match["query"]).get("$rid")
    try:
        status = int(urllib.parse.unquote(match["status"]))
    except ValueError:
        return None
    return (status, rid) if rid else None
