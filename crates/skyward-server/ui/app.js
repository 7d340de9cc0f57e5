// Skyward's dashboard: a page per concern, reading the server's /v1 API
// with the token given at login (sessionStorage, sent as a bearer token).
// Every value from the server is put in the page as text (textContent,
// attributes set one by one), never parsed as markup: workload names,
// teams, notes and logs are a stranger's input.
"use strict";

const TOKEN_KEY = "skyward.token";
const REFRESH_MS = 5000;
const PAGE_SIZE = 50;
const LOG_TAIL_BYTES = 65536;

// `edited`: the user changed a field on this page since it was drawn; the
// live refresh then leaves the page alone until they submit or leave.
const state = { who: null, timer: null, page: null, lastData: "", flash: null, edited: false };

// ---- DOM helpers -------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function setStatus(text, isError) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

// ---- formatting --------------------------------------------------------

function usd(v) {
  if (v === null || v === undefined || Number.isNaN(Number(v))) return "-";
  const n = Number(v);
  const a = Math.abs(n);
  if (a >= 1e9) return "$" + (n / 1e9).toFixed(2) + "B";
  if (a >= 1e6) return "$" + (n / 1e6).toFixed(2) + "M";
  if (a >= 1e3) return "$" + (n / 1e3).toFixed(1) + "k";
  if (n === 0) return "$0";
  if (a < 0.01) return "$" + n.toPrecision(2);
  return "$" + n.toFixed(2);
}

// Ledger amounts are exact decimal strings ("1234.5"); numbers pass.
function num(v) {
  if (v === null || v === undefined) return null;
  const n = typeof v === "number" ? v : Number(String(v).replace(/[$,]/g, ""));
  return Number.isFinite(n) ? n : null;
}

function when(ms) {
  if (!ms) return "-";
  const d = new Date(ms);
  return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function ago(ms, now) {
  if (!ms) return "-";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 90) return s + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

function dayString(day) {
  return new Date(day * 86400000).toISOString().slice(0, 10);
}

// ---- API ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, opts) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  let resp;
  const init = { method: (opts && opts.method) || "GET", headers, cache: "no-store" };
  if (opts && opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.json);
  } else if (opts && opts.yaml !== undefined) {
    headers["Content-Type"] = "application/yaml";
    init.body = opts.yaml;
  }
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "cannot reach the server (" + e.message + ")");
  }
  if (resp.status === 401) {
    const body = await resp.json().catch(() => ({}));
    logout((body.error && body.error.message) || "the token is not valid");
    throw new ApiError(401, "logged out");
  }
  if (opts && opts.text) {
    if (!resp.ok) throw new ApiError(resp.status, "HTTP " + resp.status);
    return { text: await resp.text(), headers: resp.headers };
  }
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    const msg = body && body.error ? body.error.message : "HTTP " + resp.status;
    throw new ApiError(resp.status, msg);
  }
  return body;
}

// ---- charts ------------------------------------------------------------
// Each chart is an <svg class="chart"> with a <title>, both axes, their
// titles, a legend and one mark per data point (class "mark").

const COLORS = ["#1f5fa8", "#c0392b", "#27ae60", "#8e44ad", "#e67e22", "#16a085", "#7f8c8d"];

