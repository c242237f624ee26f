"""`energy-edge sim` as a process: ready line, sim.json, SIGTERM exit 0, exit 2 for a busy port."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from pymodbus.client import ModbusTcpClient

from energy_edge.sim.main import READY_PREFIX, SimOptions, add_sim_parser

REPO = Path(__file__).resolve().parents[3]
SIM = [sys.executable, "-m", "energy_edge.sim", "--log-level", "WARNING"]


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*SIM, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_starts_writes_sim_json_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = start("--scenario", "small", "--host", "127.0.0.1", "--data-dir", str(tmp_path), "--base-port", "0",
                 "--admin-port", "0", "--accel", "60", "--seed", "3")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()  # blocks until the simulator is ready (or exits)
        assert line.startswith(READY_PREFIX), (line, proc.stderr.read() if proc.poll() is not None else "")
        path = Path(line[len(READY_PREFIX):].strip())
        assert path == tmp_path / "sim.json"
        doc = json.loads(path.read_text())
        assert doc["seed"] == 3 and doc["accel"] == 60 and len(doc["devices"]) == 4
        mgc = next(d for d in doc["devices"] if d["kind"] == "microgrid_controller")
        client = ModbusTcpClient(mgc["host"], port=mgc["port"], timeout=2, retries=0)
        assert client.connect()
        rr = client.read_input_registers(4, count=1, device_id=mgc["unit_id"])
        client.close()
        assert not rr.isError() and 4990 < rr.registers[0] < 5010  # 50 Hz
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_exits_2_naming_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = start("--scenario", "small", "--data-dir", str(tmp_path), "--base-port", str(port),
                     "--admin-port", "0")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, (out, err)
    assert f"127.0.0.1:{port}" in err and "already in use" in err
    assert not (tmp_path / "sim.json").exists()


def test_cli_exits_2_for_an_unknown_scenario(tmp_path: Path) -> None:
    proc = start("--scenario", str(tmp_path / "missing.json"), "--data-dir", str(tmp_path))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "missing.json" in err


def test_add_sim_parser_wires_the_options() -> None:
    parser = argparse.ArgumentParser(prog="energy-edge")
    add_sim_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sim", "--scenario", "small", "--accel", "10", "--base-port", "0"])
    assert callable(args.func)
    assert (args.scenario, args.host, args.accel, args.seed, args.base_port, args.admin_port) == \
        ("small", "127.0.0.1", 10.0, None, 0, 15080)
    defaults = SimOptions()
    assert (defaults.base_port, defaults.admin_port, defaults.accel) == (15020, 15080, 1.0)
