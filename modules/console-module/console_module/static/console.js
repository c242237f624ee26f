// energy-edge console: fills the page from the live stream (server-sent events). No libraries; charts are SVG.
"use strict";
(function () {
  const page = document.body.dataset.page;
  const $ = (id) => document.getElementById(id);
  const NS = "http://www.w3.org/2000/svg";
  let session = { signed_in: false, csrf_token: null, actions_enabled: false };
  let last = null, lastMeter = null, lastEventId = null, receivedAt = Date.now();
  // reading → screen latency (ms) of the meter's readings, for the benchmark (bounded)
  window.consoleLatencies = [];

  function get(obj, path) {
    return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
  }
  function fmt(v, f) {
    if (v === null || v === undefined || v === "") return "—";
    switch (f) {
      case "kw": return Number(v).toFixed(1) + " kW";
      case "pct": return Number(v).toFixed(1) + " %";
      case "int": return String(v);
      case "time": return String(v).replace("T", " ").replace(/(\+00:00|Z)$/, " UTC");
      default: return String(v);
    }
  }
  function esc(s) {
    return String(s == null ? "—" : s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  }
  function time(iso) { return iso ? esc(String(iso).slice(0, 19).replace("T", " ")) : "—"; }
  function rows(id, items, cells) {
    const el = $(id);
    if (!el) return;
    el.innerHTML = items.length ? items.map((it) => "<tr>" + cells(it).map((c) => "<td>" + c + "</td>").join("") + "</tr>").join("")
      : '<tr><td colspan="8">none</td></tr>';
  }
  const kw = (v) => esc(fmt(v, "kw"));
  const yes = (b, bad) => (b ? '<span class="ok">yes</span>' : '<span class="' + (bad || "bad") + '">no</span>');

  // ------------------------------------------------------------------ rendering
  function render(s) {
    last = s;
    receivedAt = Date.now();
    // how old the meter's reading is, kept current between updates (a silent meter must not look live)
    s.site.meter_age_label = s.site.meter_age_s == null ? "" : "reading " + s.site.meter_age_s.toFixed(1) + " s old";
    document.querySelectorAll("[data-k]").forEach((el) => {
      const v = get(s, el.dataset.k);
      el.textContent = el.dataset.f ? fmt(v, el.dataset.f) : (v == null ? "" : String(v));
    });
    if (page === "site") renderSite(s);
    if (page === "peaks") renderPeaks(s);
    if (page === "devices") renderDevices(s);
    if (page === "events" && s.events.length && s.events[0].id !== lastEventId) {
      lastEventId = s.events[0].id;
      loadEvents();
    }
    const meterTs = s.site.meter_timestamp;
    if (meterTs && meterTs !== lastMeter) {
      lastMeter = meterTs;
      const l = window.consoleLatencies;
      l.push(Date.now() - Date.parse(meterTs));
      if (l.length > 2000) l.shift();
    }
  }

  function renderSite(s) {
    const bar = $("import-bar"), g = s.site.grid_import_kw, lim = s.site.limit_kw;
    if (bar && g != null && lim) {
      bar.style.width = Math.max(0, Math.min(100, (100 * g) / lim)) + "%";
      bar.classList.toggle("over", g > lim);
    }
    rows("batteries", s.batteries, (b) => [esc(b.asset_id), kw(b.power_kw), esc(fmt(b.soc_pct, "pct")), yes(b.online)]);
    rows("boilers", s.boilers, (b) => [esc(b.asset_id), b.water_temp_c == null ? "—" : esc(b.water_temp_c.toFixed(1) + " °C"),
      b.setpoint_c == null ? "—" : esc(b.setpoint_c.toFixed(1) + " °C"), esc(b.state), kw(b.power_kw)]);
    rows("capabilities", Object.entries(s.capabilities), ([name, c]) => [esc(name),
      '<span class="' + (c.state === "ON" ? "ok" : "") + '">' + esc(c.state) + "</span>", esc(c.source), esc(c.reason),
      c.conflict ? '<span class="bad">CONFLICT</span>' : "no"]);
    const actions = $("actions"), ro = $("readonly");
    const can = session.signed_in && s.actions_enabled;
    if (actions) actions.hidden = !can;
    if (ro) {
      ro.hidden = can;
      $("readonly-why").textContent = !s.actions_enabled ? "Operator actions are off in this console's twin."
        : "Sign in to set the import limit, switch peak shaving or dispatch the site.";
    }
  }

  function renderPeaks(s) {
    const p = s.peaks;
    rows("exceeded", p.exceeded, (q) => [time(q.start), kw(q.avg_kw), kw(q.limit_kw), '<span class="bad">' + kw(q.over_kw) + "</span>"]);
    rows("quarters", p.quarters.slice().reverse(), (q) => [time(q.start), q.over_kw ? '<span class="bad">' + kw(q.avg_kw) + "</span>" : kw(q.avg_kw),
      kw(q.max_kw), kw(q.limit_kw)]);
    const svg = $("quarter-chart");
    if (!svg) return;
    const W = 960, H = 240, L = 48, B = 24;
    const qs = p.quarters.concat(p.running ? [Object.assign({ running: true }, p.running)] : []);
    const top = Math.max(1, ...qs.map((q) => Math.max(q.avg_kw || 0, q.limit_kw || 0))) * 1.1;
    const y = (v) => H - B - ((H - B - 8) * v) / top;
    let out = axis(L, W, H, B, top, y);
    const w = (W - L) / 96;
    qs.forEach((q) => {
      // the quarter's index in the site's day: its local hour and minute as written in its ISO time
      const hm = String(q.start).slice(11, 16).split(":"), i = Number(hm[0]) * 4 + Math.floor(Number(hm[1]) / 15);
      const over = q.limit_kw && q.avg_kw > q.limit_kw;
      out += '<rect class="q-bar' + (over ? " over" : "") + '" x="' + (L + i * w + 1) + '" y="' + y(q.avg_kw) + '" width="' + Math.max(1, w - 2) +
        '" height="' + (H - B - y(q.avg_kw)) + '"' + (q.running ? ' opacity="0.5"' : "") + "><title>" + time(q.start) + " " + kw(q.avg_kw) + "</title></rect>";
    });
    const lim = s.site.limit_kw;
    if (lim) out += '<line class="s-limit" x1="' + L + '" x2="' + W + '" y1="' + y(lim) + '" y2="' + y(lim) + '"/>';
    for (let h = 0; h < 24; h += 3) out += '<text x="' + (L + h * 4 * w - 8) + '" y="' + (H - 6) + '">' + h + ":00</text>";
    svg.innerHTML = out;
  }

  function axis(L, W, H, B, top, y) {
    let out = "";
    for (let i = 0; i <= 4; i++) {
      const v = (top / 1.1) * (i / 4);
      out += '<line class="grid" x1="' + L + '" x2="' + W + '" y1="' + y(v) + '" y2="' + y(v) + '"/><text x="2" y="' + (y(v) + 4) + '">' + v.toFixed(0) + "</text>";
    }
    return out;
  }

  function renderDevices(s) {
    rows("devices", s.devices, (d) => [esc(d.asset_id), esc(d.asset_type), yes(d.online),
      d.fault ? '<span class="bad">' + esc(d.fault) + (d.fault_code != null ? " (" + esc(d.fault_code) + ")" : "") + "</span>" : "none",
      ageCell(d.age_s, s.stale_after_s),
      d.setpoint == null ? "—" : esc(d.setpoint.toFixed(1) + " " + d.unit), d.read_back == null ? "—" : esc(d.read_back.toFixed(1) + " " + d.unit),
      twin(d.twin_status, d.twin_errors) + " <small>" + esc(d.module) + "</small>"]);
    rows("modules", s.modules, (m) => [esc(m.module), m.reachable == null ? "—" : yes(m.reachable),
      twin(m.status, m.errors), esc((m.desired_version ?? "—") + " / " + (m.applied_version ?? "—")),
      esc((m.errors || []).map((e) => (e.field || e.loc || "") + ": " + (e.message || e.msg || JSON.stringify(e))).join("; ") || m.error || ""),
      time(m.started)]);
  }
  function ageCell(age, staleAfter) {
    const now = age + (Date.now() - receivedAt) / 1000;  // ages on between updates
    return '<span class="' + (now > staleAfter ? "warn" : "") + '">' + esc(now.toFixed(1)) + " s" + (now > staleAfter ? " (stale)" : "") + "</span>";
  }
  function twin(status, errors) {
    if (!status) return "—";
    return status === "applied" ? '<span class="ok">applied</span>' : '<span class="bad">' + esc(status) + "</span>";
  }

  // ------------------------------------------------------------------ events page
  function loadEvents() {
    const form = $("event-filter");
    const q = new URLSearchParams();
    new FormData(form).forEach((v, k) => { if (v) q.set(k, v); });
    fetch("/api/events?" + q.toString()).then((r) => r.json().then((d) => ({ ok: r.ok, d }))).then(({ ok, d }) => {
      if (!ok) { $("event-count").textContent = d.error; return; }
      $("event-count").textContent = d.events.length + " event(s), newest first";
      rows("events", d.events, (e) => [time(new Date(e.t * 1000).toISOString()), esc(e.kind),
        '<span class="' + (e.severity === "info" ? "" : e.severity === "warning" ? "warn" : "bad") + '">' + esc(e.severity) + "</span>",
        esc(e.asset_id), esc(e.text)]);
    });
  }

  // ------------------------------------------------------------------ charts page
  function loadCharts() {
    fetch("/api/history?hours=24").then((r) => r.json()).then((d) => {
      const pts = d.points;
      $("chart-info").textContent = pts.length + " points, one per " + d.step_s + " s of site time";
      if (!pts.length) return;
      const t0 = pts[0].t, t1 = Math.max(pts[pts.length - 1].t, t0 + 60);
      const off = d.utc_offset_s || 0;
      line($("power-chart"), 300, pts, t0, t1, off, [["import_kw", "s-import"], ["limit_kw", "s-limit"], ["pv_kw", "s-pv"], ["battery_kw", "s-bat"]]);
      line($("soc-chart"), 200, pts, t0, t1, off, [["soc_pct", "s-soc"]], [0, 100]);
    });
  }
  function line(svg, H, pts, t0, t1, off, series, fixed) {
    const W = 960, L = 48, B = 24;
    let lo = 0, hi = 1;
    if (fixed) { lo = fixed[0]; hi = fixed[1]; } else {
      series.forEach(([k]) => pts.forEach((p) => { if (p[k] != null) { lo = Math.min(lo, p[k]); hi = Math.max(hi, p[k]); } }));
      hi *= 1.05;
    }
    const x = (t) => L + ((W - L - 4) * (t - t0)) / (t1 - t0);
    const y = (v) => H - B - ((H - B - 8) * (v - lo)) / (hi - lo || 1);
    let out = "";
    for (let i = 0; i <= 4; i++) {
      const v = lo + ((hi - lo) * i) / 4;
      out += '<line class="grid" x1="' + L + '" x2="' + W + '" y1="' + y(v) + '" y2="' + y(v) + '"/><text x="2" y="' + (y(v) + 4) + '">' + v.toFixed(0) + "</text>";
    }
    for (let i = 0; i <= 6; i++) {
      const t = t0 + ((t1 - t0) * i) / 6;
      // hours of the site's clock (its offset from UTC), like the billing quarters
      out += '<text x="' + Math.min(x(t) - 18, W - 40) + '" y="' + (H - 6) + '">' + new Date((t + off) * 1000).toISOString().slice(11, 16) + "</text>";
    }
    series.forEach(([k, cls]) => {
      let d = "", pen = "M";
      pts.forEach((p) => {
        if (p[k] == null) { pen = "M"; return; }
        d += pen + x(p.t).toFixed(1) + " " + y(p[k]).toFixed(1) + " ";
        pen = "L";
      });
      if (d) out += '<path class="' + cls + '" d="' + d + '"/>';
    });
    svg.innerHTML = out;
  }

  // ------------------------------------------------------------------ session, sign-in and actions
  function showWho() {
    const who = $("who");
    if (session.signed_in) {
      who.innerHTML = "signed in as " + esc(session.user) + ' <button type="button" id="signout">Sign out</button>';
      $("signout").addEventListener("click", () => post("/api/signout", {}).then(() => location.reload()));
    } else who.innerHTML = '<a href="/signin">Sign in</a>';
    if (last) render(last);
  }
  function post(url, body) {
    const headers = { "Content-Type": "application/json" };
    if (session.csrf_token) headers["X-CSRF-Token"] = session.csrf_token;
    return fetch(url, { method: "POST", headers, body: JSON.stringify(body), credentials: "same-origin" })
      .then((r) => r.json().then((d) => ({ status: r.status, d })));
  }
  function formValues(form) {
    const body = {};
    new FormData(form).forEach((v, k) => {
      const s = String(v).trim();
      // numbers and booleans as JSON values; anything else goes as typed, and the console says what is wrong
      body[k] = s === "true" ? true : s === "false" ? false : s !== "" && !isNaN(Number(s)) ? Number(s) : s;
    });
    return body;
  }
  function wireForms() {
    document.querySelectorAll("form[data-action]").forEach((form) => form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const out = $("answer");
      out.textContent = "sending…";
      post("/api/actions/" + form.dataset.action, formValues(form)).then(({ status, d }) => {
        out.textContent = (d.module ? d.module + "." + d.method + " answered " + d.status + "\n" + JSON.stringify(d.answer, null, 2)
          : "refused (" + status + "): " + d.error);
        out.className = status === 200 ? "ok" : "bad";
      });
    }));
    const signin = $("signin");
    if (signin) signin.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const ans = $("signin-answer");
      post("/api/signin", { user: signin.user.value, password: signin.password.value }).then(({ status, d }) => {
        if (status === 200) { ans.textContent = "Signed in as " + d.user; ans.className = "ok"; session = Object.assign(session, d); showWho(); }
        else { ans.textContent = "Refused (" + status + "): " + d.error; ans.className = "bad"; }
      });
    });
    const filter = $("event-filter");
    if (filter) filter.addEventListener("submit", (ev) => { ev.preventDefault(); loadEvents(); });
  }

  // ------------------------------------------------------------------ start
  wireForms();
  fetch("/api/session", { credentials: "same-origin" }).then((r) => r.json()).then((d) => { session = d; showWho(); });
  if (page === "events") loadEvents();
  if (page === "charts") { loadCharts(); setInterval(loadCharts, 30000); }
  setInterval(() => {
    if (!last) return;
    if (page === "devices") renderDevices(last);
    const note = document.querySelector('[data-k="site.meter_age_label"]');
    if (note && last.site.meter_age_s != null) {
      const age = last.site.meter_age_s + (Date.now() - receivedAt) / 1000;
      note.textContent = "reading " + age.toFixed(1) + " s old";
      note.className = "note" + (age > last.stale_after_s ? " warn" : "");
    }
  }, 1000);
  const live = $("live");
  const es = new EventSource("/api/stream");
  es.onopen = () => { live.textContent = "live"; live.className = "ok"; };
  es.onerror = () => { live.textContent = "reconnecting…"; live.className = "warn"; };
  es.onmessage = (ev) => render(JSON.parse(ev.data));
})();
