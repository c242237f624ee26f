"""MQTT 3.1.1 packet codec: the subset a broker needs (OASIS MQTT 3.1.1, section 3).

Pure functions over bytes; the connection handler in `mqtt_server` owns the sockets.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from enum import IntEnum


class PacketType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ConnackCode(IntEnum):
    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USERNAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


class MqttProtocolError(ValueError):
    """A malformed packet: the connection must be closed (MQTT 3.1.1 section 4.8)."""


MAX_REMAINING_LENGTH = 268_435_455
SUBACK_FAILURE = 0x80


@dataclass(frozen=True)
class Connect:
    client_id: str
    username: str | None
    password: bytes | None
    clean_session: bool
    keepalive_s: int
    protocol_level: int
    will_topic: str | None = None


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None


@dataclass(frozen=True)
class Subscribe:
    packet_id: int
    filters: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Unsubscribe:
    packet_id: int
    filters: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PacketIdOnly:
    """PUBACK, PUBREC, PUBREL, PUBCOMP: a type and a packet identifier."""

    type: PacketType
    packet_id: int


@dataclass(frozen=True)
class Bare:
    """PINGREQ, PINGRESP, DISCONNECT: no variable header."""

    type: PacketType


Packet = Connect | Publish | Subscribe | Unsubscribe | PacketIdOnly | Bare


# ---------------------------------------------------------------- primitives


def encode_remaining_length(length: int) -> bytes:
    if not 0 <= length <= MAX_REMAINING_LENGTH:
        raise MqttProtocolError(f"remaining length {length} out of range")
    out = bytearray()
    while True:
        digit, length = length % 128, length // 128
        out.append(digit | 0x80 if length else digit)
        if not length:
            return bytes(out)


def _encode_str(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("!H", len(raw)) + raw


class _Cursor:
    """Reads MQTT fields from a packet body, failing cleanly on truncation."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MqttProtocolError("packet truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack("!H", self.take(2))[0]
        return value

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        try:
            return self.binary().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MqttProtocolError("string is not valid UTF-8") from exc

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos


# ---------------------------------------------------------------- reading


async def read_packet(reader: asyncio.StreamReader, max_size: int = 1 << 20) -> tuple[int, int, bytes]:
    """Read one packet: (type, flags, body). Raises IncompleteReadError on EOF."""
    first = (await reader.readexactly(1))[0]
    multiplier, length = 1, 0
    for _ in range(4):
        digit = (await reader.readexactly(1))[0]
        length += (digit & 0x7F) * multiplier
        if not digit & 0x80:
            break
        multiplier *= 128
    else:
        raise MqttProtocolError("remaining length longer than 4 bytes")
    if length > max_size:
        raise MqttProtocolError(f"packet of {length} bytes exceeds the limit of {max_size}")
    body = await reader.readexactly(length) if length else b""
    return first >> 4, first & 0x0F, body


def decode(packet_type: int, flags: int, body: bytes) -> Packet:
    """Decode the body of a client-to-server packet."""
    try:
        kind = PacketType(packet_type)
    except ValueError as exc:
        raise MqttProtocolError(f"unknown packet type {packet_type}") from exc
    cur = _Cursor(body)
    if kind is PacketType.CONNECT:
        return _decode_connect(cur)
    if kind is PacketType.PUBLISH:
        qos = (flags >> 1) & 0x03
        if qos == 3:
            raise MqttProtocolError("PUBLISH with QoS 3")
        topic = cur.text()
        packet_id = cur.u16() if qos else None
        return Publish(topic, cur.rest(), qos, bool(flags & 0x01), bool(flags & 0x08), packet_id)
    if kind in (PacketType.PUBACK, PacketType.PUBREC, PacketType.PUBREL, PacketType.PUBCOMP):
        return PacketIdOnly(kind, cur.u16())
    if kind is PacketType.SUBSCRIBE:
        if flags != 0x02:
            raise MqttProtocolError("SUBSCRIBE with reserved flags not 0010")
        packet_id = cur.u16()
        filters = []
        while cur.remaining:
            topic_filter = cur.text()
            filters.append((topic_filter, cur.u8() & 0x03))
        if not filters:
            raise MqttProtocolError("SUBSCRIBE without topic filters")
        return Subscribe(packet_id, filters)
    if kind is PacketType.UNSUBSCRIBE:
        packet_id = cur.u16()
        names = []
        while cur.remaining:
            names.append(cur.text())
        return Unsubscribe(packet_id, names)
    if kind in (PacketType.PINGREQ, PacketType.DISCONNECT, PacketType.PINGRESP):
        return Bare(kind)
    raise MqttProtocolError(f"{kind.name} is not sent by clients")


