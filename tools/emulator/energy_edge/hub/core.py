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
from energy_edge.hub.deployments import (
    Configuration,
    device_desired_patch,
    effective_content,
    parse_configuration,
    targets,
)
from energy_edge.hub.errors import HubError
from energy_edge.hub.manifest import EdgeConfig, parse_modules_content
from energy_edge.hub.query import Query
from energy_edge.hub.routes import Endpoint, RoutableMessage
from energy_edge.hub.store import HubMessage, HubStore, QueuedMessage
from energy_edge.hub.topics import encode_input_properties
from energy_edge.hub.twins import Twin, check_desired, merge_patch

log = logging.getLogger("energy_edge.hub")

UPSTREAM = "$upstream"
INPUTS_FILTER = "devices/{device}/modules/{module}/inputs/#"
METHODS_FILTER = "$iothub/methods/POST/#"
DESIRED_FILTER = "$iothub/twin/PATCH/properties/desired/#"
SYSTEM_MODULES = ("$edgeAgent", "$edgeHub")  # their twins hold the applied deployment, as on a device
DEVICE_TWIN_KEY = ""  # the device twin's module_id in the store
METHOD_PAYLOAD_MAX_BYTES = 128 * 1024  # IoT Hub's direct-method limit, request and response
DELIVERY_WINDOW = 32  # unacknowledged QoS 1 input messages per module connection


class ModuleLink(Protocol):
    """What the core needs from a connected module (an MQTT connection)."""

    def publish(self, topic: str, payload: bytes, qos: int, on_ack: Callable[[], None] | None = None) -> None: ...

    def close(self) -> None: ...


