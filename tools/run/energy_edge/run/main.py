"""`energy-edge run`: a whole site on one machine from the deployment manifest, shown live.

Starts the simulator, the emulator and every module of the manifest as OS processes, samples the
simulated site while the scenario plays, and ends with a summary (JSON) and a plot of the day.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from energy_edge.hub.store import query_upstream
from energy_edge.run import report
from energy_edge.run.supervisor import REPO, Supervisor
from energy_edge.service import ServiceClient

log = logging.getLogger("energy_edge.run")

SAMPLE_EVERY_S = 0.25
STATUS_EVERY_S = 2.0


@dataclass(frozen=True)
class RunOptions:
    manifest: Path
    data_dir: Path
    host: str
    scenario: str
    duration_s: float
    accel: float
    seed: int | None
    ui: bool
    summary_out: Path | None
    plot_out: Path | None
    containers: bool = False  # every module as a container from its image (energy_edge.run.containers)


class ServiceApi:
    """The emulator's service API for the live view (status and counters), off the event loop."""

    def __init__(self, hub_info: dict[str, Any]) -> None:
        self.client = ServiceClient.from_hub_json(hub_info, timeout_s=5)
        self.device_id = hub_info["device_id"]

    async def status(self) -> dict[str, Any]:
        status, doc = await asyncio.to_thread(self.client.call, "GET", "/admin/status")
        return dict(doc) if status == 200 and isinstance(doc, dict) else {}

    async def controller_status(self) -> dict[str, Any]:
        status, doc = await asyncio.to_thread(self.client.invoke, self.device_id, "controller", "get_status", {}, 5)
        answer = doc.get("payload", {}).get("status", {}) if status == 200 and isinstance(doc, dict) else {}
        return dict(answer)


def latest_capabilities(hub_db: Path, since_s: float) -> dict[str, Any]:
    """The last capability status per capability that reached the upstream store in this run."""
    out: dict[str, Any] = {}
    try:
        records = query_upstream(hub_db, module_id="controller", message_type="capabilityStatus",
                                 since_epoch_s=since_s)
    except FileNotFoundError:
        return out
    for record in records:
        body = record.body_json() or {}
        if "capability" in body:
            out[body["capability"]] = {k: body.get(k) for k in ("state", "raw_value", "source", "reason",
                                                                 "conflict", "timestamp")}
    return out


async def run(options: RunOptions) -> int:
    started_wall = time.time()
    supervisor_class = Supervisor
    if options.containers:
        from energy_edge.run.containers import ContainerSupervisor

        supervisor_class = ContainerSupervisor
    supervisor = supervisor_class(options.manifest, options.data_dir, options.host, options.scenario,
                                  options.accel, options.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    samples: list[report.Sample] = []
    controller: dict[str, Any] = {}
    hub_status: dict[str, Any] = {}
    capabilities: dict[str, Any] = {}
    try:
        await supervisor.start()
        if "console_url" in supervisor.endpoints:
            e = supervisor.endpoints
            print(f"console: {e['console_url']}  (sign in as {e['console_user']}, password in "
                  f"{e['console_password_file']})", flush=True)
        api = ServiceApi(supervisor.hub_info)
        hub_db = options.data_dir / "hub" / "hub.db"
        view = LiveView(options) if options.ui else None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            admin = supervisor.sim_info["admin_url"]
            start_time: dt.datetime | None = None
            next_status = 0.0
            while not stop.is_set():
                try:
                    async with session.get(f"{admin}/state") as response:
                        state = await response.json()
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    log.warning("simulator state not read: %s", exc)
                    await asyncio.sleep(SAMPLE_EVERY_S)
                    continue
                sample = report.Sample.from_state(state)
                samples.append(sample)
                start_time = start_time or sample.sim_time
                elapsed_s = (sample.sim_time - start_time).total_seconds()
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + STATUS_EVERY_S
                    try:
                        hub_status = await api.status()
                        controller = await api.controller_status()
                    except (OSError, ValueError) as exc:
                        log.debug("status not read: %s", exc)
                    capabilities = latest_capabilities(hub_db, started_wall)
                    supervisor.write_state()
                if view:
                    view.update(state, controller, hub_status, capabilities, supervisor.module_states(), elapsed_s)
                if elapsed_s >= options.duration_s:
                    break
                try:
                    await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)
                except asyncio.TimeoutError:
                    pass
        if view:
            view.close()
    finally:
        modules = supervisor.module_states()
        await supervisor.stop()
    return finish(options, samples, modules, started_wall, controller)


