// Steward's web UI: a hash-routed single page over the server's own APIs (MLflow's tracking and
// registry routes and /api/steward/v1), no framework, no external assets. Each view fetches
// what it shows and renders it into <main>; charts are drawn on canvas, so a run comparison
// with 100,000 points stays fast.
"use strict";

const $main = document.getElementById("main");
const $error = document.getElementById("error");
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

function token() { return sessionStorage.getItem("steward-token"); }

async function api(path, options = {}) {
  // X-Requested-With: a refused call comes back without a Basic challenge, so the browser shows
  // no password dialog and the page asks for a token itself.
  const headers = Object.assign({ "Content-Type": "application/json", "X-Requested-With": "steward-ui" }, options.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  const res = await fetch(path, Object.assign({}, options, { headers }));
  const text = await res.text();
  if (res.status === 401) {
    askToken();
    const e = new Error("this server requires a token");
    e.auth = true;
    throw e;
  }
  let body = null;
  try { body = text ? JSON.parse(text) : {}; } catch (e) { body = { message: text }; }
  if (!res.ok) throw new Error((body && body.message) || res.status + " " + res.statusText);
  return body;
}

function askToken() {
  $main.innerHTML = "";
  $main.append(h("h1", {}, "Sign in"), h("p", {}, "This server requires an API token (steward token create --user NAME)."));
  const input = h("input", { type: "text", placeholder: "stw_…" });
  const button = h("button", { onclick: () => { sessionStorage.setItem("steward-token", input.value.trim()); route(); } }, "Use token");
  $main.append(input, " ", button);
}

// h("a", {href: "#/x"}, "text", child...): a DOM element; text is escaped by construction.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const fmtTime = (ms) => (ms ? new Date(Number(ms)).toISOString().replace("T", " ").slice(0, 19) : "");
const fmtNum = (v) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(5)) : v === undefined || v === null ? "" : String(v));
const q = (params) => "?" + new URLSearchParams(params).toString();

// A table whose columns sort by click. columns: [{label, get(row) -> value, render?(row) -> node, num?}]
function table(columns, rows, opts = {}) {
  let sortBy = opts.sortBy ?? null, asc = false;
  const wrap = h("div", {});
  const draw = () => {
    const sorted = rows.slice();
    if (sortBy !== null) {
      const get = columns[sortBy].get;
      sorted.sort((a, b) => {
        const x = get(a), y = get(b);
        const c = x === y ? 0 : x === undefined || x === "" ? 1 : y === undefined || y === "" ? -1 : x < y ? -1 : 1;
        return asc ? c : -c;
      });
    }
    const head = h("tr", {}, columns.map((c, i) => h("th", {
      class: "sortable" + (i === sortBy ? " sorted" + (asc ? " asc" : "") : ""),
      onclick: () => { if (sortBy === i) asc = !asc; else { sortBy = i; asc = false; } draw(); },
    }, c.label)));
    const body = sorted.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : "" }, c.render ? c.render(r) : fmtNum(c.get(r))))));
    wrap.replaceChildren(h("table", { class: opts.class || "" }, head, body));
  };
  draw();
  return wrap;
}

