"""What the local-run benchmarks share: process sampling from /proc, percentiles, free loopback
addresses, manifests built from the deployment template, and a supervisor that can swap in the
benchmarks' instrumented entry points (a traced simulator, a traced controller).

Nothing here changes product code: the instrumented entry points in `benchmarks/instrumented/`
import the product modules and wrap a few methods to record times; `energy-edge run`'s own
`Supervisor` starts everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energy_edge.ops.manifest import drop_modules, set_site_assets
from energy_edge.run.supervisor import ManagedProcess, Supervisor

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
INSTRUMENTED = BENCH / "instrumented"
DEPLOYMENT = REPO / "deployment" / "deployment.template.json"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# scenario device kind -> the module that drives it (the deployment's module ids)
MODULE_OF_KIND = {"solar": "solar", "battery": "battery", "boiler": "boiler",
                  "microgrid_controller": "microgrid-controller"}


# ---------------------------------------------------------------- statistics


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    data = sorted(values)
    if not data:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(data)))
    return data[min(rank, len(data)) - 1]


def describe(values: list[float], scale: float = 1.0, digits: int = 1) -> dict[str, Any]:
    """n, min, p50, p90, p99, max, mean of values × scale."""
    if not values:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(values)}
    for name, p in (("min", 0), ("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        v = min(values) if p == 0 else percentile(values, p)
        out[name] = round((v or 0.0) * scale, digits)
    out["mean"] = round(statistics.fmean(values) * scale, digits)
    return out


# ---------------------------------------------------------------- the machine


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "mem_gb": round(mem_kb / 1024 / 1024, 1),
            "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3]}


def _system_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass
class ProcSample:
    t: float
    pid: int
    cpu_s: float
    rss_kb: int
    hwm_kb: int
    pss_kb: int | None
    uss_kb: int | None
    threads: int


def read_proc(pid: int, smaps: bool = True) -> ProcSample | None:
    """CPU (utime+stime, all threads) and memory of one process from /proc; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = stat[stat.rindex(")") + 2:].split()
    if rest[0] == "Z":
        return None
    cpu_s = (int(rest[11]) + int(rest[12])) / CLOCK_TICKS
    fields = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()[0] if value.split() else "0"
    pss = uss = None
    if smaps:
        with contextlib.suppress(OSError, ValueError):
            roll = {}
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
                key, _, value = line.partition(":")
                roll[key] = int(value.split()[0])
            pss = roll.get("Pss")
            uss = roll.get("Private_Clean", 0) + roll.get("Private_Dirty", 0)
    return ProcSample(time.monotonic(), pid, cpu_s, int(fields.get("VmRSS", 0)), int(fields.get("VmHWM", 0)),
                      pss, uss, int(fields.get("Threads", 0)))


class ProcSampler:
    """Samples named processes every `interval_s` on a thread: RSS, PSS, USS, CPU time; and the machine."""

    def __init__(self, pids: Callable[[], dict[str, int | None]], interval_s: float = 1.0) -> None:
        self.pids = pids
        self.interval_s = interval_s
        self.samples: dict[str, list[ProcSample]] = {}
        self.system: list[tuple[float, float, float, float]] = []  # t, busy s, total s, loadavg1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="proc-sampler", daemon=True)

    def start(self) -> ProcSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            next_t += self.interval_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def sample_once(self) -> None:
        try:
            pids = self.pids()
        except Exception:  # a half-written run.json: try again next tick
            pids = {}
        for name, pid in pids.items():
            if pid:
                sample = read_proc(pid)
                if sample is not None:
                    self.samples.setdefault(name, []).append(sample)
        busy, total = _system_cpu()
        load1 = float(Path("/proc/loadavg").read_text().split()[0])
        self.system.append((time.monotonic(), busy, total, load1))

    def summary(self, t_from: float, t_to: float) -> dict[str, Any]:
        """Per process over [t_from, t_to]: RSS/PSS/USS median and max (MB), CPU share (% of one core)."""
        out: dict[str, Any] = {}
        mine_cpu = 0.0
        for name, samples in sorted(self.samples.items()):
            window = [s for s in samples if t_from <= s.t <= t_to]
            if len(window) < 2:
                continue
            cpu = dt = 0.0
            for a, b in itertools.pairwise(window):
                if a.pid == b.pid and b.cpu_s >= a.cpu_s:
                    cpu += b.cpu_s - a.cpu_s
                    dt += b.t - a.t
            share = 100.0 * cpu / dt if dt > 0 else None
            mine_cpu += cpu
            rss = [s.rss_kb / 1024 for s in window]
            pss = [s.pss_kb / 1024 for s in window if s.pss_kb is not None]
            uss = [s.uss_kb / 1024 for s in window if s.uss_kb is not None]
            out[name] = {
                "samples": len(window),
                "pids": sorted({s.pid for s in window}),
                "rss_mb_median": round(statistics.median(rss), 1), "rss_mb_max": round(max(rss), 1),
                "rss_mb_first": round(rss[0], 1), "rss_mb_last": round(rss[-1], 1),
                "pss_mb_median": round(statistics.median(pss), 1) if pss else None,
                "uss_mb_median": round(statistics.median(uss), 1) if uss else None,
                "vmhwm_mb": round(max(s.hwm_kb for s in window) / 1024, 1),
                "threads": window[-1].threads,
                "cpu_pct_of_one_core": round(share, 2) if share is not None else None,
                "cpu_s": round(cpu, 2),
            }
        system = [s for s in self.system if t_from <= s[0] <= t_to]
        if len(system) >= 2:
            (t0, b0, _, _), (t1, b1, _, _) = system[0], system[-1]
            wall = t1 - t0
            machine = 100.0 * (b1 - b0) / wall
            ours = 100.0 * mine_cpu / wall
            out["_machine"] = {
                "wall_s": round(wall, 1),
                "busy_pct_of_one_core": round(machine, 1),
                "capacity_pct": 100 * (os.cpu_count() or 1),
                "ours_pct_of_one_core": round(ours, 1),
                "others_pct_of_one_core": round(machine - ours, 1),
                "loadavg1_median": round(statistics.median(s[3] for s in system), 2),
                "loadavg1_max": round(max(s[3] for s in system), 2),
            }
        return out


