"""`energy-edge bench peak-shaving` end to end on two weeks of the built-in scenario."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from energy_edge.bench.cli import add_bench_parser


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="energy-edge")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_two_weeks_of_the_built_in_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    schedule, png = tmp_path / "schedule.csv", tmp_path / "plot.png"
    code = run(["bench", "peak-shaving", "--scenario", "commercial", "--seed", "2", "--start", "2025-02-24",
                "--days", "14", "--battery-kwh", "150", "--json", str(out), "--schedule-out", str(schedule),
                "--plot", str(png)])
    assert code == 0
    table = capsys.readouterr().out
    assert "2025-02" in table and "2025-03" in table and "ratio controller" in table
    doc = json.loads(out.read_text())
    assert [m["month"] for m in doc["months"]] == ["2025-02", "2025-03"]
    assert set(doc["months"][0]) == {"month", "baseline_peak_kw", "rule_peak_kw", "controller_peak_kw",
                                     "optimum_peak_kw"}
    assert doc["battery"]["capacity_kwh"] == 150
    assert doc["violations"] == 0
    assert 0 < doc["ratio_controller"] <= 1 + 1e-6 and 0 < doc["ratio_rule"] <= 1 + 1e-6
    for m in doc["months"]:
        assert m["optimum_peak_kw"] <= min(m["controller_peak_kw"], m["rule_peak_kw"]) + 1e-3
    assert schedule.read_text().splitlines()[0] == "timestamp,load_kw,pv_kw,battery_kw,soc_kwh,grid_import_kw"
    assert len(schedule.read_text().splitlines()) == 14 * 96 + 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_csv_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    load, pv = tmp_path / "load.csv", tmp_path / "pv.csv"
    rows = [f"2025-06-0{2 + q // 96}T{(q % 96) // 4:02d}:{15 * (q % 4):02d}:00" for q in range(2 * 96)]
    load.write_text("timestamp,power_kw\n" + "".join(
        f"{t},{150 if 40 <= q % 96 < 48 else 90}\n" for q, t in enumerate(rows)))
    pv.write_text("timestamp,power_kw\n" + "".join(f"{t},0\n" for t in rows))
    out = tmp_path / "out.json"
    assert run(["bench", "peak-shaving", "--load", str(load), "--pv", str(pv), "--battery-kwh", "50",
                "--battery-kw", "100", "--soc-min-pct", "0", "--soc-max-pct", "100", "--round-trip-efficiency",
                "1", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["months"][0]["baseline_peak_kw"] == 150
    assert doc["months"][0]["optimum_peak_kw"] == pytest.approx(125, abs=0.01)


def test_unknown_scenario_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["bench", "peak-shaving", "--scenario", "nowhere"]) == 2
    assert "unknown scenario" in capsys.readouterr().err
