"""`energy-edge run --containers`: every module of the manifest as a container, the way edgeAgent runs them.

Through the Docker Engine API (the `docker` package): one container per module from its image, the manifest's
`createOptions` merged as edgeAgent merges them (its Env, Labels, HostConfig binds / port bindings / log
config kept, the module's `env` and the `IOTEDGE_*` environment on top), `startupOrder`, `restartPolicy` with
exponential backoff (the runner restarts, Docker's own restart policy stays "no", as under edgeAgent), the
desired `status` (a `stopped` module is created, not started), and a stop that sends the image's STOPSIGNAL
(SIGTERM) and waits the module's grace period.

What differs from a device, on purpose:
- The emulator (edgeHub) and the simulator run as processes on the run's loopback address, and every module
  container shares the host's network namespace: nothing leaves loopback and the modules reach the emulator
  and the Modbus devices as they do in the process run. Docker ignores PortBindings under host networking,
  so each declared host port is checked free on the run's address before anything starts (the module binds
  it there itself, ENERGY_EDGE_BIND_ADDRESS).
- Modules run hardened: read-only root filesystem with a tmpfs /tmp, writable state only on the module's
  volume at /app/data (created for the run, removed after it), no new privileges, all capabilities dropped.

Everything created carries the labels `io.energy-edge.owner=energy-edge-run` and `io.energy-edge.data-dir`;
a run removes what an earlier run on the same data directory left behind (a crash, a SIGKILL) before it
starts, and removes its own containers and volumes when it ends, also after Ctrl-C or an error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from energy_edge.run.restart import RestartBackoff
from energy_edge.run.supervisor import Supervisor, module_folder

if TYPE_CHECKING:
    from energy_edge.hub.manifest import EdgeConfig

log = logging.getLogger("energy_edge.run")

OWNER_LABEL = "io.energy-edge.owner"
OWNER = "energy-edge-run"
DATA_DIR_LABEL = "io.energy-edge.data-dir"
MODULE_LABEL = "io.energy-edge.module"
STOP_GRACE_S = 10  # edgeAgent's default shutdown wait; a module's createOptions.StopTimeout overrides it
STATE_MOUNT = "/app/data"
PLATFORM = "amd64"
# Docker Engine's container-create body: the top-level keys createOptions may hold, with the JSON type each takes.
CREATE_OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "Hostname": str, "Domainname": str, "User": str, "Env": list, "Cmd": (list, str), "Entrypoint": (list, str),
    "Labels": dict, "ExposedPorts": dict, "HostConfig": dict, "NetworkingConfig": dict, "WorkingDir": str,
    "StopSignal": str, "StopTimeout": int, "Healthcheck": dict, "Volumes": dict, "Tty": bool,
    "AttachStdin": bool, "AttachStdout": bool, "AttachStderr": bool, "OpenStdin": bool, "StdinOnce": bool,
    "ArgsEscaped": bool, "NetworkDisabled": bool, "MacAddress": str, "OnBuild": list, "Shell": list, "Image": str,
}
HOST_CONFIG_TYPES: dict[str, type | tuple[type, ...]] = {
    "Binds": list, "PortBindings": dict, "LogConfig": dict, "Mounts": list, "Privileged": bool,
    "ReadonlyRootfs": bool, "Tmpfs": dict, "CapAdd": list, "CapDrop": list, "Devices": list, "NetworkMode": str,
    "Memory": int, "NanoCpus": int, "RestartPolicy": dict, "ExtraHosts": list, "SecurityOpt": list,
    "Init": bool, "ShmSize": int, "Ulimits": list, "GroupAdd": list,
}


class ContainerRunError(RuntimeError):
    """The site cannot start as containers; the message names the module and what is wrong."""


def image_for(spec_image: str, module_id: str) -> str:
    """The image a manifest entry means: `${MODULES.<folder>}` is the tag `make images` gives that folder."""
    if not spec_image.startswith("${MODULES."):
        return spec_image
    folder = module_folder(spec_image, module_id)
    try:
        version = json.loads((folder / "module.json").read_text())["image"]["tag"]["version"]
    except (OSError, ValueError, KeyError) as exc:
        raise ContainerRunError(f"module {module_id}: image {spec_image} names no module folder ({exc})") from exc
    registry = os.environ.get("CONTAINER_REGISTRY_ADDRESS") or "localhost"
    extra = os.environ.get("CONTAINER_TAG", "")
    return f"{registry}/{folder.name}:{version}{'-' + extra if extra else ''}-{PLATFORM}"


def raw_module_settings(manifest: Path) -> dict[str, dict[str, Any]]:
    """Each module's `settings` as the manifest writes them (after ${NAME} expansion), for createOptions."""
    from energy_edge.hub.manifest import expand_variables, read_env_file

    env = {**read_env_file(manifest.parent / ".env"), **os.environ}
    text, _missing = expand_variables(manifest.read_text(encoding="utf-8"), env)
    modules = json.loads(text)["modulesContent"]["$edgeAgent"]["properties.desired"].get("modules", {})
    return {name: dict(spec.get("settings", {})) for name, spec in modules.items()}