function niceStep(max, target) {
  if (!(max > 0)) return 1;
  const raw = max / target;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

function tickLabel(v, kind) {
  if (kind === "usd") return usd(v);
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(0) + "k";
  return String(Number(v.toPrecision(6)));
}

// `names`: the legend's entries ({name, color}); it wraps onto as many
// rows as it needs below the title, and the plot starts below it.
function chartFrame(o, yMax, names) {
  const W = 640, L = 82, R = 44, B = 58;
  const g = s("g", { class: "legend" });
  let lx = L, ly = 28;
  names.forEach((n, i) => {
    const w = 26 + n.name.length * 7.2;
    if (lx > L && lx + w > W - 8) {
      lx = L;
      ly += 16;
    }
    g.append(s("rect", { x: lx, y: ly, width: 10, height: 10, fill: n.color || COLORS[i % COLORS.length] }));
    g.append(s("text", { x: lx + 14, y: ly + 9 }, n.name));
    lx += w;
  });
  const T = ly + 28, H = 292 + T - 28;
  const svg = s("svg", {
    class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": o.title, "data-points": 0,
  });
  svg.append(s("title", {}, o.title));
  svg.append(s("text", { x: W / 2, y: 18, class: "chart-title", "text-anchor": "middle" }, o.title));
  svg.append(g);
  const step = niceStep(yMax, 5);
  const top = Math.max(step, Math.ceil(yMax / step) * step);
  const y = (v) => T + (H - T - B) * (1 - v / top);
  const axisY = s("g", { class: "axis axis-y" });
  axisY.append(s("line", { x1: L, y1: T, x2: L, y2: H - B }));
  for (let i = 0; i * step <= top + step / 2; i++) {
    const v = i * step;
    axisY.append(s("line", { x1: L - 4, y1: y(v), x2: W - R, y2: y(v), class: "grid" }));
    axisY.append(s("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, tickLabel(v, o.yKind)));
  }
  axisY.append(s("text", {
    class: "axis-title", x: 14, y: (T + H - B) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${(T + H - B) / 2})`,
  }, o.yTitle));
  const axisX = s("g", { class: "axis axis-x" });
  axisX.append(s("line", { x1: L, y1: H - B, x2: W - R, y2: H - B }));
  axisX.append(s("text", { class: "axis-title", x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, o.xTitle));
  svg.append(axisY, axisX);
  return { svg, W, H, L, R, T, B, y, axisX };
}

// Bars: categories on x, one bar per series per category.
function barChart(o) {
  const top = Math.max(0, ...o.series.flatMap((se) => se.values.map((v) => v || 0)));
  const yMax = top > 0 ? top : 1;
  const f = chartFrame(o, yMax, o.series);
  const n = Math.max(1, o.categories.length);
  const slot = (f.W - f.L - f.R) / n;
  const bw = Math.max(2, (slot * 0.8) / o.series.length);
  let marks = 0;
  o.series.forEach((se, si) => {
    const color = se.color || COLORS[si % COLORS.length];
    se.values.forEach((v, i) => {
      const x = f.L + i * slot + slot * 0.1 + si * bw;
      const rect = s("rect", {
        class: "mark", x, y: f.y(v || 0), width: bw - 1,
        height: Math.max(0, f.H - f.B - f.y(v || 0)), fill: color,
      });
      rect.append(s("title", {}, `${o.categories[i]} — ${se.name}: ${tickLabel(v || 0, o.yKind)}`));
      f.svg.append(rect);
      marks++;
    });
  });
  o.categories.forEach((c, i) => {
    const x = f.L + i * slot + slot / 2;
    const label = c.length > 14 ? c.slice(0, 13) + "…" : c;
    f.axisX.append(s("text", { x, y: f.H - f.B + 14, "text-anchor": "middle" }, label));
  });
  f.svg.setAttribute("data-points", marks);
  return f.svg;
}

// Lines over days: each series is [[day, value], ...]; a band is
// [[day, low, high], ...].
function lineChart(o) {
  const all = o.series.flatMap((se) => se.points);
  const bandPts = o.band ? o.band.points : [];
  const days = all.map((p) => p[0]).concat(bandPts.map((p) => p[0]));
  const x0 = Math.min(...days), x1 = Math.max(x0 + 1, ...days);
  const top = Math.max(0, ...all.map((p) => p[1]), ...bandPts.map((p) => p[2]));
  const yMax = top > 0 ? top : 1;
  const f = chartFrame(o, yMax, o.series.concat(o.band ? [{ name: o.band.name, color: "#9ec3ea" }] : []));
  const x = (d) => f.L + (f.W - f.L - f.R) * ((d - x0) / (x1 - x0));
  let marks = 0;
  if (bandPts.length > 1) {
    const up = bandPts.map((p) => `${x(p[0]).toFixed(1)},${f.y(p[2]).toFixed(1)}`);
    const down = bandPts.slice().reverse().map((p) => `${x(p[0]).toFixed(1)},${f.y(p[1]).toFixed(1)}`);
    const poly = s("polygon", { class: "mark band", points: up.concat(down).join(" "), fill: "#9ec3ea", "fill-opacity": 0.5 });
    poly.append(s("title", {}, o.band.name));
    f.svg.append(poly);
    marks += bandPts.length;
  }
  o.series.forEach((se, si) => {
    if (!se.points.length) return;
    const color = se.color || COLORS[si % COLORS.length];
    const pts = se.points.map((p) => `${x(p[0]).toFixed(1)},${f.y(p[1]).toFixed(1)}`).join(" ");
    const line = s("polyline", {
      class: "mark", points: pts, fill: "none", stroke: color, "stroke-width": 2,
      "stroke-dasharray": se.dash ? "6 4" : null,
    });
    line.append(s("title", {}, se.name));
    f.svg.append(line);
    marks += se.points.length;
  });
  // Days (the default), or milliseconds shown as UTC times of day.
  const label = o.xTime ? (t) => new Date(t).toISOString().slice(11, 16) : dayString;
  const step = o.xTime ? Math.max(1, (x1 - x0) / 4) : Math.max(1, Math.ceil((x1 - x0) / 4));
  const ticks = [];
  for (let i = 0, d = x0; d <= x1 + 1e-9; i++, d = x0 + i * step) ticks.push(d);
  // The end of the axis is labelled too (in place of a tick too close to it).
  if (x1 - ticks[ticks.length - 1] > 1e-9) {
    if (x1 - ticks[ticks.length - 1] < step / 2 && ticks.length > 1) ticks.pop();
    ticks.push(x1);
  }
  ticks.forEach((d, i) => {
    const anchor = i === 0 ? "start" : (i === ticks.length - 1 ? "end" : "middle");
    f.axisX.append(s("line", { x1: x(d), y1: f.H - f.B, x2: x(d), y2: f.H - f.B + 4 }));
    f.axisX.append(s("text", { x: x(d), y: f.H - f.B + 16, "text-anchor": anchor }, label(d)));
  });
  f.svg.setAttribute("data-points", marks);
  return f.svg;
}

function figure(chart, caption) {
  return h("figure", { class: "card" }, chart, caption ? h("figcaption", {}, caption) : null);
}

// Charts side by side where the window is wide enough.
function charts(...figures) {
  return h("div", { class: "charts" }, figures);
}

// ---- tables ------------------------------------------------------------

function table(caption, headers, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty || "Nothing yet.");
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col", class: x.endsWith(">") ? "num" : null }, x.replace(/>$/, ""))))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => h("td", { class: headers[i].endsWith(">") ? "num" : null }, c)))))));
}

function stat(label, value, note) {
  return h("div", { class: "stat" }, h("div", { class: "stat-label" }, label),
    h("div", { class: "stat-value" }, value), note ? h("div", { class: "stat-note" }, note) : null);
}

// ---- pages -------------------------------------------------------------

const STATES = ["pending", "submitted", "dispatched", "running", "succeeded", "failed", "cancelled"];
const KINDS = ["train", "batch", "serve"];

function hasLedger(summary) {
  const l = summary && summary.ledger;
  return !l || Boolean(l.has_charges);
}

async function loadLedger(summary) {
  // The ledger's questions refuse an empty ledger: with no bill imported
  // and no run's usage, the pages say so without asking.
  if (!hasLedger(summary)) {
    return { error: "nothing imported and no run's usage yet" };
  }
  try {
    const [status, burn] = await Promise.all([api("/v1/ledger/status"), api("/v1/ledger/burndown")]);
    return { status, burn };
  } catch (e) {
    if (e.status === 401) throw e;
    return { error: e.message };
  }
}

function burndownChart(b) {
  const line = [[b.start_day, 0], [b.end_day, b.committed_usd]];
  const series = [
    { name: "burned", points: b.burned, color: "#1f5fa8" },
    { name: "straight line", points: line, color: "#888888", dash: true },
    { name: "commitment", points: [[b.start_day, b.committed_usd], [b.end_day, b.committed_usd]], color: "#c0392b", dash: true },
  ];
  if (b.floors.length) series.push({ name: "floors", points: b.floors, color: "#e67e22" });
  if (b.forecast.length) series.push({ name: "forecast P50", points: b.forecast.map((p) => [p[0], p[2]]), color: "#4a90d9", dash: true });
  return lineChart({
    title: `${b.name} (${b.provider}): burn-down`,
    xTitle: "date (UTC)", yTitle: "cumulative burn (USD)", yKind: "usd",
    series, band: b.forecast.length ? { name: "forecast P10–P90", points: b.forecast.map((p) => [p[0], p[1], p[3]]) } : null,
  });
}

// The commitments' live state (`/v1/commitments`): what placement treats
// as free at the margin ("use it or lose it").
function liveTable(live) {
  return table(`Live commitments the scheduler uses (from the ${live.source})`,
    ["commitment", "provider", "discount>", "committed>", "burned>", "forecast burn>", "free at the margin>", "term ends"],
    live.commitments.map((c) => [c.name, c.provider, (c.discount_pct ?? "-") + "%", usd(num(c.commit)), usd(num(c.burned)),
      usd(num(c.forecast_burn)), usd(num(c.free)), c.term_end]));
}

async function overview() {
  const summary = await api("/v1/summary");
  const [sites, live, ledger, recent] = await Promise.all([
    api("/v1/sites"), api("/v1/commitments").catch((e) => ({ error: e.message })), loadLedger(summary),
    hasLedger(summary) ? api("/v1/ledger/breakdown?by=provider&from=month").catch(() => null) : null,
  ]);
  const by = summary.workloads_by_state || {};
  const waiting = (by.pending || 0) + (by.submitted || 0);
  const running = (by.running || 0) + (by.dispatched || 0);
  const used = sites.items.reduce((a, x) => a + (x.accelerators_used || 0), 0);
  const cap = sites.items.reduce((a, x) => a + (x.accelerators || 0), 0);
  const spend = ledger.status ? ledger.status.contracts.filter((c) => c.kind === "spend" || c.committed !== undefined) : [];
  const atRisk = spend.reduce((a, c) => a + (num(c.forecast && c.forecast.expected_shortfall) || 0), 0);
  const prepaidIdle = sites.items.filter((x) => x.price_basis === "prepaid")
    .reduce((a, x) => a + Math.max(0, (x.accelerators || 0) - (x.accelerators_used || 0)), 0);
  const out = [
    h("h1", {}, "Overview"),
    h("div", { class: "stats" },
      stat("Waiting", String(waiting), "workloads in the queue"),
      stat("Running", String(running), `${used} of ${cap} accelerators in use`),
      stat("Finished", String((by.succeeded || 0) + (by.failed || 0) + (by.cancelled || 0)), `${by.failed || 0} failed`),
      stat("At risk", usd(atRisk), "expected commitment shortfall (use it or lose it)"),
      stat("Reserved idle", String(prepaidIdle), "prepaid accelerators free now")),
  ];
  const figs = [figure(barChart({
    title: "Accelerators by site", xTitle: "site", yTitle: "accelerators",
    categories: sites.items.map((x) => x.name),
    series: [
      { name: "in use", values: sites.items.map((x) => x.accelerators_used || 0) },
      { name: "capacity", values: sites.items.map((x) => x.accelerators || 0), color: "#bdc3c7" },
    ],
  }))];
  if (ledger.status) {
    const byProvider = {};
    for (const c of spend) {
      const p = c.provider || "?";
      byProvider[p] = (byProvider[p] || 0) + (num(c.effective_spend) || num(c.burned) || 0);
    }
    const names = Object.keys(byProvider).sort();
    if (names.length) {
      figs.push(figure(barChart({
        title: "Spend this term by provider", xTitle: "provider", yTitle: "effective spend (USD)", yKind: "usd",
        categories: names, series: [{ name: "effective spend", values: names.map((n) => byProvider[n]) }],
      })));
    }
    if (recent && recent.groups && recent.groups.length) {
      figs.push(figure(barChart({
        title: `Spend by provider this month (${recent.from} to ${recent.to})`, xTitle: "provider", yTitle: "USD", yKind: "usd",
        categories: recent.groups.map((g) => g.key),
        series: [
          { name: "list", values: recent.groups.map((g) => num(g.list) || 0), color: "#bdc3c7" },
          { name: "billed", values: recent.groups.map((g) => num(g.billed) || 0) },
        ],
      })));
    }
    for (const b of ledger.burn.items) figs.push(figure(burndownChart(b)));
    out.push(charts(figs));
  } else {
    out.push(charts(figs));
    out.push(h("p", { class: "empty" }, "No ledger yet: import a bill and contracts (skyward ledger import --server, skyward contracts apply --server) to see spend and burn-down here. (" + ledger.error + ")"));
  }
  if (live && live.commitments && live.commitments.length) {
    out.push(liveTable(live));
  }
  return out;
}

function workloadsQuery() {
  const q = new URLSearchParams((location.hash.split("?")[1]) || "");
  return { state: q.get("state") || "", team: q.get("team") || "", provider: q.get("provider") || "", kind: q.get("kind") || "", cursor: q.get("cursor") || "" };
}

async function cancelWorkload(id, button) {
  if (button.dataset.armed !== "1") {
    button.dataset.armed = "1";
    button.textContent = "Confirm cancel";
    return;
  }
  button.disabled = true;
  try {
    await api(`/v1/workloads/${id}/cancel`, { method: "POST" });
    setStatus(`Cancel requested for workload ${id}.`);
    state.edited = false;
    refresh(true);
  } catch (e) {
    setStatus(`Cancel of ${id} refused: ${e.message}`, true);
    button.disabled = false;
  }
}

function canSubmit() {
  return state.who && (state.who.scope === "submit" || state.who.scope === "admin");
}

function workloadRow(w, now) {
  const live = ["pending", "submitted", "dispatched", "running"].includes(w.state);
  const action = live && canSubmit() && !w.cancel_requested
    ? h("button", { type: "button", class: "cancel", "data-id": w.id, onclick: (e) => cancelWorkload(w.id, e.currentTarget) }, "Cancel")
    : (w.cancel_requested && live ? "cancelling" : "");
  return [
    h("a", { href: `#/workloads/${w.id}` }, String(w.id)),
    w.name, w.kind || "train", h("span", { class: "state state-" + w.state }, w.state), w.team, w.site || "-",
    String(w.accelerators), String(w.attempt), ago(w.submitted_at_ms, now), action,
  ];
}

async function workloads() {
  const q = workloadsQuery();
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (q.state) params.set("state", q.state);
  if (q.team) params.set("team", q.team);
  if (q.provider) params.set("provider", q.provider);
  if (q.kind) params.set("kind", q.kind);
  if (q.cursor) params.set("cursor", q.cursor);
  const [list, queue, siteList] = await Promise.all([
    api("/v1/workloads?" + params), api("/v1/queue?limit=" + PAGE_SIZE), api("/v1/sites"),
  ]);
  const providers = [...new Set(siteList.items.map((x) => x.provider))].sort();
  const now = Date.now();
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const p = new URLSearchParams();
    if (f.get("state")) p.set("state", f.get("state"));
    if (f.get("team")) p.set("team", String(f.get("team")).trim());
    if (f.get("provider")) p.set("provider", f.get("provider"));
    if (f.get("kind")) p.set("kind", f.get("kind"));
    location.hash = "#/workloads" + (p.toString() ? "?" + p : "");
  } },
  h("label", {}, "State ", h("select", { name: "state" }, h("option", { value: "" }, "any"),
    STATES.map((x) => h("option", { value: x, selected: x === q.state }, x)))),
  h("label", {}, "Team ", h("input", { name: "team", value: q.team, size: 12, autocomplete: "off" })),
  h("label", {}, "Provider ", h("select", { name: "provider" }, h("option", { value: "" }, "any"),
    providers.map((x) => h("option", { value: x, selected: x === q.provider }, x)))),
  h("label", {}, "Kind ", h("select", { name: "kind" }, h("option", { value: "" }, "any"),
    KINDS.map((x) => h("option", { value: x, selected: x === q.kind }, x)))),
  h("button", { type: "submit" }, "Filter"));
  const next = list.next_cursor
    ? h("a", { class: "next", href: "#/workloads?" + new URLSearchParams({ ...(q.state && { state: q.state }), ...(q.team && { team: q.team }), ...(q.provider && { provider: q.provider }), ...(q.kind && { kind: q.kind }), cursor: list.next_cursor }) }, "Older →")
    : null;
  return [
    h("h1", {}, "Workloads"),
    h("section", { "aria-labelledby": "queue-h" },
      h("h2", { id: "queue-h" }, "Queue, in scheduling order"),
      table("Waiting workloads and why", ["position>", "id", "name", "team", "priority>", "why it waits"],
        queue.items.map((e) => [String(e.position), h("a", { href: `#/workloads/${e.id}` }, String(e.id)), e.name, e.team, String(e.priority),
          e.reasons.map((r) => `${r.reason} (${r.sites} sites)`).join("; ") || "-"]),
        "Nothing waits.")),
    h("section", { "aria-labelledby": "all-h" },
      h("h2", { id: "all-h" }, "All workloads, newest first"), form,
      table("Workloads", ["id", "name", "kind", "state", "team", "site", "accelerators>", "attempt>", "submitted", ""],
        list.items.map((w) => workloadRow(w, now)), "No workloads match."),
      h("p", { class: "pager" }, q.cursor ? h("a", { href: "#/workloads" }, "← Newest") : null, " ", next)),
  ];
}

// The log's last LOG_TAIL_BYTES: its size from a read past the end (the
// server answers where the end is), then the tail.
async function logTail(id) {
  const base = `/v1/workloads/${encodeURIComponent(id)}/logs`;
  try {
    const end = await api(`${base}?offset=${2 ** 52}&limit=1`, { text: true });
    const size = Number(end.headers.get("skyward-next-offset")) || 0;
    const from = Math.max(0, size - LOG_TAIL_BYTES);
    const tail = await api(`${base}?offset=${from}&limit=${LOG_TAIL_BYTES}`, { text: true });
    return { text: tail.text, from, size };
  } catch (e) {
    if (e.status === 401) throw e;
    return { text: "(no log: " + e.message + ")", from: 0, size: 0 };
  }
}

async function workload(id) {
  const [w, log] = await Promise.all([api(`/v1/workloads/${encodeURIComponent(id)}`), logTail(id)]);
  const now = Date.now();
  const placed = (w.events || []).filter((e) => e.note && (e.state === "dispatched" || e.state === "pending"));
  const actions = ["pending", "submitted", "dispatched", "running"].includes(w.state) && canSubmit() && !w.cancel_requested
    ? h("button", { type: "button", class: "cancel", onclick: (e) => cancelWorkload(w.id, e.currentTarget) }, "Cancel")
    : null;
  return [
    h("p", {}, h("a", { href: "#/workloads" }, "← Workloads")),
    h("h1", {}, `Workload ${w.id}: ${w.name}`),
    h("div", { class: "stats" },
      stat("State", w.state, w.cancel_requested ? "cancel requested" : (w.end_note || "")),
      stat("Site", w.site || "-", `${w.accelerators} accelerators`),
      stat("Attempt", String(w.attempt), w.exit_code !== null && w.exit_code !== undefined ? `exit ${w.exit_code}` : ""),
      stat("Submitted", ago(w.submitted_at_ms, now) + " ago", `by ${w.submitted_by} (${w.team})`)),
    actions,
    w.pending_reasons ? table("Why it waits", ["reason", "sites>"], w.pending_reasons.map((r) => [r.reason, String(r.sites)])) : null,
    h("h2", {}, "Placement explanation"),
    placed.length ? h("ul", { class: "why" }, placed.map((e) => h("li", {}, `${when(e.at_ms)} — ${e.state}${e.site ? " on " + e.site : ""}: ${e.note}`)))
      : h("p", { class: "empty" }, "No placement yet."),
    w.speeds ? h("section", { "aria-labelledby": "speeds-h" },
      h("h2", { id: "speeds-h" }, "Speeds"),
      h("p", { class: "note" }, `Class ${w.speeds.class}: ${w.speeds.basis}.`),
      table("Speed per alternative (what the next placement of this class uses)", ["alternative", "reports>", "rate>", "±1 sd", "source"],
        (w.speeds.estimates || []).map((e) => [e.alternative, String(e.reports), e.rate.toFixed(2),
          `${(e.rate * Math.exp(-e.log_sd)).toFixed(2)} – ${(e.rate * Math.exp(e.log_sd)).toFixed(2)}`, e.source]),
        "No run of this class has reported its throughput (skyward metric): placement scales hours by the datasheet ratio.")) : null,
    h("h2", {}, "Attempts"),
    table("Attempts: where, why each ended, checkpoint resumed from",
      ["attempt>", "site", "dispatched", "ran", "ended", "exit>", "resumed from", "note"],
      (w.attempts || []).map((a) => [String(a.attempt), a.site || "-", when(a.dispatched_at_ms),
        a.ran_ms !== null && a.ran_ms !== undefined ? (a.ran_ms / 1000).toFixed(1) + " s" : "-", a.ended || "running",
        a.exit_code ?? "-", a.resumed_from ? `${a.resumed_from.store} step ${a.resumed_from.step ?? "-"}` : "-", a.note || ""]),
      "Not dispatched yet."),
    h("h2", {}, "Log"),
    log.from > 0 ? h("p", { class: "note" }, `The last ${LOG_TAIL_BYTES / 1024} KB of ${log.size} bytes (skyward logs ${w.id} for all of it); it follows the run as the page refreshes.`) : null,
    h("pre", { class: "log", tabindex: 0, "aria-label": "log output" }, log.text || "(empty)"),
  ];
}

// Sites over time (this replica's samples, every 10 s at most, the last
// day): use per site, and requeues and preemptions between samples.
function siteHistoryCharts(hist) {
  const samples = hist.samples || [];
  if (samples.length < 2) {
    return [h("p", { class: "note" }, "Use over time appears after the server has led for a little while (a sample every 10 s).")];
  }
  const use = lineChart({
    title: "Accelerators in use over time", xTitle: "time (UTC)", yTitle: "accelerators", xTime: true,
    series: hist.sites.map((name, i) => ({ name, points: samples.map((x) => [x.at_ms, x.used[i]]) })),
  });
  const events = lineChart({
    title: "Requeues and preemptions over time", xTitle: "time (UTC)", yTitle: "per sample", xTime: true,
    series: [
      { name: "requeued (failover)", points: samples.slice(1).map((x, i) => [x.at_ms, x.requeued - samples[i].requeued]), color: "#c0392b" },
      { name: "preempted", points: samples.slice(1).map((x, i) => [x.at_ms, x.preemptions - samples[i].preemptions]), color: "#e67e22" },
    ],
  });
  const down = hist.sites.map((name, i) => [name, samples.filter((x) => !x.up[i]).length]).filter((x) => x[1] > 0);
  return [charts(figure(use), figure(events)),
    down.length ? h("p", { class: "note" }, "Down in some samples: " + down.map(([n, k]) => `${n} (${k} of ${samples.length})`).join(", ")) : null];
}

async function sites() {
  const [data, hist, events] = await Promise.all([api("/v1/sites"), api("/v1/sites/history"), api("/v1/sites/events?limit=" + PAGE_SIZE)]);
  const now = Date.now();
  return [
    h("h1", {}, "Sites"),
    charts(figure(barChart({
      title: "Capacity and use by site", xTitle: "site", yTitle: "accelerators",
      categories: data.items.map((x) => x.name),
      series: [
        { name: "in use", values: data.items.map((x) => x.accelerators_used || 0) },
        { name: "capacity", values: data.items.map((x) => x.accelerators || 0), color: "#bdc3c7" },
      ],
    })),
    figure(barChart({
      title: "Price by site", xTitle: "site", yTitle: "USD per accelerator-hour", yKind: "usd",
      categories: data.items.map((x) => x.name),
      series: [{ name: "price", values: data.items.map((x) => x.price_usd_per_accelerator_hour || 0), color: "#8e44ad" }],
    }))),
    table("Sites", ["site", "provider", "region", "accelerator", "capacity>", "in use>", "running>", "health", "last heartbeat", "price basis", "$/acc-h>", "executor"],
      data.items.map((x) => [x.name, x.provider, x.region, x.accelerator, String(x.accelerators), String(x.accelerators_used ?? "-"),
        String(x.running ?? "-"), x.up === false ? h("span", { class: "state state-failed" }, "down") : (x.up ? h("span", { class: "state state-succeeded" }, "up") : "unknown"),
        x.last_heartbeat_ms ? ago(x.last_heartbeat_ms, now) : "never",
        x.price_basis, usd(x.price_usd_per_accelerator_hour), x.executor])),
    h("p", { class: "note" }, data.leader ? "This replica leads: figures are live." : "This replica does not lead: in-use figures come from the leader's last report."),
    h("h2", {}, "Over time"),
    siteHistoryCharts(hist),
    h("section", { "aria-labelledby": "events-h" },
      h("h2", { id: "events-h" }, "Health, failovers and drills"),
      table("Site events, newest first", ["time (UTC)", "site", "event", "what happened"],
        events.items.map((e) => [new Date(e.at_ms).toISOString().slice(0, 19).replace("T", " "), e.site,
          h("span", { class: "state " + (e.event === "up" ? "state-succeeded" : "state-failed") }, e.event), e.detail]),
        "No site has gone down or been drilled.")),
    state.who && state.who.scope === "admin" ? drillForm(data.items) : null,
  ];
}

// Admin: rehearse an outage from the page (POST /v1/drills), with a
// confirming second click; the answer lists the runs stopped.
function drillForm(items) {
  const result = h("div", { id: "drill-result", "aria-live": "polite" });
  const button = h("button", { type: "submit", id: "drill" }, "Start drill");
  const form = h("form", { class: "filters", id: "drill-form", onsubmit: async (e) => {
    e.preventDefault();
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.textContent = "Confirm: take it out";
      state.edited = true;
      return;
    }
    const f = new FormData(e.currentTarget);
    button.disabled = true;
    try {
      const r = await api("/v1/drills", { method: "POST", json: { site: String(f.get("site")), duration: String(f.get("duration")).trim() } });
      state.flash = { drill: `Drill started: ${r.sites.join(", ")} out until ${new Date(r.until_ms).toISOString().slice(11, 19)} UTC; ${r.moved.length} run(s) moved.` };
      state.edited = false;
      refresh(true);
    } catch (err) {
      if (err.status !== 401) result.replaceChildren(h("p", { class: "error", role: "alert" }, "Refused: " + err.message));
      button.disabled = false;
    }
  } },
  h("label", {}, "Site ", h("select", { name: "site" }, items.map((x) => h("option", { value: x.name }, x.name)))),
  h("label", {}, "Duration ", h("input", { name: "duration", value: "5m", size: 6, required: true })),
  button);
  const flash = state.flash && state.flash.drill;
  if (flash) result.append(h("p", {}, flash));
  return h("section", { "aria-labelledby": "drill-h" }, h("h2", { id: "drill-h" }, "Rehearse an outage"),
    h("p", { class: "note" }, "Takes the site out: its runs stop and are requeued elsewhere, resuming from their checkpoints; it takes work again when the time is up."),
    form, result);
}

