"""Emulator benchmark: routed messages per second and module-to-module latency, against Mosquitto.

Scenarios (each after a warm-up that is not counted):

- emulator, real SDK clients (`IoTHubModuleClient.create_from_edge_environment()`): module `sender`
  sends to output `out` (plain route) or `filtered` (a route with a WHERE condition), the emulator
  routes to module `receiver`; throughput in bounded concurrent batches, and one-way latency one
  message at a time. Plus `invoke_method` round trips from `sender` to a method on `receiver`.
- emulator, raw paho-mqtt speaking the IoT Hub MQTT dialect (SAS password, events topic with a
  property bag): the same route without the SDK, to separate the SDK's cost from the emulator's.
- Mosquitto, raw paho-mqtt QoS 1 publish -> subscribe, plain TCP and TLS: the reference.
- opt-in (`--backlog N`): N messages queued for an offline receiver, then the drain rate.

Sender and receiver live in this one process, so `time.perf_counter_ns()` stamped into the body by
the sender and read by the receiver's handler is one monotonic clock: one-way latency needs no clock
synchronisation. The receive timestamp is taken first thing in the handler, on the transport's own
thread, before anything hands the message over to the benchmark's loop.

Run from the repository root (the venv has the project installed in editable mode):

    .venv/bin/python benchmarks/emulator_bench.py --json /tmp/emulator-bench.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from energy_edge.hub import identity
from energy_edge.hub.clients import module_client

REPO = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "emulator-bench.deployment.json"
MOSQUITTO = "/usr/sbin/mosquitto"
TIMEOUT_S = 60.0  # one scenario step; generous because the machine may be shared
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The body is a fixed-width JSON template so every message has the same size and building one costs
# a single %-format (no second json.dumps to pad it). JSON allows the spaces %d pads with.
_BODY = '{"seq":%10d,"t_ns":%20d,"site":"bench","power_kw":42.5,"pad":"%s"}'
_BODY_FIXED = len(_BODY % (0, 0, ""))


def body(seq: int, size: int) -> str:
    """A JSON body of `size` bytes carrying its sequence number and the sender's perf_counter_ns."""
    return _BODY % (seq, time.perf_counter_ns(), "x" * max(0, size - _BODY_FIXED))


# ---------------------------------------------------------------- what the receivers saw


class Arrivals:
    """Receive timestamps recorded on whichever thread a transport delivers on.

    The SDK runs handlers on its own event loop thread and paho on its network thread; both call
    `record`. A waiter is called (outside the lock) once the expected count is reached, so the
    benchmark's side decides how it wants to be woken (a future on its loop, or a threading.Event).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples: list[tuple[int, int, int]] = []  # (seq, sent_ns, received_ns)
        self._target = 0
        self._waiter: Callable[[], None] | None = None

    def record(self, payload: bytes | bytearray | str) -> None:
        received_ns = time.perf_counter_ns()
        doc = json.loads(payload)
        waiter = None
        with self._lock:
            self.samples.append((int(doc["seq"]), int(doc["t_ns"]), received_ns))
            if self._waiter is not None and len(self.samples) >= self._target:
                waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter()

    def reset(self) -> None:
        with self._lock:
            self.samples = []
            self._target = 0
            self._waiter = None

    def _arm(self, count: int, waiter: Callable[[], None]) -> None:
        with self._lock:
            if len(self.samples) >= count:
                fire = True
            else:
                fire = False
                self._target, self._waiter = count, waiter
        if fire:
            waiter()

    def until_async(self, count: int) -> asyncio.Future[None]:
        """A future on the running loop, done once `count` messages have arrived."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not future.done():  # cancelled by a timeout meanwhile
                future.set_result(None)

        def wake() -> None:
            loop.call_soon_threadsafe(resolve)

        self._arm(count, wake)
        return future

    def wait_sync(self, count: int, timeout_s: float) -> None:
        event = threading.Event()
        self._arm(count, event.set)
        if not event.wait(timeout_s):
            raise TimeoutError(f"only {len(self.samples)} of {count} messages arrived within {timeout_s:g} s")

    def check_complete(self, count: int, what: str) -> None:
        """Every sequence number exactly once: a benchmark that lost or doubled messages is no result."""
        seqs = sorted(s for s, _, _ in self.samples)
        if seqs != list(range(count)):
            missing = len(set(range(count)) - set(seqs))
            raise RuntimeError(f"{what}: {len(seqs)} arrivals for {count} sent ({missing} missing)")

    def last_received_ns(self) -> int:
        return max(r for _, _, r in self.samples)

    def one_way_ms(self) -> list[float]:
        return [(r - s) / 1e6 for _, s, r in self.samples]