def parse_create_options(module_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    """createOptions as edgeAgent reads them: an object, a JSON string, or split over createOptions01…NN."""
    raw: Any = settings.get("createOptions", {})
    chunks = sorted(k for k in settings if k.startswith("createOptions") and k[len("createOptions"):].isdigit())
    if chunks:
        raw = (raw if isinstance(raw, str) else "") + "".join(str(settings[k]) for k in chunks)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise ContainerRunError(f"module {module_id}: createOptions is not valid JSON ({exc.msg} at column "
                                    f"{exc.colno})") from exc
    if not isinstance(raw, dict):
        raise ContainerRunError(f"module {module_id}: createOptions must be an object, not {type(raw).__name__}")
    _check_types(module_id, "createOptions", raw, CREATE_OPTION_TYPES)
    _check_types(module_id, "createOptions.HostConfig", raw.get("HostConfig", {}), HOST_CONFIG_TYPES)
    for item in raw.get("Env", []):
        if not isinstance(item, str) or "=" not in item:
            raise ContainerRunError(f"module {module_id}: createOptions.Env entries are 'NAME=value', got {item!r}")
    for port, bindings in raw.get("HostConfig", {}).get("PortBindings", {}).items():
        if not isinstance(bindings, list) or not all(isinstance(b, dict) for b in bindings):
            raise ContainerRunError(f"module {module_id}: createOptions.HostConfig.PortBindings[{port!r}] must be a "
                                    "list of {HostIp, HostPort} objects")
        for binding in bindings:
            if not str(binding.get("HostPort", "")).isdigit():
                raise ContainerRunError(f"module {module_id}: createOptions.HostConfig.PortBindings[{port!r}]: "
                                        f"HostPort {binding.get('HostPort')!r} is not a port number")
    return raw


def _check_types(module_id: str, where: str, doc: Any, types: dict[str, type | tuple[type, ...]]) -> None:
    if not isinstance(doc, dict):
        raise ContainerRunError(f"module {module_id}: {where} must be an object")
    for key, value in doc.items():
        if key not in types:
            raise ContainerRunError(f"module {module_id}: {where}.{key} is not a Docker container-create option")
        expected = types[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
            raise ContainerRunError(f"module {module_id}: {where}.{key} must be {names}, not {type(value).__name__}")


def named_volumes(options: dict[str, Any]) -> list[str]:
    """Volume names in createOptions.HostConfig.Binds (`name:/path`; a host path starts with / or .)."""
    names = []
    for bind in options.get("HostConfig", {}).get("Binds", []):
        source = str(bind).split(":", 1)[0]
        if source and not source.startswith(("/", ".", "~")):
            names.append(source)
    return names


WORKLOAD_SOCKET = "/var/run/iotedge/workload.sock"  # where IoT Edge mounts a module's workload socket


def merge_create_options(options: dict[str, Any], image: str, env: dict[str, str], labels: dict[str, str],
                         volumes: dict[str, str]) -> dict[str, Any]:
    """The container-create body: createOptions first, then what edgeAgent sets over them (image, env, labels),
    then the run's host networking and hardening where createOptions say nothing.

    `volumes` maps each volume name the Binds use, and "" for the module's state at /app/data, to the volume the
    run created for it: a site's named volume outlives deployments on a device, but a local run must not share
    state with another run, so each run has its own and removes it."""
    body = json.loads(json.dumps(options))  # a deep copy
    merged_env = dict(item.split("=", 1) for item in body.get("Env", []))
    merged_env.update(env)  # the module's env and IOTEDGE_* win over createOptions.Env, as on a device
    body["Image"] = image
    body["Env"] = [f"{k}={v}" for k, v in merged_env.items()]
    body["Labels"] = {**body.get("Labels", {}), **labels}
    host = body.setdefault("HostConfig", {})
    host["NetworkMode"] = "host"  # everything on the run's loopback address (see the module docstring)
    # an init process as PID 1 (docker-init): the kernel drops a signal to PID 1 that has no handler yet, so a
    # module stopped while it still imports would hang until the grace period ends and be killed
    host.setdefault("Init", True)
    host.setdefault("ReadonlyRootfs", True)
    host.setdefault("Tmpfs", {"/tmp": "rw,noexec,nosuid,size=16m"})
    host.setdefault("SecurityOpt", ["no-new-privileges"])
    host.setdefault("CapDrop", ["ALL"])
    host.setdefault("LogConfig", {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}})
    binds = []
    for bind in host.get("Binds", []):
        source, _, rest = str(bind).partition(":")
        binds.append(f"{volumes.get(source, source)}:{rest}")
    if not any(b.split(":")[1] == STATE_MOUNT for b in binds):
        binds.append(f"{volumes['']}:{STATE_MOUNT}")
    host["Binds"] = binds
    host["RestartPolicy"] = {"Name": "no"}  # the runner restarts with backoff, as edgeAgent does
    return dict(body)


@dataclass
class ModuleContainer:
    """One module's container and its restart bookkeeping."""

    name: str
    container_id: str
    restart_policy: str
    grace_s: int
    desired_status: str
    state: str = "created"  # created | running | backoff | exited | failed | stopped
    restarts: int = 0
    exit_codes: list[int] = field(default_factory=list)
    started_at: float = 0.0
    stop_s: float | None = None  # how long the last stop took (SIGTERM → exit)
    _monitor: asyncio.Task[None] | None = None
    _stopping: bool = False


class ContainerSupervisor(Supervisor):
    """The process run's emulator and simulator, and every module as a container."""

    def __post_init__(self) -> None:
        super().__post_init__()
        import docker

        try:
            self.client = docker.from_env(timeout=60)
            self.client.ping()
        except Exception as exc:
            raise ContainerRunError(f"no Docker Engine answers ({exc}); as root: bash scripts/start-dockerd.sh "
                                    "(and `make images`)") from exc
        self.run_id = hashlib.sha256(f"{self.data_dir}|{os.getpid()}|{time.time()}".encode()).hexdigest()[:8]
        self.containers: dict[str, ModuleContainer] = {}
        self.volumes: list[str] = []
        # container.wait() blocks a thread per module for its lifetime: a pool of its own, not the loop's default
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="docker")

    def _labels(self, module_id: str | None = None) -> dict[str, str]:
        labels = {OWNER_LABEL: OWNER, DATA_DIR_LABEL: str(self.data_dir), "io.energy-edge.run-id": self.run_id}
        if module_id:
            labels[MODULE_LABEL] = module_id
        return labels

    async def _docker(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def sweep(self) -> int:
        """Remove containers and volumes an earlier run on this data directory left behind, and stop the emulator
        and simulator processes a crashed runner left (run.json names them; their command line names the data
        directory, so a recycled pid is not touched)."""
        removed = self._sweep_processes()
        filters = {"label": [f"{OWNER_LABEL}={OWNER}", f"{DATA_DIR_LABEL}={self.data_dir}"]}
        for container in self.client.containers.list(all=True, filters=filters, ignore_removed=True):
            log.warning("removing %s, left by an earlier run", container.name)
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
                removed += 1
        for volume in self.client.volumes.list(filters=filters):
            with contextlib.suppress(Exception):
                volume.remove(force=True)
                removed += 1
        return removed

    def _sweep_processes(self) -> int:
        try:
            processes = json.loads((self.data_dir / "run.json").read_text())["processes"]
        except (OSError, ValueError, KeyError):
            return 0
        stopped = 0
        for name, process in processes.items():
            pid = process.get("pid")
            if not pid or pid == os.getpid():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            ours = {b"energy_edge.hub", b"energy_edge.sim"} & set(cmdline)  # Supervisor._cli's children
            if ours and any(str(self.data_dir).encode() in arg for arg in cmdline):
                log.warning("stopping %s (pid %d), left by an earlier run", name, pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                stopped += 1
        return stopped

    async def start(self) -> None:
        from energy_edge.hub.manifest import load_manifest

        # everything that can be wrong with the input is found before anything starts
        edge = load_manifest(self.manifest)
        await self._docker(self.sweep)
        self._plans = await self._docker(self._plan, edge)
        await super().start()

    def _plan(self, edge: EdgeConfig) -> list[tuple[Any, str, dict[str, Any]]]:
        """(spec, image, createOptions) per module to run, checked: the image exists, createOptions are valid,
        every declared host port is free on the run's address."""
        import docker

        settings = raw_module_settings(self.manifest)
        plans = []
        for spec in sorted(edge.modules.values(), key=lambda m: (m.startup_order, m.name)):
            if spec.name in self.skip_modules:
                continue
            image = image_for(spec.image, spec.name)
            try:
                self.client.images.get(image)
            except docker.errors.ImageNotFound as exc:
                raise ContainerRunError(f"module {spec.name}: image {image} not found (build it: make images)") from exc
            options = parse_create_options(spec.name, settings.get(spec.name, {}))
            for port, bindings in options.get("HostConfig", {}).get("PortBindings", {}).items():
                for binding in bindings:
                    host_port = int(binding["HostPort"])
                    with socket.socket() as probe:
                        try:
                            probe.bind((self.host, host_port))
                        except OSError as exc:
                            raise ContainerRunError(
                                f"module {spec.name}: port {host_port} ({port}) is already taken on {self.host} "
                                f"({exc.strerror})") from exc
            plans.append((spec, image, options))
        return plans

    async def _start_modules(self, edge: EdgeConfig) -> None:
        clock = await self._sim_clock()
        for spec, image, options in self._plans:
            env = {**self.hub_info["modules"][spec.name]["env"], **spec.env,
                   "PYTHONUNBUFFERED": "1", "SIMULATOR_HOST": self.host,
                   "STATE_DIR": STATE_MOUNT, "ENERGY_EDGE_SIM_CLOCK": clock, "ENERGY_EDGE_BIND_ADDRESS": self.host}
            if spec.name == "telemetry":
                env["HEALTHZ_PORT"] = str(int(edge.desired.get("telemetry", {}).get("metrics_port", 9600)))
            uri = env.get("IOTEDGE_WORKLOADURI", "")
            if uri.startswith("unix://"):
                # as edgeAgent does: the module's own workload socket mounted at IoT Edge's path
                options = json.loads(json.dumps(options))
                options.setdefault("HostConfig", {}).setdefault("Binds", []).append(
                    f"{uri[len('unix://'):]}:{WORKLOAD_SOCKET}")
                env["IOTEDGE_WORKLOADURI"] = f"unix://{WORKLOAD_SOCKET}"
            await self._create(spec, image, options, env)

    async def _create(self, spec: Any, image: str, options: dict[str, Any], env: dict[str, str]) -> None:
        import docker

        volumes = {}
        for source in ["", *named_volumes(options)]:
            volume = f"energy-edge-{self.run_id}-{source or spec.name}"
            await self._docker(self.client.volumes.create, name=volume, labels=self._labels(spec.name))
            self.volumes.append(volume)
            volumes[source] = volume
        body = merge_create_options(options, image, env, self._labels(spec.name), volumes)
        name = f"energy-edge-{self.run_id}-{spec.name}"
        try:
            created = await self._docker(self.client.api.create_container_from_config, body, name)
        except docker.errors.APIError as exc:
            raise ContainerRunError(f"module {spec.name}: container not created: {exc.explanation or exc}") from exc
        grace_s = int(options.get("StopTimeout", STOP_GRACE_S))
        module = ModuleContainer(spec.name, created["Id"], spec.restart_policy, grace_s, spec.status)
        self.containers[spec.name] = module
        self.order.append(spec.name)
        if spec.status != "running":
            log.info("%s has status %s: created, not started", spec.name, spec.status)
            module.state = "stopped"
            return
        await self._start_container(module)
        module._monitor = asyncio.create_task(self._watch(module), name=f"watch-{spec.name}")

    async def _start_container(self, module: ModuleContainer) -> None:
        import docker

        try:
            await self._docker(self.client.api.start, module.container_id)
        except docker.errors.APIError as exc:
            raise ContainerRunError(f"module {module.name}: container did not start: {exc.explanation or exc}") from exc
        module.state = "running"
        module.started_at = time.monotonic()
        log.info("started %s (container %s)", module.name, module.container_id[:12])

    async def _watch(self, module: ModuleContainer) -> None:
        backoff = RestartBackoff(module.restart_policy)
        while True:
            result = await self._docker(self.client.api.wait, module.container_id)
            if module._stopping:
                return
            code = int(result.get("StatusCode", -1))
            module.exit_codes.append(code)
            restart = backoff.restarts_after(code)
            log.warning("%s exited with %d%s", module.name, code, "; restarting" if restart else "")
            if not restart:
                module.state = "exited" if code == 0 else "failed"
                return
            module.state = "backoff"
            await asyncio.sleep(backoff.delay_s(time.monotonic() - module.started_at))
            if module._stopping:
                return
            module.restarts += 1
            try:
                await self._start_container(module)
            except ContainerRunError as exc:
                log.error("%s", exc)
                module.state = "failed"
                return

    async def stop_module(self, module: ModuleContainer) -> None:
        """SIGTERM (the image's STOPSIGNAL), wait the grace period, then Docker kills it."""
        module._stopping = True
        if module._monitor:
            module._monitor.cancel()
        started = time.monotonic()
        with contextlib.suppress(Exception):
            await self._docker(self.client.api.stop, module.container_id, timeout=module.grace_s)
        with contextlib.suppress(Exception):
            info = await self._docker(self.client.api.inspect_container, module.container_id)
            if module.state in ("running", "backoff"):
                module.exit_codes.append(int(info["State"]["ExitCode"]))
                module.stop_s = time.monotonic() - started
        if module.state in ("running", "backoff"):
            module.state = "stopped"
        await self._docker(self._save_log, module)

    def _save_log(self, module: ModuleContainer) -> None:
        """The container's output into <data-dir>/logs/<module>.log, where the process run writes it."""
        with contextlib.suppress(Exception):
            self.logs.mkdir(parents=True, exist_ok=True)
            (self.logs / f"{module.name}.log").write_bytes(self.client.api.logs(module.container_id, timestamps=True))

    def write_state(self) -> None:
        doc: dict[str, dict[str, Any]] = {name: {"pid": p.pid, "state": p.state, "restarts": p.restarts}
                                          for name, p in self.processes.items()}
        for name, c in self.containers.items():
            doc[name] = {"container": c.container_id, "state": c.state, "restarts": c.restarts, "pid": None,
                         "exit_codes": c.exit_codes, "stop_s": c.stop_s, "grace_s": c.grace_s}
        self.data_dir.mkdir(parents=True, exist_ok=True)  # a run refused before it started has none yet
        path = self.data_dir / "run.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"processes": doc}, indent=2))
        tmp.replace(path)

    def module_states(self) -> dict[str, dict[str, Any]]:
        states = super().module_states()
        for name, c in self.containers.items():
            states[name] = {"state": c.state, "restarts": c.restarts, "exit_codes": c.exit_codes,
                            "container": c.container_id[:12], "stop_s": c.stop_s}
        return states

    async def stop(self) -> None:
        try:
            for name in reversed(self.order):
                if name in self.containers:
                    await self.stop_module(self.containers[name])
                elif name in self.processes:
                    await self.processes[name].stop()
        finally:
            await self._docker(self._remove_all)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self.write_state()

    def _remove_all(self) -> None:
        for module in self.containers.values():
            with contextlib.suppress(Exception):
                self.client.api.remove_container(module.container_id, force=True, v=True)
        for volume in self.volumes:
            with contextlib.suppress(Exception):
                self.client.api.remove_volume(volume, force=True)
        self.sweep()  # anything labelled for this data directory that the lists above missed


__all__ = ["ContainerRunError", "ContainerSupervisor", "merge_create_options", "parse_create_options"]