// Line chart on canvas. series: [{name, points: [[x, y], ...]}]. Returns the canvas; its
// dataset records how many points it drew and how long drawing took.
function chart(series, opts = {}) {
  const width = opts.width || 900, height = opts.height || 320, pad = { l: 56, r: 12, t: 12, b: 28 };
  const canvas = h("canvas", { width, height });
  const started = performance.now();
  const ctx = canvas.getContext("2d");
  let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity, n = 0;
  for (const s of series) for (const [x, y] of s.points) {
    if (!Number.isFinite(y)) continue;
    if (x < xmin) xmin = x; if (x > xmax) xmax = x; if (y < ymin) ymin = y; if (y > ymax) ymax = y; n++;
  }
  if (!n) { xmin = 0; xmax = 1; ymin = 0; ymax = 1; }
  if (xmax === xmin) xmax = xmin + 1;
  if (ymax === ymin) { ymax += 0.5; ymin -= 0.5; }
  const sx = (x) => pad.l + ((x - xmin) / (xmax - xmin)) * (width - pad.l - pad.r);
  const sy = (y) => height - pad.b - ((y - ymin) / (ymax - ymin)) * (height - pad.t - pad.b);
  ctx.font = "11px system-ui"; ctx.fillStyle = "#66717f"; ctx.strokeStyle = "#e5e9ee";
  for (let i = 0; i <= 4; i++) {
    const y = ymin + ((ymax - ymin) * i) / 4, py = sy(y);
    ctx.beginPath(); ctx.moveTo(pad.l, py); ctx.lineTo(width - pad.r, py); ctx.stroke();
    ctx.fillText(fmtNum(Number(y.toPrecision(3))), 4, py + 4);
    const x = xmin + ((xmax - xmin) * i) / 4;
    ctx.fillText(opts.time ? fmtTime(x).slice(11, 16) : fmtNum(Number(x.toPrecision(4))), sx(x) - 12, height - 8);
  }
  series.forEach((s, i) => {
    ctx.strokeStyle = s.color || COLORS[i % COLORS.length]; ctx.lineWidth = 1.2; ctx.beginPath();
    let first = true;
    for (const [x, y] of s.points) {
      if (!Number.isFinite(y)) { first = true; continue; }
      if (first) { ctx.moveTo(sx(x), sy(y)); first = false; } else ctx.lineTo(sx(x), sy(y));
    }
    ctx.stroke();
    if (opts.threshold !== undefined) {
      ctx.strokeStyle = "#b42318"; ctx.setLineDash([4, 4]); ctx.beginPath();
      ctx.moveTo(pad.l, sy(opts.threshold)); ctx.lineTo(width - pad.r, sy(opts.threshold)); ctx.stroke(); ctx.setLineDash([]);
    }
  });
  canvas.dataset.points = String(n);
  canvas.dataset.drawMs = (performance.now() - started).toFixed(1);
  const legend = h("div", { class: "legend" }, series.map((s, i) => h("span", {}, h("i", { style: "background:" + (s.color || COLORS[i % COLORS.length]) }), s.name)));
  return h("div", {}, opts.title ? h("h2", {}, opts.title) : null, canvas, legend);
}

// ---- views ----

async function experiments() {
  const r = await api("/api/2.0/mlflow/experiments/search" + q({ max_results: 1000 }));
  const rows = r.experiments || [];
  return [h("h1", {}, "Experiments"), table([
    { label: "Name", get: (e) => e.name, render: (e) => h("a", { href: "#/experiments/" + e.experiment_id }, e.name) },
    { label: "ID", get: (e) => Number(e.experiment_id), num: true },
    { label: "Stage", get: (e) => e.lifecycle_stage },
    { label: "Last updated", get: (e) => e.last_update_time, render: (e) => fmtTime(e.last_update_time) },
  ], rows, { sortBy: 3 })];
}

async function runs(id, params) {
  const filter = params.get("filter") || "";
  const exp = await api("/api/2.0/mlflow/experiments/get" + q({ experiment_id: id }));
  const rows = [];
  let page_token;
  do {
    const body = { experiment_ids: [id], filter, max_results: 1000, order_by: ["attributes.start_time DESC"] };
    if (page_token) body.page_token = page_token;
    const r = await api("/api/2.0/mlflow/runs/search", { method: "POST", body: JSON.stringify(body) });
    rows.push(...(r.runs || []));
    page_token = r.next_page_token;
  } while (page_token && rows.length < 5000);
  const metricKeys = [...new Set(rows.flatMap((r) => (r.data.metrics || []).map((m) => m.key)))].sort().slice(0, 10);
  const paramKeys = [...new Set(rows.flatMap((r) => (r.data.params || []).map((p) => p.key)))].sort().slice(0, 6);
  const value = (list, key) => { const x = (list || []).find((m) => m.key === key); return x ? x.value : undefined; };
  const selected = new Set();
  const input = h("input", { type: "text", value: filter, placeholder: "metrics.roc_auc > 0.7 and params.model = 'gbt'" });
  const search = h("form", { onsubmit: (e) => { e.preventDefault(); location.hash = "#/experiments/" + id + q({ filter: input.value }); } }, "Filter: ", input, " ", h("button", {}, "Search"));
  const compare = h("button", { onclick: () => { if (selected.size) location.hash = "#/compare" + q({ runs: [...selected].join(",") }); } }, "Compare selected");
  const columns = [
    { label: "", get: () => "", render: (r) => h("input", { type: "checkbox", onchange: (e) => (e.target.checked ? selected.add(r.info.run_id) : selected.delete(r.info.run_id)) }) },
    { label: "Run", get: (r) => r.info.run_name, render: (r) => h("a", { href: "#/runs/" + r.info.run_id }, r.info.run_name || r.info.run_id) },
    { label: "Status", get: (r) => r.info.status },
    { label: "Started", get: (r) => r.info.start_time, render: (r) => fmtTime(r.info.start_time) },
    ...metricKeys.map((k) => ({ label: k, get: (r) => value(r.data.metrics, k), num: true })),
    ...paramKeys.map((k) => ({ label: "param " + k, get: (r) => value(r.data.params, k) })),
  ];
  return [h("h1", {}, "Runs of " + exp.experiment.name), search, h("p", { class: "muted" }, rows.length + " runs. Click a header to sort."), compare, table(columns, rows)];
}