def finish(options: RunOptions, samples: list[report.Sample], modules: dict[str, Any], started_wall: float,
           controller: dict[str, Any]) -> int:
    hub_db = options.data_dir / "hub" / "hub.db"
    try:
        upstream = len(query_upstream(hub_db, since_epoch_s=started_wall))
    except FileNotFoundError:
        upstream = 0
    if len(samples) < 2:
        print("energy-edge run: stopped before the site produced data")
        return 1
    try:
        summary = report.summarize(samples, controller.get("limit_kw"), modules, upstream,
                                   latest_capabilities(hub_db, started_wall))
    except ValueError as exc:  # stopped (Ctrl-C) before a whole billing quarter: nothing to sum up
        print(f"energy-edge run: no summary: {exc}")
        return 1
    summary_path = options.summary_out or options.data_dir / "summary.json"
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    (options.data_dir / "samples.json").write_text(json.dumps(report.sample_dicts(samples)))
    plot_path = options.plot_out or options.data_dir / "run.png"
    report.plot(samples, summary, plot_path)
    print_summary(summary, summary_path, plot_path)
    return 0


def print_summary(summary: dict[str, Any], summary_path: Path, plot_path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"energy-edge run {summary['sim_start'][:16]} → {summary['sim_end'][11:16]}", show_header=False)
    rows = [
        ("import limit", f"{summary['import_limit_kw']:.1f} kW"),
        ("peak import (15-min avg) with control", f"{summary['peak_import_kw']:.1f} kW"),
        ("peak import without control", f"{summary['peak_import_without_control_kw']:.1f} kW"),
        ("limit violations (quarters)", str(summary["violations"])),
        ("energy imported / exported",
         f"{summary['energy_imported_kwh']:.0f} / {summary['energy_exported_kwh']:.0f} kWh"),
        ("PV energy, self-consumption", f"{summary['pv_energy_kwh']:.0f} kWh, {summary['self_consumption_pct']} %"),
        ("messages upstream", str(summary["upstream_messages"])),
    ]
    for name, cap in sorted(summary["capability_status"].items()):
        rows.append((name, f"{cap['state']} ({cap['source']}: {cap['reason']})"))
    for name, module in summary["modules"].items():
        rows.append((f"module {name}", f"{module['state']}, {module['restarts']} restart(s)"))
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    console.print(table)
    console.print(f"summary: {summary_path}\nplot:    {plot_path}")


