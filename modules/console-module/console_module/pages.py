"""The console's pages: small server-rendered shells whose values the script fills from the live stream.
Every element the script fills carries `data-k` (a path into the snapshot) and `data-f` (its format)."""

from __future__ import annotations

import html

NAV = (("/", "site", "Site"), ("/peaks", "peaks", "Peaks"), ("/devices", "devices", "Devices"),
       ("/events", "events", "Events"), ("/charts", "charts", "Charts"))


def _value(label: str, key: str, fmt: str = "kw", note: str = "", wide: bool = False) -> str:
    note_format = ' data-f="time"' if note.endswith((".at", ".start")) else ""
    extra = f'<span class="note" data-k="{note}"{note_format}></span>' if note else ""
    return (f'<div class="tile{" wide" if wide else ""}"><span class="label">{html.escape(label)}</span>'
            f'<span class="value" data-k="{key}" data-f="{fmt}">—</span>{extra}</div>')


SITE = f"""
<section aria-labelledby="h-grid"><h2 id="h-grid">Grid connection</h2>
<div class="tiles">
{_value("Grid import", "site.grid_import_kw", note="site.meter_age_label")}
{_value("Import limit", "site.limit_kw", note="site.limit_source")}
{_value("15-min average", "site.avg_15min_kw")}
{_value("Margin", "site.margin_kw")}
{_value("Site load", "site.site_load_kw")}
{_value("Site controller limit", "site.site_controller_limit_kw")}
</div>
<div class="bar" aria-hidden="true"><div class="fill" id="import-bar"></div></div>
</section>
<section aria-labelledby="h-assets"><h2 id="h-assets">Generation and storage</h2>
<div class="tiles">
{_value("PV", "site.pv_kw")}
{_value("Batteries (+ discharge)", "site.battery_kw")}
{_value("State of charge", "site.soc_pct", "pct")}
</div>
<table class="list"><caption>Batteries</caption><thead><tr><th scope="col">Battery</th><th scope="col">Power</th>
<th scope="col">SOC</th><th scope="col">Online</th></tr></thead><tbody id="batteries"></tbody></table>
<table class="list"><caption>Boilers</caption><thead><tr><th scope="col">Boiler</th><th scope="col">Water</th>
<th scope="col">Setpoint</th><th scope="col">State</th><th scope="col">Power</th></tr></thead>
<tbody id="boilers"></tbody></table>
</section>
<section aria-labelledby="h-ctl"><h2 id="h-ctl">Controller</h2>
<div class="tiles">
{_value("Mode", "site.mode", "text")}
{_value("Why", "site.reason", "text", wide=True)}
</div>
<table class="list"><caption>Capabilities</caption><thead><tr><th scope="col">Capability</th>
<th scope="col">State</th><th scope="col">Source</th><th scope="col">Reason</th><th scope="col">Conflict</th></tr>
</thead><tbody id="capabilities"></tbody></table>
</section>
<section aria-labelledby="h-act" id="actions" hidden><h2 id="h-act">Operator actions</h2>
<p class="note">Each action is a direct method on the module named; the module's answer is shown below.</p>
<form data-action="import-limit" class="action"><label for="f-limit">Import limit (kW), site controller</label>
<input id="f-limit" name="import_limit_kw" inputmode="decimal" autocomplete="off" required>
<button type="submit">Set limit</button></form>
<form data-action="peak-shaving" class="action"><label for="f-ps">Peak shaving (site controller)</label>
<select id="f-ps" name="enabled"><option value="true">on</option><option value="false">off</option></select>
<button type="submit">Apply</button></form>
<form data-action="dispatch" class="action"><label for="f-p">Site dispatch (kW, + discharge)</label>
<input id="f-p" name="power_kw" inputmode="decimal" autocomplete="off" required>
<label for="f-d">for (s)</label><input id="f-d" name="duration_s" inputmode="numeric" value="600" required>
<button type="submit">Dispatch</button></form>
<pre id="answer" role="status" aria-live="polite"></pre>
</section>
<p id="readonly" class="note">Read-only view. <span id="readonly-why"></span></p>
"""

PEAKS = f"""
<section aria-labelledby="h-peaks"><h2 id="h-peaks">Peaks (15-minute billing quarters)</h2>
<div class="tiles">
{_value("Today's peak", "peaks.today.kw", note="peaks.today.at")}
{_value("This month's peak", "peaks.month.kw", note="peaks.month.at")}
{_value("Import limit", "site.limit_kw")}
{_value("Running quarter", "peaks.running.avg_kw", note="peaks.running.start")}
{_value("Quarters today", "peaks.quarters_today", "int")}
{_value("Close to the limit", "peaks.near_count", "int", note="peaks.near_label")}
{_value("Closest margin", "peaks.closest.margin_kw", note="peaks.closest.start")}
{_value("Exceeded", "peaks.exceeded_count", "int")}
</div>
<figure><svg id="quarter-chart" class="chart" role="img" aria-label="Today's billing quarters against the limit"
viewBox="0 0 960 240"></svg><figcaption>Each bar is a billing quarter's average import; the line is the limit.
</figcaption></figure>
<table class="list"><caption>Quarters over the limit today</caption><thead><tr><th scope="col">Quarter</th>
<th scope="col">Average</th><th scope="col">Limit</th><th scope="col">Over by</th></tr></thead>
<tbody id="exceeded"></tbody></table>
<details><summary>Every quarter today</summary>
<table class="list"><thead><tr><th scope="col">Quarter</th>
<th scope="col">Average</th><th scope="col">Highest reading</th><th scope="col">Limit</th></tr></thead>
<tbody id="quarters"></tbody></table></details>
</section>
"""