async function run(id) {
  const r = (await api("/api/2.0/mlflow/runs/get" + q({ run_id: id }))).run;
  const arts = await api("/api/2.0/mlflow/artifacts/list" + q({ run_id: id })).catch(() => ({ files: [] }));
  const metrics = r.data.metrics || [];
  return [
    h("h1", {}, "Run " + (r.info.run_name || id)),
    h("p", { class: "muted" }, r.info.status + " · started " + fmtTime(r.info.start_time) + " · " + id),
    h("h2", {}, "Metrics"),
    table([
      { label: "Metric", get: (m) => m.key, render: (m) => h("a", { href: "#/compare" + q({ runs: id, metric: m.key }) }, m.key) },
      { label: "Latest", get: (m) => m.value, num: true },
      { label: "Step", get: (m) => m.step, num: true },
    ], metrics),
    h("h2", {}, "Parameters"),
    table([{ label: "Key", get: (p) => p.key }, { label: "Value", get: (p) => p.value }], r.data.params || []),
    h("h2", {}, "Tags"),
    table([{ label: "Key", get: (t) => t.key }, { label: "Value", get: (t) => t.value }], (r.data.tags || []).filter((t) => !t.key.startsWith("mlflow.log-model"))),
    h("h2", {}, "Artifacts"),
    table([{ label: "Path", get: (f) => f.path }, { label: "Size", get: (f) => f.file_size, num: true }], arts.files || []),
  ];
}

async function history(run_id, metric_key) {
  const points = [];
  let page_token;
  do {
    const r = await api("/api/2.0/mlflow/metrics/get-history" + q(Object.assign({ run_id, metric_key, max_results: 25000 }, page_token ? { page_token } : {})));
    for (const m of r.metrics || []) points.push([m.step, m.value]);
    page_token = r.next_page_token;
  } while (page_token);
  return points;
}

async function compare(params) {
  const ids = (params.get("runs") || "").split(",").filter(Boolean);
  if (!ids.length) return [h("h1", {}, "Compare runs"), h("p", {}, "Select runs in an experiment first.")];
  const started = performance.now();
  const runsGot = await Promise.all(ids.map((id) => api("/api/2.0/mlflow/runs/get" + q({ run_id: id })).then((r) => r.run)));
  const keys = [...new Set(runsGot.flatMap((r) => (r.data.metrics || []).map((m) => m.key)))].sort();
  const metric = params.get("metric") || keys[0];
  const pick = h("select", { onchange: (e) => { location.hash = "#/compare" + q({ runs: ids.join(","), metric: e.target.value }); } }, keys.map((k) => h("option", k === metric ? { value: k, selected: "" } : { value: k }, k)));
  const series = await Promise.all(runsGot.map(async (r) => ({ name: r.info.run_name || r.info.run_id, points: metric ? await history(r.info.run_id, metric) : [] })));
  series.forEach((s) => s.points.sort((a, b) => a[0] - b[0]));
  const drawn = chart(series, { title: metric, width: 1100, height: 420 });
  const canvas = drawn.querySelector("canvas");
  const total = performance.now() - started;
  canvas.id = "compare-chart";
  canvas.dataset.totalMs = total.toFixed(1);
  const table_ = table([
    { label: "Run", get: (r) => r.info.run_name || r.info.run_id },
    ...keys.map((k) => ({ label: k, get: (r) => ((r.data.metrics || []).find((m) => m.key === k) || {}).value, num: true })),
  ], runsGot);
  return [h("h1", {}, "Compare " + ids.length + " run(s)"), h("p", {}, "Metric: ", pick, " ", h("span", { class: "muted", id: "chart-timing" }, canvas.dataset.points + " points: fetched and drawn in " + total.toFixed(0) + " ms (drawing " + canvas.dataset.drawMs + " ms)")), drawn, h("h2", {}, "Latest values"), table_];
}

