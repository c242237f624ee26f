"""Resources of the default local run: resident memory and CPU share of every process.

Starts the real `energy-edge run --no-ui --duration 1d --accel 240` (the default day in about six minutes,
every module polling at its twin's 1 s interval), reads the pids from `<data-dir>/run.json`, and samples
each process once a second from /proc: VmRSS and VmHWM (`status`), Pss and private memory (USS,
`smaps_rollup`), and utime + stime (`stat`, all threads). The steady part of the run is from `--warmup`
seconds after the last module started until the first process stops; start-up is reported apart.

    .venv/bin/python benchmarks/run_resources.py --json /tmp/run-resources.json          # ~6.5 min
    .venv/bin/python benchmarks/run_resources.py --duration 6h --json /tmp/r.json          # ~1.5 min

Target (issue): at most 60 MB RSS per module at a 1 s poll interval.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ProcSampler, machine_info, read_proc, start_local_run, write_json

TARGET_RSS_MB = 60.0
INFRA = ("simulator", "edgeHub")  # not edge modules: the site's devices, and the emulator standing in for edgeHub
RUNNER = "energy-edge run"


class Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def run_pids(data_dir: Path) -> dict[str, int | None]:
    doc = json.loads((data_dir / "run.json").read_text())
    return {name: p.get("pid") for name, p in doc["processes"].items()}


def modules_up(data_dir: Path) -> list[str] | None:
    """The run's modules once every one of them has a pid; None before (or while run.json is being written)."""
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
        current = run_pids(data_dir)
        modules = [n for n in current if n not in INFRA]
        if modules and all(current[n] for n in modules):
            return modules
    return None


