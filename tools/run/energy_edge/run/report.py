"""What a run did: samples of the simulated site, the summary, and the plot of the day."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

QUARTER_S = 900.0
FULL_QUARTER = 0.95  # share of a quarter the samples must cover for it to count


@dataclass(frozen=True)
class Sample:
    sim_time: dt.datetime
    grid_import_kw: float
    load_kw: float
    pv_kw: float
    battery_kw: float  # + discharge
    heater_kw: float
    soc_pct: float | None
    import_limit_kw: float

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Sample:
        site = state["site"]
        socs = [d["soc_pct"] for d in state["devices"].values() if d.get("kind") == "battery"]
        return cls(
            sim_time=dt.datetime.fromisoformat(state["sim_time"]),
            grid_import_kw=float(site["grid_import_kw"]),
            load_kw=float(site["load_kw"]),
            pv_kw=float(site["pv_kw"]),
            battery_kw=float(site["battery_kw"]),
            heater_kw=float(site["heater_kw"]),
            soc_pct=sum(socs) / len(socs) if socs else None,
            import_limit_kw=float(site["import_limit_kw"]),
        )


def quarter_averages(samples: list[Sample], value: Any, min_coverage: float = 0.0) -> list[tuple[dt.datetime, float]]:
    """Time-weighted averages per billing quarter (sample and hold), for quarters whose samples cover
    at least `min_coverage` of the quarter (billing counts whole quarters: a run's first and last
    partial quarters are left out of peaks and violations)."""
    out: dict[float, list[float]] = {}
    for a, b in itertools.pairwise(samples):
        t0, t1 = a.sim_time.timestamp(), b.sim_time.timestamp()
        v = value(a)
        while t0 < t1:
            q = t0 - t0 % QUARTER_S
            end = min(t1, q + QUARTER_S)
            acc = out.setdefault(q, [0.0, 0.0])
            acc[0] += v * (end - t0)
            acc[1] += end - t0
            t0 = end
    tz = samples[0].sim_time.tzinfo if samples else dt.timezone.utc
    return [(dt.datetime.fromtimestamp(q, tz), e / d) for q, (e, d) in sorted(out.items())
            if d > 0 and d >= min_coverage * QUARTER_S]


def integrate_kwh(samples: list[Sample], value: Any) -> float:
    total = 0.0
    for a, b in itertools.pairwise(samples):
        total += value(a) * (b.sim_time - a.sim_time).total_seconds() / 3600
    return total


def summarize(samples: list[Sample], limit_kw: float | None, modules: dict[str, Any], upstream_messages: int,
              capability_status: dict[str, Any]) -> dict[str, Any]:
    if len(samples) < 2:
        raise ValueError("the run recorded fewer than two samples")
    limit = limit_kw if limit_kw is not None else samples[-1].import_limit_kw
    with_control = quarter_averages(samples, lambda s: s.grid_import_kw, FULL_QUARTER)
    # without the battery's action (the boiler runs either way): what the meter would have seen
    without_control = quarter_averages(samples, lambda s: s.grid_import_kw + s.battery_kw, FULL_QUARTER)
    if not with_control:
        raise ValueError("the run covered no whole billing quarter")
    imported = integrate_kwh(samples, lambda s: max(0.0, s.grid_import_kw))
    exported = integrate_kwh(samples, lambda s: max(0.0, -s.grid_import_kw))
    pv = integrate_kwh(samples, lambda s: s.pv_kw)
    violations = [(t.isoformat(), round(v, 2)) for t, v in with_control if v > limit + 0.5]
    return {
        "sim_start": samples[0].sim_time.isoformat(),
        "sim_end": samples[-1].sim_time.isoformat(),
        "samples": len(samples),
        "modules": modules,
        "import_limit_kw": limit,
        "peak_import_kw": round(max(v for _, v in with_control), 2),
        "peak_import_without_control_kw": round(max(v for _, v in without_control), 2),
        "violations": len(violations),
        "violation_quarters": violations,
        "energy_imported_kwh": round(imported, 2),
        "energy_exported_kwh": round(exported, 2),
        "pv_energy_kwh": round(pv, 2),
        "self_consumption_pct": round(100 * (1 - exported / pv), 1) if pv > 0 else None,
        "capability_status": capability_status,
        "upstream_messages": upstream_messages,
    }


def plot(samples: list[Sample], summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times = [s.sim_time for s in samples]
    fig, (ax, ax_soc) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, height_ratios=[3, 1])
    ax.plot(times, [s.grid_import_kw for s in samples], label="grid import", color="tab:red", lw=1.2)
    ax.plot(times, [s.grid_import_kw + s.battery_kw for s in samples], label="import without battery",
            color="tab:red", lw=0.8, ls=":", alpha=0.7)
    quarters = quarter_averages(samples, lambda s: s.grid_import_kw)
    ax.step([t for t, _ in quarters], [v for _, v in quarters], where="post", color="darkred", lw=1.6,
            label="15-min average import")
    ax.axhline(summary["import_limit_kw"], color="black", ls="--", lw=1, label="import limit")
    ax.plot(times, [s.pv_kw for s in samples], label="PV", color="goldenrod", lw=1)
    ax.plot(times, [s.battery_kw for s in samples], label="battery (+ discharge)", color="tab:blue", lw=1)
    ax.plot(times, [-s.heater_kw for s in samples], label="boiler (− heating)", color="tab:purple", lw=0.8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("kW")
    ax.legend(loc="upper left", fontsize=8, ncol=3)
    ax.set_title(f"energy-edge local run: peak {summary['peak_import_kw']:.0f} kW with control, "
                 f"{summary['peak_import_without_control_kw']:.0f} kW without "
                 f"(limit {summary['import_limit_kw']:.0f} kW)")
    ax_soc.plot(times, [s.soc_pct for s in samples], color="tab:green", lw=1.2)
    ax_soc.set_ylabel("SOC %")
    ax_soc.set_ylim(0, 100)
    ax_soc.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=times[0].tzinfo))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sample_dicts(samples: list[Sample]) -> list[dict[str, Any]]:
    return [{**asdict(s), "sim_time": s.sim_time.isoformat()} for s in samples]