# ---------------------------------------------------------------- results


@dataclass
class Measurement:
    target: str  # emulator / mosquitto
    client: str  # what spoke to it
    scenario: str
    kind: str  # "throughput" (many in flight) or "latency" (one at a time)
    count: int
    seconds: float
    rate_per_s: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    # CPU over the measured interval: the hub or broker process, and this process (every SDK / paho
    # thread of sender and receiver). 100 % is one core. Per message, it says what a message costs
    # even when the run was bound by something else (a round trip, another process, the GIL).
    server_cpu_pct: float | None = None
    client_cpu_pct: float | None = None
    server_cpu_us_per_msg: float | None = None
    client_cpu_us_per_msg: float | None = None


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: a value that was actually observed, no interpolation."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def proc_cpu_seconds(pid: int) -> float:
    # Fields 14 and 15 of /proc/PID/stat (utime, stime) count every thread of the process; field 2
    # (the command) may contain spaces, so split after its closing parenthesis.
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Meter:
    """Wall time and CPU time (server process and this process) over one measured interval."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.wall0 = time.perf_counter()
        self.client0 = time.process_time()
        self.server0 = proc_cpu_seconds(server_pid)

    def stamp(self, result: Measurement) -> Measurement:
        wall_s = time.perf_counter() - self.wall0
        server_s = proc_cpu_seconds(self.server_pid) - self.server0
        client_s = time.process_time() - self.client0
        result.server_cpu_pct = server_s / wall_s * 100
        result.client_cpu_pct = client_s / wall_s * 100
        result.server_cpu_us_per_msg = server_s / result.count * 1e6
        result.client_cpu_us_per_msg = client_s / result.count * 1e6
        return result


def throughput_result(target: str, client: str, scenario: str, count: int, start_ns: int, end_ns: int,
                      meter: Meter) -> Measurement:
    seconds = (end_ns - start_ns) / 1e9
    return meter.stamp(Measurement(target, client, scenario, "throughput", count, seconds, count / seconds))


def latency_result(target: str, client: str, scenario: str, latencies_ms: Sequence[float],
                   meter: Meter) -> Measurement:
    seconds = time.perf_counter() - meter.wall0
    return meter.stamp(
        Measurement(target, client, scenario, "latency", len(latencies_ms), seconds, len(latencies_ms) / seconds,
                    percentile(latencies_ms, 50), percentile(latencies_ms, 99), max(latencies_ms))
    )


# ---------------------------------------------------------------- child processes


class Child:
    """A server process whose output goes to a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        with self.log_path.open("wb") as log:
            # The child keeps its own copy of the descriptor; a file (not a pipe) means nobody has to
            # drain it for the server not to block on a full pipe.
            self.proc = subprocess.Popen(self.argv, cwd=REPO, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_until(self, ready: Callable[[], bool], timeout_s: float = 30) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while not ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout_s:g} s:\n{self.log_text()}")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 15) -> int | None:
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_hub(manifest: Path, data_dir: Path, host: str, profile_to: Path | None) -> tuple[Child, dict[str, Any]]:
    profiler = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
    argv = [sys.executable, *profiler, "-m", "energy_edge.cli", "hub", "--manifest", str(manifest),
            "--host", host, "--data-dir", str(data_dir)]
    hub = Child("energy-edge hub", argv, data_dir.parent / "hub.log").start()
    hub.wait_until(lambda: "energy-edge hub ready" in hub.log_text())
    info: dict[str, Any] = json.loads((data_dir / "hub.json").read_text())
    return hub, info


