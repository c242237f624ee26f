"""`energy-edge sim`: start the site simulator, write sim.json, run until SIGTERM/SIGINT.

Exit codes: 0 after a clean stop, 2 when a port cannot be bound or the scenario is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from energy_edge.sim.admin import admin_app
from energy_edge.sim.profiles import ProfileError
from energy_edge.sim.runtime import Simulator
from energy_edge.sim.scenario import ScenarioError, load_scenario
from energy_edge.sim.servers import DeviceEndpoint, PortInUseError

log = logging.getLogger(__name__)

READY_PREFIX = "energy-edge sim ready: "


@dataclass
class SimOptions:
    scenario: str = "default"  # a built-in name or a JSON file
    host: str = "127.0.0.1"
    data_dir: Path = field(default_factory=lambda: Path(".edge/sim"))
    accel: float = 1.0  # simulated seconds per real second; 0 pauses
    seed: int | None = None  # None: the scenario's
    base_port: int = 15020  # device i listens on base_port + i; 0 = ephemeral ports
    admin_port: int = 15080  # 0 = ephemeral


class RunningSim:
    """A started simulator: servers listening, clock running, sim.json written."""

    def __init__(self, options: SimOptions, sim: Simulator, runner: web.AppRunner | None, admin_port: int,
                 clock: asyncio.Task[None] | None) -> None:
        self.options = options
        self.sim = sim
        self.runner = runner
        self.admin_port = admin_port
        self.clock = clock

    @property
    def admin_url(self) -> str:
        host = self.options.host
        return f"http://[{host}]:{self.admin_port}" if ":" in host else f"http://{host}:{self.admin_port}"

    @property
    def sim_json_path(self) -> Path:
        return self.options.data_dir / "sim.json"

    def sim_json(self) -> dict[str, Any]:
        sim = self.sim
        return {
            "site_id": sim.scenario.site_id,
            "scenario": sim.scenario.name,
            "seed": sim.seed,
            "start": sim.scenario.start.isoformat(),
            "accel": sim.accel,
            "import_limit_kw": sim.scenario.import_limit_kw,
            "admin_url": self.admin_url,
            "devices": sim.device_entries(self.options.host),
        }

    def write_sim_json(self) -> Path:
        path = self.sim_json_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.sim_json(), indent=2) + "\n")
        tmp.replace(path)
        return path

    async def close(self) -> None:
        if self.clock is not None:
            self.clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.clock
        for endpoint in self.sim.endpoints.values():
            await endpoint.stop()
        if self.runner is not None:
            await self.runner.cleanup()


async def start_sim(options: SimOptions, clock: bool = True) -> RunningSim:
    """Build the site, bind every port (PortInUseError names the one that failed), write sim.json."""
    scenario = load_scenario(options.scenario)
    sim = Simulator(scenario, seed=options.seed, accel=options.accel)
    running = RunningSim(options, sim, None, options.admin_port, None)
    try:
        for index, spec in enumerate(scenario.devices):
            if spec.port is not None:
                port = spec.port
            else:
                port = 0 if options.base_port == 0 else options.base_port + index
            endpoint = DeviceEndpoint(sim.devices[spec.asset_id], options.host, port, sim.faults[spec.asset_id],
                                      sim.on_control)
            sim.endpoints[spec.asset_id] = endpoint
            await endpoint.start()
        runner = web.AppRunner(admin_app(sim, options.host), access_log=None)
        await runner.setup()
        running.runner = runner
        site = web.TCPSite(runner, options.host, options.admin_port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise PortInUseError(
                f"cannot listen on {options.host}:{options.admin_port} for the admin API: {reason}") from exc
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        running.admin_port = int(sockets[0].getsockname()[1]) if sockets else options.admin_port
    except BaseException:
        await running.close()
        raise
    if clock:
        running.clock = asyncio.create_task(sim.run_clock(), name="energy-edge-sim-clock")
    running.write_sim_json()
    log.info("site %s (%s, seed %d, accel %g): %d devices on %s, admin %s", scenario.site_id, scenario.name,
             sim.seed, sim.accel, len(sim.devices), options.host, running.admin_url)
    return running


async def serve(options: SimOptions, stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop`); returns the process exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        running = await start_sim(options)
    except PortInUseError as exc:
        print(f"energy-edge sim: {exc}", file=sys.stderr, flush=True)
        return 2
    except (ScenarioError, ProfileError) as exc:
        print(f"energy-edge sim: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"{READY_PREFIX}{running.sim_json_path}", flush=True)
    try:
        await stop.wait()
    finally:
        await running.close()
    log.info("simulator stopped")
    return 0


def run_sim(options: SimOptions) -> int:
    """Blocking entry point: run the simulator until SIGTERM/SIGINT; returns the exit code."""
    return asyncio.run(serve(options))


def _nonnegative(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not 0 <= value <= 1e6:
        raise argparse.ArgumentTypeError("must be within 0..1e6")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from exc
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is 0..65535 (0 = ephemeral)")
    return value


def _sim_command(args: argparse.Namespace) -> int:
    return run_sim(SimOptions(scenario=args.scenario, host=args.host, data_dir=Path(args.data_dir),
                              accel=args.accel, seed=args.seed, base_port=args.base_port,
                              admin_port=args.admin_port))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="default", help="built-in scenario (default, small) or a JSON file")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address the Modbus servers and the admin API listen on")
    parser.add_argument("--data-dir", default=".edge/sim", help="where sim.json (the endpoints) is written")
    parser.add_argument("--accel", type=_nonnegative, default=1.0,
                        help="simulated seconds per real second (default 1; 0 pauses)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's)")
    parser.add_argument("--base-port", type=_port, default=15020,
                        help="device i listens on base-port + i (default 15020; 0 = ephemeral)")
    parser.add_argument("--admin-port", type=_port, default=15080,
                        help="admin HTTP API (default 15080; 0 = ephemeral)")
    parser.set_defaults(func=_sim_command)


def add_sim_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `sim` to an argparse subparsers object; the parsed args' `func(args)` returns the exit code."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sim", help="run the site simulator: the site's devices as Modbus TCP servers",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m energy_edge.sim [options]`: the same command without the energy-edge entry point."""
    parser = argparse.ArgumentParser(prog="python -m energy_edge.sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    _add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