// How much to commit next: the ledger's recommendation for an hourly
// commitment (a savings plan) on one provider, asked on demand (it runs
// scenarios: not refreshed every few seconds), with its risk.
function recommendSection(status) {
  const providers = [...new Set((status.contracts || []).map((c) => c.provider).filter(Boolean))].sort();
  const result = h("div", { id: "recommendation", "aria-live": "polite" });
  const form = h("form", { class: "filters", onsubmit: async (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const q = new URLSearchParams({ provider: String(f.get("provider") || "").trim(), discount_pct: String(f.get("discount") || ""), term_years: String(f.get("years") || "1") });
    result.replaceChildren(h("p", { class: "note" }, "Computing…"));
    try {
      const adv = await api("/v1/ledger/recommend?" + q);
      const recs = adv.recommendations || [];
      result.replaceChildren(
        h("p", { class: "note" }, `${adv.provider}: ${adv.history_hours} hours of history, mean on-demand ${usd(adv.mean_on_demand_usd_per_hour)}/h; ${adv.demand_model_description || ""}`),
        table("Recommendations and their risk", ["method", "lookback (days)>", "covers $/h>", "fee $/h>", "expected savings (term)>", "savings P10–P90>", "chance of a loss>", "expected utilisation>"],
          recs.map((r) => [r.method, String(r.lookback_days ?? "-"), usd(num(r.covers_usd_per_hour)), usd(num(r.fee_usd_per_hour)), usd(num(r.expected_term_savings)),
            `${usd(num(r.savings_p10))} – ${usd(num(r.savings_p90))}`, (100 * r.loss_probability).toFixed(1) + "%", (100 * r.expected_utilisation).toFixed(1) + "%"]),
          "No recommendation: nothing to commit to."));
    } catch (err) {
      if (err.status !== 401) result.replaceChildren(h("p", { class: "error", role: "alert" }, "Refused: " + err.message));
    }
  } },
  h("label", {}, "Provider ", h("input", { name: "provider", list: "rec-providers", value: providers[0] || "aws", size: 10, required: true })),
  h("datalist", { id: "rec-providers" }, providers.map((p) => h("option", { value: p }))),
  h("label", {}, "Discount % ", h("input", { name: "discount", type: "number", min: 0, max: 99, step: "any", value: 28, required: true })),
  h("label", {}, "Term (years) ", h("select", { name: "years" }, h("option", { value: 1 }, "1"), h("option", { value: 3 }, "3"))),
  h("button", { type: "submit", id: "recommend" }, "Recommend"));
  return h("section", { "aria-labelledby": "rec-h" }, h("h2", { id: "rec-h" }, "How much to commit next"),
    h("p", { class: "note" }, "An hourly commitment (savings plan) on one provider's on-demand usage, net of what you already own; computed over demand scenarios, so asked only when you press the button."),
    form, result);
}