async function models() {
  const r = await api("/api/2.0/mlflow/registered-models/search" + q({ max_results: 1000 }));
  const rows = r.registered_models || [];
  return [h("h1", {}, "Model registry"), table([
    { label: "Model", get: (m) => m.name, render: (m) => h("a", { href: "#/models/" + encodeURIComponent(m.name) }, m.name) },
    { label: "Latest version", get: (m) => Math.max(0, ...(m.latest_versions || []).map((v) => Number(v.version))), num: true },
    { label: "Aliases", get: (m) => (m.aliases || []).map((a) => a.alias + "→v" + a.version).join(", ") },
    { label: "Updated", get: (m) => m.last_updated_timestamp, render: (m) => fmtTime(m.last_updated_timestamp) },
  ], rows)];
}

async function model(name) {
  const [m, vs, hist] = await Promise.all([
    api("/api/2.0/mlflow/registered-models/get" + q({ name })),
    api("/api/2.0/mlflow/model-versions/search" + q({ filter: "name='" + name.replace(/'/g, "\\'") + "'", max_results: 1000 })),
    api("/api/steward/v1/registry/models/" + encodeURIComponent(name) + "/history").catch(() => ({ events: [] })),
  ]);
  // Documents open in a new tab; with a token, fetched with it and opened from memory.
  const doc = (v, kind, label) => {
    const url = "/api/steward/v1/registry/models/" + encodeURIComponent(name) + "/versions/" + v.version + "/documents/" + kind + "?format=html";
    const open = async (e) => {
      if (!token()) return;
      e.preventDefault();
      const res = await fetch(url, { headers: { Authorization: "Bearer " + token() } });
      if (!res.ok) { showError(new Error("the document could not be built (HTTP " + res.status + ")")); return; }
      window.open(URL.createObjectURL(await res.blob()), "_blank");
    };
    return h("a", { href: url, target: "_blank", onclick: open }, label);
  };
  // Version search answers carry no aliases (as in MLflow): the model's alias list does.
  const aliasesOf = (v) => (m.registered_model.aliases || []).filter((a) => String(a.version) === String(v.version)).map((a) => a.alias);
  const versions = (vs.model_versions || []).map((v) => Object.assign({}, v, { aliases: aliasesOf(v) }));
  return [
    h("h1", {}, "Model " + name),
    m.registered_model.description ? h("p", {}, m.registered_model.description) : null,
    h("h2", {}, "Versions"),
    table([
      { label: "Version", get: (v) => Number(v.version), num: true },
      { label: "Aliases", get: (v) => v.aliases.join(", "), render: (v) => v.aliases.map((a) => h("span", { class: "pill alias" }, a)) },
      { label: "Stage", get: (v) => v.current_stage },
      { label: "Created", get: (v) => v.creation_timestamp, render: (v) => fmtTime(v.creation_timestamp) },
      { label: "By", get: (v) => v.user_id },
      { label: "Run", get: (v) => v.run_id, render: (v) => (v.run_id ? h("a", { href: "#/runs/" + v.run_id }, v.run_id.slice(0, 8)) : "") },
      { label: "Lineage", get: () => "", render: (v) => h("a", { href: "#/lineage/" + encodeURIComponent(name) + "/" + v.version }, "graph") },
      { label: "Documents", get: () => "", render: (v) => [doc(v, "validation-report", "validation report"), " · ", doc(v, "model-card", "model card"), " · ", doc(v, "annex-iv", "Annex IV")] },
    ], versions, { sortBy: 0 }),
    h("h2", {}, "Alias and stage history"),
    table([
      { label: "Time", get: (e) => e.time, render: (e) => fmtTime(e.time) },
      { label: "Kind", get: (e) => e.kind },
      { label: "Alias / stage", get: (e) => e.label },
      { label: "Version", get: (e) => e.version },
      { label: "By", get: (e) => e.actor },
    ], hist.events || hist.history || [], { sortBy: 0 }),
  ];
}

async function lineage(name, version) {
  const l = await api("/api/steward/v1/registry/models/" + encodeURIComponent(name) + "/versions/" + version + "/lineage");
  const node = (title, ...lines) => h("div", { class: "node" }, h("strong", {}, title), lines.map((x) => h("div", { class: "muted" }, x)));
  const datasets = (l.dataset_versions || []).map((d) => node("dataset " + d.name + " v" + d.version, d.rows + " rows", String(d.fingerprint).slice(0, 23) + "…"));
  const inputs = (l.inputs || []).filter((i) => !(l.dataset_versions || []).some((d) => String(d.fingerprint).includes(i.digest))).map((i) => node("input " + i.name, i.digest));
  const run = l.model_version.run_id ? node("run", h("a", { href: "#/runs/" + l.model_version.run_id }, l.model_version.run_id.slice(0, 12))) : node("run", "none recorded");
  const deps = (l.deployments || []).map((d) => node("deployment " + d.deployment, d.role));
  const col = (nodes) => h("div", { class: "col" }, nodes.length ? nodes : [h("div", { class: "node muted" }, "none")]);
  const arrow = () => h("div", { class: "arrow" }, "→");
  return [h("h1", {}, "Lineage of " + name + " version " + version), h("div", { class: "graph" }, col([...datasets, ...inputs]), arrow(), col([run]), arrow(), col([node(name + " v" + version)]), arrow(), col(deps))];
}

// Live request rate and latency per route from the Prometheus text at /metrics.
async function scrape() {
  const res = await fetch("/metrics");
  const text = await res.text();
  const out = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^(steward_requests_total|steward_request_duration_seconds_sum)\{deployment="([^"]*)",route="([^"]*)",model="([^"]*)",version="([^"]*)"\} ([0-9.e+-]+)$/);
    if (!m) continue;
    const key = m[2] + "/" + m[3];
    out[key] = out[key] || { requests: 0, seconds: 0 };
    if (m[1] === "steward_requests_total") out[key].requests += Number(m[6]); else out[key].seconds += Number(m[6]);
  }
  return { at: performance.now(), routes: out };
}

let liveTimer = null;
async function deployments() {
  const r = await api("/api/steward/v1/deployments");
  const list = r.deployments || [];
  let last = await scrape();
  const cells = {};
  const rows = list.flatMap((d) => (d.routes || []).map((route) => ({ d, route })));
  const live = (x) => {
    const key = x.d.name + "/" + x.route.role;
    cells[key] = cells[key] || { rate: h("span", {}, "…"), latency: h("span", {}, "…") };
    return cells[key];
  };
  const view = table([
    { label: "Deployment", get: (x) => x.d.name, render: (x) => h("a", { href: "#/monitoring/" + encodeURIComponent(x.d.name) }, x.d.name) },
    { label: "Route", get: (x) => x.route.role },
    { label: "Model", get: (x) => x.route.model + " v" + x.route.version },
    { label: "Weight %", get: (x) => x.route.weight, num: true },
    { label: "Requests/s", get: () => "", render: (x) => live(x).rate },
    { label: "Mean latency", get: () => "", render: (x) => live(x).latency },
    { label: "Fallback", get: (x) => x.d.fallback || "" },
  ], rows);
  clearInterval(liveTimer);
  const tick = async () => {
    if (!document.body.contains(view)) { clearInterval(liveTimer); return; }
    const now = await scrape();
    const dt = (now.at - last.at) / 1000;
    for (const [key, c] of Object.entries(cells)) {
      const a = last.routes[key] || { requests: 0, seconds: 0 }, b = now.routes[key] || { requests: 0, seconds: 0 };
      const n = b.requests - a.requests;
      c.rate.textContent = dt > 0 ? (n / dt).toFixed(1) : "0";
      c.latency.textContent = n > 0 ? (((b.seconds - a.seconds) / n) * 1000).toFixed(2) + " ms" : b.requests ? ((b.seconds / b.requests) * 1000).toFixed(2) + " ms (all time)" : "—";
    }
    last = now;
  };
  liveTimer = setInterval(tick, 2000);
  setTimeout(tick, 300);
  return [h("h1", {}, "Deployments"), h("p", { class: "muted" }, "Request rate and latency update every 2 s from /metrics."), view];
}

// Every page of a deployment's monitor series (the API pages it, with next_page_token while
// more rows remain), as one answer.
async function monitorSeries(name) {
  const path = "/api/steward/v1/deployments/" + encodeURIComponent(name) + "/monitor/metrics";
  let metrics = [], next = "";
  do {
    const page = await api(path + q(next ? { max_results: 50000, page_token: next } : { max_results: 50000 }));
    metrics = metrics.concat(page.metrics || []);
    next = page.next_page_token || "";
  } while (next);
  return { metrics };
}

async function monitoring(name) {
  const [m, alerts] = await Promise.all([
    monitorSeries(name),
    api("/api/steward/v1/alerts" + q({ deployment: name, max_results: 200 })),
  ]);
  const by = {};
  for (const p of m.metrics || []) {
    const key = p.metric;
    by[key] = by[key] || {};
    (by[key][p.feature || "(deployment)"] = by[key][p.feature || "(deployment)"] || []).push([p.window_end, p.value]);
  }
  const order = ["drift_share", "drift_score", "roc_auc", "accuracy", "adverse_impact_ratio", "positive_rate", "latency_p95_ms", "error_rate"];
  const names = Object.keys(by).sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  const charts = names.slice(0, 12).map((k) => chart(Object.entries(by[k]).map(([f, pts]) => ({ name: f, points: pts.sort((a, b) => a[0] - b[0]) })), { title: k, width: 560, height: 220, time: true }));
  return [
    h("h1", {}, "Monitoring " + name),
    names.length ? h("div", { class: "charts" }, charts) : h("p", {}, "No monitor windows yet."),
    h("h2", {}, "Alerts"),
    table([
      { label: "Time", get: (a) => a.time, render: (a) => fmtTime(a.time) },
      { label: "Kind", get: (a) => a.kind },
      { label: "Value", get: (a) => a.value, num: true },
      { label: "Threshold", get: (a) => a.threshold, num: true },
      { label: "Message", get: (a) => a.message },
    ], alerts.alerts || [], { sortBy: 0 }),
  ];
}

async function incidents() {
  const [i, a] = await Promise.all([api("/api/steward/v1/incidents"), api("/api/steward/v1/agent/actions")]);
  const list = (i.incidents || []).slice().reverse();
  const actions = a.actions || [];
  if (!list.length) return [h("h1", {}, "Incidents"), h("p", {}, "No incidents.")];
  return [h("h1", {}, "Incidents"), list.map((x) => h("div", { class: "card incident" },
    h("h2", {}, x.kind.replace(/_/g, " ") + " on " + x.deployment + " ", h("span", { class: "pill" }, x.status)),
    h("p", { class: "muted" }, "Opened " + fmtTime(x.opened) + " by trigger '" + x.trigger + "' · " + x.id),
    h("p", {}, "Evidence: " + x.evidence.metric + (x.evidence.feature ? " of " + x.evidence.feature : "") + " = " + (x.evidence.windows || []).map((w) => Number(w[1]).toFixed(3)).join(", ")),
    (x.analyses || []).map((an) => h("div", {}, h("strong", {}, "Analysis (" + an.source + ")"), h("pre", {}, an.text))),
    table([
      { label: "Requested", get: (c) => c.requested, render: (c) => fmtTime(c.requested) },
      { label: "Action", get: (c) => c.kind },
      { label: "Status", get: (c) => c.status },
      { label: "Decided by", get: (c) => c.decided_by || "policy" },
      { label: "Outcome", get: (c) => c.outcome || c.decision_reason || "" },
    ], actions.filter((c) => c.incident_id === x.id)),
  )), h("h2", {}, "Actions without an incident (canary steps, promotions, rollbacks)"), table([
    { label: "Requested", get: (c) => c.requested, render: (c) => fmtTime(c.requested) },
    { label: "Deployment", get: (c) => c.deployment },
    { label: "Action", get: (c) => c.kind },
    { label: "Status", get: (c) => c.status },
    { label: "Reason", get: (c) => c.reason },
    { label: "Outcome", get: (c) => c.outcome || "" },
  ], actions.filter((c) => !c.incident_id), { sortBy: 0 })];
}

async function approvals() {
  const r = await api("/api/steward/v1/agent/actions" + q({ status: "pending" }));
  const pending = r.actions || [];
  const decide = async (id, decision, reason) => {
    try {
      await api("/api/steward/v1/agent/actions/" + id + "/decision", { method: "POST", body: JSON.stringify({ decision, reason }) });
      route();
    } catch (e) { showError(e); }
  };
  const row = (a) => {
    const reason = h("input", { type: "text", placeholder: "reason (required)" });
    const go = (d) => () => (reason.value.trim() ? decide(a.id, d, reason.value.trim()) : showError(new Error("a decision needs a reason")));
    return h("div", { class: "card" }, h("strong", {}, a.kind + " on " + a.deployment), h("p", {}, a.reason), h("p", { class: "muted" }, "requested " + fmtTime(a.requested)), reason, " ", h("button", { onclick: go("approve") }, "Approve"), " ", h("button", { onclick: go("reject") }, "Reject"));
  };
  return [h("h1", {}, "Approval queue"), h("p", { class: "muted" }, "Actions a policy reserves for a validator or admin. Approving a promotion is refused to the version's creator (four-eyes)."), pending.length ? pending.map(row) : h("p", {}, "Nothing waits for approval.")];
}

async function audit(params) {
  const after = Number(params.get("after") || 0);
  const [v, l] = await Promise.all([api("/api/steward/v1/audit/verify"), api("/api/steward/v1/audit" + q({ after, limit: 200 }))]);
  const status = v.intact ? h("p", { class: "ok", id: "ledger-status" }, "Ledger verified intact: " + v.entries + " entries, each hash-chained to the one before.") : h("p", { class: "bad", id: "ledger-status" }, "Ledger BROKEN at entry " + v.broken_at + ": " + v.reason);
  const next = l.next_after ? h("a", { href: "#/audit" + q({ after: l.next_after }) }, "Next 200 →") : null;
  return [h("h1", {}, "Audit ledger"), status, table([
    { label: "#", get: (e) => e.seq, num: true },
    { label: "Time", get: (e) => e.time, render: (e) => fmtTime(e.time) },
    { label: "Actor", get: (e) => e.actor },
    { label: "Action", get: (e) => e.action },
    { label: "Entity", get: (e) => e.entity_kind + " " + e.entity_id },
    { label: "Reason", get: (e) => e.reason || "" },
    { label: "Hash", get: (e) => e.hash, render: (e) => h("code", {}, String(e.hash).slice(0, 12)) },
  ], l.entries || [], { sortBy: 0 }), next];
}

// ---- router ----

function showError(e) { $error.hidden = false; $error.textContent = e.message; }

const routes = [
  [/^#\/experiments\/([^/?]+)$/, (m, p) => runs(m[1], p)],
  [/^#\/experiments$/, () => experiments()],
  [/^#\/runs\/([^/?]+)$/, (m) => run(m[1])],
  [/^#\/compare$/, (m, p) => compare(p)],
  [/^#\/models\/([^/?]+)$/, (m) => model(decodeURIComponent(m[1]))],
  [/^#\/models$/, () => models()],
  [/^#\/lineage\/([^/?]+)\/(\d+)$/, (m) => lineage(decodeURIComponent(m[1]), m[2])],
  [/^#\/deployments$/, () => deployments()],
  [/^#\/monitoring\/([^/?]+)$/, (m) => monitoring(decodeURIComponent(m[1]))],
  [/^#\/incidents$/, () => incidents()],
  [/^#\/approvals$/, () => approvals()],
  [/^#\/audit$/, (m, p) => audit(p)],
];

async function route() {
  const hash = location.hash || "#/experiments";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  $error.hidden = true;
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", path.startsWith(a.getAttribute("href")));
  const found = routes.find(([re]) => re.test(path));
  if (!found) { $main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, "No page at " + path)); return; }
  $main.dataset.view = path;
  $main.dataset.ready = "false";
  try {
    const nodes = await found[1](path.match(found[0]), params);
    $main.replaceChildren(...[nodes].flat(2).filter(Boolean));
  } catch (e) {
    showError(e);
    // Asked for a token: the sign-in form stays.
    if (!e.auth) $main.replaceChildren(h("p", {}, "This page could not be loaded."));
  }
  $main.dataset.ready = "true";
}

window.addEventListener("hashchange", route);
route();
