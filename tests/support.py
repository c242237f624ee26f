"""Helpers the integration tests share: real emulator processes and real SDK clients."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from energy_edge.hub.clients import module_client as sdk_module_client
from energy_edge.ops.manifest import drop_modules

REPO = Path(__file__).resolve().parent.parent
ENERGY_EDGE = [sys.executable, "-m", "energy_edge.cli"]

# Each test process gets its own 127.x.0.0/24 so parallel runs on one machine never share ports.
_OCTET = 20 + os.getpid() % 200
_HOSTS = itertools.count(10)


def next_loopback() -> str:
    return f"127.{_OCTET}.0.{next(_HOSTS)}"


def start_until_ready(cmd: list[str], marker: str, log_lines: list[str], timeout_s: float,
                      what: str) -> subprocess.Popen[str]:
    """Start a child process and wait until it prints `marker`; its output is kept in `log_lines`."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout
        for line in proc.stdout:
            log_lines.append(line.rstrip())
            if marker in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not ready.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n" + "\n".join(log_lines))
    return proc


def terminate(proc: subprocess.Popen[str] | None, timeout_s: float) -> int:
    """SIGTERM a child (if still running) and return its exit code."""
    if proc is None:
        return 0
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout_s)


class HubProcess:
    """`energy-edge hub` as a child process, on its own loopback address."""

    def __init__(self, manifest: Path, data_dir: Path, host: str | None = None, *extra: str) -> None:
        self.manifest = manifest
        self.data_dir = data_dir
        self.host = host or next_loopback()
        self.extra = list(extra)
        self.proc: subprocess.Popen[str] | None = None
        self.log_lines: list[str] = []

    @property
    def hub_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.data_dir / "hub.json").read_text())
        return doc

    def start(self, timeout_s: float = 30) -> HubProcess:
        cmd = [*ENERGY_EDGE, "hub", "--manifest", str(self.manifest), "--host", self.host,
               "--data-dir", str(self.data_dir), *self.extra]
        self.proc = start_until_ready(cmd, "energy-edge hub ready", self.log_lines, timeout_s, "emulator")
        return self

    def stop(self, timeout_s: float = 15) -> int:
        code = terminate(self.proc, timeout_s)
        self.proc = None
        return code

    def service_connection_string(self) -> str:
        return str(self.hub_json["service_connection_string"])

    def module_env(self, module_id: str) -> dict[str, str]:
        env: dict[str, str] = self.hub_json["modules"][module_id]["env"]
        return env


def module_client(hub: HubProcess, module_id: str) -> Any:
    """A real `IoTHubModuleClient` made the production way: from the IoT Edge environment."""
    return sdk_module_client(hub.hub_json, module_id)


def registry_manager(hub: HubProcess) -> Any:
    from azure.iot.hub import IoTHubRegistryManager

    trust_ca_for_requests(Path(hub.hub_json["ca_cert"]))
    return IoTHubRegistryManager.from_connection_string(hub.service_connection_string())


_CA_BUNDLE = Path(os.environ.get("TMPDIR", "/tmp")) / f"energy-edge-test-ca-{os.getpid()}.pem"


def trust_ca_for_requests(ca_cert: Path) -> None:
    """Add an emulator's CA to one bundle that REQUESTS_CA_BUNDLE names (several hubs, several CAs)."""
    pem = ca_cert.read_text()
    existing = _CA_BUNDLE.read_text() if _CA_BUNDLE.exists() else ""
    if pem not in existing:
        _CA_BUNDLE.write_text(existing + pem)
    os.environ["REQUESTS_CA_BUNDLE"] = str(_CA_BUNDLE)