# ---------------------------------------------------------------- addresses


SITE_PORTS = (8883, 443, 15580, 9600)  # emulator MQTT, HTTPS, workload API; telemetry module /metrics


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_host(ports: Iterable[int], preferred: str | None = None) -> str:
    """A 127.0.0.N address on which every port in `ports` is free (others run sites on this machine)."""
    wanted = [*SITE_PORTS, *ports]
    if preferred:
        busy = [p for p in wanted if not port_free(preferred, p)]
        if busy:
            raise SystemExit(f"{preferred}: ports {busy} are in use; pick another --host")
        return preferred
    candidates = list(range(150, 250))
    random.shuffle(candidates)
    for n in candidates:
        host = f"127.0.0.{n}"
        if all(port_free(host, p) for p in wanted):
            return host
    raise SystemExit("no free 127.0.0.N address found")


# ---------------------------------------------------------------- manifests


def scenario_devices(scenario: dict[str, Any], base_port: int) -> dict[str, list[dict[str, Any]]]:
    """Per module, the twin `devices` list for a scenario's devices (device i on base_port + i)."""
    out: dict[str, list[dict[str, Any]]] = {m: [] for m in MODULE_OF_KIND.values()}
    for index, device in enumerate(scenario["devices"]):
        entry: dict[str, Any] = {"asset_id": device["asset_id"], "host": "${SIMULATOR_HOST}",
                                 "port": device.get("port") or base_port + index,
                                 "unit_id": device.get("unit_id", 1)}
        kind = device["kind"]
        if kind == "battery":
            entry["revert_s"] = 0
        elif kind == "boiler":
            entry["idle_setpoint_c"] = 60
        elif kind == "microgrid_controller":
            entry["protocol"] = "modbus"
        out[MODULE_OF_KIND[kind]].append(entry)
    return out


def build_manifest(host: str, devices: dict[str, list[dict[str, Any]]] | None = None,
                   desired: dict[str, dict[str, Any]] | None = None,
                   drop: tuple[str, ...] = ("simulator",)) -> dict[str, Any]:
    """The real deployment template pointed at `host`, with device lists and desired properties replaced
    (as tests/support.py site_manifest does), and `drop`ped modules removed with their routes."""
    manifest: dict[str, Any] = json.loads(DEPLOYMENT.read_text())
    drop_modules(manifest, drop)
    content = manifest["modulesContent"]
    for module_id, device_list in (devices or {}).items():
        if module_id in content:
            content[module_id]["properties.desired"]["devices"] = device_list
    set_site_assets(manifest)  # the controller and the exporter believe exactly these devices
    for module_id, patch in (desired or {}).items():
        content[module_id]["properties.desired"].update(patch)
    return json.loads(json.dumps(manifest).replace("${SIMULATOR_HOST}", host))


# ---------------------------------------------------------------- a site with instrumented entry points


@dataclass
class BenchSupervisor(Supervisor):
    """`energy-edge run`'s supervisor, with the simulator and chosen modules started from other scripts."""

    sim_script: Path | None = None  # replaces `energy-edge sim` (same arguments)
    sim_extra: list[str] = field(default_factory=list)  # e.g. --base-port, --admin-port
    module_scripts: dict[str, Path] = field(default_factory=dict)  # module id -> script replacing main.py
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)  # process name -> env additions

    def _cli(self, *args: str) -> list[str]:
        if args and args[0] == "sim":
            head = [sys.executable, str(self.sim_script)] if self.sim_script else super()._cli("sim")
            return [*head, *args[1:], *self.sim_extra]
        return super()._cli(*args)

    async def _launch(self, process: ManagedProcess) -> None:
        script = self.module_scripts.get(process.name)
        if script is not None:
            process.argv = [sys.executable, str(script)]
        process.env = {**process.env, **self.extra_env.get(process.name, {})}
        await super()._launch(process)

    def pids(self) -> dict[str, int | None]:
        return {name: p.pid for name, p in self.processes.items()}

    async def stop_all(self) -> None:
        """Stop in reverse order (SIGTERM, then SIGKILL after 10 s), and kill anything left by pid."""
        with contextlib.suppress(Exception):
            await self.stop()
        for p in self.processes.values():
            if p.proc is not None and p.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.proc.kill()


def install_cancel_on_sigterm() -> None:
    """Inside a running loop: SIGTERM (and SIGINT) cancel the main task, so `finally` blocks clean up."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)


@dataclass
class LocalRun:
    proc: subprocess.Popen[bytes]
    command: str  # as a user would type it after `python -m`
    host: str


def start_local_run(args: Any, data_dir: Path, ports: Iterable[int], log_path: Path) -> LocalRun:
    """Start `energy-edge run` headless for `args.duration` at `args.accel` on a loopback address where `ports`
    are free (or `args.host`), its output in `log_path`, in its own session so the whole tree can be stopped."""
    host = pick_host(ports, args.host)
    cmd = [sys.executable, "-m", "energy_edge.cli", "run", "--no-ui", "--duration", args.duration,
           "--accel", f"{args.accel:g}", "--data-dir", str(data_dir), "--host", host]
    command = " ".join(cmd[2:])
    print("$ " + command, flush=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return LocalRun(proc, command, host)


def write_json(path: str | None, doc: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"results: {path}")