def start_mosquitto(work: Path, tls: identity.TlsFiles) -> tuple[Child, int, int]:
    plain_port, tls_port = free_port(), free_port()
    config = work / "mosquitto.conf"
    config.write_text(
        "\n".join(
            [
                "per_listener_settings false",
                "allow_anonymous true",
                "persistence false",
                # Stay root: the TLS key is a root-owned 0600 file; the default drops to `mosquitto`.
                "user root",
                # No cap on messages queued for a subscriber: a benchmark must not drop silently.
                "max_queued_messages 0",
                # Mosquitto leaves Nagle's algorithm on by default, and with a batch in flight that
                # costs one delayed-ACK stall (~40 ms) per batch: the run measures the stall, not the
                # broker (~1,200 msg/s at ~1% broker CPU). asyncio, and so the emulator, sets
                # TCP_NODELAY on every connection; match it.
                "set_tcp_nodelay true",
                "log_dest stdout",
                f"listener {plain_port} 127.0.0.1",
                f"listener {tls_port} 127.0.0.1",
                f"cafile {tls.ca_cert}",
                f"certfile {tls.server_cert}",
                f"keyfile {tls.server_key}",
                "",
            ]
        )
    )
    broker = Child("mosquitto", [MOSQUITTO, "-c", str(config)], work / "mosquitto.log").start()
    broker.wait_until(lambda: accepts_connections("127.0.0.1", plain_port)
                      and accepts_connections("127.0.0.1", tls_port))
    return broker, plain_port, tls_port


# ---------------------------------------------------------------- the SDK against the emulator


def sdk_module_client(info: dict[str, Any], module_id: str) -> Any:
    """The production way: the factory reads the IOTEDGE_* variables and asks the workload API."""
    return module_client(info, module_id)


def sdk_message(seq: int, size: int) -> Any:
    from azure.iot.device import Message

    message = Message(body(seq, size), content_encoding="utf-8", content_type="application/json")
    message.custom_properties["kind"] = "meter"  # what the WHERE condition looks at, besides $body
    return message


@dataclass
class Config:
    messages: int
    latency_samples: int
    method_calls: int
    batch: int
    payload_bytes: int
    warmup: int
    host: str
    condition: str | None
    profile_hub: Path | None
    skip_tls: bool
    repeat: int
    backlog: int


async def sdk_warmup(sender: Any, arrivals: Arrivals, output: str, cfg: Config) -> None:
    # Warm-up: connections, the receiver's input subscription, SQLite's pages, the SDK's threads.
    arrivals.reset()
    arrived = arrivals.until_async(cfg.warmup)
    await asyncio.wait_for(asyncio.gather(*(sender.send_message_to_output(sdk_message(i, cfg.payload_bytes), output)
                                            for i in range(cfg.warmup))), TIMEOUT_S)
    await asyncio.wait_for(arrived, TIMEOUT_S)


async def sdk_throughput(sender: Any, arrivals: Arrivals, output: str, cfg: Config, hub_pid: int,
                         scenario: str) -> Measurement:
    await sdk_warmup(sender, arrivals, output, cfg)
    arrivals.reset()
    arrived = arrivals.until_async(cfg.messages)
    meter = Meter(hub_pid)
    start_ns = time.perf_counter_ns()
    # Bounded concurrency: a batch in flight at once, as a module flushing a buffer would; unbounded
    # gather of thousands would measure the SDK's queueing rather than the route.
    for base in range(0, cfg.messages, cfg.batch):
        batch = [sender.send_message_to_output(sdk_message(seq, cfg.payload_bytes), output)
                 for seq in range(base, min(cfg.messages, base + cfg.batch))]
        await asyncio.wait_for(asyncio.gather(*batch), TIMEOUT_S)
    await asyncio.wait_for(arrived, TIMEOUT_S)
    arrivals.check_complete(cfg.messages, scenario)
    return throughput_result("emulator", "azure-iot-device", scenario, cfg.messages, start_ns,
                             arrivals.last_received_ns(), meter)


