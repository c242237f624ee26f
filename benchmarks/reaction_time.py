"""Reaction time: a step in site load at the simulated meter -> the battery's new setpoint in its registers.

The chain: POST /load changes the meter's registers at once -> the microgrid-controller module reads them
at its next poll (1 s interval) -> telemetry is routed by edgeHub to the controller -> the controller's next
cycle (started by that reading) decides -> direct method `set_power` to the battery module -> Modbus writes to
the simulator's SunSpec 124 registers.

The site is the deployment template's six modules run by `energy-edge run`'s own supervisor at accel 1
(real time), on the fixture `fixtures/reaction.scenario.json` (constant 120 kW load, no PV, no hot-water
draw), with the controller guarding 100 kW (margin 5 kW, balancing off), so every ±20 kW step needs a new
battery setpoint (25 <-> 45 kW). Two entry points are swapped for instrumented ones (`instrumented/`):
the simulator records, on CLOCK_MONOTONIC, when the plant took the step, every FC3/FC4 read of the meter
and every write to the battery; the controller records when meter telemetry arrives, when each cycle
starts, and each direct method. One clock for every process, so every phase of every step is measured,
and the phases add up to the total exactly.

Each step: POST /load (+20 kW, then back to 0, alternating); wait for the battery write of the new setpoint
(the reaction); wait until no battery write came for 1.2 s (the site has settled: a step never starts from
the controller's ringing, see README); then a random pause of 0.5-2.5 s, so that the step's phase against
the 1 s timers is uniform. The phase between the meter module's poll timer and the controller's cycle
timer is set when the modules start and then stays for the whole run, so the benchmark restarts the site
`--runs` times (default 4 x 40 counted steps) and pools the steps.

    .venv/bin/python benchmarks/reaction_time.py --json /tmp/reaction.json                    # ~11 min
    .venv/bin/python benchmarks/reaction_time.py --cycle-mode both --json /tmp/reaction.json  # ~21 min
    .venv/bin/python benchmarks/reaction_time.py --runs 1 --steps 10 --json /tmp/r.json        # ~1 min

`--cycle-mode product` (default) measures the product's controller, whose cycle follows the meter's
readings; `--cycle-mode timer` swaps in its former fixed 1 s cycle timer (benchmark only, see
instrumented/traced_controller.py) for comparison; `both` runs the two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import itertools

from benchlib import (
    INSTRUMENTED,
    BenchSupervisor,
    ProcSampler,
    build_manifest,
    describe,
    install_cancel_on_sigterm,
    machine_info,
    pick_host,
    scenario_devices,
    write_json,
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "reaction.scenario.json"
BATTERY, METER = "bess-1", "mgc-1"
POLL_S = 0.01
CONTROLLER = {
    "import_limit_kw": 100, "limit_margin_kw": 5, "balancing_enabled": False, "reserve_soc_pct": 30,
    "boiler_enabled": False, "max_export_kw": None, "summary_interval_s": 60, "cycle_s": 1.0,
}
PHASES = ("poll_wait", "route", "cycle_wait", "decide", "method_to_write")


class Events:
    """The simulator's bench trace, read incrementally."""

    def __init__(self, session: aiohttp.ClientSession, admin_url: str) -> None:
        self.session, self.url = session, admin_url + "/bench/events"
        self.events: list[dict[str, Any]] = []
        self.next = 0

    async def pull(self) -> list[dict[str, Any]]:
        async with self.session.get(self.url, params={"since": str(self.next)}) as r:
            doc = await r.json()
        self.next = doc["next"]
        self.events.extend(doc["events"])
        return list(doc["events"])

    def writes(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["ev"] == "write" and e["asset_id"] == BATTERY and e["ok"]]


async def wait_steady(events: Events, deadline_s: float, quiet_s: float = 3.0) -> float:
    """Until the battery holds a discharge command and no write came for `quiet_s`; returns its command."""
    last_write, command = time.monotonic(), None
    while time.monotonic() < deadline_s:
        for e in await events.pull():
            if e["ev"] == "write" and e["asset_id"] == BATTERY:
                last_write, command = e["t"], e.get("command_kw")
        if command is not None and command > 5 and time.monotonic() - last_write > quiet_s:
            return float(command)
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the controller did not settle on a discharge setpoint (last command {command})")


