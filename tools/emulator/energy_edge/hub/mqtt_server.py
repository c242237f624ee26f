"""MQTT 3.1.1 over TLS: the IoT Hub module dialect, one `MqttConnection` per client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
import urllib.parse
from collections.abc import Callable

from energy_edge.hub import identity, topics
from energy_edge.hub.core import EdgeHub
from energy_edge.hub.errors import ERRORS, HubError, error_body
from energy_edge.hub.jsondepth import MAX_JSON_DEPTH, json_depth
from energy_edge.hub.mqtt_codec import (
    Bare,
    ConnackCode,
    Connect,
    MqttProtocolError,
    PacketIdOnly,
    PacketType,
    Publish,
    Subscribe,
    Unsubscribe,
    decode,
    encode_connack,
    encode_packet_id,
    encode_pingresp,
    encode_publish,
    encode_suback,
    encode_unsuback,
    read_packet,
)
from energy_edge.hub.twins import TwinError

log = logging.getLogger("energy_edge.hub.mqtt")

CONNECT_TIMEOUT_S = 10.0
MAX_MESSAGE_BYTES = 256 * 1024  # IoT Hub's device-to-cloud limit


class MqttConnection:
    def __init__(self, hub: EdgeHub, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hub = hub
        self.reader = reader
        self.writer = writer
        self.module_id: str | None = None
        self._next_packet_id = 0
        self._awaiting_ack: dict[int, Callable[[], None]] = {}
        self._closed = False
        self._expiry: asyncio.TimerHandle | None = None
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    # ------------------------------------------------------------ ModuleLink

    def publish(self, topic: str, payload: bytes, qos: int, on_ack: Callable[[], None] | None = None) -> None:
        if self._closed:
            return
        packet_id = None
        if qos:
            packet_id = self._allocate_packet_id()
            if on_ack:
                self._awaiting_ack[packet_id] = on_ack
        self.writer.write(encode_publish(Publish(topic, payload, qos, packet_id=packet_id)))

    def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        if not self._closed:
            self._closed = True
            self.writer.close()

    def _token_expired(self) -> None:
        # IoT Hub ends a session when its SAS token expires; the SDK reconnects with a fresh one.
        log.info("%s: SAS token expired, disconnecting (%s)", self.module_id, self.peer)
        self.close()

    def _allocate_packet_id(self) -> int:
        for _ in range(65535):
            self._next_packet_id = self._next_packet_id % 65535 + 1
            if self._next_packet_id not in self._awaiting_ack:
                return self._next_packet_id
        raise MqttProtocolError("no free packet identifier")

    # ------------------------------------------------------------ connection

    async def run(self) -> None:
        try:
            connect = await self._handshake()
            if connect is None:
                return
            await self._serve(connect.keepalive_s)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.TimeoutError):
            pass
        except MqttProtocolError as exc:
            log.warning("closing %s (%s): protocol error: %s", self.module_id or "?", self.peer, exc)
        finally:
            if self.module_id:
                self.hub.detach(self.module_id, self)
            self.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _handshake(self) -> Connect | None:
        packet_type, flags, body = await asyncio.wait_for(read_packet(self.reader), CONNECT_TIMEOUT_S)
        if packet_type != PacketType.CONNECT:
            raise MqttProtocolError("first packet is not CONNECT")
        connect = decode(packet_type, flags, body)
        assert isinstance(connect, Connect)
        if connect.protocol_level != 4:
            await self._refuse(ConnackCode.UNACCEPTABLE_PROTOCOL_VERSION, "only MQTT 3.1.1 is served")
            return None
        code, reason = self._authenticate(connect)
        if code is not ConnackCode.ACCEPTED:
            await self._refuse(code, reason)
            return None
        assert self.module_id is not None
        present = self.hub.attach(self.module_id, self, connect.clean_session)
        self.writer.write(encode_connack(ConnackCode.ACCEPTED, present))
        await self.writer.drain()
        return connect

    async def _refuse(self, code: ConnackCode, reason: str) -> None:
        log.warning("refused connection from %s: %s (CONNACK %d)", self.peer, reason, code)
        self.writer.write(encode_connack(code))
        await self.writer.drain()

    def _authenticate(self, connect: Connect) -> tuple[ConnackCode, str]:
        """IoT Hub rules: client id `{device}/{module}`; username `{hub}/{device}/{module}/?...`; SAS password."""
        device_id, _, module_id = connect.client_id.partition("/")
        if not device_id or not module_id or "/" in module_id:
            return ConnackCode.IDENTIFIER_REJECTED, f"client id {connect.client_id!r} is not device/module"
        if connect.username is None or connect.password is None:
            return ConnackCode.BAD_USERNAME_OR_PASSWORD, "username and SAS password required"
        expected = f"{self.hub.hostname}/{device_id}/{module_id}/"
        if not urllib.parse.unquote(connect.username).startswith(expected):
            return ConnackCode.BAD_USERNAME_OR_PASSWORD, f"username does not start with {expected!r}"
        try:
            sas = self.hub.authenticate_module(device_id, module_id, connect.password.decode("utf-8", "replace"))
        except identity.SasError as exc:
            code = ConnackCode.BAD_USERNAME_OR_PASSWORD if exc.malformed else ConnackCode.NOT_AUTHORIZED
            return code, f"{connect.client_id}: {exc}"
        self.module_id = module_id
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_at(loop.time() + max(0.0, sas.expiry - time.time()), self._token_expired)
        return ConnackCode.ACCEPTED, ""

    async def _serve(self, keepalive_s: int) -> None:
        # MQTT 3.1.1 section 3.1.2.10: one and a half keepalive periods without a packet ends it.
        timeout = keepalive_s * 1.5 if keepalive_s else None
        while not self._closed:
            packet_type, flags, body = await asyncio.wait_for(
                read_packet(self.reader, MAX_MESSAGE_BYTES + 4096), timeout
            )
            packet = decode(packet_type, flags, body)
            if isinstance(packet, Publish):
                self._on_publish(packet)
            elif isinstance(packet, PacketIdOnly) and packet.type is PacketType.PUBACK:
                callback = self._awaiting_ack.pop(packet.packet_id, None)
                if callback:
                    callback()
            elif isinstance(packet, Subscribe):
                self._on_subscribe(packet)
            elif isinstance(packet, Unsubscribe):
                assert self.module_id is not None
                for topic_filter in packet.filters:
                    self.hub.unsubscribe(self.module_id, topic_filter)
                self.writer.write(encode_unsuback(packet.packet_id))
            elif isinstance(packet, Bare) and packet.type is PacketType.PINGREQ:
                self.writer.write(encode_pingresp())
            elif isinstance(packet, Bare) and packet.type is PacketType.DISCONNECT:
                return
            elif isinstance(packet, Connect):
                raise MqttProtocolError("second CONNECT on one connection")
            else:
                raise MqttProtocolError(f"unsupported packet {packet!r}")
            await self.writer.drain()

    def _on_subscribe(self, packet: Subscribe) -> None:
        assert self.module_id is not None
        codes = []
        for topic_filter, qos in packet.filters:
            granted = self.hub.subscribe(self.module_id, topic_filter)
            codes.append(min(qos, 1) if granted else 0x80)
            if not granted:
                log.warning("%s may not subscribe to %r", self.module_id, topic_filter)
        self.writer.write(encode_suback(packet.packet_id, codes))

    def _on_publish(self, packet: Publish) -> None:
        assert self.module_id is not None
        if packet.qos == 2:
            raise MqttProtocolError("IoT Hub does not support QoS 2")
        if packet.topic.startswith("$iothub/"):
            self._on_iothub_publish(packet)
        else:
            parsed = topics.message_from_events_topic(packet.topic, packet.payload)
            if parsed is None or parsed[:2] != (self.hub.device_id, self.module_id):
                raise MqttProtocolError(f"{self.module_id} may not publish to {packet.topic!r}")
            self.hub.receive(self.module_id, parsed[2])
        if packet.qos == 1 and packet.packet_id is not None:
            self.writer.write(encode_packet_id(PacketType.PUBACK, packet.packet_id))

    def _on_iothub_publish(self, packet: Publish) -> None:
        assert self.module_id is not None
        rid = topics.twin_get_rid(packet.topic)
        if rid is not None:
            body = json.dumps(self.hub.twin(self.module_id).device_view()).encode()
            self.publish(f"$iothub/twin/res/200/?$rid={rid}", body, qos=0)
            return
        rid = topics.twin_reported_rid(packet.topic)
        if rid is not None:
            self._on_reported_patch(rid, packet.payload)
            return
        response = topics.method_response(packet.topic)
        if response is not None:
            self.hub.method_response(response[1], response[0], packet.payload)
            return
        raise MqttProtocolError(f"unknown IoT Hub topic {packet.topic!r}")

    def _on_reported_patch(self, rid: str, payload: bytes) -> None:
        assert self.module_id is not None
        try:
            patch = json.loads(payload)
            if json_depth(patch, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
                raise ValueError(f"reported patch nested deeper than {MAX_JSON_DEPTH} levels")
            version = self.hub.update_reported(self.module_id, patch)
        except HubError as exc:
            self._twin_error(rid, exc.error, str(exc))
            return
        except (ValueError, TwinError, RecursionError) as exc:
            self._twin_error(rid, "ArgumentInvalid", str(exc))
            return
        self.publish(f"$iothub/twin/res/204/?$rid={rid}&$version={version}", b"", qos=0)


    def _twin_error(self, rid: str, error: str, message: str) -> None:
        log.warning("%s: reported patch refused: %s", self.module_id, message)
        status = ERRORS[error][0]
        body = json.dumps(error_body(error, message)).encode()
        self.publish(f"$iothub/twin/res/{status}/?$rid={rid}", body, qos=0)


TLS_HANDSHAKE_TIMEOUT_S = 10.0


async def start_mqtt_server(hub: EdgeHub, host: str, port: int, ssl_context: ssl.SSLContext) -> asyncio.Server:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await MqttConnection(hub, reader, writer).run()

    # A client that opens TCP and never completes TLS is dropped after TLS_HANDSHAKE_TIMEOUT_S (asyncio's
    # default is 60 s: 200 idle sockets stayed open 20 s and more).
    return await asyncio.start_server(on_client, host, port, ssl=ssl_context, reuse_address=True,
                                      ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S)
