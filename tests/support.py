"""Helpers the integration tests share: real emulator processes and real SDK clients."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ENERGY_EDGE = [sys.executable, "-m", "energy_edge.cli"]

# Each test process gets its own 127.x.0.0/24 so parallel runs on one machine never share ports.
_OCTET = 20 + os.getpid() % 200
_HOSTS = itertools.count(10)


def next_loopback() -> str:
    return f"127.{_OCTET}.0.{next(_HOSTS)}"


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
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        ready = threading.Event()

        def pump() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                self.log_lines.append(line.rstrip())
                if "energy-edge hub ready" in line:
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("emulator did not start:\n" + "\n".join(self.log_lines))
        return self

    def stop(self, timeout_s: float = 15) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        self.proc = None
        return code

    def service_connection_string(self) -> str:
        return str(self.hub_json["service_connection_string"])

    def module_env(self, module_id: str) -> dict[str, str]:
        env: dict[str, str] = self.hub_json["modules"][module_id]["env"]
        return env


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration (SDK factories read os.environ)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def module_client(hub: HubProcess, module_id: str) -> Any:
    """A real `IoTHubModuleClient` made the production way: from the IoT Edge environment."""
    from azure.iot.device.aio import IoTHubModuleClient

    with environment(hub.module_env(module_id)):
        return IoTHubModuleClient.create_from_edge_environment()


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
