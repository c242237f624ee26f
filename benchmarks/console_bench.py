"""The site console under the default local run: reading → screen latency, page weight, the console's RSS and CPU.

Starts the real `energy-edge run --no-ui --duration 1d --accel 240` (as `make run` does), waits for the console,
samples the console process from /proc with no page open, then opens the five pages (site, peaks, devices,
events, charts) in Debian's headless Chromium (Playwright) and samples again with all five streaming:

* reading → screen: for every meter reading a page shows, the page's own clock when the value is on the screen
  minus the reading's `timestamp` (taken by the microgrid-controller module right after it read the device; the
  same machine clock, so no synchronisation is needed). Each of the five pages records it (`consoleLatencies`).
* load step → screen: a step of the simulator's load, from the POST to the site page showing the new site load
  (`--steps` steps, spaced out), which is what a technician watching the page sees.
* page weight: the bytes of every response a page loads (HTML, CSS, script, the first data), without the stream.
* RSS (VmRSS) and CPU share (utime + stime) of the console process, idle and with five pages open.

    .venv/bin/python benchmarks/console_bench.py --json /tmp/console-bench.json            # ~5 min
    .venv/bin/python benchmarks/console_bench.py --screenshots docs/images                   # also the pages

Target (issue #20): a reading on the screen within 2 s; page weight at most 300 KB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ProcSampler, describe, machine_info, start_local_run, write_json
from run_resources import run_pids, stop

PAGES = {"site": "/", "peaks": "/peaks", "devices": "/devices", "events": "/events", "charts": "/charts"}
TARGET_LATENCY_S = 2.0
TARGET_WEIGHT_KB = 300


def wait_for(predicate: Any, what: str, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            value = predicate()
            if value:
                return value
        time.sleep(0.5)
    raise TimeoutError(f"no {what} within {timeout_s:.0f} s")


def post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def measure(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    log_path = data_dir.parent / "energy-edge-run.log"
    run = start_local_run(args, data_dir, [15020, 15021, 15022, 15023, 8480], log_path)
    proc, host = run.proc, run.host
    known: dict[str, int] = {}

    def pids() -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            out = {"console": run_pids(data_dir).get("console")}
        known.update({k: v for k, v in out.items() if v})
        return out

    sampler = ProcSampler(pids, 1.0)
    result: dict[str, Any] = {"command": run.command, "host": host}
    try:
        endpoints = wait_for(lambda: json.loads((data_dir / "endpoints.json").read_text()), "endpoints.json", 120)
        base = endpoints["console_url"].rstrip("/")
        sim = endpoints["sim_admin_url"]
        wait_for(lambda: json.loads(urllib.request.urlopen(base + "/api/snapshot", timeout=5).read())["site"]
                 ["grid_import_kw"] is not None, "the console showing the meter", 120)
        sampler.start()
        t0 = time.monotonic()
        time.sleep(args.window)
        idle = sampler.summary(t0, time.monotonic()).get("console")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                        args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1180, "height": 820})
            weights: dict[str, int] = {}
            pages: dict[str, Any] = {}
            for name, path in PAGES.items():
                page = context.new_page()
                sizes: list[int] = []
                page.on("response", lambda r, sizes=sizes: sizes.append(len(r.body()))
                        if "/api/stream" not in r.url else None)
                page.goto(base + path)
                page.wait_for_selector("#live.ok")
                page.wait_for_load_state("networkidle") if name != "site" else page.wait_for_timeout(1500)
                weights[name] = sum(sizes)
                pages[name] = page
            for page in pages.values():
                page.evaluate("() => { window.consoleLatencies.length = 0; }")
            t1 = time.monotonic()
            time.sleep(args.window)
            t2 = time.monotonic()
            open_five = sampler.summary(t1, t2).get("console")
            latencies = {name: page.evaluate("() => window.consoleLatencies.slice()") for name, page in pages.items()}
            # load steps, as a technician would see them on the site page
            site = pages["site"]
            steps: list[float] = []
            for i in range(args.steps):
                offset = 40.0 if i % 2 == 0 else 0.0
                before = float(site.evaluate("() => parseFloat(document.querySelector("
                                             "'[data-k=\"site.site_load_kw\"]').textContent)"))
                started = time.time()
                post(sim + "/load", {"offset_kw": offset})
                site.wait_for_function(
                    "([b, up]) => { const v = parseFloat(document.querySelector('[data-k=\"site.site_load_kw\"]')"
                    ".textContent); return up ? v > b + 30 : v < b - 30; }", arg=[before, offset > 0], timeout=15_000)
                steps.append(time.time() - started)
                time.sleep(3)
            if args.screenshots:
                target = Path(args.screenshots)
                target.mkdir(parents=True, exist_ok=True)
                for name, page in pages.items():
                    page.reload()
                    page.wait_for_selector("#live.ok")
                    page.wait_for_timeout(2500)
                    page.screenshot(path=str(target / f"console-run-{name}.png"), full_page=True)
            browser.close()
        all_ms = [v for values in latencies.values() for v in values]
        result.update({
            "window_s": args.window,
            "reading_to_screen_ms": {"all_pages": describe(all_ms, digits=0),
                                     **{n: describe(v, digits=0) for n, v in latencies.items()}},
            "load_step_to_screen_s": describe(steps, digits=2),
            "page_weight_bytes": weights,
            "console_idle": idle, "console_five_pages": open_five,
            "machine_during_five_pages": sampler.summary(t1, t2).get("_machine"),
        })
        return result
    finally:
        sampler.stop()
        stop(proc, known)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", default="1d", help="simulated span of the run (default 1d)")
    parser.add_argument("--accel", type=float, default=240.0, help="simulated s per real s (default 240)")
    parser.add_argument("--window", type=float, default=60.0, help="sampling window, idle and with pages, s")
    parser.add_argument("--steps", type=int, default=10, help="load steps timed on the site page")
    parser.add_argument("--host", help="loopback address (default: a free 127.0.0.N)")
    parser.add_argument("--screenshots", help="save a screenshot of each page here at the end")
    parser.add_argument("--keep", action="store_true", help="keep the run's data directory")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-console-"))
    try:
        result = measure(args, root / "run")
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    doc = {"benchmark": "console_bench", "machine": machine_info(),
           "options": {k: v for k, v in vars(args).items() if k != "json"}, **result}
    print(json.dumps({k: doc[k] for k in ("reading_to_screen_ms", "load_step_to_screen_s", "page_weight_bytes",
                                          "console_idle", "console_five_pages")}, indent=1))
    write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
