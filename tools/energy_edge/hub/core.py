"""The emulator's core: identities, sessions, twins, routing, store-and-forward and methods.

The protocol front ends (`mqtt_server`, `http_api`) translate wire traffic into calls on `EdgeHub`.
Everything here runs on one asyncio event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from energy_edge.hub import identity
from energy_edge.hub.manifest import EdgeConfig, parse_modules_content
from energy_edge.hub.routes import Endpoint, RoutableMessage
from energy_edge.hub.store import HubMessage, HubStore, QueuedMessage
from energy_edge.hub.topics import encode_input_properties
from energy_edge.hub.twins import Twin

log = logging.getLogger("energy_edge.hub")

UPSTREAM = "$upstream"
INPUTS_FILTER = "devices/{device}/modules/{module}/inputs/#"
METHODS_FILTER = "$iothub/methods/POST/#"
DESIRED_FILTER = "$iothub/twin/PATCH/properties/desired/#"
DELIVERY_WINDOW = 32  # unacknowledged QoS 1 input messages per module connection


class HubError(Exception):
    """A request the hub refuses, with the HTTP-style status IoT Hub would answer."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class ModuleLink(Protocol):
    """What the core needs from a connected module (an MQTT connection)."""

    def publish(self, topic: str, payload: bytes, qos: int, on_ack: Callable[[], None] | None = None) -> None: ...

    def close(self) -> None: ...


@dataclass
class ModuleIdentity:
    module_id: str
    primary_key: str
    generation_id: str


@dataclass
class Session:
    """Per-client state that outlives a connection (MQTT persistent session)."""

    module_id: str
    subscriptions: set[str] = field(default_factory=set)
    link: ModuleLink | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    delivery_task: asyncio.Task[None] | None = None


@dataclass
class HubCounters:
    messages_in: int = 0
    messages_routed: int = 0
    messages_unrouted: int = 0
    inputs_delivered: int = 0
    upstream_delivered: int = 0
    methods_invoked: int = 0