class ModuleProcess:
    """A module script as its own OS process, with the environment IoT Edge would give it."""

    def __init__(self, hub: HubProcess, module_id: str, argv: list[str], extra_env: dict[str, str] | None = None):
        self.hub = hub
        self.module_id = module_id
        self.argv = argv
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[str] | None = None
        self.log_lines: list[str] = []
        self._lock = threading.Lock()

    def start(self) -> ModuleProcess:
        env = {**os.environ, **self.hub.module_env(self.module_id), **self.extra_env, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, *self.argv], cwd=REPO, env=env, text=True, bufsize=1,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def pump() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                with self._lock:
                    self.log_lines.append(line.rstrip())

        threading.Thread(target=pump, daemon=True).start()
        return self

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.log_lines)

    def stop(self, timeout_s: float = 15) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


# ---------------------------------------------------------------- a whole site: simulator, emulator, modules

MODULE_FOLDERS = {
    "solar": "solar-module",
    "battery": "battery-module",
    "boiler": "boiler-module",
    "microgrid-controller": "microgrid-controller-module",
    "controller": "controller-module",
    "telemetry": "telemetry-module",
    "console": "console-module",
}
DEPLOYMENT = REPO / "deployment" / "deployment.template.json"


class SimProcess:
    """`energy-edge sim` as a child process."""

    def __init__(self, data_dir: Path, host: str, scenario: str = "default", accel: float = 1.0) -> None:
        self.data_dir, self.host, self.scenario, self.accel = data_dir, host, scenario, accel
        self.proc: subprocess.Popen[str] | None = None
        self.log_lines: list[str] = []

    def start(self, timeout_s: float = 60) -> SimProcess:
        cmd = [*ENERGY_EDGE, "sim", "--scenario", self.scenario, "--host", self.host, "--data-dir",
               str(self.data_dir), "--accel", str(self.accel)]
        self.proc = start_until_ready(cmd, "energy-edge sim ready", self.log_lines, timeout_s, "simulator")
        return self

    @property
    def admin_url(self) -> str:
        return str(json.loads((self.data_dir / "sim.json").read_text())["admin_url"])

    def state_devices(self) -> list[dict[str, Any]]:
        """The endpoints sim.json lists."""
        devices: list[dict[str, Any]] = json.loads((self.data_dir / "sim.json").read_text())["devices"]
        return devices

    def state(self) -> dict[str, Any]:
        import urllib.request

        with urllib.request.urlopen(self.admin_url + "/state", timeout=10) as response:
            doc: dict[str, Any] = json.loads(response.read())
            return doc

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import urllib.request

        request = urllib.request.Request(self.admin_url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            doc: dict[str, Any] = json.loads(response.read())
            return doc

    def stop(self, timeout_s: float = 15) -> int:
        code = terminate(self.proc, timeout_s)
        self.proc = None
        return code


def site_manifest(sim_host: str, drop: tuple[str, ...] = ("simulator",), probe_inputs: bool = True,
                  desired: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The real deployment manifest, pointed at a simulator, with modules dropped and a `probe`
    module added that receives every asset's telemetry (the test's eyes)."""
    manifest: dict[str, Any] = json.loads(DEPLOYMENT.read_text().replace("${SIMULATOR_HOST}", sim_host))
    drop_modules(manifest, drop)
    content = manifest["modulesContent"]
    modules = content["$edgeAgent"]["properties.desired"]["modules"]
    routes = content["$edgeHub"]["properties.desired"]["routes"]
    if probe_inputs:
        modules["probe"] = {"type": "docker", "status": "running", "restartPolicy": "always",
                            "settings": {"image": "probe:1"}}
        content["probe"] = {"properties.desired": {}}
        for name in ("solar", "battery", "boiler", "microgrid-controller", "controller"):
            if name in modules:
                routes[f"{name}ToProbe"] = (f'FROM /messages/modules/{name}/outputs/* '
                                            f'INTO BrokeredEndpoint("/modules/probe/inputs/{name}")')
    for name, patch in (desired or {}).items():
        content[name]["properties.desired"].update(patch)
    return manifest


class TelemetryProbe:
    """A real (sync) module client that keeps the latest message per asset and every message seen."""

    def __init__(self, hub: HubProcess, module_id: str = "probe") -> None:
        self.client = sdk_module_client(hub.hub_json, module_id, asyncio=False)
        self.latest: dict[str, dict[str, Any]] = {}
        self.messages: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self._lock = threading.Lock()
        self.client.on_message_received = self._on_message
        self.client.connect()

    def _on_message(self, message: Any) -> None:
        try:
            body = json.loads(message.data)
        except ValueError:
            return
        with self._lock:
            self.messages.append((message.input_name, body, dict(message.custom_properties)))
            if isinstance(body, dict) and "asset_id" in body and body.get("message_type") == "telemetry":
                self.latest[body["asset_id"]] = body

    def wait_for(self, predicate: Any, timeout_s: float = 30, what: str = "telemetry") -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                value = predicate(self)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; latest: {self.latest}")

    def close(self) -> None:
        self.client.shutdown()


class Site:
    """Simulator + emulator + module processes, started together and stopped together."""

    def __init__(self, root: Path, modules: tuple[str, ...], drop: tuple[str, ...] = ("simulator",),
                 desired: dict[str, dict[str, Any]] | None = None, scenario: str = "default", accel: float = 1.0,
                 extra_env: dict[str, str] | None = None) -> None:
        self.host = next_loopback()
        self.sim = SimProcess(root / "sim", self.host, scenario, accel)
        self.manifest_path = root / "deployment.json"
        # a console nobody starts would only pile up its routed copies in the emulator's queue
        if "console" not in modules:
            drop = (*drop, "console")
        self.manifest_path.write_text(json.dumps(site_manifest(self.host, drop, desired=desired), indent=2))
        self.hub = HubProcess(self.manifest_path, root / "hub", self.host)
        self.module_ids = modules
        # servers a module opens (the console, /metrics) listen on the site's own loopback address
        self.extra_env = {"STATE_DIR": str(root / "state"), "ENERGY_EDGE_BIND_ADDRESS": self.host,
                          **(extra_env or {})}
        self.modules: dict[str, ModuleProcess] = {}
        self.probe: TelemetryProbe | None = None

    def start(self) -> Site:
        self.sim.start()
        self.hub.start()
        trust_ca_for_requests(Path(self.hub.hub_json["ca_cert"]))
        self.probe = TelemetryProbe(self.hub)
        for module_id in self.module_ids:
            self.start_module(module_id)
        return self

    def start_module(self, module_id: str) -> ModuleProcess:
        process = ModuleProcess(self.hub, module_id, [f"modules/{MODULE_FOLDERS[module_id]}/main.py"],
                                self.extra_env).start()
        self.modules[module_id] = process
        return process

    def call(self, module_id: str, method: str, payload: Any, timeout_s: int = 15, connect_timeout_s: int = 10
             ) -> tuple[int, Any]:
        """A direct method through the hub, as a cloud caller would make it. The hub waits up to
        `connect_timeout_s` for a module that has not connected yet (a site's modules start in any order)."""
        from azure.iot.hub.models import CloudToDeviceMethod

        result = registry_manager(self.hub).invoke_device_module_method(
            self.hub.hub_json["device_id"], module_id,
            CloudToDeviceMethod(method_name=method, payload=payload, response_timeout_in_seconds=timeout_s,
                                connect_timeout_in_seconds=connect_timeout_s),
        )
        return result.status, result.payload

    def stop(self) -> None:
        for process in self.modules.values():
            try:
                process.stop()
            except subprocess.TimeoutExpired:
                pass
        if self.probe:
            self.probe.close()
        self.hub.stop()
        self.sim.stop()


def wait_status(site: Site, predicate: Any, what: str, timeout_s: float = 30) -> dict[str, Any]:
    """The controller's status (`get_status` through the service API) once `predicate` holds; on a timeout the
    error shows the last status and the tail of the controller's log."""
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        code, payload = site.call("controller", "get_status", {})
        status = payload.get("status", {}) if code == 200 else {}
        if predicate(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"controller never reached {what}: {status}\n"
                         f"{site.modules['controller'].output()[-3000:]}")
