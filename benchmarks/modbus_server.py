"""Server CPU per Modbus request of the simulator: the `small` site in a child process, paused (accel 0).

A client in this process sends a fixed mix of requests to the solar inverter (FC3 70 registers, FC4 70
registers, FC6 one register, FC16 two registers) and to an address outside its map (an ILLEGAL ADDRESS
reply); the child's user+system CPU time is read from /proc before and after. The sim is paused, so its
CPU between the two readings is the servers' own work (the admin API is not called in between).

    .venv/bin/python benchmarks/modbus_server.py [--requests 4000] [--repeats 3]

Prints microseconds of server CPU per request (median of the repeats) and the pymodbus version.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from pymodbus.client import ModbusTcpClient

ROOT = Path(__file__).resolve().parents[1]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_sim(data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    cmd = [sys.executable, "-m", "energy_edge.sim", "--scenario", "small", "--accel", "0", "--base-port", "0",
           "--admin-port", "0", "--data-dir", str(data_dir), "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sim_json = data_dir / "sim.json"
    deadline = time.monotonic() + 30
    while not sim_json.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the simulator did not start")
        time.sleep(0.05)
    time.sleep(0.2)
    return proc, json.loads(sim_json.read_text())


def _one_round(client: ModbusTcpClient, unit: int) -> int:
    """One of each request kind; returns how many requests were sent."""
    assert not client.read_holding_registers(40000, count=70, device_id=unit).isError()
    assert not client.read_input_registers(40000, count=70, device_id=unit).isError()
    # WMaxLimPct of model 123 is written the way the controller writes it; 1000 = 100.0 % keeps the plant as it was
    assert not client.write_register(_WMAXLIMPCT, 1000, device_id=unit).isError()
    assert not client.write_registers(_WMAXLIMPCT, [1000], device_id=unit).isError()
    assert client.read_holding_registers(1, count=1, device_id=unit).isError()  # outside the map
    return 5


_WMAXLIMPCT = 0  # set in main() from the simulator's register map


def main() -> None:
    global _WMAXLIMPCT
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # the inverter's SunSpec addresses, as the simulator tests use them
    from tools.simulator.tests.test_modbus import PV

    _WMAXLIMPCT = PV["123.WMaxLimPct"]
    per_request_us: list[float] = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            proc, doc = _start_sim(Path(tmp))
            try:
                device = next(d for d in doc["devices"] if d["asset_id"] == "pv-1")  # type: ignore[union-attr]
                with ModbusTcpClient(device["host"], port=device["port"]) as client:
                    _one_round(client, device["unit_id"])  # warm-up: connection, first allocations
                    sent = 0
                    before = _cpu_s(proc.pid)
                    while sent < args.requests:
                        sent += _one_round(client, device["unit_id"])
                    after = _cpu_s(proc.pid)
                per_request_us.append((after - before) / sent * 1e6)
            finally:
                proc.terminate()
                proc.wait(10)
    print(f"pymodbus {version('pymodbus')}: server CPU per request {statistics.median(per_request_us):.1f} us "
          f"(runs: {', '.join(f'{v:.1f}' for v in per_request_us)}; {args.requests} requests per run)")


if __name__ == "__main__":
    main()
