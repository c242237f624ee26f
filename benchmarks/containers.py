"""The site as containers: image sizes, build times, container start → twin applied, RSS per module inside its
container, and the control figures of the container run beside the process run.

    .venv/bin/python benchmarks/containers.py --json /tmp/containers.json              # ~20 min
    .venv/bin/python benchmarks/containers.py --skip-builds --duration 6h --json /tmp/c.json

Parts:
1. builds: `scripts/build_images.py --no-cache` (every step run again; the stand-in base and the host's wheels
   are kept, their times are reported by the first `make images`), then the same build twice (layer cache).
2. sizes: each image's size, and what the seven images take together (`docker system df`: shared layers once).
3. runs: `energy-edge run --containers` and `energy-edge run` with the same scenario, duration and speed-up.
   In the container run, each module's container start (Docker's State.StartedAt) → its twin's reported
   config `status: applied` (polled through the service SDK every 0.1 s), and the RSS of each module's
   process (the container's init pid, /proc/<pid>/status from the host) once a second after a warm-up.
   Both runs' summary.json give the control figures.

Goals (issue #19): image ≤ 200 MB uncompressed, start → twin applied ≤ 5 s, RSS ≤ 60 MB per module.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import REPO, machine_info, read_proc, write_json

ENERGY_EDGE = [sys.executable, "-m", "energy_edge.cli"]
MODULES = ("microgrid-controller", "solar", "battery", "boiler", "controller", "telemetry")


def build_times() -> dict[str, Any]:
    out: dict[str, Any] = {}
    # the build right after a --no-cache build is not a fair cached build: the classic builder then finds the
    # dependency layer of the image built last and runs pip again in the others; the one after that is
    for label, extra in (("cold", ["--no-cache"]), ("after_cold", []), ("cached", [])):
        with tempfile.NamedTemporaryFile(suffix=".json") as report:
            started = time.monotonic()
            subprocess.run([sys.executable, "scripts/build_images.py", *extra, "--json", report.name], cwd=REPO,
                           check=True, capture_output=True)
            out[label] = {"total_s": round(time.monotonic() - started, 1),
                          "images": json.loads(Path(report.name).read_text())}
    return out


def image_sizes() -> dict[str, Any]:
    import docker

    client = docker.from_env()
    images = [i for i in client.df()["Images"]
              if any(t.startswith("localhost/") and t.endswith("-amd64") for t in i.get("RepoTags") or [])]
    per_image = {next(t for t in i["RepoTags"] if t.startswith("localhost/")): {
        "size_mb": round(i["Size"] / 1e6, 1), "shared_mb": round(i["SharedSize"] / 1e6, 1),
        "unique_mb": round((i["Size"] - i["SharedSize"]) / 1e6, 1)} for i in images}
    # shared layers once: the largest shared part (the base) plus every image's own layers
    together = max((i["SharedSize"] for i in images), default=0) + sum(i["Size"] - i["SharedSize"] for i in images)
    return {"images": per_image, "all_images_mb": round(together / 1e6, 1),
            "sum_of_sizes_mb": round(sum(i["Size"] for i in images) / 1e6, 1)}


def _started_at(text: str) -> float:
    # Docker's RFC 3339 with nanoseconds: keep microseconds for datetime
    head, _, rest = text.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(f"{head}.{rest[:6].ljust(6, '0')}+00:00").timestamp()


def _module_pid(init_pid: int) -> int:
    """The module's process: the container's PID 1, or its child when PID 1 is docker-init."""
    if Path(f"/proc/{init_pid}/comm").read_text().strip() != "docker-init":
        return init_pid
    children = Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()
    return int(children[0])


def container_run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import docker
    from azure.iot.hub import IoTHubRegistryManager

    data_dir = work / "containers"
    seed = ["--seed", str(args.seed)] if args.seed is not None else []
    run = subprocess.Popen([*ENERGY_EDGE, "run", "--containers", "--no-ui", "--duration", args.duration,
                            "--accel", str(args.accel), "--data-dir", str(data_dir), "--host", args.host, *seed],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(run.stdout or []), daemon=True).start()
    client = docker.from_env()
    applied_at: dict[str, float] = {}
    rss: dict[str, list[float]] = {m: [] for m in MODULES}
    started: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 120
        while not (data_dir / "hub" / "hub.json").exists():
            assert run.poll() is None and time.monotonic() < deadline, "".join(output)
            time.sleep(0.05)
        hub = json.loads((data_dir / "hub" / "hub.json").read_text())
        import os

        os.environ["REQUESTS_CA_BUNDLE"] = hub["ca_cert"]
        manager = IoTHubRegistryManager.from_connection_string(hub["service_connection_string"])
        while len(applied_at) < len(MODULES):
            assert run.poll() is None and time.monotonic() < deadline, "".join(output)
            for module in MODULES:
                if module in applied_at:
                    continue
                try:
                    reported = manager.get_module_twin(hub["device_id"], module).properties.reported
                except Exception:
                    continue
                if reported.get("config", {}).get("status") == "applied":
                    applied_at[module] = time.time()
            time.sleep(0.1)
        state = json.loads((data_dir / "run.json").read_text())["processes"]
        pids = {}
        for module in MODULES:
            info = client.api.inspect_container(state[module]["container"])
            started[module] = _started_at(info["State"]["StartedAt"])
            pids[module] = _module_pid(info["State"]["Pid"])
        warm_until = time.monotonic() + args.warmup_s
        while run.poll() is None:
            if time.monotonic() > warm_until:
                for module, pid in pids.items():
                    sample = read_proc(pid, smaps=False)
                    if sample:
                        rss[module].append(sample.rss_kb / 1024)
            time.sleep(1)
        assert run.wait() == 0, "".join(output[-40:])
    finally:
        if run.poll() is None:
            run.terminate()
            run.wait(timeout=60)
    summary = json.loads((data_dir / "summary.json").read_text())
    final = json.loads((data_dir / "run.json").read_text())["processes"]
    return {
        "start_to_twin_applied_s": {m: round(applied_at[m] - started[m], 2) for m in MODULES},
        "rss_mb": {m: {"median": round(statistics.median(v), 1), "max": round(max(v), 1), "samples": len(v)}
                   for m, v in rss.items() if v},
        "stop": {m: {"exit_code": final[m]["exit_codes"][-1], "stop_s": round(final[m]["stop_s"], 2)}
                 for m in MODULES},
        "summary": summary,
    }


def process_run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data_dir = work / "processes"
    seed = ["--seed", str(args.seed)] if args.seed is not None else []
    result = subprocess.run([*ENERGY_EDGE, "run", "--no-ui", "--duration", args.duration, "--accel", str(args.accel),
                             "--data-dir", str(data_dir), "--host", args.host, *seed], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary: dict[str, Any] = json.loads((data_dir / "summary.json").read_text())
    return {"summary": summary}


CONTROL = ("import_limit_kw", "peak_import_kw", "peak_import_without_control_kw", "violations",
           "energy_imported_kwh", "energy_exported_kwh", "pv_energy_kwh", "self_consumption_pct",
           "upstream_messages")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", default="1d")
    parser.add_argument("--accel", type=float, default=240)
    parser.add_argument("--host", default="127.0.0.219")
    parser.add_argument("--seed", type=int, help="simulator seed, the same for both runs (default: each run its own)")
    parser.add_argument("--warmup-s", type=float, default=30)
    parser.add_argument("--skip-builds", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    doc: dict[str, Any] = {"machine": machine_info(), "duration": args.duration, "accel": args.accel}
    if not args.skip_builds:
        doc["builds"] = build_times()
        print(json.dumps({k: v["total_s"] for k, v in doc["builds"].items()}))
    doc["sizes"] = image_sizes()
    print(json.dumps(doc["sizes"], indent=1))
    work = Path(tempfile.mkdtemp(prefix="bench-containers-"))
    try:
        doc["containers"] = container_run(args, work)
        print(json.dumps({k: v for k, v in doc["containers"].items() if k != "summary"}, indent=1))
        doc["processes"] = process_run(args, work)
        doc["control"] = {key: {"containers": doc["containers"]["summary"].get(key),
                                "processes": doc["processes"]["summary"].get(key)} for key in CONTROL}
        print(json.dumps(doc["control"], indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