async function commitments() {
  const summary = await api("/v1/summary");
  const [ledger, live, inv, use] = await Promise.all([
    loadLedger(summary),
    api("/v1/commitments").catch((e) => ({ error: e.message })),
    hasLedger(summary) ? api("/v1/ledger/inventory").catch((e) => ({ error: e.message })) : null,
    hasLedger(summary) ? api("/v1/ledger/utilisation").catch((e) => ({ error: e.message })) : null,
  ]);
  if (!ledger.status) {
    return [h("h1", {}, "Commitments"), h("p", { class: "empty" }, "No ledger yet: " + ledger.error)];
  }
  const out = [h("h1", {}, "Commitments"), h("p", {}, `As of ${ledger.status.at}; contracts from ${ledger.status.contracts_source}.`)];
  const rows = ledger.status.contracts.map((c) => {
    const f = c.forecast;
    return [c.name, c.provider || "-", c.kind || (c.committed !== undefined ? "spend" : "-"), usd(num(c.committed)), usd(num(c.burned ?? c.used)),
      c.burned_pct !== undefined ? c.burned_pct.toFixed(1) + "%" : (c.utilisation !== undefined && c.utilisation !== null ? (100 * c.utilisation).toFixed(1) + "%" : "-"),
      f ? usd(num(f.p50)) : "-", f ? usd(num(f.expected_shortfall)) : "-", c.end || "-"];
  });
  out.push(table("Status", ["commitment", "provider", "kind", "committed>", "burned / used>", "burned %>", "forecast P50>", "expected shortfall>", "ends"], rows));
  out.push(charts(ledger.burn.items.map((b) => figure(burndownChart(b), `Burned to ${dayString(b.at_day)}; the straight line reaches the commitment at the term's end.`))));
  if (use && use.commitments) out.push(...useOverTime(use));
  if (inv && inv.items) {
    out.push(h("h2", {}, "Inventory and expiry calendar"));
    out.push(table("Inventory", ["commitment", "kind", "provider", "start", "ends", "days left>", "utilisation>"],
      inv.items.map((i) => [i.name, i.kind, i.provider, i.start || "-", i.end || "-", String(i.days_left ?? "-"),
        i.utilisation !== null && i.utilisation !== undefined ? (100 * i.utilisation).toFixed(1) + "%" : "-"])));
  }
  if (live && live.commitments) {
    out.push(h("h2", {}, "What the scheduler sees"));
    out.push(liveTable(live));
  }
  out.push(recommendSection(ledger.status));
  return out;
}