def _decode_connect(cur: _Cursor) -> Connect:
    protocol_name = cur.text()
    level = cur.u8()
    if protocol_name not in ("MQTT", "MQIsdp"):
        raise MqttProtocolError(f"unknown protocol name {protocol_name!r}")
    flags = cur.u8()
    if flags & 0x01:
        raise MqttProtocolError("CONNECT reserved flag set")
    keepalive = cur.u16()
    client_id = cur.text()
    will_topic = None
    if flags & 0x04:
        will_topic = cur.text()
        cur.binary()
    username = cur.text() if flags & 0x80 else None
    password = cur.binary() if flags & 0x40 else None
    return Connect(client_id, username, password, bool(flags & 0x02), keepalive, level, will_topic)


# ---------------------------------------------------------------- writing


def _frame(kind: PacketType, flags: int, body: bytes) -> bytes:
    return bytes([(kind << 4) | flags]) + encode_remaining_length(len(body)) + body


def encode_connack(code: ConnackCode, session_present: bool = False) -> bytes:
    return _frame(PacketType.CONNACK, 0, bytes([1 if session_present else 0, int(code)]))


def encode_publish(msg: Publish) -> bytes:
    flags = (msg.qos << 1) | (0x08 if msg.dup else 0) | (0x01 if msg.retain else 0)
    header = _encode_str(msg.topic)
    if msg.qos:
        if msg.packet_id is None:
            raise MqttProtocolError("QoS > 0 PUBLISH needs a packet id")
        header += struct.pack("!H", msg.packet_id)
    return _frame(PacketType.PUBLISH, flags, header + msg.payload)


def encode_packet_id(kind: PacketType, packet_id: int) -> bytes:
    return _frame(kind, 0x02 if kind is PacketType.PUBREL else 0, struct.pack("!H", packet_id))


def encode_suback(packet_id: int, return_codes: list[int]) -> bytes:
    return _frame(PacketType.SUBACK, 0, struct.pack("!H", packet_id) + bytes(return_codes))


def encode_unsuback(packet_id: int) -> bytes:
    return _frame(PacketType.UNSUBACK, 0, struct.pack("!H", packet_id))


def encode_pingresp() -> bytes:
    return _frame(PacketType.PINGRESP, 0, b"")


def encode_connect(msg: Connect) -> bytes:
    """Client side, for tests and tools."""
    flags = 0x02 if msg.clean_session else 0
    payload = _encode_str(msg.client_id)
    if msg.username is not None:
        flags |= 0x80
        payload += _encode_str(msg.username)
    if msg.password is not None:
        flags |= 0x40
        payload += struct.pack("!H", len(msg.password)) + msg.password
    body = _encode_str("MQTT") + bytes([msg.protocol_level, flags]) + struct.pack("!H", msg.keepalive_s)
    return _frame(PacketType.CONNECT, 0, body + payload)


def encode_subscribe(msg: Subscribe) -> bytes:
    body = struct.pack("!H", msg.packet_id)
    for topic_filter, qos in msg.filters:
        body += _encode_str(topic_filter) + bytes([qos])
    return _frame(PacketType.SUBSCRIBE, 0x02, body)


# ---------------------------------------------------------------- topic filters


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT wildcard match: `+` one level, `#` the rest (section 4.7)."""
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[i]:
            return False
    return len(filter_levels) == len(topic_levels)