async def sdk_latency(sender: Any, arrivals: Arrivals, output: str, cfg: Config, hub_pid: int,
                      scenario: str) -> Measurement:
    await sdk_warmup(sender, arrivals, output, cfg)
    arrivals.reset()
    meter = Meter(hub_pid)
    for seq in range(cfg.latency_samples):
        arrived = arrivals.until_async(seq + 1)
        # Awaiting both the PUBACK and the delivery keeps exactly one message in the system.
        await asyncio.wait_for(sender.send_message_to_output(sdk_message(seq, cfg.payload_bytes), output), TIMEOUT_S)
        await asyncio.wait_for(arrived, TIMEOUT_S)
    arrivals.check_complete(cfg.latency_samples, scenario)
    return latency_result("emulator", "azure-iot-device", scenario, arrivals.one_way_ms(), meter)


async def sdk_methods(caller: Any, callee: Any, device_id: str, cfg: Config, hub_pid: int) -> Measurement:
    from azure.iot.device import MethodResponse

    async def answer(request: Any) -> None:
        await callee.send_method_response(MethodResponse.create_from_method_request(request, 200, {"ok": True}))

    callee.on_method_request_received = answer
    params = {"methodName": "ping", "payload": {"n": 0}, "responseTimeoutInSeconds": 10}

    async def call() -> float:
        start = time.perf_counter_ns()
        result = await asyncio.wait_for(caller.invoke_method(params, device_id, "receiver"), TIMEOUT_S)
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        if result.get("status") != 200:
            raise RuntimeError(f"invoke_method answered {result!r}")
        return elapsed_ms

    for _ in range(min(cfg.warmup, 20)):
        await call()
    meter = Meter(hub_pid)
    round_trips = [await call() for _ in range(cfg.method_calls)]
    return latency_result("emulator", "azure-iot-device", "invoke_method round trip", round_trips, meter)


async def run_sdk(info: dict[str, Any], hub_pid: int, cfg: Config) -> list[Measurement]:
    arrivals = Arrivals()

    async def on_message(message: Any) -> None:
        arrivals.record(message.data)

    results: list[Measurement] = []
    clients: list[Any] = []
    try:
        receiver = sdk_module_client(info, "receiver")
        clients.append(receiver)
        receiver.on_message_received = on_message
        sender = sdk_module_client(info, "sender")
        clients.append(sender)
        await asyncio.wait_for(asyncio.gather(receiver.connect(), sender.connect()), TIMEOUT_S)
        for output, scenario in (("out", "plain route"), ("filtered", "WHERE route")):
            results.append(await sdk_throughput(sender, arrivals, output, cfg, hub_pid, scenario))
            results.append(await sdk_latency(sender, arrivals, output, cfg, hub_pid, scenario))
        results.append(await sdk_methods(sender, receiver, info["device_id"], cfg, hub_pid))
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.shutdown(), 15)
    return results


# ---------------------------------------------------------------- raw paho (emulator and Mosquitto)


@dataclass(frozen=True)
class PahoIdentity:
    client_id: str
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class PahoRoute:
    """Where a paho publisher sends and a paho subscriber listens, and with which identities."""

    host: str
    port: int
    ca_cert: Path | None
    publisher: PahoIdentity
    subscriber: PahoIdentity
    publish_topic: str
    subscribe_filter: str