// Utilisation and coverage of the commitments in the bills, day by day,
// and each provider's effective savings rate by week.
function useOverTime(u) {
  const out = [h("h2", {}, "Utilisation and coverage over time")];
  const pct = (pts) => pts.filter((p) => p[1] !== null && p[1] !== undefined).map((p) => [p[0], 100 * p[1]]);
  const figs = [];
  if (u.commitments.length) {
    const per = (field) => u.commitments.map((c) => ({ name: `${c.name} (${c.provider})`, points: pct(c.days.map((d) => [d.day, d[field]])) }));
    figs.push(figure(lineChart({
      title: "Commitment utilisation by day", xTitle: "date (UTC)", yTitle: "utilisation (%)", series: per("utilisation"),
    }), "Used ÷ (used + unused), from the bills' Used and Unused rows."));
    figs.push(figure(lineChart({
      title: "Commitment coverage by day", xTitle: "date (UTC)", yTitle: "coverage (%)", series: per("coverage"),
    }), "Covered on-demand equivalent ÷ (covered + on-demand cost of the usage it could cover)."));
  }
  const rates = u.savings_rate.filter((r) => r.weeks.length);
  if (rates.length) {
    figs.push(figure(lineChart({
      title: "Effective savings rate by week", xTitle: "week starting (UTC)", yTitle: "savings rate (%)",
      series: rates.map((r) => ({ name: r.provider, points: r.weeks.map((w) => [w[0], 100 * Math.max(0, w[1])]) })),
    }), "1 − effective cost ÷ list cost of each provider's usage."));
  }
  if (figs.length) out.push(charts(figs));
  if (u.commitments.length) {
    out.push(table("Commitments in the bills", ["commitment", "provider", "days>", "utilisation>", "coverage>", "unused>"],
      u.commitments.map((c) => {
        const used = c.days.reduce((a, d) => a + d.used_usd, 0), unused = c.days.reduce((a, d) => a + d.unused_usd, 0);
        const last = c.days[c.days.length - 1] || {};
        return [c.name, c.provider, String(c.days.length),
          used + unused > 0 ? (100 * used / (used + unused)).toFixed(1) + "%" : "-",
          last.coverage !== null && last.coverage !== undefined ? (100 * last.coverage).toFixed(1) + "% (last day)" : "-",
          usd(unused)];
      })));
    if (u.commitments_not_shown) out.push(h("p", { class: "note" }, `${u.commitments_not_shown} smaller commitments not shown.`));
  } else {
    out.push(h("p", { class: "empty" }, "No commitment (CommitmentDiscountId) in the imported bills yet."));
  }
  return out;
}

