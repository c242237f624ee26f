"""The site console in a real browser (Debian's headless Chromium driven by Playwright) against a live local
site: simulator, emulator, the asset modules, the controller and the console.

The tests run in file order on one site. Set ENERGY_EDGE_SCREENSHOTS=docs/images to keep each page's screenshot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from energy_edge_base.credentials import hash_password, write_credentials
from tests.support import REPO, Site, registry_manager

pytestmark = pytest.mark.integration

playwright_api = pytest.importorskip("playwright.sync_api")
# Debian's Chromium (scripts/install-system-deps.sh), or a Chrome the machine has (hosted CI images)
CHROMIUM = os.environ.get("ENERGY_EDGE_BROWSER") or shutil.which("chromium") or shutil.which("google-chrome") or ""
if not CHROMIUM:
    pytest.skip("no chromium or google-chrome (scripts/install-system-deps.sh installs Debian's chromium)",
                allow_module_level=True)

PASSWORD = "correct horse battery"
CONSOLE_PORT = 8480
PAGES = ("site", "peaks", "devices", "events", "charts")
PAGE_WEIGHT_LIMIT_BYTES = 300 * 1024
CONSOLE = {"http_port": CONSOLE_PORT, "operator_actions_enabled": True, "twin_poll_s": 2, "chart_step_s": 10,
           "max_failed_signins": 3, "lockout_s": 120}
CONTROLLER = {"import_limit_kw": 150, "limit_margin_kw": 3, "command_refresh_s": 5}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("console-site")
    credentials = root / "console-credentials.json"
    write_credentials(credentials, {"technician": hash_password(PASSWORD), "auditor": hash_password(PASSWORD)})
    site = Site(root, ("solar", "battery", "boiler", "microgrid-controller", "controller", "console"),
                desired={"console": CONSOLE, "controller": CONTROLLER},
                extra_env={"CONSOLE_CREDENTIALS_FILE": str(credentials)}).start()
    try:
        assert site.probe is not None
        site.probe.wait_for(lambda p: len(p.latest) == 4 and all(m["online"] for m in p.latest.values()), 60,
                            "every asset online")
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module")
def base_url(site: Site) -> str:
    return f"http://{site.host}:{CONSOLE_PORT}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Any, base_url: str) -> Iterator[Any]:
    context = browser.new_context(base_url=base_url, viewport={"width": 1180, "height": 820})  # a 10" tablet
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def open_page(page: Any, path: str) -> None:
    page.goto(path)
    page.wait_for_selector("#live.ok")  # the live stream is connected
    page.wait_for_function("() => !document.querySelector('[data-k=\"site_time\"]').textContent.includes('—')"
                           " && document.querySelector('[data-k=\"site_time\"]').textContent !== ''")


def shot(page: Any, name: str) -> None:
    target = os.environ.get("ENERGY_EDGE_SCREENSHOTS")
    if target:
        path = Path(target) if Path(target).is_absolute() else REPO / target
        path.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path / f"console-{name}.png"), full_page=True)


def kw_on_page(page: Any, key: str) -> float | None:
    text = page.locator(f'[data-k="{key}"]').first.text_content() or ""
    match = re.search(r"-?\d+(?:\.\d+)?", text)
    return float(match.group()) if match else None


def wait_until(predicate: Any, what: str, timeout_s: float = 15) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"never saw {what}")


# ---------------------------------------------------------------- the live view


def test_site_page_shows_what_the_simulator_has(site: Site, page: Any) -> None:
    open_page(page, "/")
    page.wait_for_function("() => document.querySelector('[data-k=\"site.mode\"]').textContent !== '—'")

    def same() -> bool:
        # the page and the simulator read a moment apart: equal within what changes in one meter poll
        state = site.sim.state()
        sim_import, sim_soc = state["site"]["grid_import_kw"], state["devices"]["bess-1"]["soc_pct"]
        page_import, page_soc = kw_on_page(page, "site.grid_import_kw"), kw_on_page(page, "site.soc_pct")
        page_limit = kw_on_page(page, "site.limit_kw")
        return (page_import is not None and abs(page_import - sim_import) <= 1.5
                and page_soc is not None and abs(page_soc - sim_soc) <= 0.2
                and page_limit == state["site"]["import_limit_kw"] == CONTROLLER["import_limit_kw"])

    wait_until(same, "the simulator's import, limit and SOC on the page")
    page.locator("#capabilities tr", has_text="PEAK_SHAVING").wait_for()
    page.locator("#capabilities tr", has_text="DER").wait_for()
    assert page.locator("#batteries tr", has_text="bess-1").count() == 1
    shot(page, "site")


def test_a_load_step_reaches_the_page(site: Site, page: Any) -> None:
    open_page(page, "/")
    before = wait_until(lambda: kw_on_page(page, "site.site_load_kw"), "a site load")
    site.sim.post("/load", {"offset_kw": 40})
    try:
        # waits for the event itself; benchmarks/console_bench.py measures how long it takes
        page.wait_for_function(
            "(threshold) => parseFloat(document.querySelector('[data-k=\"site.site_load_kw\"]').textContent)"
            " > threshold",
            arg=before + 30, timeout=10_000)
    finally:
        site.sim.post("/load", {"offset_kw": 0})


def test_an_offline_battery_shows_offline_with_its_fault(site: Site, page: Any) -> None:
    open_page(page, "/devices")
    row = page.locator("#devices tr", has_text="bess-1")
    row.wait_for()
    site.sim.post("/faults", {"asset_id": "bess-1", "fault": "offline"})
    try:
        page.wait_for_function("""() => { const r = [...document.querySelectorAll('#devices tr')]
            .find(tr => tr.cells[0].textContent === 'bess-1');
            return r && r.cells[2].textContent === 'no' && r.cells[3].textContent !== 'none'; }""", timeout=30_000)
        fault = row.locator("td").nth(3).text_content()
        assert fault and fault != "none"
        page.locator("#modules tr", has_text="battery").locator("text=applied").wait_for()
        shot(page, "devices")
    finally:
        site.sim.post("/faults", {"asset_id": "bess-1", "fault": "none"})
    page.wait_for_function("""() => { const r = [...document.querySelectorAll('#devices tr')]
        .find(tr => tr.cells[0].textContent === 'bess-1'); return r && r.cells[2].textContent === 'yes'; }""",
                           timeout=30_000)


def test_events_are_listed_newest_first_and_filter(page: Any) -> None:
    open_page(page, "/events")
    page.locator("#events tr", has_text="bess-1 offline").wait_for()
    page.select_option("#e-kind", "fault")
    page.fill("#e-asset", "bess-1")
    page.click("#event-filter button")
    page.wait_for_function("() => [...document.querySelectorAll('#events tr')].every(tr => tr.cells[1].textContent "
                           "=== 'fault' && tr.cells[3].textContent === 'bess-1')")
    texts = page.locator("#events tr td:nth-child(5)").all_text_contents()
    assert texts[0] == "bess-1 back online" and texts[1].startswith("bess-1 offline: ")  # newest first
    shot(page, "events")


# ---------------------------------------------------------------- signing in and operator actions


def sign_in(page: Any, user: str, password: str) -> str:
    open_page(page, "/signin")
    page.fill("#s-user", user)
    page.fill("#s-pass", password)
    page.click("#signin button")
    answer = page.locator("#signin-answer")
    answer.wait_for()
    page.wait_for_function("() => document.querySelector('#signin-answer').textContent !== ''")
    return answer.text_content() or ""


def test_a_wrong_password_is_refused(page: Any) -> None:
    assert sign_in(page, "technician", "not it").startswith("Refused (401)")
    assert not [c for c in page.context.cookies() if c["name"] == "console_session"]


def test_sign_in_and_an_import_limit_the_site_controller_applies(site: Site, page: Any) -> None:
    assert sign_in(page, "technician", PASSWORD) == "Signed in as technician"
    cookie = next(c for c in page.context.cookies() if c["name"] == "console_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    open_page(page, "/")
    page.locator("#actions").wait_for(state="visible")
    assert page.locator("#readonly").is_hidden()
    try:
        page.fill("#f-limit", "140")
        page.click("form[data-action=import-limit] button")
        answer = page.locator("#answer")
        page.wait_for_function("() => document.querySelector('#answer').textContent.includes('answered')")
        text = answer.text_content() or ""
        assert "microgrid-controller.set_import_limit answered 200" in text
        assert json.loads(text.split("\n", 1)[1])["read_back"] == {"import_limit_kw": 140.0}
        # the site controller's register, as its next reading reports it, and the simulator's meter
        page.wait_for_function("() => document.querySelector('[data-k=\"site.site_controller_limit_kw\"]')"
                               ".textContent === '140.0 kW'")
        assert site.sim.state()["site"]["import_limit_kw"] == 140
        shot(page, "actions")
    finally:
        page.fill("#f-limit", "150")
        page.click("form[data-action=import-limit] button")
        page.wait_for_function("() => document.querySelector('[data-k=\"site.site_controller_limit_kw\"]')"
                               ".textContent === '150.0 kW'")


def submit(page: Any, action: str) -> tuple[str, Any]:
    """Submit an action's form; the first line of the answer, and the module's payload."""
    page.evaluate("() => { document.querySelector('#answer').textContent = ''; }")
    page.click(f"form[data-action={action}] button")
    page.wait_for_function("() => document.querySelector('#answer').textContent.includes('answered')")
    head, _, body = (page.locator("#answer").text_content() or "").partition("\n")
    return head, json.loads(body)


def test_peak_shaving_switch_and_a_site_dispatch_from_the_page(site: Site, page: Any) -> None:
    sign_in(page, "technician", PASSWORD)
    open_page(page, "/")
    page.locator("#actions").wait_for(state="visible")
    try:
        page.select_option("#f-ps", "false")
        head, answer = submit(page, "peak-shaving")
        assert head == "microgrid-controller.set_peak_shaving answered 200", answer
        assert site.sim.state()["site"]["peak_shaving_enable"] is False
    finally:
        page.select_option("#f-ps", "true")
        assert submit(page, "peak-shaving")[0] == "microgrid-controller.set_peak_shaving answered 200"
    page.fill("#f-p", "-30")
    page.fill("#f-d", "20")
    head, answer = submit(page, "dispatch")
    assert head == "controller.dispatch answered 200", answer
    assert answer["target"] == "site:site-1" and answer["split"] == {"bess-1": pytest.approx(-30, abs=0.1)}
    wait_until(lambda: abs(site.sim.state()["devices"]["bess-1"]["command_kw"] + 30) < 1, "the battery at -30 kW")
    operator = page.request.get("/api/events?kind=operator").json()["events"]
    assert operator[0]["text"].startswith("technician: controller.dispatch") and operator[0]["text"].endswith("→ 200")


def test_actions_off_in_the_twin_are_refused_even_when_signed_in(site: Site, page: Any) -> None:
    from azure.iot.hub.models import Twin, TwinProperties

    manager, device_id = registry_manager(site.hub), site.hub.hub_json["device_id"]

    def set_enabled(enabled: bool) -> None:
        manager.update_module_twin(device_id, "console",
                                   Twin(properties=TwinProperties(desired={"operator_actions_enabled": enabled})))

    sign_in(page, "technician", PASSWORD)
    set_enabled(False)
    try:
        session = wait_until(lambda: (d := page.evaluate("() => fetch('/api/session').then(r => r.json())"))
                             and not d["actions_enabled"] and d, "the console reading its twin")
        response = page.request.post("/api/actions/import-limit", data=json.dumps({"import_limit_kw": 140}),
                                     headers={"Content-Type": "application/json",
                                              "X-CSRF-Token": session["csrf_token"]})
        assert response.status == 403
        assert response.json()["errors"][0]["field"] == "operator_actions_enabled"
        open_page(page, "/")
        page.locator("#readonly", has_text="off in this console's twin").wait_for()
        assert page.locator("#actions").is_hidden()
    finally:
        set_enabled(True)


def test_a_malformed_value_in_the_form_is_refused_naming_the_field(page: Any) -> None:
    sign_in(page, "technician", PASSWORD)
    open_page(page, "/")
    page.locator("#actions").wait_for(state="visible")
    page.fill("#f-limit", "lots")
    page.click("form[data-action=import-limit] button")
    page.wait_for_function("() => document.querySelector('#answer').textContent.startsWith('refused')")
    assert (page.locator("#answer").text_content() or "").startswith("refused (400): import_limit_kw:")


@pytest.mark.parametrize(
    ("headers", "body", "status", "field"),
    [
        ({}, {"import_limit_kw": 140}, 403, "csrf_token"),  # no CSRF token
        ({"X-CSRF-Token": "forged"}, {"import_limit_kw": 140}, 403, "csrf_token"),
        ("csrf", {"import_limit_kw": "abc"}, 400, "import_limit_kw"),
        ("csrf", {"import_limit_kw": -5}, 400, "import_limit_kw"),
        ("csrf", {"import_limit_kw": 140, "unit": "W"}, 400, "unit"),
        ("csrf", {}, 400, "import_limit_kw"),
        ("csrf", [140], 400, "(body)"),
        ({"X-CSRF-Token": "csrf", "Origin": "http://evil.example"}, {"import_limit_kw": 140}, 403, "Origin"),
    ],
)
def test_refused_action_requests(site: Site, page: Any, headers: Any, body: Any, status: int, field: str) -> None:
    sign_in(page, "technician", PASSWORD)
    session = page.evaluate("() => fetch('/api/session').then(r => r.json())")
    if headers == "csrf":
        headers = {"X-CSRF-Token": session["csrf_token"]}
    headers = {k: session["csrf_token"] if v == "csrf" else v for k, v in headers.items()}
    response = page.request.post("/api/actions/import-limit", data=json.dumps(body),
                                 headers={"Content-Type": "application/json", **headers})
    assert response.status == status, response.text()
    assert response.json()["errors"][0]["field"] == field
    assert site.sim.state()["site"]["import_limit_kw"] == 150  # nothing reached the site controller


def test_actions_need_a_session(page: Any) -> None:
    open_page(page, "/")
    response = page.request.post("/api/actions/dispatch", data=json.dumps({"power_kw": 10, "duration_s": 60}),
                                 headers={"Content-Type": "application/json"})
    assert response.status == 401 and response.json()["errors"][0]["field"] == "session"
    assert page.locator("#actions").is_hidden() and page.locator("#readonly").is_visible()


def test_repeated_failures_lock_the_user_out(page: Any) -> None:
    for _ in range(CONSOLE["max_failed_signins"]):
        assert sign_in(page, "auditor", "guess").startswith("Refused (401)")
    assert sign_in(page, "auditor", PASSWORD).startswith("Refused (429)")  # even the right password, for now
    assert sign_in(page, "technician", PASSWORD) == "Signed in as technician"  # other users are not locked


# ---------------------------------------------------------------- pages: offline, weight, keyboard, contrast


@pytest.mark.parametrize("name", PAGES)
def test_each_page_is_self_contained_light_and_keyboard_usable(page: Any, base_url: str, name: str) -> None:
    requested: list[str] = []
    sizes: list[int] = []
    page.on("request", lambda r: requested.append(r.url))
    page.on("response", lambda r: sizes.append(len(r.body())) if "/api/stream" not in r.url else None)
    open_page(page, "/" if name == "site" else f"/{name}")
    page.wait_for_load_state("networkidle") if name != "site" else None
    foreign = [u for u in requested if not (u.startswith(base_url) or u.startswith("data:"))]
    assert not foreign, f"fetched from elsewhere: {foreign}"
    assert sum(sizes) <= PAGE_WEIGHT_LIMIT_BYTES, f"{sum(sizes)} bytes"
    # keyboard: the first Tab lands on the skip link, the next ones on the page navigation
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.closest('nav') !== null")
    # readable contrast (WCAG AA, 4.5:1) for the text of every value and label
    worst = page.evaluate("""() => {
        const lum = (c) => { const [r, g, b] = c.match(/\\d+/g).slice(0, 3).map(v => { v /= 255;
            return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
            return 0.2126*r + 0.7152*g + 0.0722*b; };
        const bg = (el) => { while (el) { const c = getComputedStyle(el).backgroundColor;
            if (c !== 'rgba(0, 0, 0, 0)') return c; el = el.parentElement; } return 'rgb(255, 255, 255)'; };
        let worst = 21;
        for (const el of document.querySelectorAll('.value, .label, .note, th, td, nav a, h2, caption')) {
            const a = lum(getComputedStyle(el).color), b = lum(bg(el));
            worst = Math.min(worst, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05));
        }
        return worst; }""")
    assert worst >= 4.5
    if name in ("peaks", "charts"):
        shot(page, name)


def serving(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/api/snapshot", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.parametrize("name", [*PAGES, "signin"])
def test_each_page_fits_a_portrait_tablet_with_touch_sized_controls(browser: Any, base_url: str, name: str) -> None:
    context = browser.new_context(base_url=base_url, viewport={"width": 768, "height": 1024}, has_touch=True)
    try:
        page = context.new_page()
        open_page(page, "/" if name == "site" else f"/{name}")
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), "scrolls sideways"
        small = page.evaluate("""() => [...document.querySelectorAll('nav a, button, input, select')]
            .filter(el => el.offsetParent !== null && el.getBoundingClientRect().height < 44)
            .map(el => el.outerHTML.slice(0, 80))""")
        assert not small, small
    finally:
        context.close()


def test_charts_survive_a_console_restart(site: Site, page: Any, base_url: str) -> None:
    def history() -> list[dict[str, Any]]:
        points: list[dict[str, Any]] = page.request.get("/api/history?hours=24").json()["points"]
        return points

    open_page(page, "/charts")
    before = wait_until(lambda: [p for p in history()[:-1] if p["import_kw"] is not None], "a stored chart point",
                        timeout_s=30)
    site.modules["console"].stop()
    site.start_module("console")
    wait_until(lambda: serving(base_url), "the console serving again", timeout_s=60)
    open_page(page, "/charts")
    after = history()
    assert {p["t"] for p in before} <= {p["t"] for p in after}
    page.wait_for_function("() => document.querySelector('#power-chart path.s-import') !== null")


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/api/history?hours=abc", 400, "hours"),
        ("/api/history?hours=1000", 400, "hours"),
        ("/api/history?days=1", 400, "days"),
        ("/api/events?severity=loud", 400, "severity"),
        ("/api/events?limit=0", 400, "limit"),
        ("/nowhere", 404, "(path)"),
    ],
)
def test_bad_queries_get_a_400_naming_the_field(page: Any, path: str, status: int, field: str) -> None:
    response = page.request.get(path)
    assert response.status == status
    assert response.json()["errors"][0]["field"] == field