def slope_mb_per_h(samples: list[Any], t_from: float, t_to: float) -> float | None:
    """Least-squares slope of RSS over the window (a leak shows as a steady climb)."""
    pts = [(s.t, s.rss_kb / 1024) for s in samples if t_from <= s.t <= t_to]
    if len(pts) < 10 or len({p for p, _ in pts}) < 2:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mr = sum(r for _, r in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    return round(sum((t - mt) * (r - mr) for t, r in pts) / var * 3600, 2) if var else None


def measure(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    log_path = data_dir.parent / "energy-edge-run.log"
    started = time.monotonic()
    run = start_local_run(args, data_dir, [15020, 15021, 15022, 15023, 15080], log_path)
    proc, host = run.proc, run.host
    known: dict[str, int] = {}  # every pid seen, for the clean-up

    def pids() -> dict[str, int | None]:
        out: dict[str, int | None] = {RUNNER: proc.pid if proc.poll() is None else None}
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            out.update(run_pids(data_dir))
        known.update({k: v for k, v in out.items() if v})
        return out

    sampler = ProcSampler(pids, args.interval)
    t_modules: float | None = None
    try:
        sampler.start()
        deadline = started + args.max_minutes * 60
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the run did not finish within {args.max_minutes} min")
            if t_modules is None and (up := modules_up(data_dir)):
                t_modules = time.monotonic()
                print(f"{len(up)} modules up after {t_modules - started:.1f} s: {', '.join(up)}", flush=True)
            time.sleep(0.5)
        code = proc.returncode
    finally:
        sampler.stop()
        stop(proc, known)
    if t_modules is None:
        raise RuntimeError(f"the run never started its modules; see {log_path}:\n{log_path.read_text()[-3000:]}")
    # steady: from warm-up after start to the first process leaving (the run stopping)
    t_from = t_modules + args.warmup
    ends = [samples[-1].t for name, samples in sampler.samples.items() if name != RUNNER and samples]
    t_to = min(ends) - args.interval if ends else time.monotonic()
    if t_to - t_from < 30:
        raise RuntimeError(f"only {t_to - t_from:.0f} s of steady run; use a longer --duration or a shorter --warmup")
    steady = sampler.summary(t_from, t_to)
    for name, samples in sampler.samples.items():
        if name in steady:
            steady[name]["rss_slope_mb_per_h"] = slope_mb_per_h(samples, t_from, t_to)
            # CPU time since the process started, at the start of the steady window: imports, connect, discovery
            first = next((x for x in samples if x.t >= t_from), None)
            steady[name]["startup_cpu_s"] = round(first.cpu_s, 2) if first else None
    summary_path = data_dir / "summary.json"
    run_summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    modules = {n: v for n, v in steady.items() if n not in (*INFRA, RUNNER, "_machine")}
    over = {n: v["rss_mb_max"] for n, v in modules.items() if v["rss_mb_max"] > TARGET_RSS_MB}
    return {
        "command": run.command, "exit_code": code, "host": host,
        "steady_window_s": round(t_to - t_from, 1), "warmup_s": args.warmup,
        "processes": steady,
        "modules_total": {
            "rss_mb_median_sum": round(sum(v["rss_mb_median"] for v in modules.values()), 1),
            "pss_mb_median_sum": round(sum(v["pss_mb_median"] or 0 for v in modules.values()), 1),
            "cpu_pct_of_one_core": round(sum(v["cpu_pct_of_one_core"] or 0 for v in modules.values()), 2),
        },
        "target_rss_mb": TARGET_RSS_MB, "modules_over_target": over, "target_met": not over,
        "run_summary": {k: run_summary.get(k) for k in ("violations", "peak_import_kw", "import_limit_kw",
                                                           "upstream_messages", "modules")},
    }


def stop(proc: subprocess.Popen[bytes], known: dict[str, int]) -> None:
    """SIGTERM the run (it stops its children in order); then SIGKILL, by pid, whatever it left behind."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for name, pid in known.items():
        if name != RUNNER and read_proc(pid, smaps=False) is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"energy_edge" in cmdline or b"-module" in cmdline:
                    os.kill(pid, signal.SIGKILL)


def print_table(result: dict[str, Any]) -> None:
    rows = result["processes"]
    print(f"\nsteady window {result['steady_window_s']} s (after {result['warmup_s']} s warm-up)")
    head = (f"{'process':<22}{'RSS med':>9}{'RSS max':>9}{'PSS med':>9}{'USS med':>9}{'CPU %':>8}"
            f"{'slope MB/h':>11}{'start CPU s':>12}")
    print(head)
    for name, v in rows.items():
        if name.startswith("_"):
            continue
        print(f"{name:<22}{v['rss_mb_median']:>9}{v['rss_mb_max']:>9}{v['pss_mb_median'] or '-':>9}"
              f"{v['uss_mb_median'] or '-':>9}{v['cpu_pct_of_one_core'] or 0:>8}"
              f"{v.get('rss_slope_mb_per_h') or '-':>11}{v.get('startup_cpu_s') or '-':>12}")
    m = rows.get("_machine", {})
    print(f"machine: {m.get('busy_pct_of_one_core')} % of one core busy of {m.get('capacity_pct')} % "
          f"(ours {m.get('ours_pct_of_one_core')} %, others {m.get('others_pct_of_one_core')} %), "
          f"load average median {m.get('loadavg1_median')}, max {m.get('loadavg1_max')}")
    t = result["modules_total"]
    print(f"modules together: RSS {t['rss_mb_median_sum']} MB, PSS {t['pss_mb_median_sum']} MB, "
          f"CPU {t['cpu_pct_of_one_core']} % of one core")
    verdict = "met" if result["target_met"] else f"NOT met: {result['modules_over_target']}"
    print(f"target <= {result['target_rss_mb']:g} MB RSS per module: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", default="1d", help="simulated span (default 1d: the default run)")
    parser.add_argument("--accel", type=float, default=240.0, help="simulated s per real s (default 240)")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds after start-up not counted (default 30)")
    parser.add_argument("--interval", type=float, default=1.0, help="sampling interval, s (default 1)")
    parser.add_argument("--host", help="loopback address (default: a free 127.0.0.N)")
    parser.add_argument("--max-minutes", type=float, default=15.0, help="hard limit")
    parser.add_argument("--keep", action="store_true", help="keep the run's data directory (logs, summary, plot)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    machine = machine_info()
    root = Path(tempfile.mkdtemp(prefix="bench-run-resources-"))
    try:
        result = measure(args, root / "run")
    except (Interrupted, KeyboardInterrupt):
        print("interrupted; every process was stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    doc = {"benchmark": "run_resources", "machine": machine,
           "options": {k: v for k, v in vars(args).items() if k != "json"}, **result}
    print_table(result)
    write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
