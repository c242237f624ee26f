"""What planning the demand charges together costs, per plan (core/planner.py `plan_charges`).

    .venv/bin/python benchmarks/plan_cost.py --tariff us-tou --run commercial-us:1 --every 8   # ~1 min

Replays a year of the controller (shifting off) with `plan_charges` wrapped to record its inputs, then times,
on every `--every`-th recorded call, the charges planned apart (one `plan_threshold` per charge over its own
quarters, the planner before 2026-12-05) and together (`plan_charges`). Prints CPU ms per plan (mean, p95, max)
and the year's CPU seconds of the replay. Only tariffs whose charges count at different times call it.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import controller_module.core.planner as planner
from energy_edge.bench import replay, tariffs
from energy_edge.bench.data import SCENARIOS, build_scenario
from energy_edge.bench.plant import BatterySpec


def plan_apart(net_kw: list[float], envelope: planner.BatteryEnvelope, counts: list[list[bool] | None],
               repeats: int) -> list[float]:
    """The planner before 2026-12-05: each charge alone over its own quarters."""
    return [planner.plan_threshold(net_kw, envelope, repeats=repeats, active=active) for active in counts]


def summary(values_ms: list[float]) -> str:
    values = np.asarray(values_ms)
    return f"mean {values.mean():.2f} ms, p95 {np.percentile(values, 95):.2f} ms, max {values.max():.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tariff", default="us-tou")
    parser.add_argument("--run", default="commercial-us:1", help="name:seed")
    parser.add_argument("--every", type=int, default=8, help="time every n-th recorded plan")
    args = parser.parse_args()
    name, seed = args.run.split(":")
    series = build_scenario(name, int(seed))
    battery = BatterySpec.of(SCENARIOS[name].battery)
    tariff = tariffs.load_tariff(args.tariff)

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    together = planner.plan_charges

    def recording(*call_args: Any, **call_kwargs: Any) -> list[float]:
        calls.append((call_args, call_kwargs))
        return together(*call_args, **call_kwargs)

    planner.plan_charges = recording  # type: ignore[assignment]  # the planner calls it by its module name
    try:
        started = time.process_time()
        run = replay.run(series, battery, replay.controller_config(battery, tariff))
        year_cpu_s = time.process_time() - started
    finally:
        planner.plan_charges = together  # type: ignore[assignment]
    if not calls:
        print(f"{args.tariff}: no plans of charges counting at different times (one charge, or one window set)")
        return 1

    # plans whose horizon holds a window quarter (under us-tou only June to September) do the joint work
    timed: dict[str, tuple[list[float], list[float]]] = {"every plan": ([], []), "a window in the horizon": ([], [])}
    for call_args, call_kwargs in calls[::args.every]:
        net_kw, envelope, counts = call_args[:3]
        repeats = call_kwargs.get("repeats", 1)
        started = time.process_time()
        plan_apart(net_kw, envelope, counts, repeats)
        apart = (time.process_time() - started) * 1000
        started = time.process_time()
        together(*call_args, **call_kwargs)
        joint = (time.process_time() - started) * 1000
        kinds = ["every plan"] + (["a window in the horizon"]
                                  if any(active is not None and any(active) for active in counts) else [])
        for kind in kinds:
            timed[kind][0].append(apart)
            timed[kind][1].append(joint)
    print(f"{args.tariff}, {name} {seed}: {len(calls)} plans in the year, {len(calls[::args.every])} timed; "
          f"the year's replay {year_cpu_s:.1f} s CPU, {run.violations.total} violations")
    print("| plans | n | planned apart | planned together |")
    print("| --- | --- | --- | --- |")
    for kind, (apart_ms, together_ms) in timed.items():
        if apart_ms:
            print(f"| {kind} | {len(apart_ms)} | {summary(apart_ms)} | {summary(together_ms)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