DEVICES = """
<section aria-labelledby="h-dev"><h2 id="h-dev">Devices</h2>
<table class="list"><thead><tr><th scope="col">Asset</th><th scope="col">Type</th><th scope="col">Online</th>
<th scope="col">Fault</th><th scope="col">Reading age</th><th scope="col">Setpoint</th><th scope="col">Read-back</th>
<th scope="col">Module twin</th></tr></thead><tbody id="devices"></tbody></table>
</section>
<section aria-labelledby="h-mod"><h2 id="h-mod">Modules</h2>
<table class="list"><thead><tr><th scope="col">Module</th><th scope="col">Answering</th><th scope="col">Twin</th>
<th scope="col">Desired / applied</th><th scope="col">Errors</th><th scope="col">Started</th></tr></thead>
<tbody id="modules"></tbody></table>
</section>
"""

EVENTS = """
<section aria-labelledby="h-ev"><h2 id="h-ev">Events</h2>
<form id="event-filter" class="filters">
<label for="e-kind">Kind</label><select id="e-kind" name="kind"><option value="">all</option>
<option>command</option><option>operator</option><option>fault</option><option>capability</option>
<option>mode</option><option>restart</option><option>twin</option><option>peak</option><option>event</option></select>
<label for="e-sev">Severity</label><select id="e-sev" name="severity"><option value="">all</option>
<option>info</option><option>warning</option><option>critical</option></select>
<label for="e-asset">Asset</label><input id="e-asset" name="asset_id" autocomplete="off">
<label for="e-q">Text</label><input id="e-q" name="q" autocomplete="off">
<button type="submit">Filter</button></form>
<p class="note" id="event-count" role="status"></p>
<table class="list"><thead><tr><th scope="col">Time (UTC)</th><th scope="col">Kind</th><th scope="col">Severity</th>
<th scope="col">Asset</th><th scope="col">What</th></tr></thead><tbody id="events"></tbody></table>
</section>
"""

CHARTS = """
<section aria-labelledby="h-ch"><h2 id="h-ch">Last 24 hours</h2>
<p class="legend"><span class="k k-import">grid import</span> <span class="k k-limit">limit</span>
<span class="k k-pv">PV</span> <span class="k k-bat">batteries</span></p>
<figure><svg id="power-chart" class="chart" role="img" aria-label="Power over the last 24 hours, kW"
viewBox="0 0 960 300"></svg><figcaption>Power, kW</figcaption></figure>
<figure><svg id="soc-chart" class="chart" role="img" aria-label="Battery state of charge over 24 hours, %"
viewBox="0 0 960 200"></svg><figcaption>Battery state of charge, %</figcaption></figure>
<p class="note" id="chart-info" role="status"></p>
</section>
"""

SIGNIN = """
<section aria-labelledby="h-in"><h2 id="h-in">Sign in</h2>
<p class="note">Operator actions need a sign-in with the credential held on this device.</p>
<form id="signin" class="stack"><label for="s-user">User</label>
<input id="s-user" name="user" autocomplete="username" value="technician" required>
<label for="s-pass">Password</label><input id="s-pass" name="password" type="password"
autocomplete="current-password" required><button type="submit">Sign in</button></form>
<p id="signin-answer" role="alert"></p>
</section>
"""

BODIES = {"site": SITE, "peaks": PEAKS, "devices": DEVICES, "events": EVENTS, "charts": CHARTS, "signin": SIGNIN}
TITLES = {"site": "Site", "peaks": "Peaks", "devices": "Devices", "events": "Events", "charts": "Charts",
          "signin": "Sign in"}


def render(page: str, site_id: str) -> str:
    nav = "".join(f'<a href="{href}"{" aria-current=page" if key == page else ""}>{label}</a>'
                  for href, key, label in NAV)
    title = f"{TITLES[page]} · {html.escape(site_id)}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/static/console.css"><link rel="icon" href="data:,">
<script src="/static/console.js" defer></script></head>
<body data-page="{page}"><a class="skip" href="#main">Skip to content</a>
<header><h1>{html.escape(site_id)}</h1><nav aria-label="Pages">{nav}</nav>
<p class="status"><span id="live" role="status">connecting…</span> · <span data-k="site_time" data-f="time"></span>
· <span id="who"><a href="/signin">Sign in</a></span></p></header>
<main id="main" tabindex="-1">{BODIES[page]}</main></body></html>
"""