class PahoPair:
    """A QoS 1 publisher and a QoS 1 subscriber, each with paho's own network thread."""

    def __init__(self, route: PahoRoute, arrivals: Arrivals) -> None:
        self.route = route
        self.arrivals = arrivals
        self.publisher = self._client(route.publisher)
        self.subscriber = self._client(route.subscriber)
        self.subscriber.on_message = lambda _c, _u, msg: arrivals.record(msg.payload)

    def _client(self, ident: PahoIdentity) -> paho.Client:
        client = paho.Client(client_id=ident.client_id, clean_session=True, protocol=paho.MQTTv311)
        if ident.username is not None:
            client.username_pw_set(ident.username, ident.password)
        if self.route.ca_cert is not None:
            client.tls_set(ca_certs=str(self.route.ca_cert))
        return client

    def connect(self) -> None:
        self.connect_subscriber()
        self.connect_publisher()

    def connect_publisher(self) -> None:
        self._connect(self.publisher)

    def connect_subscriber(self) -> None:
        self._connect(self.subscriber)
        subscribed = threading.Event()
        self.subscriber.on_subscribe = lambda *_: subscribed.set()
        self.subscriber.subscribe(self.route.subscribe_filter, qos=1)
        if not subscribed.wait(TIMEOUT_S):
            raise RuntimeError("no SUBACK")

    def _connect(self, client: paho.Client) -> None:
        connected = threading.Event()
        codes: list[int] = []

        def on_connect(_c: Any, _u: Any, _f: Any, rc: int) -> None:
            codes.append(rc)
            connected.set()

        client.on_connect = on_connect
        client.connect(self.route.host, self.route.port, keepalive=60)
        client.loop_start()
        if not connected.wait(TIMEOUT_S) or codes[0] != 0:
            raise RuntimeError(f"paho connect to {self.route.host}:{self.route.port} failed: {codes}")

    def publish(self, seq: int, size: int) -> paho.MQTTMessageInfo:
        info = self.publisher.publish(self.route.publish_topic, body(seq, size), qos=1)
        # paho queues beyond its in-flight window and still answers MQTT_ERR_SUCCESS.
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"paho publish failed: {paho.error_string(info.rc)}")
        return info

    def close(self) -> None:
        for client in (self.publisher, self.subscriber):
            with contextlib.suppress(Exception):
                client.disconnect()
                client.loop_stop()


def wait_published(infos: Sequence[paho.MQTTMessageInfo]) -> None:
    for info in infos:
        info.wait_for_publish(TIMEOUT_S)
        if not info.is_published():
            raise TimeoutError("no PUBACK within the timeout")


def run_paho(target: str, client_name: str, route: PahoRoute, server_pid: int, cfg: Config) -> list[Measurement]:
    """The same two measurements as the SDK's plain route, with paho's blocking calls."""
    arrivals = Arrivals()
    pair = PahoPair(route, arrivals)
    try:
        pair.connect()
        wait_published([pair.publish(i, cfg.payload_bytes) for i in range(cfg.warmup)])
        arrivals.wait_sync(cfg.warmup, TIMEOUT_S)

        arrivals.reset()
        meter = Meter(server_pid)
        start_ns = time.perf_counter_ns()
        for base in range(0, cfg.messages, cfg.batch):
            wait_published([pair.publish(seq, cfg.payload_bytes)
                            for seq in range(base, min(cfg.messages, base + cfg.batch))])
        arrivals.wait_sync(cfg.messages, TIMEOUT_S)
        arrivals.check_complete(cfg.messages, f"{target} throughput")
        throughput = throughput_result(target, client_name, "publish -> subscribe", cfg.messages, start_ns,
                                       arrivals.last_received_ns(), meter)

        arrivals.reset()
        meter = Meter(server_pid)
        for seq in range(cfg.latency_samples):
            wait_published([pair.publish(seq, cfg.payload_bytes)])
            arrivals.wait_sync(seq + 1, TIMEOUT_S)
        arrivals.check_complete(cfg.latency_samples, f"{target} latency")
        latency = latency_result(target, client_name, "publish -> subscribe", arrivals.one_way_ms(), meter)
    finally:
        pair.close()
    return [throughput, latency]


def run_backlog(route: PahoRoute, hub_pid: int, cfg: Config) -> Measurement:
    """Store and forward: messages queued while the receiver is offline, then drained when it connects.

    Opt-in (`--backlog N`) because the drain rate depends on the backlog's size: this is the
    scenario that shows it (see benchmarks/README.md).
    """
    arrivals = Arrivals()
    pair = PahoPair(route, arrivals)
    try:
        pair.connect_publisher()
        for base in range(0, cfg.backlog, cfg.batch):
            wait_published([pair.publish(seq, cfg.payload_bytes)
                            for seq in range(base, min(cfg.backlog, base + cfg.batch))])
        meter = Meter(hub_pid)
        start_ns = time.perf_counter_ns()
        pair.connect_subscriber()
        # A slow drain is the finding, not a failure: allow well below 100 msg/s before giving up.
        arrivals.wait_sync(cfg.backlog, max(TIMEOUT_S, cfg.backlog / 50))
        arrivals.check_complete(cfg.backlog, "backlog drain")
        return throughput_result("emulator", "paho (IoT Hub dialect, TLS)", f"drain a backlog of {cfg.backlog}",
                                 cfg.backlog, start_ns, arrivals.last_received_ns(), meter)
    finally:
        pair.close()