class LiveView:
    """The terminal view (rich): assets, the grid against the limit, capabilities, messages, modules."""

    def __init__(self, options: RunOptions) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("simulated {task.fields[clock]}"), BarColumn(),
                                 TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn())
        self.task = self.progress.add_task("run", total=options.duration_s, clock="")
        self.live = Live(console=Console(), refresh_per_second=4)
        self.live.start()

    def update(self, state: dict[str, Any], controller: dict[str, Any], hub: dict[str, Any],
               capabilities: dict[str, Any], modules: dict[str, Any], elapsed_s: float) -> None:
        from rich.console import Group
        from rich.table import Table

        site = state["site"]
        limit = site["import_limit_kw"]
        assets = Table(title=f"site {state['site_id']}  {state['sim_time'][:16]}", expand=True)
        for column in ("asset", "kind", "power kW", "state"):
            assets.add_column(column)
        for asset_id, d in state["devices"].items():
            detail = _detail(d)
            # the grid is a source on the site bus: import is + (the contract's sign convention)
            power = site["grid_import_kw"] if d["kind"] == "microgrid_controller" else d.get("power_kw", 0.0)
            fault = d.get("fault", "none")
            assets.add_row(asset_id, d["kind"], f"{power:8.1f}",
                           f"{detail} [red]{fault}[/]".strip() if fault != "none" else detail)
        grid = site["grid_import_kw"]
        style = "bold red" if grid > limit else "green"
        margin = controller.get("margin_kw")
        lines = Table.grid(padding=(0, 2))
        lines.add_row("grid import", f"[{style}]{grid:7.1f} kW[/] of {limit:.0f} kW limit",
                      "15-min avg", f"{controller.get('grid_import_avg_15min_kw') or 0:7.1f} kW",
                      "margin", f"{margin:7.1f} kW" if isinstance(margin, (int, float)) else "–")
        lines.add_row("controller", str(controller.get("mode", "–")), "reason", str(controller.get("reason", ""))[:50],
                      "limit", f"{controller.get('limit_kw')} ({controller.get('limit_source', '–')})")
        caps = "  ".join(f"{k}: [bold]{v['state']}[/]" + (" [red]conflict[/]" if v.get("conflict") else "")
                         for k, v in sorted(capabilities.items())) or "–"
        counters = hub.get("counters", {})
        lines.add_row("capabilities", caps, "messages", f"{counters.get('messages_in', 0)} in",
                      "upstream", f"{counters.get('upstream_delivered', 0)}")
        restarts = ", ".join(f"{n}×{m['restarts']}" for n, m in modules.items() if m["restarts"]) or "none"
        down = ", ".join(n for n, m in modules.items() if m["state"] != "running") or "none"
        lines.add_row("modules", f"{len(modules)} running" if down == "none" else f"not running: {down}",
                      "restarts", restarts, "", "")
        self.progress.update(self.task, completed=elapsed_s, clock=state["sim_time"][11:16])
        self.live.update(Group(assets, lines, self.progress))

    def close(self) -> None:
        self.live.stop()


def _detail(device: dict[str, Any]) -> str:
    kind = device["kind"]
    if kind == "battery":
        return f"SOC {device['soc_pct']:.1f} %"
    if kind == "boiler":
        return f"{device['temp_c']:.1f} °C"
    if kind == "solar" and device.get("wmaxlim_ena") and device.get("wmaxlim_pct", 100) < 100:
        return f"curtailed to {device['wmaxlim_pct']:.0f} %"
    return ""


def _run_command(args: argparse.Namespace) -> int:
    from energy_edge.hub.cli import parse_duration_s

    options = RunOptions(
        manifest=Path(args.manifest).resolve(), data_dir=Path(args.data_dir).resolve(), host=args.host,
        scenario=args.scenario,
        duration_s=parse_duration_s(args.duration), accel=args.accel, seed=args.seed, ui=not args.no_ui,
        summary_out=Path(args.summary_out) if args.summary_out else None,
        plot_out=Path(args.plot) if args.plot else None, containers=args.containers,
    )
    from energy_edge.hub.manifest import ManifestError
    from energy_edge.run.containers import ContainerRunError

    try:
        return asyncio.run(run(options))
    except (ContainerRunError, ManifestError) as exc:
        print(f"energy-edge run: {exc}", file=sys.stderr)
        return 2


def add_run_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="run a whole site locally from the deployment manifest (emulator, simulator, all modules)")
    parser.add_argument("--manifest", default=str(REPO / "deployment" / "deployment.template.json"))
    parser.add_argument("--scenario", default="default", help="simulator scenario: a built-in name or a JSON file")
    parser.add_argument("--duration", default="1d", help="simulated span, e.g. 6h (default one day)")
    parser.add_argument("--accel", type=float, default=240.0,
                        help="simulated seconds per real second (default 240: a day in 6 minutes)")
    parser.add_argument("--seed", type=int, help="simulator seed")
    parser.add_argument("--data-dir", default=".edge", help="state, logs, hub/hub.json, sim/sim.json")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address for the emulator and simulator")
    parser.add_argument("--no-ui", action="store_true", help="logs only, no live view")
    parser.add_argument("--containers", action="store_true",
                        help="every module as a container from its image (make images), as edgeAgent runs them")
    parser.add_argument("--summary-out", help="summary JSON (default <data-dir>/summary.json)")
    parser.add_argument("--plot", help="plot of the run, PNG (default <data-dir>/run.png)")
    parser.set_defaults(func=_run_command)
    return parser


__all__ = ["RunOptions", "add_run_parser", "run"]