async def run_steps(site_dir: Path, host: str, mode: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    scenario = json.loads(FIXTURE.read_text())
    manifest = build_manifest(host, scenario_devices(scenario, 15020), {"controller": CONTROLLER})
    manifest_path = site_dir / "deployment.json"
    manifest_path.write_text(json.dumps(manifest, indent=2))
    trace_path = site_dir / "controller-trace.jsonl"
    sup = BenchSupervisor(
        manifest_path, site_dir, host, str(FIXTURE), 1.0, seed=1,
        sim_script=INSTRUMENTED / "traced_sim.py",
        module_scripts={"controller": INSTRUMENTED / "traced_controller.py"},
        extra_env={"simulator": {"BENCH_TRACE_WRITES": BATTERY, "BENCH_TRACE_READS": METER},
                   "controller": {"BENCH_CONTROLLER_TRACE": str(trace_path), "BENCH_TRACE_INVOKES": "1",
                                  "BENCH_CONTROLLER_CYCLE": mode}},
    )
    sampler = ProcSampler(sup.pids, 1.0)
    rng = random.Random(seed)
    steps: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        await sup.start()
        sampler.start()
        admin = sup.sim_info["admin_url"]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            events = Events(session, admin)
            base_command = await wait_steady(events, time.monotonic() + 90)
            print(f"[{mode}] steady at {base_command:.1f} kW; {args.steps} steps of ±{args.step_kw:g} kW", flush=True)
            t_steady = time.monotonic()
            for i in range(args.warmup + args.steps):
                offset = args.step_kw if i % 2 == 0 else 0.0
                expected = base_command + (args.step_kw if offset else 0.0)
                t_post = time.monotonic()
                async with session.post(admin + "/load", json={"offset_kw": offset}) as r:
                    await r.json()
                reacted = None
                deadline = t_post + args.step_timeout
                while time.monotonic() < deadline and reacted is None:
                    await asyncio.sleep(POLL_S)
                    for e in await events.pull():
                        if (e["ev"] == "write" and e["asset_id"] == BATTERY and e["ok"] and e["t"] > t_post
                                and abs(e["command_kw"] - expected) <= args.tolerance_kw):
                            reacted = e
                            break
                steps.append({"i": i, "warmup": i < args.warmup, "offset_kw": offset, "t_post": t_post,
                              "expected_kw": expected, "t_write": reacted["t"] if reacted else None})
                # the next step starts from a steady site, not from ringing: no battery write for settle_quiet
                settle_deadline = time.monotonic() + args.settle_max
                while time.monotonic() < settle_deadline:
                    await events.pull()
                    writes = events.writes()
                    if not writes or time.monotonic() - writes[-1]["t"] >= args.settle_quiet:
                        break
                    await asyncio.sleep(0.1)
                # then a random pause: it sets the step's phase against the 1 s poll and cycle timers, which the
                # settle wait has just tied to the cycle; a pause spread over a whole second makes it uniform
                await asyncio.sleep(rng.uniform(args.pause_min, args.pause_max))
            t_end = time.monotonic()
            await events.pull()
    finally:
        sampler.stop()
        await sup.stop_all()
    trace = [json.loads(line) for line in trace_path.read_text().splitlines() if line.strip()]
    (site_dir / "sim-events.json").write_text(json.dumps(events.events))
    (site_dir / "steps.json").write_text(json.dumps(steps))
    rows = step_rows(steps, events.events, trace)
    cycles = [e for e in trace if e["ev"] == "cycle"]
    reads = sorted(e["t"] for e in events.events if e["ev"] == "read" and e["asset_id"] == METER and e["fc"] == 4)
    run = {
        "mode": mode, "host": host, "base_command_kw": base_command, "wall_s": round(time.monotonic() - started, 1),
        "summary": summarize(rows, args),
        "meter_poll_period_ms": describe([b - a for a, b in itertools.pairwise(reads)], 1000, 1),
        "controller_cycle_period_ms": describe([b["t"] - a["t"] for a, b in itertools.pairwise(cycles)],
                                               1000, 1),
        "controller_cycle_busy_ms": describe([c["t_end"] - c["t"] for c in cycles], 1000, 2),
        "controller_step_ms": describe([c["step_s"] for c in cycles if "step_s" in c], 1000, 3),
        "resources": sampler.summary(t_steady, t_end),
        "restarts": {n: p["restarts"] for n, p in sup.module_states().items() if p["restarts"]},
        "rows": rows,
    }
    return run


def _last_before(items: list[dict[str, Any]], key: str, t: float) -> dict[str, Any] | None:
    best = None
    for item in items:
        if item[key] <= t:
            best = item
        else:
            break
    return best


def step_rows(steps: list[dict[str, Any]], events: list[dict[str, Any]], trace: list[dict[str, Any]]
              ) -> list[dict[str, Any]]:
    """Per counted step: the total (plant took the step -> first register write of the new setpoint), and,
    walking back from that write through the set_power call, the cycle that sent it, the meter telemetry
    that cycle used and the Modbus read behind it: the chain's phases, which add up to the total."""
    loads = [e for e in events if e["ev"] == "load"]
    reads = sorted((e for e in events if e["ev"] == "read" and e["asset_id"] == METER and e["fc"] == 4),
                   key=lambda e: e["t"])
    writes = sorted((e for e in events if e["ev"] == "write" and e["asset_id"] == BATTERY), key=lambda e: e["t"])
    tels = sorted((e for e in trace if e["ev"] == "tel"), key=lambda e: e["t"])
    cycles = sorted((e for e in trace if e["ev"] == "cycle"), key=lambda e: e["t"])
    invokes = sorted((e for e in trace if e["ev"] == "invoke" and e["asset_id"] == BATTERY
                      and e["method"] == "set_power"), key=lambda e: e["t0"])
    rows: list[dict[str, Any]] = []
    for index, s in enumerate(steps):
        if s["warmup"]:
            continue
        load = next((e for e in loads if e["t"] >= s["t_post"]), None)
        if load is None:
            continue
        t_load = load["t"]
        t_next = steps[index + 1]["t_post"] if index + 1 < len(steps) else float("inf")
        # every set_power the controller sent from the step to the next one: 1 = clean, more = ringing
        sent = [v for v in invokes if t_load < v["t0"] < t_next]
        row: dict[str, Any] = {"offset_kw": s["offset_kw"], "expected_kw": s["expected_kw"],
                               "post_to_plant_s": t_load - s["t_post"], "set_power_calls": len(sent),
                               "setpoints_sent": [v["power_kw"] for v in sent]}
        settled = [w["t"] for w in writes if t_load < w["t"] < t_next]
        if settled:
            row["last_write_s"] = settled[-1] - t_load
        if s["t_write"] is None:
            row["missed"] = True
            rows.append(row)
            continue
        t_write = s["t_write"]
        row["total_s"] = t_write - t_load
        invoke = next((v for v in invokes if v["t0"] <= t_write <= v["t1"]), None)
        cycle = _last_before(cycles, "t", invoke["t0"]) if invoke else None
        tel = _last_before(tels, "t", cycle["t"]) if cycle else None
        read = _last_before(reads, "t", tel["t"]) if tel else None
        if invoke and cycle and tel and read and read["t"] >= t_load:
            row.update(poll_wait_s=read["t"] - t_load, route_s=tel["t"] - read["t"], cycle_wait_s=cycle["t"] - tel["t"],
                       decide_s=invoke["t0"] - cycle["t"], method_to_write_s=t_write - invoke["t0"],
                       set_power_rtt_s=invoke["t1"] - invoke["t0"])
        else:
            row["unexplained"] = "the write did not come from a meter reading taken after the step"
        rows.append(row)
    return rows


def summarize(rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    target_ms = (args.poll_interval + 0.1) * 1000
    done = [r for r in rows if "total_s" in r]
    explained = [r for r in done if "poll_wait_s" in r]
    total = describe([r["total_s"] for r in done], 1000, 1)
    missed = sum(1 for r in rows if r.get("missed"))
    ringing = [r for r in rows if r["set_power_calls"] > 1]
    return {
        "steps": len(rows), "missed": missed, "explained": len(explained), "target_p99_ms": round(target_ms),
        "reaction_ms": total,
        "within_target_pct": round(100 * sum(1 for r in done if r["total_s"] * 1000 <= target_ms) / len(rows), 1)
        if rows else None,
        "target_met": bool(done and missed == 0 and total["p99"] <= target_ms),
        "phases_ms": {p: describe([r[p + "_s"] for r in explained], 1000, 1) for p in PHASES},
        "set_power_rtt_ms": describe([r["set_power_rtt_s"] for r in explained], 1000, 1),
        "post_to_plant_ms": describe([r["post_to_plant_s"] for r in rows], 1000, 2),
        "steps_with_extra_setpoints": len(ringing),
        "last_write_after_step_ms": describe([r["last_write_s"] for r in rows if "last_write_s" in r], 1000, 1),
        "set_power_calls_per_step": describe([r["set_power_calls"] for r in rows], 1, 2),
    }


def print_summary(title: str, r: dict[str, Any]) -> None:
    rt = r["reaction_ms"]
    verdict = "met" if r["target_met"] else "NOT met"
    print(f"\n{title}: load step -> battery register write, n={r['steps']} (missed {r['missed']}): "
          f"p50 {rt.get('p50')} ms, p90 {rt.get('p90')} ms, p99 {rt.get('p99')} ms, max {rt.get('max')} ms; "
          f"{r['within_target_pct']} % within {r['target_p99_ms']} ms; "
          f"target p99 <= {r['target_p99_ms']} ms: {verdict}")
    print(f"{'phase':<18}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'mean':>9}  (ms, n={r['explained']})")
    for name, d in [*r["phases_ms"].items(), ("set_power_rtt", r["set_power_rtt_ms"])]:
        if d.get("n"):
            print(f"{name:<18}{d['p50']:>9}{d['p90']:>9}{d['p99']:>9}{d['max']:>9}{d['mean']:>9}")
    print(f"steps followed by more than one set_power (setpoint ringing): {r['steps_with_extra_setpoints']} "
          f"of {r['steps']}")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    install_cancel_on_sigterm()
    modes = ["product", "timer"] if args.cycle_mode == "both" else [args.cycle_mode]
    doc: dict[str, Any] = {"benchmark": "reaction_time", "machine": machine_info(),
                           "options": {k: v for k, v in vars(args).items() if k != "json"}, "modes": {}}
    root = Path(tempfile.mkdtemp(prefix="bench-reaction-"))
    try:
        for mode in modes:
            runs = []
            for n in range(args.runs):
                host = pick_host([15020, 15021, 15022, 15023, 15080], args.host)
                site_dir = root / f"{mode}-{n + 1}"
                site_dir.mkdir()
                run = await asyncio.wait_for(run_steps(site_dir, host, mode, args, seed=args.seed + n),
                                             args.max_minutes * 60)
                runs.append(run)
                print_summary(f"[{mode} run {n + 1}/{args.runs}]", run["summary"])
                res = run["resources"].get("_machine", {})
                print(f"machine: {res.get('busy_pct_of_one_core')} % of one core busy (ours "
                      f"{res.get('ours_pct_of_one_core')} %, others {res.get('others_pct_of_one_core')} %), "
                      f"load average {res.get('loadavg1_median')}", flush=True)
                doc["modes"][mode] = {"runs": runs}
                write_json(args.json, doc)
            pooled = summarize([row for run in runs for row in run["rows"]], args)
            doc["modes"][mode]["pooled"] = pooled
            print_summary(f"[{mode}, {args.runs} site starts pooled]", pooled)
            write_json(args.json, doc)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4,
                        help="site starts per mode (the poll and cycle timers' phase is set at start; default 4)")
    parser.add_argument("--steps", type=int, default=40, help="counted load steps per run (default 40)")
    parser.add_argument("--warmup", type=int, default=2, help="steps per run not counted (default 2)")
    parser.add_argument("--tolerance-kw", type=float, default=3.0,
                        help="a write within this of the expected setpoint is the reaction (default 3)")
    parser.add_argument("--step-kw", type=float, default=20.0, help="load step, alternating + and - (default 20)")
    parser.add_argument("--pause-min", type=float, default=0.5, help="random pause before a step, min s")
    parser.add_argument("--pause-max", type=float, default=2.5,
                        help="random pause, max s (default 2.5: a whole second wider than the minimum)")
    parser.add_argument("--settle-quiet", type=float, default=1.2,
                        help="before the next step, no battery write for this long, s (default 1.2)")
    parser.add_argument("--settle-max", type=float, default=15.0, help="... but wait at most this long, s")
    parser.add_argument("--step-timeout", type=float, default=6.0, help="a step without reaction by then is missed")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="the modules' poll interval (target)")
    parser.add_argument("--cycle-mode", choices=["product", "timer", "both"], default="product",
                        help="product: the product's controller (cycle on meter readings); timer: its former "
                             "fixed 1 s cycle timer; both")
    parser.add_argument("--seed", type=int, default=7, help="seed of the random pauses")
    parser.add_argument("--host", help="loopback address (default: a free 127.0.0.N)")
    parser.add_argument("--max-minutes", type=float, default=20.0, help="hard limit per run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary site folders (logs, traces)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    try:
        asyncio.run(main_async(args))
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("interrupted; every process was stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