@dataclass
class ModuleIdentity:
    module_id: str
    primary_key: str
    generation_id: str
    secondary_key: str = ""
    managed_by: str = "IotEdge"
    etag_version: int = 1


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
        self.device_twin = Twin(device_id, None)
        self.configurations: dict[str, Configuration] = {}
        self._reevaluation: asyncio.Task[None] | None = None
        self._wakeups: dict[str, asyncio.Event] = {}
        self._pending_methods: dict[str, asyncio.Future[tuple[int, Any]]] = {}
        self._forwarder: asyncio.Task[None] | None = None
        self.upstream_online = asyncio.Event()
        self.on_config_applied: list[Callable[[], Awaitable[None] | None]] = []
        self.device_key, self.service_key, self.modules = self._load_identities()
        self._save_identities()
        self._load_twins()
        self._load_sessions()
        self._load_configurations()
        if self.store.get_meta("upstream_online", "1") == "1":
            self.upstream_online.set()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._forwarder = asyncio.create_task(self._forward_upstream(), name="upstream-forwarder")
        if self.configurations:
            self._schedule_reevaluation()  # the manifest given at start may not be the effective deployment

    async def stop(self) -> None:
        for session in self.sessions.values():
            if session.link:
                session.link.close()
        deliveries = [s.delivery_task for s in self.sessions.values()]
        tasks = [t for t in [self._forwarder, self._reevaluation, *deliveries] if t]
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
        return self.module_identity(module_id).primary_key

    def module_identity(self, module_id: str) -> ModuleIdentity:
        ident = self.modules.get(module_id)
        if ident is None:
            raise HubError("ModuleNotFound", f"module {module_id!r} is not registered on {self.device_id!r}")
        return ident

    def authenticate_module(self, device_id: str, module_id: str, token: str) -> identity.SasToken:
        """The module's SAS token, verified (primary or secondary key); raises identity.SasError."""
        if device_id != self.device_id or module_id not in self.modules:
            raise identity.SasError(f"unknown identity {device_id}/{module_id}")
        sas = identity.SasToken.parse(token)
        ident = self.modules[module_id]
        resource = identity.module_resource(self.hostname, device_id, module_id)
        try:
            sas.verify(ident.primary_key, resource)
        except identity.SasError:
            if not ident.secondary_key:
                raise
            sas.verify(ident.secondary_key, resource)
        return sas

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

    # ------------------------------------------------------------ module identities (service API)

    def create_or_update_module(self, module_id: str, primary_key: str | None, secondary_key: str | None,
                                managed_by: str | None, etag: str | None) -> tuple[ModuleIdentity, bool]:
        """Create a module identity (SAS), or update its keys; returns it and whether it was created."""
        ident = self.modules.get(module_id)
        wanted = (etag or "*").strip().strip('"')
        if ident is None:
            if wanted != "*":
                raise HubError("ModuleNotFound", f"module {module_id!r} does not exist; create it without If-Match")
            ident = ModuleIdentity(module_id, primary_key or identity.new_key(), secrets.token_hex(8),
                                   secondary_key or identity.new_key(), managed_by or "")
            self.modules[module_id] = ident
            created = True
        else:
            if wanted != "*" and wanted != str(ident.etag_version):
                raise HubError("PreconditionFailed",
                               f"etag {etag} does not match module {module_id!r}'s {ident.etag_version}")
            ident.primary_key = primary_key or ident.primary_key
            ident.secondary_key = secondary_key or ident.secondary_key
            if managed_by is not None:
                ident.managed_by = managed_by
            ident.etag_version += 1
            created = False
        self._save_identities()
        return ident, created

    def delete_module(self, module_id: str, etag: str | None) -> None:
        ident = self.module_identity(module_id)
        wanted = (etag or "*").strip().strip('"')
        if wanted != "*" and wanted != str(ident.etag_version):
            raise HubError("PreconditionFailed", f"etag {etag} does not match module {module_id!r}'s")
        del self.modules[module_id]
        self.twins.pop(module_id, None)
        self.store.delete_twin(self.device_id, module_id)
        session = self.sessions.pop(module_id, None)
        if session and session.link:
            session.link.close()  # IoT Hub drops the connections of a deleted identity
        self._save_identities()
        self._save_sessions()

    # ------------------------------------------------------------ twins

    def _load_twins(self) -> None:
        for device_id, module_id, record in self.store.load_twins():
            if device_id != self.device_id:
                continue
            if module_id == DEVICE_TWIN_KEY:
                self.device_twin = Twin.from_record(device_id, None, record)
            else:
                self.twins[module_id] = Twin.from_record(device_id, module_id, record)
        if self.store.get_meta("manifest_digest") != self.edge.digest:
            # A new deployment: its desired properties replace what the twins held.
            desired = {**self.edge.desired, **self.edge.system_desired}
            for module_id in [*SYSTEM_MODULES, *self.edge.module_ids]:
                twin = self.twin(module_id)
                twin.replace_desired(desired.get(module_id, {}))
                self._save_twin(twin)
            self.store.set_meta("manifest_digest", self.edge.digest)

    def twin(self, module_id: str) -> Twin:
        if module_id not in self.modules and module_id not in SYSTEM_MODULES:
            raise HubError("ModuleNotFound", f"module {module_id!r} is not registered on {self.device_id!r}")
        if module_id not in self.twins:
            self.twins[module_id] = Twin(self.device_id, module_id)
        return self.twins[module_id]

    def _save_twin(self, twin: Twin) -> None:
        self.store.save_twin(twin.device_id, twin.module_id or DEVICE_TWIN_KEY, twin.to_record())

    def is_connected(self, module_id: str) -> bool:
        session = self.sessions.get(module_id)
        return bool(session and session.link)

    def update_twin(self, module_id: str | None, desired: dict[str, Any] | None, tags: dict[str, Any] | None,
                    etag: str | None = None, replace: bool = False) -> Twin:
        """A service twin update of a module twin, or of the device twin (module_id None): `replace` (PUT)
        replaces desired properties, and tags when given; otherwise both are merge patches."""
        twin = self.device_twin if module_id is None else self.twin(module_id)
        wanted = (etag or "*").strip().strip('"')
        if wanted != "*" and wanted != twin.etag:
            raise HubError("PreconditionFailed", f"etag {etag} does not match the twin's {twin.etag}")
        # Check everything before changing anything: a refused update leaves the twin as it was.
        # tags None: left alone (a deployment replaces desired properties only); PUT sends {} to clear them.
        new_tags = twin.check_tags(tags, replace) if tags is not None else None
        notification = None
        if desired is not None:
            notification = twin.replace_desired(desired) if replace else twin.patch_desired(desired)
        tags_changed = twin.set_tags(new_tags) if new_tags is not None else False
        self._save_twin(twin)
        if notification is not None and module_id is not None:
            self._notify_desired(module_id, notification)
        if module_id is None and tags_changed:
            self._schedule_reevaluation()  # deployments target devices by tags
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
            raise HubError("ModuleNotFound", f"module {module_id!r} is not in the deployment")
        body = json.dumps(payload).encode()
        if len(body) > METHOD_PAYLOAD_MAX_BYTES:
            raise HubError("MessageTooLarge", f"method payload of {len(body)} bytes, more than the "
                                              f"{METHOD_PAYLOAD_MAX_BYTES} bytes IoT Hub allows")
        self.counters.methods_invoked += 1
        session = self.sessions.get(module_id)
        if not self._accepts_methods(session) and connect_timeout_s > 0:
            session = self.sessions.setdefault(module_id, Session(module_id))
            try:
                await asyncio.wait_for(self._wait_for_methods(session), connect_timeout_s)
            except asyncio.TimeoutError:
                pass
        if session is None or not self._accepts_methods(session):
            raise HubError("DeviceNotOnline", f"module {module_id!r} is not connected to receive methods")
        assert session.link is not None
        rid = uuid.uuid4().hex
        future: asyncio.Future[tuple[int, Any]] = asyncio.get_running_loop().create_future()
        self._pending_methods[rid] = future
        try:
            session.link.publish(f"$iothub/methods/POST/{method_name}/?$rid={rid}", body, qos=0)
            return await asyncio.wait_for(future, response_timeout_s)
        except asyncio.TimeoutError as exc:
            raise HubError("GatewayTimeout",
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
        if len(body) > METHOD_PAYLOAD_MAX_BYTES:
            future.set_exception(HubError(
                "MessageTooLarge", f"the module's method response of {len(body)} bytes is more than the "
                                   f"{METHOD_PAYLOAD_MAX_BYTES} bytes IoT Hub allows"))
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
        desired = {**edge.desired, **edge.system_desired}
        for module_id, section in desired.items():  # all or nothing: check every twin before changing one
            check_desired(section, f"{module_id}.properties.desired")
        self.edge = edge
        for module_id in edge.module_ids:
            if module_id not in self.modules:
                self.modules[module_id] = ModuleIdentity(module_id, identity.new_key(), secrets.token_hex(8),
                                                         identity.new_key())
        self._save_identities()
        for module_id in [*SYSTEM_MODULES, *edge.module_ids]:
            self.update_twin(module_id, desired.get(module_id, {}), None, replace=True)
        self.store.set_meta("manifest_digest", edge.digest)
        await self.notify_changed()
        log.info("applied configuration: %d modules, %d routes", len(edge.modules), len(edge.routes.routes))
        return edge

    async def notify_changed(self) -> None:
        """Run the callbacks that follow identities and deployment (hub.json, workload sockets)."""
        for callback in self.on_config_applied:
            result = callback()
            if asyncio.iscoroutine(result):
                await result

    # ------------------------------------------------------------ automatic deployments (configurations)

    def _load_configurations(self) -> None:
        raw = json.loads(self.store.get_meta("configurations") or "{}")
        self.configurations = {cid: Configuration(**record) for cid, record in raw.items()}
        self.applied_configurations: list[str] = json.loads(self.store.get_meta("applied_configurations") or "[]")

    def _save_configurations(self) -> None:
        self.store.set_meta("configurations",
                            json.dumps({cid: c.to_record() for cid, c in self.configurations.items()}))

    def put_configuration(self, config_id: str, body: Any, if_match: str | None) -> tuple[Configuration, bool]:
        """Create a configuration, or update one whose etag the caller sends quoted in If-Match.

        IoT Hub reads If-Match only when it is quoted (RFC 7232); an unquoted etag counts as none, so the
        PUT is a create and an existing id answers 409. (azure-iot-hub's update_configuration sends the etag
        unquoted and meets exactly that: Azure/azure-iot-hub-python#2.)"""
        previous = self.configurations.get(config_id)
        header = (if_match or "").strip()
        wanted = header.strip('"') if header == "*" or (len(header) > 1 and header[0] == header[-1] == '"') \
            else None
        if previous is None and wanted not in (None, "*"):
            raise HubError("ConfigurationNotFound", f"configuration {config_id!r} does not exist")
        if previous is not None and wanted is None:
            raise HubError("ConfigurationAlreadyExists",
                           f"configuration {config_id!r} already exists; to update it, send its etag quoted "
                           "in If-Match (or \"*\")")
        if previous is not None and wanted not in ("*", previous.etag):
            raise HubError("PreconditionFailed", f"etag {if_match} does not match configuration {config_id!r}'s")
        config = parse_configuration(config_id, body, previous)
        self.configurations[config_id] = config
        self._save_configurations()
        self._schedule_reevaluation()
        return config, previous is None

    def configuration(self, config_id: str) -> Configuration:
        config = self.configurations.get(config_id)
        if config is None:
            raise HubError("ConfigurationNotFound", f"configuration {config_id!r} does not exist")
        return config

    def configuration_view(self, config: Configuration) -> dict[str, Any]:
        """A configuration with its system metrics: does it target this device, is it part of what it runs."""
        targeted = int(targets(config, self.device_view()))
        return config.view(targeted, int(config.id in self.applied_configurations))

    def delete_configuration(self, config_id: str, etag: str | None) -> None:
        config = self.configuration(config_id)
        wanted = (etag or "*").strip().strip('"')
        if wanted != "*" and wanted != config.etag:
            raise HubError("PreconditionFailed", f"etag {etag} does not match configuration {config_id!r}'s")
        del self.configurations[config_id]
        self._save_configurations()
        self._schedule_reevaluation()

    def device_view(self) -> dict[str, Any]:
        return self.device_twin.service_view(any(self.is_connected(m) for m in self.modules))

    def _schedule_reevaluation(self) -> None:
        # Runs after the request that changed tags or configurations has answered, as IoT Hub applies
        # deployments asynchronously; one pass at a time, in order.
        previous = self._reevaluation

        async def run() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            await self.reevaluate_deployments()

        self._reevaluation = asyncio.create_task(run(), name="deployments")

    async def reevaluate_deployments(self) -> bool:
        """Apply the device's effective deployment if it changed; returns whether something was applied."""
        self._apply_device_configurations()
        effective = effective_content(list(self.configurations.values()), self.device_view())
        if effective is None:
            if self.applied_configurations:
                log.warning("no base deployment targets %s any more; it keeps its last deployment",
                            self.device_id)
                self.applied_configurations = []
                self.store.set_meta("applied_configurations", "[]")
            return False
        applied = effective.pop("appliedConfigurations")
        digest = parse_modules_content(effective, "effective deployment").digest
        if digest == self.edge.digest:
            return False
        try:
            await self.apply_configuration(effective)
        except (ValueError, HubError) as exc:  # a layer that breaks the merged deployment: keep the last one
            log.error("effective deployment %s refused: %s", " + ".join(applied), exc)
            return False
        self.applied_configurations = applied
        self.store.set_meta("applied_configurations", json.dumps(applied))
        log.info("effective deployment: %s", " + ".join(applied))
        return True

    def _apply_device_configurations(self) -> None:
        # Automatic device management: targeted deviceContent paths are set in the device twin's desired
        # properties (what was set stays when a configuration stops targeting, as in IoT Hub).
        patch = device_desired_patch(list(self.configurations.values()), self.device_view())
        if patch and merge_patch(self.device_twin.desired, patch) != self.device_twin.desired:
            try:
                self.update_twin(None, patch, None)
            except ValueError as exc:
                log.error("automatic device configuration refused: %s", exc)

    def query_twins(self, query: Query) -> list[dict[str, Any]]:
        if query.collection == "devices":
            views = [self.device_view()]
        else:
            module_ids = [*SYSTEM_MODULES, *sorted(self.modules)]
            views = [self.twin(m).service_view(self.is_connected(m)) for m in module_ids]
        return [v for v in views if query.matches(v)]

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
