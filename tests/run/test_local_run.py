"""`energy-edge run` headless on a short accelerated scenario, with a module killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support import ENERGY_EDGE, REPO, next_loopback

pytestmark = pytest.mark.integration

MODULES = {"simulator", "edgeHub", "solar", "battery", "boiler", "microgrid-controller", "controller", "telemetry",
           "console"}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_local_run_holds_the_limit_and_survives_a_killed_module(tmp_path: Path) -> None:
    data_dir = tmp_path / "edge"
    summary_path = tmp_path / "summary.json"
    run = subprocess.Popen(
        [*ENERGY_EDGE, "run", "--no-ui", "--duration", "75m", "--accel", "60", "--data-dir", str(data_dir),
         "--host", next_loopback(), "--summary-out", str(summary_path), "--plot", str(tmp_path / "run.png")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(run.stdout or []), daemon=True).start()
    state_file = data_dir / "run.json"
    try:
        # once every module runs, kill one the hard way: the supervisor must restart it
        deadline = time.monotonic() + 60
        while True:
            assert run.poll() is None, "".join(output)
            if state_file.exists():
                processes = json.loads(state_file.read_text())["processes"]
                if set(processes) == MODULES and all(p["pid"] for p in processes.values()):
                    break
            assert time.monotonic() < deadline, "the site did not come up"
            time.sleep(0.2)
        endpoints = json.loads((data_dir / "endpoints.json").read_text())
        assert endpoints["metrics_url"].endswith("/metrics")
        assert endpoints["console_url"].endswith(":8480/")
        assert Path(endpoints["console_password_file"]).stat().st_mode & 0o077 == 0  # the run's sign-in, owner only
        time.sleep(10)  # let control settle before the fault
        os.kill(processes["solar"]["pid"], signal.SIGKILL)
        assert run.wait(timeout=240) == 0, "".join(output)
    finally:
        if run.poll() is None:
            run.kill()
    summary = json.loads(summary_path.read_text())
    assert set(summary["modules"]) == MODULES
    assert summary["modules"]["solar"]["restarts"] >= 1
    assert summary["modules"]["solar"]["exit_codes"][0] == -signal.SIGKILL
    assert all(m["state"] == "running" for m in summary["modules"].values()), summary["modules"]  # at the end
    assert summary["violations"] == 0, summary["violation_quarters"]
    assert summary["peak_import_kw"] <= summary["import_limit_kw"] + 0.5
    assert summary["peak_import_without_control_kw"] > summary["import_limit_kw"]  # there was a peak to shave
    assert set(summary["capability_status"]) == {"PEAK_SHAVING", "DER"}
    assert summary["upstream_messages"] > 0
    assert (tmp_path / "run.png").stat().st_size > 10_000
    # no process is left behind
    final = json.loads(state_file.read_text())["processes"]
    for name, process in processes.items():
        assert not alive(process["pid"]), f"{name} (pid {process['pid']}) still running"
    for name, process in final.items():
        assert process["pid"] is None or not alive(process["pid"]), f"{name} still running"
