"""The reliability suite's long form: generated inputs by the ten thousand, and an accelerated week of soak with
faults injected all along. `make reliability` runs both; `make test` runs the suite's short form.

    .venv/bin/python benchmarks/reliability.py fuzz --examples 3000 --json /tmp/fuzz.json    # ~15 min
    .venv/bin/python benchmarks/reliability.py soak --duration 7d --accel 1200 --json /tmp/soak.json  # ~9 min

fuzz: runs tests/reliability with ENERGY_EDGE_FUZZ_EXAMPLES (each Hypothesis test tries that many inputs; a
routed-reading example sends one or two messages) and ENERGY_EDGE_RELIABILITY_REPORT, then adds up what the tests
recorded: inputs tried by target, method answers by status (a 500 would be a handler that failed), the fault
matrix's time to fail-safe and to recovery. A crash is a failed test: every test checks its processes are alive.

soak: the real `energy-edge run` (the default site, every module at a 1 s poll) for a simulated week, with a fault
injected every `--fault-every` s (meter frozen, meter exception 4, meter offline, battery offline, battery
exception 4, in turn, each held `--fault-for` s). It samples every process's memory once a second (benchlib),
asks the controller for its status four times a second while a meter fault is on (time to fail-safe and to
resume), and counts module restarts (a pid that changed). RSS growth is the median of the last tenth of the steady
window against the first tenth.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import REPO, ProcSampler, machine_info, start_local_run, write_json
from run_resources import INFRA, RUNNER, modules_up, run_pids, stop

SOAK_FAULTS = [("mgc-1", "frozen", None), ("mgc-1", "exception", 4), ("mgc-1", "offline", None),
               ("bess-1", "offline", None), ("bess-1", "exception", 4)]


# ---------------------------------------------------------------- fuzz


def fuzz(args: argparse.Namespace) -> dict[str, Any]:
    report = Path(tempfile.mkdtemp(prefix="bench-reliability-")) / "report.jsonl"
    env = {**os.environ, "ENERGY_EDGE_FUZZ_EXAMPLES": str(args.examples), "ENERGY_EDGE_RELIABILITY_REPORT": str(report)}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:cacheprovider",
                           "--no-cov"], cwd=REPO, env=env, capture_output=True, text=True)
    lines = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    generated = [r for r in lines if r["kind"] == "generated"]
    faults = [r for r in lines if r["kind"] == "fault"]
    return {
        "pytest": tail, "exit_code": proc.returncode, "minutes": round((time.monotonic() - started) / 60, 1),
        "examples_per_test": args.examples,
        "inputs_by_target": dict(Counter(r["target"] for r in generated for _ in range(r["inputs"]))),
        "inputs_total": sum(r["inputs"] for r in generated),
        "method_answers_by_status": dict(Counter(str(r.get("status")) for r in generated
                                                 if r["target"] == "method payload")),
        "faults": faults,
        "failures": [line for line in proc.stdout.splitlines() if line.startswith("FAILED")],
    }


# ---------------------------------------------------------------- soak


class Injector(threading.Thread):
    """Cycles SOAK_FAULTS through the simulator's admin API and times the controller's answer to each."""

    def __init__(self, data_dir: Path, every_s: float, for_s: float) -> None:
        super().__init__(daemon=True)
        self.data_dir, self.every_s, self.for_s = data_dir, every_s, for_s
        self.done = threading.Event()
        self.results: list[dict[str, Any]] = []

    def _admin(self, path: str, body: dict[str, Any]) -> None:
        url = json.loads((self.data_dir / "sim" / "sim.json").read_text())["admin_url"] + path
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10):
            pass

    def _status(self, registry: Any, device_id: str) -> dict[str, Any]:
        from azure.iot.hub.models import CloudToDeviceMethod

        try:
            result = registry.invoke_device_module_method(device_id, "controller", CloudToDeviceMethod(
                method_name="get_status", payload={}, response_timeout_in_seconds=5))
        except Exception:
            return {}
        return dict(result.payload.get("status", {})) if result.status == 200 else {}

    def run(self) -> None:
        from azure.iot.hub import IoTHubRegistryManager

        hub = json.loads((self.data_dir / "hub" / "hub.json").read_text())
        os.environ["REQUESTS_CA_BUNDLE"] = hub["ca_cert"]
        registry = IoTHubRegistryManager.from_connection_string(hub["service_connection_string"])
        turn = 0
        while not self.done.wait(self.every_s):
            asset_id, fault, code = SOAK_FAULTS[turn % len(SOAK_FAULTS)]
            turn += 1
            meter = asset_id.startswith("mgc")
            injected = time.monotonic()
            fail_safe_s = resumed_s = None
            try:
                self._admin("/faults", {"asset_id": asset_id, "fault": fault, **({"code": code} if code else {})})
                while time.monotonic() - injected < self.for_s:
                    if meter and fail_safe_s is None and self._status(registry, hub["device_id"]).get(
                            "mode") == "fail_safe":
                        fail_safe_s = time.monotonic() - injected
                    time.sleep(0.25)
                cleared = time.monotonic()
                self._admin("/faults", {"asset_id": asset_id, "fault": "none"})
                while meter and time.monotonic() - cleared < self.every_s / 2:
                    if self._status(registry, hub["device_id"]).get("mode") not in (None, "fail_safe"):
                        resumed_s = time.monotonic() - cleared
                        break
                    time.sleep(0.25)
            except Exception as exc:  # the run stopping under us
                self.results.append({"asset_id": asset_id, "fault": fault, "error": str(exc)})
                continue
            self.results.append({"asset_id": asset_id, "fault": fault, "fail_safe_s": fail_safe_s,
                                 "resumed_s": resumed_s})


def soak(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    data_dir = root / "run"
    log_path = root / "energy-edge-run.log"
    run = start_local_run(args, data_dir, [15020, 15021, 15022, 15023, 15080], log_path)
    proc = run.proc
    known: dict[str, int] = {}
    pid_history: dict[str, set[int]] = {}

    def pids() -> dict[str, int | None]:
        out: dict[str, int | None] = {RUNNER: proc.pid if proc.poll() is None else None}
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            out.update(run_pids(data_dir))
        for name, pid in out.items():
            if pid:
                known[name] = pid
                pid_history.setdefault(name, set()).add(pid)
        return out

    sampler = ProcSampler(pids, 1.0)
    injector = Injector(data_dir, args.fault_every, args.fault_for)
    t_modules = None
    try:
        sampler.start()
        deadline = time.monotonic() + args.max_minutes * 60
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the run did not finish within {args.max_minutes} min")
            if t_modules is None and modules_up(data_dir):
                t_modules = time.monotonic()
                injector.start()
            time.sleep(0.5)
    finally:
        injector.done.set()
        sampler.stop()
        stop(proc, known)
    if t_modules is None:
        raise RuntimeError(f"the run never started; see {log_path}")
    t_from = t_modules + args.warmup
    ends = [s[-1].t for name, s in sampler.samples.items() if name != RUNNER and s]
    t_to = min(ends) - 1.0
    tenth = (t_to - t_from) / 10
    growth = {}
    for name, samples in sorted(sampler.samples.items()):
        if name in (*INFRA, RUNNER):
            continue
        first = [s.rss_kb for s in samples if t_from <= s.t <= t_from + tenth]
        last = [s.rss_kb for s in samples if t_to - tenth <= s.t <= t_to]
        if first and last:
            a, b = statistics.median(first) / 1024, statistics.median(last) / 1024
            growth[name] = {"rss_mb_first": round(a, 1), "rss_mb_last": round(b, 1),
                            "growth_pct": round((b - a) / a * 100, 1)}
    summary = json.loads((data_dir / "summary.json").read_text()) if (data_dir / "summary.json").exists() else {}
    meter_faults = [r for r in injector.results if r["asset_id"].startswith("mgc")]
    fail_safe = [r["fail_safe_s"] for r in meter_faults if r.get("fail_safe_s") is not None]
    resumed = [r["resumed_s"] for r in meter_faults if r.get("resumed_s") is not None]
    result = {
        "command": run.command, "exit_code": proc.returncode, "steady_window_s": round(t_to - t_from, 1),
        "rss": growth, "restarts": {n: len(p) - 1 for n, p in pid_history.items() if n not in (RUNNER,)},
        "faults_injected": len(injector.results),
        "meter_faults": len(meter_faults),
        "fail_safe_s": {"n": len(fail_safe), "max": max(fail_safe, default=None),
                        "median": statistics.median(fail_safe) if fail_safe else None},
        "resumed_s": {"n": len(resumed), "max": max(resumed, default=None),
                      "median": statistics.median(resumed) if resumed else None},
        "missed_fail_safe": [r for r in meter_faults if r.get("fail_safe_s") is None],
        "run_summary": {k: summary.get(k) for k in ("violations", "peak_import_kw", "upstream_messages")},
    }
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    f = sub.add_parser("fuzz")
    f.add_argument("--examples", type=int, default=4000)
    f.add_argument("--json")
    s = sub.add_parser("soak")
    s.add_argument("--duration", default="7d")
    s.add_argument("--accel", type=float, default=1200.0)
    s.add_argument("--fault-every", type=float, default=20.0, help="real seconds between faults")
    s.add_argument("--fault-for", type=float, default=6.0, help="real seconds a fault is held")
    s.add_argument("--warmup", type=float, default=30.0)
    s.add_argument("--host")
    s.add_argument("--max-minutes", type=float, default=30.0)
    s.add_argument("--keep", action="store_true")
    s.add_argument("--json")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    result = fuzz(args) if args.part == "fuzz" else soak(args)
    doc = {"benchmark": f"reliability {args.part}", "machine": machine_info(),
           "options": {k: v for k, v in vars(args).items() if k != "json"}, **result}
    print(json.dumps(result, indent=2))
    write_json(args.json, doc)
    return 0 if result.get("exit_code") in (0, None) else 1


if __name__ == "__main__":
    sys.exit(main())