function seconds(v) {
  if (v === null || v === undefined) return "-";
  if (!Number.isFinite(v)) return "> last bucket";
  return v < 1 ? (v * 1000).toFixed(v < 0.01 ? 2 : 1) + " ms" : v.toFixed(2) + " s";
}

// A gateway's traffic between the server's reads of it (every 10 s by
// default): requests, refusals and upstream errors, tokens and cost.
function trafficCharts(t) {
  if (!t || !t.intervals.length) {
    return [h("p", { class: "note" }, t && t.samples ? `Over time: ${t.samples} read(s) so far, ${t.unanswered_ms.length} unanswered; the charts need two answered reads in a row.` : "Over time: not read yet.")];
  }
  const iv = t.intervals;
  const at = (f) => iv.map((i) => [i.to_ms, f(i)]);
  const out = [charts(
    figure(lineChart({
      title: "Requests over time", xTitle: "time (UTC)", yTitle: "per second", xTime: true,
      series: [
        { name: "requests", points: at((i) => i.requests_per_s) },
        { name: "refused by the gateway", points: at((i) => i.refused_per_s), color: "#c0392b" },
      ],
    }), "Between the server's reads of the gateway."),
    figure(lineChart({
      title: "Upstream errors and added latency over time", xTitle: "time (UTC)", yTitle: "errors (%) / added ms", xTime: true,
      series: [
        { name: "upstream errors (%)", points: iv.filter((i) => i.upstream_error_ratio !== null).map((i) => [i.to_ms, 100 * i.upstream_error_ratio]), color: "#c0392b" },
        { name: "added latency, mean (ms)", points: iv.filter((i) => i.added_latency_mean_s !== null).map((i) => [i.to_ms, 1000 * i.added_latency_mean_s]), color: "#8e44ad" },
      ],
    })),
    figure(lineChart({
      title: "Tokens and cost over time", xTitle: "time (UTC)", yTitle: "tokens/s; USD/hour", xTime: true,
      series: [
        { name: "tokens per second", points: at((i) => i.tokens_per_s), color: "#27ae60" },
        { name: "cost (USD per hour)", points: at((i) => i.cost_usd_per_hour), color: "#e67e22" },
      ],
    })))];
  if (t.unanswered_ms.length) {
    out.push(h("p", { class: "note" }, `Unanswered reads: ${t.unanswered_ms.length}, last at ${new Date(t.unanswered_ms[t.unanswered_ms.length - 1]).toISOString().slice(11, 19)} UTC.`));
  }
  return out;
}

