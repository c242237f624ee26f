"""An edgeAgent for one machine: every module of the deployment manifest as its own OS process.

Modules start in `startupOrder` with the environment IoT Edge would give them (the emulator's
`IOTEDGE_*` values plus the manifest's `env`), `status: stopped` modules are not started, and
`restartPolicy` is applied with exponential backoff when a module exits. The emulator and the
simulator are started first; everything is stopped in reverse order, SIGTERM then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from energy_edge.hub.manifest import EdgeConfig

from energy_edge.run.restart import RestartBackoff

log = logging.getLogger("energy_edge.run")

REPO = Path(__file__).resolve().parents[4]  # tools/run/energy_edge/run/supervisor.py
STOP_TIMEOUT_S = 10.0
CONSOLE_USER = "technician"
_IMAGE_FOLDER = re.compile(r"\$\{MODULES\.([A-Za-z0-9_.-]+?)(?:\.[a-z0-9]+)?\}")


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    restart_policy: str = "never"  # never | on-failure | on-unhealthy | always
    ready_marker: str | None = None
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    state: str = "created"  # created | running | backoff | exited | failed | stopped
    exit_codes: list[int] = field(default_factory=list)
    _monitor: asyncio.Task[None] | None = None
    _stopping: bool = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.returncode is None else None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=REPO, env=self.env, stdout=handle, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops children in order
        )
        handle.close()
        self.state = "running"
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    async def wait_ready(self, timeout_s: float = 60) -> None:
        """Wait for the ready line in the log (emulator, simulator)."""
        if not self.ready_marker:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ready_marker in self.log_path.read_text(errors="replace"):
                return
            if self.proc is not None and self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{self.name} did not start:\n{tail}")

    def supervise(self) -> None:
        self._monitor = asyncio.create_task(self._watch(), name=f"watch-{self.name}")

    async def _watch(self) -> None:
        backoff = RestartBackoff(self.restart_policy)
        while True:
            assert self.proc is not None
            started = time.monotonic()
            code = await self.proc.wait()
            if self._stopping:
                return
            self.exit_codes.append(code)
            restart = backoff.restarts_after(code)
            log.warning("%s exited with %d%s", self.name, code, "; restarting" if restart else "")
            if not restart:
                self.state = "exited" if code == 0 else "failed"
                return
            self.state = "backoff"
            await asyncio.sleep(backoff.delay_s(time.monotonic() - started))
            if self._stopping:
                return
            self.restarts += 1
            await self.start()

    async def stop(self) -> None:
        self._stopping = True
        if self._monitor:
            self._monitor.cancel()
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.warning("%s did not stop in %.0f s; killing it", self.name, STOP_TIMEOUT_S)
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self.state in ("running", "backoff"):
            self.state = "stopped"


def module_folder(image: str, module_id: str) -> Path:
    """The module's folder from its image placeholder `${MODULES.<folder>}` (iotedgedev's convention)."""
    match = _IMAGE_FOLDER.search(image)
    folder = match.group(1) if match else f"{module_id}-module"
    return REPO / "modules" / folder


@dataclass
class Supervisor:
    manifest: Path
    data_dir: Path
    host: str
    scenario: str
    accel: float
    seed: int | None = None
    skip_modules: tuple[str, ...] = ("simulator",)  # started by the supervisor itself, with the run's options
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    hub_info: dict[str, Any] = field(default_factory=dict)
    sim_info: dict[str, Any] = field(default_factory=dict)
    endpoints: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # children run from the repository; every path they are given must not depend on our cwd
        self.data_dir = self.data_dir.resolve()
        self.manifest = self.manifest.resolve()

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def _cli(self, tool: str, *args: str) -> list[str]:
        # each tool's own `python -m` entry (energy_edge.hub, energy_edge.sim), so the local run needs only the
        # emulator's and the simulator's distributions, not the `energy-edge` front
        return [sys.executable, "-m", f"energy_edge.{tool}", *args]

    def _base_env(self) -> dict[str, str]:
        from energy_edge.hub.manifest import read_env_file

        # deployment/.env.example's placeholders (registry credentials…) mean nothing locally
        defaults = read_env_file(self.manifest.parent / ".env.example")
        return {**defaults, **os.environ, "PYTHONUNBUFFERED": "1", "SIMULATOR_HOST": self.host}

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for stale in (self.data_dir / "hub" / "hub.json", self.data_dir / "sim" / "sim.json"):
            stale.unlink(missing_ok=True)
        sim_args = ["sim", "--scenario", self.scenario, "--host", self.host, "--data-dir",
                    str(self.data_dir / "sim"), "--accel", f"{self.accel:g}"]
        if self.seed is not None:
            sim_args += ["--seed", str(self.seed)]
        sim = ManagedProcess("simulator", self._cli(*sim_args), self._base_env(), self.logs / "simulator.log",
                             "always", "energy-edge sim ready")
        hub = ManagedProcess("edgeHub", self._cli("hub", "--manifest", str(self.manifest), "--host", self.host,
                                                  "--data-dir", str(self.data_dir / "hub")),
                             self._base_env(), self.logs / "edgeHub.log", "always", "energy-edge hub ready")
        for process in (sim, hub):
            await self._launch(process)
        self.sim_info = json.loads((self.data_dir / "sim" / "sim.json").read_text())
        self.hub_info = json.loads((self.data_dir / "hub" / "hub.json").read_text())
        from energy_edge.hub.manifest import load_manifest

        edge = load_manifest(self.manifest)
        self.write_endpoints(edge)  # before any module: a tool that sees a module in run.json finds the site too
        await self._start_modules(edge)
        self.write_state()

    async def _launch(self, process: ManagedProcess) -> None:
        self.processes[process.name] = process
        self.order.append(process.name)
        await process.start()
        await process.wait_ready()
        process.supervise()

    async def _start_modules(self, edge: EdgeConfig) -> None:
        for key, value in self._base_env().items():
            os.environ.setdefault(key, value)
        clock = await self._sim_clock()
        for spec in sorted(edge.modules.values(), key=lambda m: (m.startup_order, m.name)):
            if spec.name in self.skip_modules:
                continue
            if spec.status != "running":
                log.info("%s has status %s: not started", spec.name, spec.status)
                continue
            folder = module_folder(spec.image, spec.name)
            main = folder / "main.py"
            if not main.exists():
                log.error("%s: no %s; not started", spec.name, main)
                continue
            env = {**self._base_env(), **self.hub_info["modules"][spec.name]["env"], **spec.env,
                   "STATE_DIR": str(self.data_dir / "state" / spec.name), "ENERGY_EDGE_SIM_CLOCK": clock,
                   # servers a module opens listen on the run's loopback address, not on every interface
                   "ENERGY_EDGE_BIND_ADDRESS": self.host}
            process = ManagedProcess(spec.name, [sys.executable, str(main)], env, self.logs / f"{spec.name}.log",
                                     spec.restart_policy)
            await self._launch(process)

    async def _sim_clock(self) -> str:
        """Simulated time against the wall clock, for modules that need site time (the controller)."""
        import aiohttp

        async with aiohttp.ClientSession() as session, session.get(f"{self.sim_info['admin_url']}/state") as resp:
            state = await resp.json()
        return f"{state['sim_time']}|{time.time():.3f}|{state['accel']}"

    def write_state(self) -> None:
        doc = {name: {"pid": p.pid, "state": p.state, "restarts": p.restarts} for name, p in self.processes.items()}
        path = self.data_dir / "run.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"processes": doc}, indent=2))
        tmp.replace(path)

    def write_endpoints(self, edge: EdgeConfig) -> None:
        """Where a running site can be reached, for other tools (`<data-dir>/endpoints.json`)."""
        desired = edge.desired.get("telemetry", {})
        telemetry = edge.modules.get("telemetry")
        doc = {
            "hub_json": str((self.data_dir / "hub" / "hub.json").resolve()),
            "sim_json": str((self.data_dir / "sim" / "sim.json").resolve()),
            "sim_admin_url": self.sim_info.get("admin_url"),
            "upstream_store": str((self.data_dir / "hub" / "hub.db").resolve()),
            "logs": str(self.logs.resolve()),
        }
        if telemetry is not None and telemetry.status == "running" and "telemetry" not in self.skip_modules:
            port = int(desired.get("metrics_port", 9600))
            doc["metrics_url"] = f"http://{self.host}:{port}/metrics"
            doc["healthz_url"] = f"http://{self.host}:{port}/healthz"
        console = edge.modules.get("console")
        if console is not None and console.status == "running" and "console" not in self.skip_modules:
            port = int(edge.desired.get("console", {}).get("http_port", 8480))
            doc["console_url"] = f"http://{self.host}:{port}/"
            doc["console_user"], doc["console_password_file"] = CONSOLE_USER, str(self.console_credential())
        self.endpoints = doc
        path = self.data_dir / "endpoints.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(path)

    def console_credential(self) -> Path:
        """The console's sign-in for this local site: made once, a random password kept beside the run's data
        (on a real device the operator sets it with `energy-edge console set-password`)."""
        from energy_edge_base.credentials import read_credentials, set_password

        password_file = (self.data_dir / "console-password.txt").resolve()
        credentials = self.data_dir / "state" / "console" / "console-credentials.json"
        if CONSOLE_USER not in read_credentials(credentials) or not password_file.exists():
            password = secrets.token_urlsafe(12)
            set_password(credentials, CONSOLE_USER, password)
            fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(password + "\n")
        return password_file

    def module_states(self) -> dict[str, dict[str, Any]]:
        return {name: {"state": p.state, "restarts": p.restarts, "exit_codes": p.exit_codes}
                for name, p in self.processes.items()}

    async def stop(self) -> None:
        for name in reversed(self.order):
            await self.processes[name].stop()
        self.write_state()
