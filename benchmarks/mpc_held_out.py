"""The MPC from history alone on the held-out runs of a tariff, against the reference bills of shifting_tuning.py's
cache (the baseline's bill, the bill and demand optimums'; computed and cached when missing):

    .venv/bin/python benchmarks/mpc_held_out.py --tariffs monthly-30 ratchet-80 --cache /tmp/tariff-bills \
        --out-dir /tmp/mpc-held-out                                        # ~40 s a run, more with an optimum

tariff_bills.py runs every peer and the optimums of a run together (~4 min a run); this runs the one causal peer
that the held-out tables of the other tariffs lacked, with the same settings (`bench.cli.MPC_SETTINGS`, chosen on
the tuning runs). Writes one JSON per run (`{tariff}-{scenario}-{seed}-mpc.json`: bill ratio, demand ratio,
saving, violations, CPU seconds) and prints a Markdown row per run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from shifting_tuning import ratios, reference_bills

from energy_edge.bench import peers, tariffs
from energy_edge.bench.cli import MPC_SETTINGS
from energy_edge.bench.data import SCENARIOS, TUNING_RUNS, benchmark_runs, build_scenario
from energy_edge.bench.plant import BatterySpec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tariffs", nargs="+", required=True)
    parser.add_argument("--runs", nargs="*", default=None, help="name:seed (default: the held-out runs)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/tariff-bills"))
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/mpc-held-out"))
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    runs = ([(r.split(":")[0], int(r.split(":")[1])) for r in args.runs] if args.runs
            else [r for r in benchmark_runs() if r not in TUNING_RUNS])
    print("| tariff | scenario | seed | MPC from history (bill / demand ratio) | saving | violations | CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for tariff_name in args.tariffs:
        tariff = tariffs.load_tariff(tariff_name)
        for name, seed in runs:
            out = args.out_dir / f"{tariff_name}-{name}-{seed}-mpc.json"
            if out.exists():
                doc = json.loads(out.read_text())
            else:
                ref = reference_bills(name, seed, tariff_name, args.cache)
                series = build_scenario(name, seed)
                battery = BatterySpec.of(SCENARIOS[name].battery)
                steps = tariffs.TariffSteps.of(tariff, series)
                cpu_started = time.process_time()
                run = peers.mpc(series, steps, battery, MPC_SETTINGS)
                cpu_s = time.process_time() - cpu_started
                bill = tariffs.bill_of(steps, series, series.net_kw - run.battery_kw)
                bill_ratio, demand_ratio = ratios(ref, bill)
                doc = {"tariff": tariff_name, "scenario": name, "seed": seed, "run": "MPC",
                       "bill_ratio": round(bill_ratio, 4), "demand_ratio": round(demand_ratio, 4),
                       "saving": round(ref["baseline"][0] - bill.total, 2), "violations": run.violations.total,
                       "cpu_s": round(cpu_s, 2)}
                out.write_text(json.dumps(doc) + "\n")
            print(f"| {tariff_name} | {name} | {seed} | {doc['bill_ratio']:.3f} / {doc['demand_ratio']:.3f} | "
                  f"{doc['saving']:,.0f} | {doc['violations']} | {doc['cpu_s']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