def emulator_paho_route(info: dict[str, Any], host: str) -> PahoRoute:
    """The IoT Hub MQTT dialect by hand: `device/module` client ids, SAS passwords, property bags."""
    device = info["device_id"]

    def ident(module_id: str) -> PahoIdentity:
        fields = dict(p.split("=", 1) for p in info["modules"][module_id]["connection_string"].split(";"))
        resource = identity.module_resource(info["hostname"], device, module_id)
        return PahoIdentity(f"{device}/{module_id}",
                            f"{info['hostname']}/{device}/{module_id}/?api-version=2019-10-01",
                            identity.make_sas(resource, fields["SharedAccessKey"]))

    # The same system and application properties the SDK puts in its topic for sdk_message().
    props = "$.on=out&$.ct=application%2Fjson&$.ce=utf-8&kind=meter"
    return PahoRoute(host, int(info["mqtt_port"]), Path(info["ca_cert"]), ident("sender"), ident("receiver"),
                     f"devices/{device}/modules/sender/messages/events/{props}",
                     f"devices/{device}/modules/receiver/inputs/#")


# ---------------------------------------------------------------- orchestration


def bench_manifest(work: Path, condition: str | None) -> Path:
    """The fixture, with the filtered route's WHERE condition replaced when asked."""
    manifest = json.loads(FIXTURE.read_text())
    routes = manifest["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    if condition is not None:
        source, _, sink = routes["filtered"].partition(" WHERE ")
        routes["filtered"] = f"{source} WHERE {condition} INTO {sink.partition(' INTO ')[2]}"
    path = work / "deployment.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path


def route_evaluation_cost(manifest: Path, payload_bytes: int, iterations: int = 20_000) -> dict[str, float]:
    """Microseconds per `RouteTable.evaluate()` in this process: what a condition costs with no I/O.

    End-to-end rates move by more than a condition costs from one run to the next on a shared
    machine, so the WHERE route's price is measured here directly, on the bench's own messages.
    """
    import timeit

    from energy_edge.hub.routes import RoutableMessage, RouteTable

    routes = json.loads(manifest.read_text())["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    table = RouteTable.from_manifest(routes)
    costs = {}
    for scenario, output in (("plain route", "out"), ("WHERE route", "filtered")):
        system = {"outputName": output, "contentType": "application/json", "contentEncoding": "utf-8",
                  "connectionDeviceId": "edge-device", "connectionModuleId": "sender"}
        message = RoutableMessage(f"/messages/modules/sender/outputs/{output}", body(1, payload_bytes).encode(),
                                  {"kind": "meter"}, system)
        if len(table.evaluate(message)) != 1:
            raise RuntimeError(f"the {scenario} does not take the bench's message")
        best = min(timeit.repeat(functools.partial(table.evaluate, message), number=iterations, repeat=5))
        costs[scenario] = best / iterations * 1e6
    return costs


def machine_info() -> dict[str, Any]:
    cpu_model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mosquitto": subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True).stdout.splitlines()[0]
        if Path(MOSQUITTO).exists() else None,
    }


def routes_implementation() -> str:
    """Which route evaluator the hub child will load (the condition's cost depends on it)."""
    import energy_edge.hub.routes as routes

    return str(routes.__file__)


@dataclass
class Summary:
    """One scenario over all repeats: the median is the typical run, the best is the quietest."""

    target: str
    client: str
    scenario: str
    kind: str
    count: int
    runs: int
    rate_median: float
    rate_best: float
    p50_ms_median: float | None
    p50_ms_best: float | None
    p99_ms_median: float | None
    p99_ms_best: float | None
    server_cpu_pct_median: float | None
    server_cpu_us_per_msg_median: float | None
    client_cpu_us_per_msg_median: float | None


def summarize(results: Sequence[Measurement]) -> list[Summary]:
    groups: dict[tuple[str, str, str, str], list[Measurement]] = {}
    for m in results:
        groups.setdefault((m.target, m.client, m.scenario, m.kind), []).append(m)

    def median(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    def lowest(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return min(present) if present else None

    return [
        Summary(
            *key, group[0].count, len(group),
            statistics.median(m.rate_per_s for m in group), max(m.rate_per_s for m in group),
            median([m.p50_ms for m in group]), lowest([m.p50_ms for m in group]),
            median([m.p99_ms for m in group]), lowest([m.p99_ms for m in group]),
            median([m.server_cpu_pct for m in group]), median([m.server_cpu_us_per_msg for m in group]),
            median([m.client_cpu_us_per_msg for m in group]),
        )
        for key, group in groups.items()
    ]


@dataclass
class Report:
    started: str
    machine: dict[str, Any]
    config: dict[str, Any]
    routes_module: str
    filtered_route: str
    route_eval_us: dict[str, float]
    load_average: list[tuple[float, float, float]] = field(default_factory=list)  # before each run, and at the end
    results: list[Measurement] = field(default_factory=list)  # every run, in order
    summary: list[Summary] = field(default_factory=list)


def run_once(cfg: Config, manifest: Path, work: Path, profile_to: Path | None) -> list[Measurement]:
    """Every scenario once, each server started fresh (an empty hub.db, a new broker)."""
    results: list[Measurement] = []
    children: list[Child] = []
    work.mkdir(parents=True)
    try:
        hub, info = start_hub(manifest, work / "hub", cfg.host, profile_to)
        children.append(hub)
        print(f"  emulator on {cfg.host} (pid {hub.pid}): SDK scenarios", file=sys.stderr)
        results += asyncio.run(run_sdk(info, hub.pid, cfg))
        print("  emulator: raw paho", file=sys.stderr)
        results += run_paho("emulator", "paho (IoT Hub dialect, TLS)", emulator_paho_route(info, cfg.host),
                            hub.pid, cfg)
        if cfg.backlog:
            print(f"  emulator: draining a backlog of {cfg.backlog}", file=sys.stderr)
            results.append(run_backlog(emulator_paho_route(info, cfg.host), hub.pid, cfg))
        # Stop the hub before the reference runs, so it does not compete for the two cores; a clean
        # stop is also what makes cProfile write its file.
        hub.stop()

        tls = identity.ensure_tls(work / "mosquitto-tls", "127.0.0.1")  # same key type as the emulator's
        broker, plain_port, tls_port = start_mosquitto(work, tls)
        children.append(broker)
        print(f"  mosquitto (pid {broker.pid}): plain :{plain_port}, TLS :{tls_port}", file=sys.stderr)
        plain = PahoRoute("127.0.0.1", plain_port, None, PahoIdentity("bench-pub"), PahoIdentity("bench-sub"),
                          "bench/out", "bench/out")
        results += run_paho("mosquitto", "paho (plain TCP)", plain, broker.pid, cfg)
        if not cfg.skip_tls:
            secure = PahoRoute("127.0.0.1", tls_port, tls.ca_cert, PahoIdentity("bench-pub-tls"),
                               PahoIdentity("bench-sub-tls"), "bench/out", "bench/out")
            results += run_paho("mosquitto", "paho (TLS)", secure, broker.pid, cfg)
    finally:
        for child in reversed(children):
            child.stop()
    return results


def run(cfg: Config, work: Path) -> Report:
    manifest = bench_manifest(work, cfg.condition)
    filtered = json.loads(manifest.read_text())["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    report = Report(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), machine_info(),
                    {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                    routes_implementation(), filtered["filtered"],
                    route_evaluation_cost(manifest, cfg.payload_bytes))
    ensure_mosquitto()
    for round_ in range(cfg.repeat):
        print(f"run {round_ + 1} of {cfg.repeat}", file=sys.stderr)
        report.load_average.append(os.getloadavg())
        # Only the first run is profiled: one profile is enough, and the others stay unslowed.
        report.results += run_once(cfg, manifest, work / f"run-{round_ + 1}",
                                   cfg.profile_hub if round_ == 0 else None)
    report.load_average.append(os.getloadavg())
    report.summary = summarize(report.results)
    return report


def ensure_mosquitto() -> None:
    if Path(MOSQUITTO).exists():
        return
    print("installing mosquitto (apt-get)", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "mosquitto"], check=True,
                   stdout=subprocess.DEVNULL)
    # The package may start a system broker on 1883; this benchmark starts its own on free ports.


def format_table(rows: Sequence[Summary]) -> str:
    """A Markdown table (it goes into benchmarks/README.md as printed); "median (best)" with repeats."""

    def pair(typical: float | None, best: float | None, digits: int) -> str:
        if typical is None or best is None:
            return "-"
        if round(typical, digits) == round(best, digits):
            return f"{typical:,.{digits}f}"
        return f"{typical:,.{digits}f} ({best:,.{digits}f})"

    def num(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    header = ("target", "client", "scenario", "kind", "n", "msg/s", "p50 ms", "p99 ms", "server CPU %",
              "server CPU us/msg", "client CPU us/msg")
    body_rows = [
        (r.target, r.client, r.scenario, r.kind, str(r.count), pair(r.rate_median, r.rate_best, 0),
         pair(r.p50_ms_median, r.p50_ms_best, 2), pair(r.p99_ms_median, r.p99_ms_best, 2),
         num(r.server_cpu_pct_median, 0), num(r.server_cpu_us_per_msg_median, 0),
         num(r.client_cpu_us_per_msg_median, 0))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body_rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in [header, *body_rows]]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> tuple[Config, Path | None, bool]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per throughput run")
    parser.add_argument("--latency-samples", type=int, default=500, help="messages per latency run")
    parser.add_argument("--method-calls", type=int, default=300, help="invoke_method round trips")
    parser.add_argument("--batch", type=int, default=50, help="sends in flight at once (throughput)")
    parser.add_argument("--payload-bytes", type=int, default=256, help="JSON body size")
    parser.add_argument("--warmup", type=int, default=50, help="uncounted messages before each run")
    parser.add_argument("--host", default="127.0.0.201", help="loopback address for the emulator")
    parser.add_argument("--condition", help="WHERE condition of the filtered route instead of the fixture's")
    parser.add_argument("--profile-hub", type=Path, help="run the hub under cProfile, stats to this file")
    parser.add_argument("--skip-tls", action="store_true", help="no Mosquitto-with-TLS reference")
    parser.add_argument("--backlog", type=int, default=0,
                        help="also queue N messages for an offline receiver and time their drain (opt-in)")
    parser.add_argument("--repeat", type=int, default=3, help="whole runs; the table shows median (best)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, hub.db)")
    args = parser.parse_args(argv)
    if args.payload_bytes < _BODY_FIXED:
        parser.error(f"--payload-bytes must be at least {_BODY_FIXED}")
    cfg = Config(args.messages, args.latency_samples, args.method_calls, args.batch, args.payload_bytes,
                 args.warmup, args.host, args.condition,
                 args.profile_hub.resolve() if args.profile_hub else None, args.skip_tls, args.repeat, args.backlog)
    return cfg, args.json, args.keep


def main(argv: Sequence[str] | None = None) -> int:
    cfg, json_out, keep = parse_args(argv)
    # SIGTERM (a CI timeout, `kill`) must still run the finally blocks that stop the child servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="emulator-bench-"))
    try:
        report = run(cfg, work)
    except BaseException:
        print(f"benchmark failed; logs kept in {work}", file=sys.stderr)
        raise
    else:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"routes: {report.routes_module}\nfiltered route: {report.filtered_route}")
    print("route evaluation in-process: " + ", ".join(f"{k} {v:.1f} us" for k, v in report.route_eval_us.items()))
    print("load average (1, 5, 15 min) before each run and at the end: "
          + "; ".join(" ".join(f"{v:.2f}" for v in load) for load in report.load_average))
    print(format_table(report.summary))
    if json_out:
        json_out.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