function gatewayView(g) {
  const v = g.view;
  const out = [h("h2", {}, `${g.name}`), h("p", { class: "note" }, `Read from ${g.metrics_url} now.`)];
  if (!v) return out.concat([h("p", { class: "error" }, `Not answering: ${g.error}`)], trafficCharts(g.traffic));
  const requests = v.deployments.reduce((a, d) => a + Object.values(d.responses).reduce((x, y) => x + y, 0), 0);
  out.push(h("div", { class: "stats" },
    stat("Upstream answers", String(requests), `${v.retries} retries`),
    stat("Added latency", seconds(v.added_latency.p50_s), `p50; p99 ${seconds(v.added_latency.p99_s)}`),
    stat("Upstream latency", seconds(v.upstream_latency.p50_s), `p50; p99 ${seconds(v.upstream_latency.p99_s)}`),
    stat("Breakers open", String(v.deployments.filter((d) => !d.up).length), `of ${v.deployments.length} deployments`),
    stat("Cost", usd(v.usage.reduce((a, u) => a + u.cost_usd, 0)), "at deployment prices")));
  const figs = [];
  if (v.usage.length) {
    const cats = v.usage.map((u) => `${u.tenant} → ${u.deployment}`);
    figs.push(figure(barChart({
      title: "Tokens by tenant and deployment", xTitle: "tenant → deployment", yTitle: "tokens",
      categories: cats,
      series: [
        { name: "prompt", values: v.usage.map((u) => u.prompt_tokens) },
        { name: "completion", values: v.usage.map((u) => u.completion_tokens), color: "#27ae60" },
      ],
    })));
    figs.push(figure(barChart({
      title: "Cost by tenant and deployment", xTitle: "tenant → deployment", yTitle: "cost (USD)", yKind: "usd",
      categories: cats, series: [{ name: "cost", values: v.usage.map((u) => u.cost_usd), color: "#8e44ad" }],
    })));
  }
  const finite = v.added_latency.buckets.filter((b) => Number.isFinite(b[0]));
  if (v.added_latency.count > 0 && finite.length) {
    // Requests per bucket (the histogram is cumulative).
    figs.push(figure(barChart({
      title: "Added latency distribution", xTitle: "added latency at most", yTitle: "requests",
      categories: finite.map((b) => seconds(b[0])),
      series: [{ name: "requests", values: finite.map((b, i) => b[1] - (i ? finite[i - 1][1] : 0)) }],
    })));
  }
  if (figs.length) out.push(charts(figs));
  out.push(...trafficCharts(g.traffic));
  out.push(table("Deployments: breaker, load, answers", ["model", "deployment", "breaker", "in flight>", "latency EWMA>", "answers by code", "errors>"],
    v.deployments.map((d) => [d.model, d.deployment,
      d.up ? h("span", { class: "state state-succeeded" }, "closed") : h("span", { class: "state state-failed" }, "open"),
      String(d.inflight), seconds(d.latency_ewma_s),
      Object.entries(d.responses).map(([c, n]) => `${c}: ${n}`).join(", ") || "-",
      d.error_ratio === null || d.error_ratio === undefined ? "-" : (100 * d.error_ratio).toFixed(1) + "%"]),
    "No deployment has answered yet."));
  out.push(table("Usage by tenant and deployment", ["tenant", "deployment", "prompt tokens>", "completion tokens>", "cost>"],
    v.usage.map((u) => [u.tenant, u.deployment, String(u.prompt_tokens), String(u.completion_tokens), usd(u.cost_usd)]),
    "No usage yet."));
  const local = Object.entries(v.local_responses);
  if (local.length) out.push(h("p", { class: "note" }, "Answered by the gateway itself: " + local.map(([c, n]) => `${c}: ${n}`).join(", ")));
  return out;
}

