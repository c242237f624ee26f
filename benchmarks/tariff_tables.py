"""The held-out tables of benchmarks/README.md from the per-run JSON of two scripts:

    .venv/bin/python benchmarks/tariff_bills.py --held-out --tariffs us-tou --out-dir /tmp/tariff-bills
    .venv/bin/python benchmarks/shifting_tuning.py --held-out --tariffs us-tou --variants on \
        --cache /tmp/tariff-bills --out-dir /tmp/shifting-held-out
    .venv/bin/python benchmarks/tariff_tables.py /tmp/tariff-bills --shifting /tmp/shifting-held-out --variant on

The first gives the controller as configured by default (shifting off), the peers and the references; the second
the controller with energy shifting on the same runs. Per tariff, a Markdown table of bill ratio / demand ratio,
savings, violations and the controller's CPU seconds, and how many runs the controller with shifting is ahead of
every causal peer (the rule tuned on the previous month and the MPC from history) on the bill.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from energy_edge.bench.data import TUNING_RUNS, benchmark_runs
from energy_edge.bench.tariffs import BUILT_IN

PEERS = ("rule", "rule, previous month", "MPC", "MPC, perfect PV")
CAUSAL = ("rule, previous month", "MPC")


def cell(pair: tuple[float, float] | None) -> str:
    return "—" if pair is None else f"{pair[0]:.3f} / {pair[1]:.3f}"


def min_mean(pairs: list[tuple[float, float]]) -> str:
    if not pairs:
        return "—"
    bills, demands = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    return f"{bills.min():.3f} / {bills.mean():.3f}; {demands.min():.3f} / {demands.mean():.3f}"


def table(tariff: str, peers_dir: Path, shifting_dir: Path | None, variant: str) -> str | None:
    rows: list[str] = []
    columns: dict[str, list[tuple[float, float]]] = {}
    ahead, compared = 0, 0
    for name, seed in benchmark_runs():
        if (name, seed) in TUNING_RUNS:
            continue
        path = peers_dir / f"{tariff}-{name}-{seed}.json"
        if not path.exists():
            continue
        doc: dict[str, Any] = json.loads(path.read_text())
        bills = doc["bills"]
        base = bills["baseline"]["total"]
        pairs: dict[str, tuple[float, float] | None] = {
            run: (bills[run]["bill_ratio"], bills[run]["demand_ratio"]) if run in bills else None
            for run in ("controller", *PEERS)}
        shifted = None
        if shifting_dir is not None:
            shifted_path = shifting_dir / f"{tariff}-{name}-{seed}-{variant}.json"
            if shifted_path.exists():
                shifted = json.loads(shifted_path.read_text())
                pairs["controller, shifting"] = (shifted["bill_ratio"], shifted["demand_ratio"])
        for run, pair in pairs.items():
            if pair is not None:
                columns.setdefault(run, []).append(pair)
        best = pairs.get("controller, shifting") or pairs["controller"]
        causal = [pairs[p] for p in CAUSAL if pairs.get(p) is not None]
        if best is not None and len(causal) == len(CAUSAL):
            compared += 1
            ahead += all(best[0] > c[0] for c in causal)  # type: ignore[index]
        violations = doc["violations"] + sum(v["total"] for v in doc["peer_violations"].values())
        if shifted is not None:
            violations += shifted["violations"]
        rows.append(
            f"| {name} | {seed} | {cell(pairs['controller'])} | {cell(pairs.get('controller, shifting'))} | "
            + " | ".join(cell(pairs[p]) for p in PEERS)
            + f" | {base - bills['controller']['total']:,.0f} | "
            + ("—" if shifted is None else f"{shifted['saving']:,.0f}")
            + f" | {base - bills['bill optimum']['total']:,.0f} | {violations} | "
            + f"{doc['seconds']['controller CPU']:.1f} | "
            + ("—" if shifted is None else f"{shifted['controller_cpu_s']:.1f}") + " |")
    if not rows:
        return None
    currency = BUILT_IN[tariff].currency
    head = (f"**{tariff}** ({currency}), held out: bill ratio / demand ratio; controller ahead of every causal peer "
            f"on the bill (with shifting where measured): {ahead} of {compared} runs\n\n"
            "| scenario | seed | controller | controller, shifting | " + " | ".join(PEERS)
            + " | controller saving | with shifting | bill optimum saving | violations | controller CPU s "
            "| with shifting |\n| " + " | ".join("---" for _ in range(14)) + " |\n")
    runs = ("controller", "controller, shifting", *PEERS)
    foot = (f"| **min / mean** ({len(rows)} runs) | | " + " | ".join(min_mean(columns.get(r, [])) for r in runs)
            + " | | | | | | |\n")
    return head + "\n".join(rows) + "\n" + foot


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peers_dir", type=Path, help="tariff_bills.py's --out-dir")
    parser.add_argument("--shifting", type=Path, default=None, help="shifting_tuning.py --held-out's --out-dir")
    parser.add_argument("--variant", default="on")
    parser.add_argument("--tariffs", nargs="*", default=list(BUILT_IN))
    args = parser.parse_args()
    for tariff in args.tariffs:
        text = table(tariff, args.peers_dir, args.shifting, args.variant)
        if text is not None:
            print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
