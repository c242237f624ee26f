"""The telemetry module in the real stack, its exposition checked by promtool, and the alert rules
and dashboard checked against what the module actually exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from energy_edge_base.contract import TELEMETRY_MODELS
from telemetry_module.exporter import POINTS, Point
from tests.support import REPO, Site

pytestmark = pytest.mark.integration

OBSERVABILITY = REPO / "docs" / "observability"
PROMTOOL = shutil.which("promtool") or str(REPO / ".venv-tools" / "bin" / "promtool")
# Series IoT Edge's own runtime exports (edgeAgent / edgeHub built-in metrics), not this project.
RUNTIME_METRICS = {"edgeAgent_module_start_total", "edgehub_queue_length"}


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert Path(PROMTOOL).exists(), "promtool is installed by make install (scripts/install-system-deps.sh)"
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True, cwd=OBSERVABILITY,
                          timeout=60)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = Site(tmp_path_factory.mktemp("telemetry-site"),
                ("solar", "battery", "boiler", "microgrid-controller", "controller", "telemetry"),
                desired={"telemetry": {"metrics_port": 19600, "stale_after_s": 3}, "controller": {
                    "summary_interval_s": 2, "capability_refresh_s": 10}})
    site.extra_env["ENERGY_EDGE_BIND_ADDRESS"] = site.host  # as the local run does: no clash on 0.0.0.0
    site.start()
    yield site
    site.stop()


def scrape(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_routed_telemetry_appears_on_metrics(site: Site) -> None:
    url = f"http://{site.host}:19600/metrics"
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        try:
            _, text = scrape(url)
        except OSError:
            text = ""
        if all(f'asset_id="{a}"' in text for a in ("pv-1", "bess-1", "boiler-1", "mgc-1")) \
                and "energy_edge_controller_mode{" in text and "energy_edge_capability_active{" in text:
            break
        time.sleep(0.3)
    assert 'energy_edge_asset_online{asset_id="bess-1",asset_type="battery",site_id="site-1"} 1.0' in text, text
    soc = float(re.search(r'energy_edge_battery_state_of_charge_ratio\{[^}]*bess-1[^}]*\} (\S+)', text).group(1))
    assert 0 < soc < 1  # a ratio, not a percentage
    grid = re.search(r'energy_edge_grid_import_watts\{[^}]*\} (\S+)', text)
    assert grid and abs(float(grid.group(1))) > 1000  # watts, not kilowatts
    assert re.search(r'energy_edge_capability_active\{capability="PEAK_SHAVING",site_id="site-1"\} [01]\.0', text)
    assert re.search(r'energy_edge_controller_mode\{mode="\w+",site_id="site-1"\} 1\.0', text)
    assert 'energy_edge_telemetry_messages_total{kind="battery"}' in text
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_healthz_reports_fresh_assets_then_a_stale_one(site: Site) -> None:
    url = f"http://{site.host}:19600/healthz"
    status, body = scrape(url)
    assert status == 200, body
    assert json.loads(body)["assets"] == 4
    status, body = scrape(f"http://{site.host}:19600/nothing")
    assert status == 404
    # a module that stops sending makes its asset stale: the exporter reports degraded health
    assert site.modules["boiler"].stop() == 0
    deadline = time.monotonic() + 20
    while (status := scrape(url)[0]) == 200 and time.monotonic() < deadline:
        time.sleep(0.3)
    status, body = scrape(url)
    assert status == 503
    assert json.loads(body)["stale"] == ["boiler-1"]
    age = re.search(r'energy_edge_asset_telemetry_age_seconds\{asset_id="boiler-1"[^}]*\} (\S+)',
                    scrape(f"http://{site.host}:19600/metrics")[1])
    assert age and float(age.group(1)) > 3


def test_alert_rules_check_and_pass_their_unit_tests() -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def exported_metric_names() -> set[str]:
    source = (REPO / "modules" / "telemetry-module" / "telemetry_module" / "exporter.py").read_text()
    names = {p.metric for p in POINTS} | set(re.findall(r'"(energy_edge_[a-z_]+)"', source))
    return names | {f"{n}_total" for n in names}


def used_metric_names(text: str) -> set[str]:
    return set(re.findall(r"\b(energy_edge_[a-z_]+|edgeAgent_[a-z_]+|edgehub_[a-z_]+)\b", text))


@pytest.mark.parametrize("artefact", ["alerts.yml", "grafana-dashboard.json"])
def test_alerts_and_dashboard_use_only_metrics_that_exist(artefact: str) -> None:
    text = (OBSERVABILITY / artefact).read_text()
    used = used_metric_names(text)
    assert used, "no metric found: the check would be vacuous"
    unknown = used - exported_metric_names() - RUNTIME_METRICS
    assert not unknown, f"{artefact} uses metrics nobody exports: {sorted(unknown)}"


def test_dashboard_has_the_site_overview_panels() -> None:
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Grid import vs limit", "PV", "Battery power (+ discharge)", "Battery state of charge", "Boiler",
            "PEAK_SHAVING", "DER", "Module health: telemetry age"} <= titles
    for panel in dashboard["panels"]:
        assert panel["targets"] and all(t["expr"] for t in panel["targets"])


@pytest.mark.parametrize("point", POINTS, ids=[p.metric for p in POINTS])
def test_every_point_is_a_field_of_its_telemetry_models(point: Point) -> None:
    """The exporter reads the parsed models' attributes by the table's field names: each must exist."""
    models = [model for asset_type, model in TELEMETRY_MODELS.items() if point.asset_type in (None, asset_type)]
    assert models, f"{point.metric}: no telemetry model for asset type {point.asset_type!r}"
    for model in models:
        assert point.field in model.model_fields, f"{point.metric}: {model.__name__} has no field {point.field!r}"