def _iso_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EdgeHub:
    def __init__(self, data_dir: Path, hostname: str, device_id: str, edge: EdgeConfig) -> None:
        self.data_dir = data_dir
        self.hostname = hostname
        # The service SDK signs the HostName of its connection string, which carries a port when
        # the service API is not on 443.
        self.service_hostnames = [hostname]
        self.device_id = device_id
        self.edge = edge
        self.store = HubStore(data_dir / "hub.db")
        self.counters = HubCounters()
        self.sessions: dict[str, Session] = {}
        self.twins: dict[str, Twin] = {}
        self._wakeups: dict[str, asyncio.Event] = {}
        self._pending_methods: dict[str, asyncio.Future[tuple[int, Any]]] = {}
        self._forwarder: asyncio.Task[None] | None = None
        self.upstream_online = asyncio.Event()
        self.on_config_applied: list[Callable[[], Awaitable[None] | None]] = []
        self.device_key, self.service_key, self.modules = self._load_identities()
        self._save_identities()
        self._load_twins()
        self._load_sessions()
        if self.store.get_meta("upstream_online", "1") == "1":
            self.upstream_online.set()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._forwarder = asyncio.create_task(self._forward_upstream(), name="upstream-forwarder")

    async def stop(self) -> None:
        for session in self.sessions.values():
            if session.link:
                session.link.close()
        tasks = [t for t in [self._forwarder, *(s.delivery_task for s in self.sessions.values())] if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for fut in self._pending_methods.values():
            fut.cancel()
        self.store.close()

    # ------------------------------------------------------------ identities

    def _load_identities(self) -> tuple[str, str, dict[str, ModuleIdentity]]:
        raw = json.loads(self.store.get_meta("identities") or "{}")
        device_key = raw.get("device_key") or identity.new_key()
        service_key = raw.get("service_key") or identity.new_key()
        modules = {m: ModuleIdentity(**v) for m, v in raw.get("modules", {}).items()}
        for module_id in self.edge.module_ids:
            if module_id not in modules:
                modules[module_id] = ModuleIdentity(module_id, identity.new_key(), secrets.token_hex(8))
        return device_key, service_key, modules

    def module_key(self, module_id: str) -> str:
        ident = self.modules.get(module_id)
        if ident is None:
            raise HubError(404, "ModuleNotFound", f"module {module_id!r} is not in the deployment")
        return ident.primary_key

    def authenticate_module(self, device_id: str, module_id: str, token: str) -> None:
        """Raise identity.SasError unless `token` is a valid SAS for that module."""
        if device_id != self.device_id or module_id not in self.modules:
            raise identity.SasError(f"unknown identity {device_id}/{module_id}")
        sas = identity.SasToken.parse(token)
        sas.verify(self.modules[module_id].primary_key,
                   identity.module_resource(self.hostname, device_id, module_id))

    def authenticate_service(self, token: str) -> None:
        sas = identity.SasToken.parse(token)
        if sas.policy != identity.SERVICE_POLICY_NAME:
            raise identity.SasError(f"unknown shared access policy {sas.policy!r}")
        errors = []
        for hostname in self.service_hostnames:
            try:
                sas.verify(self.service_key, hostname)
                return
            except identity.SasError as exc:
                errors.append(exc)
        raise errors[0]

    # ------------------------------------------------------------ twins

    def _load_twins(self) -> None:
        for device_id, module_id, record in self.store.load_twins():
            if device_id == self.device_id:
                self.twins[module_id] = Twin.from_record(device_id, module_id, record)
        if self.store.get_meta("manifest_digest") != self.edge.digest:
            # A new deployment: its desired properties replace what the twins held.
            for module_id in self.edge.module_ids:
                twin = self.twin(module_id)
                twin.replace_desired(self.edge.desired.get(module_id, {}))
                self._save_twin(twin)
            self.store.set_meta("manifest_digest", self.edge.digest)

    def twin(self, module_id: str) -> Twin:
        if module_id not in self.modules:
            raise HubError(404, "ModuleNotFound", f"module {module_id!r} is not in the deployment")
        if module_id not in self.twins:
            self.twins[module_id] = Twin(self.device_id, module_id)
        return self.twins[module_id]

    def _save_twin(self, twin: Twin) -> None:
        self.store.save_twin(twin.device_id, twin.module_id, twin.to_record())

    def is_connected(self, module_id: str) -> bool:
        session = self.sessions.get(module_id)
        return bool(session and session.link)

    def update_desired(self, module_id: str, patch: dict[str, Any], etag: str | None = None,
                       replace: bool = False, tags: dict[str, Any] | None = None) -> Twin:
        twin = self.twin(module_id)
        wanted = (etag or "*").strip().strip('"')
        if wanted != "*" and wanted != twin.etag:
            raise HubError(412, "PreconditionFailed", f"etag {etag} does not match the twin's {twin.etag}")
        notification = twin.replace_desired(patch) if replace else twin.patch_desired(patch)
        if tags:
            twin.patch_tags(tags)
        self._save_twin(twin)
        if notification is not None:
            self._notify_desired(module_id, notification)
        return twin

    def update_reported(self, module_id: str, patch: dict[str, Any]) -> int:
        twin = self.twin(module_id)
        version = twin.patch_reported(patch)
        self._save_twin(twin)
        return version

    def _notify_desired(self, module_id: str, notification: dict[str, Any]) -> None:
        session = self.sessions.get(module_id)
        if session and session.link and DESIRED_FILTER in session.subscriptions:
            topic = f"$iothub/twin/PATCH/properties/desired/?$version={notification['$version']}"
            session.link.publish(topic, json.dumps(notification).encode(), qos=0)

    # ------------------------------------------------------------ sessions

    def _load_sessions(self) -> None:
        saved = json.loads(self.store.get_meta("sessions") or "{}")
        for module_id, subscriptions in saved.items():
            if module_id in self.modules:
                self.sessions[module_id] = Session(module_id, set(subscriptions))

    def _save_sessions(self) -> None:
        self.store.set_meta(
            "sessions", json.dumps({m: sorted(s.subscriptions) for m, s in self.sessions.items()})
        )

    def attach(self, module_id: str, link: ModuleLink, clean_session: bool) -> bool:
        """A module connected; returns whether a previous session was present."""
        session = self.sessions.get(module_id)
        present = session is not None and not clean_session
        if session is None or clean_session:
            if session and session.link:
                session.link.close()
            session = self.sessions[module_id] = Session(module_id)
        elif session.link is not None and session.link is not link:
            session.link.close()  # MQTT: a second connection with the same client id takes over
            self._stop_delivery(session)
        session.link = link
        session.connected.set()
        self._save_sessions()
        self._maybe_start_delivery(session)
        log.info("module %s connected (session present: %s)", module_id, present)
        return present

    def detach(self, module_id: str, link: ModuleLink) -> None:
        session = self.sessions.get(module_id)
        if session is None or session.link is not link:
            return
        session.link = None
        session.connected.clear()
        self._stop_delivery(session)
        log.info("module %s disconnected", module_id)

    def subscribe(self, module_id: str, topic_filter: str) -> bool:
        allowed = {
            INPUTS_FILTER.format(device=self.device_id, module=module_id),
            METHODS_FILTER,
            DESIRED_FILTER,
            "$iothub/twin/res/#",
        }
        if topic_filter not in allowed:
            return False
        session = self.sessions[module_id]
        session.subscriptions.add(topic_filter)
        self._save_sessions()
        self._maybe_start_delivery(session)
        return True

    def unsubscribe(self, module_id: str, topic_filter: str) -> None:
        session = self.sessions[module_id]
        session.subscriptions.discard(topic_filter)
        self._save_sessions()
        if INPUTS_FILTER.format(device=self.device_id, module=module_id) not in session.subscriptions:
            self._stop_delivery(session)

    def _stop_delivery(self, session: Session) -> None:
        if session.delivery_task:
            session.delivery_task.cancel()
            session.delivery_task = None

    def _maybe_start_delivery(self, session: Session) -> None:
        inputs = INPUTS_FILTER.format(device=self.device_id, module=session.module_id)
        if session.link and inputs in session.subscriptions and session.delivery_task is None:
            session.delivery_task = asyncio.create_task(
                self._deliver_inputs(session, session.link), name=f"deliver-{session.module_id}"
            )

    def _wakeup(self, endpoint: str) -> asyncio.Event:
        if endpoint not in self._wakeups:
            self._wakeups[endpoint] = asyncio.Event()
        return self._wakeups[endpoint]

    async def _deliver_inputs(self, session: Session, link: ModuleLink) -> None:
        """Send a module its queued input messages in order, QoS 1, removing each on PUBACK."""
        wakeup = self._wakeup(session.module_id)
        acked = asyncio.Event()
        inflight: set[int] = set()
        last_id = 0

        def on_ack(row_id: int) -> None:
            inflight.discard(row_id)
            self.store.ack(row_id)
            self.counters.inputs_delivered += 1
            acked.set()

        while session.link is link:
            if len(inflight) > DELIVERY_WINDOW // 2:
                # refill in batches, not one row per acknowledgement
                acked.clear()
                await acked.wait()
                continue
            wakeup.clear()
            batch = self.store.pending(session.module_id, last_id, DELIVERY_WINDOW - len(inflight))
            if not batch:
                await wakeup.wait()
                continue
            for queued in batch:
                inflight.add(queued.id)
                last_id = queued.id
                link.publish(self._input_topic(queued), queued.message.body, qos=1,
                             on_ack=functools.partial(on_ack, queued.id))

    def _input_topic(self, queued: QueuedMessage) -> str:
        msg = queued.message
        input_name = msg.system_properties.get("inputName", "")
        props = encode_input_properties(msg)
        return f"devices/{self.device_id}/modules/{queued.endpoint}/inputs/{input_name}/{props}"

    # ------------------------------------------------------------ messages and routing

    def receive(self, module_id: str, message: HubMessage) -> int:
        """A module sent a message (output or plain telemetry): route and persist it.

        Returns how many endpoints took it. It is persisted before this returns, so the
        caller may acknowledge it (PUBACK) afterwards.
        """
        self.counters.messages_in += 1
        sys_props = message.system_properties
        sys_props.setdefault("messageId", str(uuid.uuid4()))
        sys_props["connectionDeviceId"] = self.device_id
        sys_props["connectionModuleId"] = module_id
        sys_props["connectionAuthMethod"] = '{"scope":"module","type":"sas","issuer":"iothub"}'
        sys_props["enqueuedTime"] = _iso_now()
        output = sys_props.get("outputName")
        source = f"/messages/modules/{module_id}" + (f"/outputs/{output}" if output else "")
        routable = RoutableMessage(source, message.body, message.app_properties, sys_props)
        matches = self.edge.routes.evaluate(routable)
        if not matches:
            self.counters.messages_unrouted += 1
            return 0
        self.counters.messages_routed += 1
        for endpoint, route in matches:
            target = self._target(endpoint)
            if target is None:
                log.warning("route %s names module %r, which is not deployed", route.name, endpoint.module_id)
                continue
            copy = HubMessage(message.body, dict(message.app_properties), dict(sys_props))
            if endpoint.kind != "upstream":
                copy.system_properties["inputName"] = endpoint.input_name or ""
            ttl = route.ttl_secs if route.ttl_secs > 0 else self.edge.store_ttl_s
            self.store.enqueue([(target, None if ttl < 0 else float(ttl))], copy)
            self._wakeup(target).set()
        return len(matches)

    def _target(self, endpoint: Endpoint) -> str | None:
        if endpoint.kind == "upstream":
            return UPSTREAM
        return endpoint.module_id if endpoint.module_id in self.modules else None

    async def _forward_upstream(self) -> None:
        """The link to IoT Hub: while online, move queued upstream messages into the upstream store."""
        wakeup = self._wakeup(UPSTREAM)
        while True:
            await self.upstream_online.wait()
            wakeup.clear()
            batch = self.store.pending(UPSTREAM, 0, 500)
            if not batch:
                await wakeup.wait()
                continue
            for queued in batch:
                if not self.upstream_online.is_set():
                    break
                self.store.deliver_upstream(queued)
                self.counters.upstream_delivered += 1
            await asyncio.sleep(0)  # let connections run between batches

    def set_upstream(self, online: bool) -> None:
        self.store.set_meta("upstream_online", "1" if online else "0")
        if online:
            self.upstream_online.set()
            self._wakeup(UPSTREAM).set()
        else:
            self.upstream_online.clear()
        log.info("upstream %s", "online" if online else "offline")

    # ------------------------------------------------------------ direct methods

    async def invoke_method(self, module_id: str, method_name: str, payload: Any,
                            response_timeout_s: float = 30.0, connect_timeout_s: float = 0.0) -> tuple[int, Any]:
        """Call a module's direct method; returns (status, payload) as the module answered."""
        if module_id not in self.modules:
            raise HubError(404, "ModuleNotFound", f"module {module_id!r} is not in the deployment")
        self.counters.methods_invoked += 1
        session = self.sessions.get(module_id)
        if not self._accepts_methods(session) and connect_timeout_s > 0:
            session = self.sessions.setdefault(module_id, Session(module_id))
            try:
                await asyncio.wait_for(self._wait_for_methods(session), connect_timeout_s)
            except asyncio.TimeoutError:
                pass
        if session is None or not self._accepts_methods(session):
            raise HubError(404, "DeviceNotOnline", f"module {module_id!r} is not connected to receive methods")
        assert session.link is not None
        rid = uuid.uuid4().hex
        future: asyncio.Future[tuple[int, Any]] = asyncio.get_running_loop().create_future()
        self._pending_methods[rid] = future
        body = json.dumps(payload).encode()
        try:
            session.link.publish(f"$iothub/methods/POST/{method_name}/?$rid={rid}", body, qos=0)
            return await asyncio.wait_for(future, response_timeout_s)
        except asyncio.TimeoutError as exc:
            raise HubError(
                504, "GatewayTimeout",
                f"module {module_id!r} did not answer {method_name!r} within {response_timeout_s:g} s",
            ) from exc
        finally:
            self._pending_methods.pop(rid, None)

    @staticmethod
    def _accepts_methods(session: Session | None) -> bool:
        return bool(session and session.link and METHODS_FILTER in session.subscriptions)

    async def _wait_for_methods(self, session: Session) -> None:
        while not self._accepts_methods(session):
            await session.connected.wait()
            await asyncio.sleep(0.05)  # SUBSCRIBE follows CONNECT by a round trip

    def method_response(self, rid: str, status: int, body: bytes) -> None:
        future = self._pending_methods.get(rid)
        if future is None or future.done():
            log.debug("method response for unknown or finished request %s", rid)
            return
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = body.decode("utf-8", "replace")
        future.set_result((status, payload))

    # ------------------------------------------------------------ deployments

    async def apply_configuration(self, content: dict[str, Any]) -> EdgeConfig:
        """A new deployment (applyConfigurationContent): routes, module list and twins take effect."""
        edge = parse_modules_content(content, "configuration content")
        self.edge = edge
        for module_id in edge.module_ids:
            if module_id not in self.modules:
                self.modules[module_id] = ModuleIdentity(module_id, identity.new_key(), secrets.token_hex(8))
        self._save_identities()
        for module_id in edge.module_ids:
            self.update_desired(module_id, edge.desired.get(module_id, {}), replace=True)
        self.store.set_meta("manifest_digest", edge.digest)
        for callback in self.on_config_applied:
            result = callback()
            if asyncio.iscoroutine(result):
                await result
        log.info("applied configuration: %d modules, %d routes", len(edge.modules), len(edge.routes.routes))
        return edge

    def _save_identities(self) -> None:
        self.store.set_meta(
            "identities",
            json.dumps(
                {
                    "device_key": self.device_key,
                    "service_key": self.service_key,
                    "modules": {m: vars(i) for m, i in self.modules.items()},
                }
            ),
        )
