"""The bill under each built-in tariff: the controller beside its peers, per run (benchmarks/README.md).

    .venv/bin/python benchmarks/tariff_bills.py                                  # every tariff, every run
    .venv/bin/python benchmarks/tariff_bills.py --tariffs us-tou --held-out      # ~2 min a run
    .venv/bin/python benchmarks/tariff_bills.py --tariffs monthly-15 --only commercial --seeds 2 3

Per tariff, a Markdown table: the bill ratio (share of the bill optimum's saving) of the controller and of every
peer, the controller's monthly-peak ratio, its saving and the optimum's in the tariff's currency, violations
and the controller's seconds. JSON per run goes to --out-dir.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from energy_edge.bench.cli import run_peak_shaving
from energy_edge.bench.data import SCENARIOS, TUNING_RUNS, benchmark_runs, build_scenario
from energy_edge.bench.plant import BatterySpec
from energy_edge.bench.tariffs import BUILT_IN, load_tariff

PEERS = ("rule", "rule, previous month", "MPC", "MPC, perfect PV")


def ratios(bill: dict[str, float]) -> str:
    return f"{bill['bill_ratio']:.3f} / {bill['demand_ratio']:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tariffs", nargs="*", default=list(BUILT_IN))
    parser.add_argument("--only", nargs="*", default=list(SCENARIOS), help="scenarios (default: all)")
    parser.add_argument("--seeds", nargs="*", type=int, default=None)
    parser.add_argument("--held-out", action="store_true", help="leave out the tuning runs")
    parser.add_argument("--no-mpc", action="store_true")
    parser.add_argument("--no-perfect-pv", action="store_true", help="the MPC from history only")
    parser.add_argument("--energy-shifting", action="store_true", help="the controller shifts energy too")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/tariff-bills"))
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    runs = ([(name, seed) for name in args.only for seed in args.seeds] if args.seeds
            else benchmark_runs(args.only))
    if args.held_out:
        runs = [r for r in runs if r not in TUNING_RUNS]
    peers = [p for p in PEERS if not (args.no_mpc and p.startswith("MPC"))
             and not (args.no_perfect_pv and p == "MPC, perfect PV")]
    for tariff_name in args.tariffs:
        tariff = load_tariff(tariff_name)
        print(f"\n**{tariff.name}** ({tariff.currency}): bill ratio (share of the bill optimum's saving) / demand "
              "ratio (share of the demand-charge optimum's saving on demand charges)\n")
        print("| scenario | seed | tuned on it? | controller | " + " | ".join(peers)
              + " | controller peak ratio | controller saving | optimum saving | violations | controller s (CPU) |")
        print("| --- | --- | --- | --- | " + " | ".join("---" for _ in peers) + " | --- | --- | --- | --- | --- |")
        for name, seed in runs:
            result = run_peak_shaving(build_scenario(name, seed), BatterySpec.of(SCENARIOS[name].battery), tariff,
                                      mpc=not args.no_mpc, perfect_pv=not args.no_perfect_pv,
                                      energy_shifting=args.energy_shifting)
            doc = result.to_json()
            (args.out_dir / f"{tariff.name}-{name}-{seed}.json").write_text(json.dumps(doc, indent=2) + "\n")
            bills = doc["bills"]
            base = bills["baseline"]["total"]
            violations = doc["violations"] + sum(v["total"] for v in doc["peer_violations"].values())
            tuned = "**yes**" if (name, seed) in TUNING_RUNS else "no"
            seconds = doc["seconds"]
            print(f"| {name} | {seed} | {tuned} | {ratios(bills['controller'])} | "
                  + " | ".join(ratios(bills[p]) for p in peers)
                  + f" | {bills['controller']['peak_ratio']:.3f} | {base - bills['controller']['total']:,.0f} | "
                  f"{base - bills['bill optimum']['total']:,.0f} | {violations} | "
                  f"{seconds['controller']:.1f} ({seconds['controller CPU']:.1f}) |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