// Admin: tokens (list, create: the secret shown once, revoke) and the
// contracts the ledger and the scheduler use (the current version, apply
// a new one). Offered to admin tokens only; the API checks it anyway.
async function admin() {
  if (!state.who || state.who.scope !== "admin") {
    return [h("h1", {}, "Admin"), h("p", { class: "empty" }, "Admin tokens only.")];
  }
  const summary = await api("/v1/summary");
  const [tokens, current] = await Promise.all([
    api("/v1/tokens"),
    summary.ledger && summary.ledger.contracts_version > 0 ? api("/v1/contracts") : null,
  ]);
  const flash = state.flash || {};
  const t0 = flash.created;
  const created = h("div", { id: "created", "aria-live": "polite" },
    t0 ? h("p", {}, `Token '${t0.name}' (${t0.scope}, team ${t0.team}): copy it now, it is not shown again: `, h("code", { id: "new-token" }, t0.token)) : null);
  const tokenForm = h("form", { class: "filters", id: "token-form", onsubmit: async (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const body = { name: String(f.get("name")).trim(), scope: String(f.get("scope")) };
    if (String(f.get("team")).trim()) body.team = String(f.get("team")).trim();
    if (String(f.get("expires")).trim()) body.expires = String(f.get("expires")).trim();
    try {
      const t = await api("/v1/tokens", { method: "POST", json: body });
      // Kept until the user leaves the page (refreshes redraw it).
      state.flash = { created: t };
      state.edited = false;
      refresh(true);
    } catch (err) {
      if (err.status !== 401) created.replaceChildren(h("p", { class: "error", role: "alert" }, "Refused: " + err.message));
    }
  } },
  h("label", {}, "Name ", h("input", { name: "name", required: true, size: 14, autocomplete: "off" })),
  h("label", {}, "Scope ", h("select", { name: "scope" }, ["read", "submit", "admin"].map((x) => h("option", { value: x }, x)))),
  h("label", {}, "Team ", h("input", { name: "team", size: 10, placeholder: "default", autocomplete: "off" })),
  h("label", {}, "Expires in ", h("input", { name: "expires", size: 6, placeholder: "90d", autocomplete: "off" })),
  h("button", { type: "submit", id: "create-token" }, "Create token"));
  const now = Date.now();
  const revoke = async (id, button) => {
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.textContent = "Confirm revoke";
      return;
    }
    button.disabled = true;
    try {
      await api(`/v1/tokens/${id}/revoke`, { method: "POST" });
      setStatus(`Token ${id} revoked.`);
      state.edited = false;
      refresh(true);
    } catch (err) {
      if (err.status !== 401) setStatus(`Revoke of ${id} refused: ${err.message}`, true);
      button.disabled = false;
    }
  };
  const applied = h("div", { id: "applied", "aria-live": "polite" }, flash.applied ? h("p", {}, flash.applied) : null);
  const text = h("textarea", { name: "contracts", rows: 10, cols: 80, spellcheck: "false", "aria-label": "contracts file (YAML)" },
    current ? current.text : "contracts:\n  - name: aws-edp\n    kind: spend\n    provider: aws\n    start: 2026-01-01\n    term_months: 36\n    commit_usd: 1000000\n    discount_pct: 10\n");
  const contractsForm = h("form", { class: "stack", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const r = await api("/v1/contracts?name=dashboard.yaml", { method: "PUT", yaml: text.value });
      state.flash = { applied: r.changed ? `Applied as version ${r.version} (${r.contracts} contracts).` : `Unchanged: version ${r.version} already holds this.` };
      state.edited = false;
      refresh(true);
    } catch (err) {
      if (err.status !== 401) applied.replaceChildren(h("p", { class: "error", role: "alert" }, "Refused: " + err.message));
    }
  } }, text, h("button", { type: "submit", id: "apply-contracts" }, "Apply"));
  return [
    h("h1", {}, "Admin"),
    h("section", { "aria-labelledby": "tokens-h" },
      h("h2", { id: "tokens-h" }, "Tokens"), tokenForm, created,
      table("Tokens (secrets are never stored: only their hashes)", ["id>", "name", "team", "scope", "created", "expires", "state", ""],
        tokens.items.map((t) => [String(t.id), t.name, t.team, t.scope, when(t.created_at_ms), t.expires_at_ms ? when(t.expires_at_ms) : "never",
          t.revoked_at_ms ? "revoked" : (t.expires_at_ms && t.expires_at_ms <= now ? "expired" : "active"),
          t.revoked_at_ms ? "" : h("button", { type: "button", class: "cancel", "data-token": t.id, onclick: (e) => revoke(t.id, e.currentTarget) }, "Revoke")]))),
    h("section", { "aria-labelledby": "contracts-h" },
      h("h2", { id: "contracts-h" }, "Contracts"),
      h("p", { class: "note" }, current ? `Version ${current.version} (${current.file_name}), applied by ${current.applied_by}. Every version is kept (GET /v1/contracts/history).` : "No contracts applied yet."),
      contractsForm, applied),
  ];
}

async function gateway() {
  const data = await api("/v1/gateways");
  if (!data.items.length) {
    return [h("h1", {}, "Gateway"), h("p", { class: "empty" },
      "No gateway configured. Add it to the server's config: gateways: [{name: main, metrics_url: http://127.0.0.1:8480/metrics}], or start with skyward up --gateway-metrics http://127.0.0.1:8480/metrics.")];
  }
  return [h("h1", {}, "Gateway")].concat(data.items.flatMap(gatewayView));
}

// ---- shell -------------------------------------------------------------

const PAGES = { overview, workloads, sites, commitments, gateway, admin };

function route() {
  const path = (location.hash.replace(/^#\/?/, "").split("?")[0]) || "overview";
  const parts = path.split("/");
  if (parts[0] === "workloads" && parts[1]) return { name: "workloads", run: () => workload(parts[1]) };
  const name = PAGES[parts[0]] ? parts[0] : "overview";
  return { name, run: PAGES[name] };
}

async function refresh(force) {
  if (!state.who) return;
  const r = route();
  const main = document.getElementById("main");
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === r.name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  try {
    const nodes = await r.run();
    // Live refresh replaces the page only when something changed, and
    // never under the user's typing.
    const probe = h("div", {}, nodes);
    const text = location.hash + probe.innerHTML;
    const typing = document.activeElement && ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName) && main.contains(document.activeElement);
    // An edit in progress is never thrown away (an action the user takes
    // clears `edited` before it asks for a redraw).
    if ((force || (text !== state.lastData && !typing)) && !state.edited) {
      state.lastData = text;
      state.edited = false;
      main.replaceChildren(...probe.childNodes);
      main.dataset.loaded = r.name;
      main.dataset.route = location.hash;
    }
    setStatus("Updated " + new Date().toLocaleTimeString());
  } catch (e) {
    if (e.status === 401) return;
    setStatus("Error: " + e.message, true);
    if (force) main.replaceChildren(h("h1", {}, "Error"), h("p", { class: "error" }, e.message));
  }
}

function showLogin(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("who").textContent = "";
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, size: 40, "aria-describedby": "token-help" });
  const form = h("form", { class: "login", onsubmit: async (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    await start();
  } },
  h("h1", {}, "Log in"),
  h("label", { for: "token" }, "API token"), input,
  h("p", { id: "token-help", class: "note" }, "A token from `skyward token create` (the admin token is in the server's state directory). It stays in this tab only."),
  h("button", { type: "submit", id: "login" }, "Log in"),
  message ? h("p", { class: "error", role: "alert" }, message) : null);
  document.getElementById("main").replaceChildren(form);
  input.focus();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.who = null;
  state.lastData = "";
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
  showLogin(message);
}

async function start() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return showLogin();
  try {
    state.who = await api("/v1/whoami");
  } catch (e) {
    if (e.status !== 401) showLogin("Cannot log in: " + e.message);
    return;
  }
  document.getElementById("nav").hidden = false;
  document.querySelector('#nav a[data-page="admin"]').hidden = state.who.scope !== "admin";
  document.getElementById("logout").hidden = false;
  document.getElementById("who").textContent = `${state.who.name} · ${state.who.team} · ${state.who.scope}`;
  if (!location.hash) location.hash = "#/overview";
  await refresh(true);
  if (state.timer) clearInterval(state.timer);
  state.timer = setInterval(() => { if (!document.hidden) refresh(false); }, REFRESH_MS);
}

window.addEventListener("hashchange", () => {
  state.lastData = "";
  state.flash = null;
  state.edited = false;
  refresh(true).then(() => document.getElementById("main").focus({ preventScroll: true }));
});
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("main").addEventListener("input", () => { state.edited = true; });
  document.getElementById("logout").addEventListener("click", () => logout("Logged out."));
  start();
});
