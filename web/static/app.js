// runlog's web UI. Everything the page shows from a run is set as text
// (textContent, never innerHTML): a run name or console line that holds
// markup shows as that markup, it never becomes part of the page.
"use strict";

const COLORS = ["#3b5bdb", "#e8590c", "#2f9e44", "#c2255c", "#1098ad", "#7048e8", "#f08c00", "#5c940d", "#d6336c", "#495057"];

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

async function api(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (r.status === 401) { location.href = "/login"; throw new Error("unauthorized"); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function fmtTime(ns) {
  if (!ns) return "";
  const d = new Date(ns / 1e6);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtDuration(ns) {
  if (!ns) return "";
  let s = Math.round(ns / 1e9);
  if (s < 60) return s + "s";
  const d = Math.floor(s / 86400); s %= 86400;
  const hh = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60); s %= 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${m}m`;
  return `${m}m ${s}s`;
}

function fmtNum(v) {
  if (typeof v !== "number") return v;
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return String(Number(v.toPrecision(5)));
}

function fmtValue(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v, null, 1).replace(/\n\s*/g, " ");
  if (typeof v === "number") return fmtNum(v);
  return String(v);
}

function stateBadge(state, big) {
  return h("span", { class: `state ${state}${big ? " big" : ""}`, "data-state": state, text: state });
}

// ---------------------------------------------------------------- runs table

const runsView = {
  state: null,
};

function runsState() {
  const q = new URLSearchParams(location.search);
  return {
    project: q.get("project") || "",
    q: q.get("q") || "",
    status: q.get("state") || "",
    sort: q.get("sort") || "start",
    desc: q.has("desc") ? q.get("desc") === "1" : true,
    offset: parseInt(q.get("offset") || "0", 10),
    cols: (q.get("cols") || "").split(",").filter(Boolean),
    selected: new Set(),
  };
}

function pushRuns(st) {
  const q = new URLSearchParams();
  if (st.project) q.set("project", st.project);
  if (st.q) q.set("q", st.q);
  if (st.status) q.set("state", st.status);
  if (st.sort !== "start" || !st.desc) { q.set("sort", st.sort); q.set("desc", st.desc ? "1" : "0"); }
  if (st.offset) q.set("offset", st.offset);
  if (st.cols.length) q.set("cols", st.cols.join(","));
  const s = q.toString();
  history.replaceState(null, "", "/" + (s ? "?" + s : ""));
}

const PAGE = 100;

async function renderRuns(app) {
  const st = runsView.state || (runsView.state = runsState());
  const q = new URLSearchParams({ sort: st.sort, desc: st.desc ? "1" : "0", offset: st.offset, limit: PAGE });
  if (st.project) q.set("project", st.project);
  if (st.q) q.set("q", st.q);
  if (st.status) q.set("state", st.status);
  if (st.cols.length) q.set("cols", st.cols.join(","));
  const data = await api("/api/runs?" + q);
  pushRuns(st);

  const rerender = () => renderRuns(app).catch(showError);
  const projectSel = h("select", { id: "project", onchange: (e) => { st.project = e.target.value; st.offset = 0; rerender(); } },
    h("option", { value: "", text: "All projects" }),
    Object.keys(data.projects).sort().map((p) => h("option", { value: p, selected: p === st.project, text: `${p || "(none)"} (${data.projects[p]})` })));
  let searchTimer;
  const search = h("input", { type: "search", id: "search", placeholder: "Search name, tag, group, id", value: st.q, size: 32,
    oninput: (e) => { clearTimeout(searchTimer); searchTimer = setTimeout(() => { st.q = e.target.value; st.offset = 0; rerender(); }, 200); } });
  const stateSel = h("select", { id: "statefilter", onchange: (e) => { st.status = e.target.value; st.offset = 0; rerender(); } },
    ["", "running", "finished", "failed", "crashed", "killed", "preempted"].map((s) => h("option", { value: s, selected: s === st.status, text: s || "Any state" })));
  const addCol = h("select", { id: "addcol", onchange: (e) => { const c = e.target.value; if (c && !st.cols.includes(c)) { st.cols.push(c); rerender(); } } },
    h("option", { value: "", text: "+ Add column" }),
    h("optgroup", { label: "Summary" }, data.summary_keys.filter((k) => !st.cols.includes("summary." + k)).map((k) => h("option", { value: "summary." + k, text: k }))),
    h("optgroup", { label: "Config" }, data.config_keys.filter((k) => !st.cols.includes("config." + k)).map((k) => h("option", { value: "config." + k, text: k }))));
  const compareBtn = h("button", { class: "primary", id: "compare", disabled: st.selected.size < 2,
    onclick: () => go("/compare?ids=" + [...st.selected].map(encodeURIComponent).join(",")) }, `Compare (${st.selected.size})`);

  const sortBy = (col) => { if (st.sort === col) st.desc = !st.desc; else { st.sort = col; st.desc = col !== "name"; } st.offset = 0; rerender(); };
  const th = (label, col, num) => h("th", { class: `sortable${st.sort === col ? " sorted" : ""}${num ? " num" : ""}`, "data-col": col, onclick: () => sortBy(col) },
    label, st.sort === col ? (st.desc ? " ↓" : " ↑") : "");
  const extra = st.cols.map((c) => h("th", { class: `sortable num${st.sort === c ? " sorted" : ""}`, "data-col": c },
    h("span", { class: "colchip" }, h("span", { onclick: () => sortBy(c), text: c.replace(/^(summary|config)\./, "") + (st.sort === c ? (st.desc ? " ↓" : " ↑") : "") }),
      h("button", { title: "Remove column", onclick: () => { st.cols = st.cols.filter((x) => x !== c); if (st.sort === c) st.sort = "start"; rerender(); } }, "×"))));
  const rows = data.runs.map((r) => h("tr", { "data-id": r.id },
    h("td", {}, h("input", { type: "checkbox", class: "sel", checked: st.selected.has(r.id),
      onchange: (e) => { e.target.checked ? st.selected.add(r.id) : st.selected.delete(r.id); compareBtn.disabled = st.selected.size < 2; compareBtn.textContent = `Compare (${st.selected.size})`; } })),
    h("td", {}, stateBadge(r.state)),
    h("td", { class: "name" }, h("a", { href: "/run/" + encodeURIComponent(r.id), text: r.name || r.id }), (r.tags || []).map((t) => h("span", { class: "tag", text: t }))),
    h("td", { class: "muted", text: r.project }),
    h("td", { class: "muted", text: r.group }),
    h("td", { text: fmtTime(r.start) }),
    h("td", { class: "num", text: fmtDuration(r.duration) }),
    h("td", { class: "num", text: fmtNum(r.last_step) }),
    st.cols.map((c) => h("td", { class: "num", "data-col": c, text: fmtValue(r.values[c]) }))));

  const end = Math.min(st.offset + PAGE, data.total);
  app.replaceChildren(
    h("div", { class: "toolbar" }, h("h1", { text: "Runs" }), h("span", { class: "muted", id: "total", text: `${data.total.toLocaleString("en-US")} runs` }), h("span", { class: "grow" }), compareBtn),
    h("div", { class: "toolbar" }, projectSel, search, stateSel, addCol),
    h("div", { class: "panel" }, h("table", { class: "grid", id: "runs" },
      h("thead", {}, h("tr", {}, h("th", {}), th("State", "state"), th("Name", "name"), th("Project", "project"), th("Group", "group"), th("Started", "start"), th("Duration", "duration", true), th("Step", "step", true), extra)),
      h("tbody", {}, rows)),
      data.total === 0 ? h("div", { class: "empty", text: "No runs match." }) : null),
    h("div", { class: "pager" },
      h("span", { class: "muted", text: data.total ? `${st.offset + 1}–${end} of ${data.total.toLocaleString("en-US")}` : "" }),
      h("button", { disabled: st.offset === 0, onclick: () => { st.offset = Math.max(0, st.offset - PAGE); rerender(); } }, "Previous"),
      h("button", { disabled: end >= data.total, onclick: () => { st.offset += PAGE; rerender(); } }, "Next")));
  const s = document.getElementById("search");
  if (st.q && document.activeElement !== s) { s.focus(); s.setSelectionRange(s.value.length, s.value.length); }
}

// ---------------------------------------------------------------- charts

const chartOpts = { x: "step", log: false, smooth: 0 };

function ema(values, alpha) {
  if (!alpha) return values;
  const out = new Array(values.length);
  let acc = null;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) { out[i] = null; continue; }
    acc = acc === null ? v : alpha * acc + (1 - alpha) * v;
    out[i] = acc;
  }
  return out;
}

// stepToTime maps steps to unix seconds by interpolating the chart's time
// samples.
function stepToTime(ts, times) {
  return (step) => {
    if (!ts || !ts.length) return step;
    let lo = 0, hi = ts.length - 1;
    if (step <= ts[0]) return times[0] / 1e9;
    if (step >= ts[hi]) return times[hi] / 1e9;
    while (hi - lo > 1) { const m = (lo + hi) >> 1; if (ts[m] <= step) lo = m; else hi = m; }
    const f = ts[hi] === ts[lo] ? 0 : (step - ts[lo]) / (ts[hi] - ts[lo]);
    return (times[lo] + f * (times[hi] - times[lo])) / 1e9;
  };
}

function groupOf(key) {
  const i = key.indexOf("/");
  return i > 0 ? key.slice(0, i) : "";
}

// A chart of one key: series is [{label, color, steps, values}].
class Chart {
  constructor(key, onZoom) {
    this.key = key;
    this.onZoom = onZoom;
    this.meta = h("span", { class: "meta" });
    this.plotEl = h("div", { class: "plot" });
    this.el = h("div", { class: "panel chart", "data-key": key }, h("div", { class: "title" }, h("span", { text: key }), this.meta), this.plotEl);
    this.el._chart = this;
    this.series = [];
    this.u = null;
  }

  set(series, timeMap) {
    this.series = series;
    this.timeMap = timeMap;
    this.draw();
  }

  data() {
    const toX = chartOpts.x === "time" && this.timeMap ? this.timeMap : (s) => s;
    if (this.series.length === 1) {
      const s = this.series[0];
      return [s.steps.map(toX), ema(s.values, chartOpts.smooth)];
    }
    const joined = uPlot.join(this.series.map((s) => [s.steps.map(toX), ema(s.values, chartOpts.smooth)]));
    return joined;
  }

  draw() {
    const width = Math.max(300, this.el.clientWidth - 24);
    const data = this.data();
    const points = this.series.reduce((n, s) => n + s.steps.length, 0);
    this.el.dataset.points = String(points);
    this.meta.textContent = points.toLocaleString("en-US") + " pts";
    const opts = {
      width, height: 200,
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: chartOpts.x === "time" }, y: { distr: chartOpts.log ? 3 : 1 } },
      axes: [{ stroke: "#6b7385", grid: { stroke: "#eef0f4" } }, { stroke: "#6b7385", grid: { stroke: "#eef0f4" }, size: 56 }],
      legend: { show: this.series.length > 1 },
      series: [{ label: chartOpts.x === "time" ? "time" : "step" }].concat(this.series.map((s) => ({
        label: s.label, stroke: s.color, width: 1.5, spanGaps: true, points: { show: s.steps.length < 60 },
      }))),
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 5) return;
          const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ width: 0, height: 0 }, false);
          this.onZoom && this.onZoom(a, b);
        }],
      },
    };
    if (chartOpts.log) {
      // A log scale drops values at or below zero.
      for (let i = 1; i < data.length; i++) data[i] = data[i].map((v) => (v > 0 ? v : null));
    }
    if (this.u) this.u.destroy();
    this.u = new uPlot(opts, data, this.plotEl);
    this.el._u = this.u;
  }

  append(label, steps, values) {
    const s = this.series.find((x) => x.label === label);
    if (!s) return;
    s.steps.push(...steps);
    s.values.push(...values);
    this.draw();
  }
}

function chartControls(onChange, onReset) {
  return h("div", { class: "toolbar" },
    h("label", {}, "x axis ", h("select", { id: "xaxis", onchange: (e) => { chartOpts.x = e.target.value; onChange(); } },
      h("option", { value: "step", selected: chartOpts.x === "step", text: "step" }), h("option", { value: "time", selected: chartOpts.x === "time", text: "wall time" }))),
    h("label", {}, h("input", { type: "checkbox", id: "logscale", checked: chartOpts.log, onchange: (e) => { chartOpts.log = e.target.checked; onChange(); } }), " log scale"),
    h("label", {}, "smoothing ", h("input", { type: "range", id: "smooth", min: 0, max: 0.99, step: 0.01, value: chartOpts.smooth,
      oninput: (e) => { chartOpts.smooth = parseFloat(e.target.value); onChange(); } })),
    h("span", { class: "grow" }),
    h("span", { class: "muted", id: "zoominfo" }),
    h("button", { id: "resetzoom", onclick: onReset }, "Reset zoom"));
}

// A set of charts, one per key, grouped by prefix; each series is one run.
class ChartSet {
  constructor(runs, container) {
    this.runs = runs; // [{id, label, color}]
    this.container = container;
    this.charts = new Map();
    this.range = null;
  }

  async load() {
    const q = new URLSearchParams({ points: "600" });
    if (this.range) { q.set("min", Math.floor(this.range[0])); q.set("max", Math.ceil(this.range[1])); }
    const results = await Promise.all(this.runs.map((r) => api(`/api/runs/${encodeURIComponent(r.id)}/chart?${q}`)));
    this.results = results;
    const keys = new Set();
    results.forEach((r) => Object.keys(r.chart.series).forEach((k) => keys.add(k)));
    const sorted = [...keys].sort((a, b) => (groupOf(a) === groupOf(b) ? a.localeCompare(b) : groupOf(a).localeCompare(groupOf(b))));
    if (!this.charts.size || sorted.some((k) => !this.charts.has(k))) this.layout(sorted);
    for (const [key, chart] of this.charts) {
      const series = [];
      results.forEach((res, i) => {
        const s = res.chart.series[key] || { steps: [], values: [] };
        series.push({ label: this.runs[i].label, color: this.runs[i].color, steps: s.steps, values: s.values });
      });
      const tm = results[0].chart.time_steps ? stepToTime(results[0].chart.time_steps, results[0].chart.times) : null;
      chart.set(series, tm);
    }
    const info = document.getElementById("zoominfo");
    if (info) info.textContent = this.range ? `steps ${fmtNum(Math.floor(this.range[0]))}–${fmtNum(Math.ceil(this.range[1]))}` : "";
    return results;
  }

  layout(keys) {
    this.charts.clear();
    const groups = new Map();
    for (const k of keys) {
      const g = groupOf(k);
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(k);
    }
    const parts = [];
    for (const [g, ks] of groups) {
      parts.push(h("div", { class: "group-title", text: g || "charts" }));
      parts.push(h("div", { class: "charts", "data-group": g }, ks.map((k) => {
        const c = new Chart(k, (a, b) => this.zoom(a, b));
        this.charts.set(k, c);
        return c.el;
      })));
    }
    if (!keys.length) parts.push(h("div", { class: "empty", text: "No numeric history yet." }));
    this.container.replaceChildren(...parts);
  }

  zoom(a, b) {
    if (chartOpts.x === "time") return; // zoom by step only
    this.range = [a, b];
    this.load().catch(showError);
  }

  reset() {
    this.range = null;
    this.load().catch(showError);
  }

  redraw() {
    for (const c of this.charts.values()) c.draw();
  }
}

// ---------------------------------------------------------------- run page

function kvTable(list, id) {
  if (!list.length) return h("div", { class: "panel empty", text: "None." });
  return h("div", { class: "panel" }, h("table", { class: "grid", id },
    h("thead", {}, h("tr", {}, h("th", { text: "Key" }), h("th", { text: "Value" }))),
    h("tbody", {}, list.map((kv) => h("tr", {}, h("td", { class: "mono", text: kv.key }),
      h("td", { class: "wrap mono", text: typeof kv.value === "object" && kv.value !== null ? JSON.stringify(kv.value, null, 2) : fmtValue(kv.value) }))))));
}

function card(k, v, cls) {
  return h("div", { class: "panel card" }, h("div", { class: "k", text: k }), h("div", { class: "v " + (cls || ""), text: v === undefined || v === "" ? "—" : v }));
}

async function renderRun(app, id) {
  const o = await api("/api/runs/" + encodeURIComponent(id));
  document.title = `${o.name || o.id} · runlog`;
  const stateEl = h("span", {}, stateBadge(o.state, true));
  const tabsEl = h("div", { class: "tabs" });
  const body = h("div");
  app.replaceChildren(
    h("div", { class: "runhead" }, h("h1", { id: "runname", text: o.name || o.id }), stateEl, h("span", { class: "id", text: o.id })),
    h("div", { class: "muted" }, o.project ? `project ${o.project}` : "", o.group ? ` · group ${o.group}` : "", (o.tags || []).map((t) => h("span", { class: "tag", text: t }))),
    tabsEl, body);

  const chartsEl = h("div", { id: "charts" });
  const set = new ChartSet([{ id, label: o.name || id, color: COLORS[0] }], chartsEl);
  let seq = o.last_seq;
  const consoleEl = h("div", { class: "console", id: "console" });
  const alertsEl = h("div", { id: "alerts" });
  const systemEl = h("div", { id: "system" });
  const overviewEl = h("div");

  const tabs = {
    charts: () => [chartControls(() => set.redraw(), () => set.reset()), chartsEl],
    overview: () => [overviewEl],
    console: () => [consoleEl],
    system: () => [systemEl],
    audit: () => [auditView(id)],
  };
  let current = null;
  const show = (name) => {
    current = name;
    tabsEl.replaceChildren(...Object.keys(tabs).map((t) => h("button", { class: t === name ? "active" : "", "data-tab": t, onclick: () => show(t) }, t[0].toUpperCase() + t.slice(1))));
    body.replaceChildren(...tabs[name]());
    if (name === "charts") set.redraw();
    if (name === "system" && lastLog) renderSystem(systemEl, lastLog);
  };

  // Overview.
  const exit = o.exit || null;
  overviewEl.append(
    exit && exit.message ? h("div", {}, h("h2", { text: `Exit: ${exit.reason} (code ${exit.code})` }), h("pre", { class: "trace", id: "traceback", text: exit.message })) : null,
    h("div", { class: "cards" },
      card("State", exit ? `${o.state} · ${exit.reason}, code ${exit.code}` : o.state),
      card("Started", fmtTime(o.start)), card("Last record", fmtTime(o.last)), card("Duration", fmtDuration(o.last - o.start)),
      card("Host", o.host), card("Program", o.program), card("Arguments", (o.args || []).join(" "), "mono"),
      card("Git", [o.git_remote, o.git_commit].filter(Boolean).join(" @ ")),
      card("Records", fmtNum(o.records)), card("Last step", fmtNum(o.last_step)), card("History rows", fmtNum(o.history_rows)),
      card("Read from", o.where),
      card("Digest", o.digest, "mono"),
      ...(o.upstreams || []).map((u) => card("Synced to " + u.name, `seq ${fmtNum(u.seq)} of ${fmtNum(o.last_seq)}${u.error ? " · " + u.error : ""}`))),
    o.notes ? h("div", {}, h("h2", { text: "Notes" }), h("div", { class: "panel card wrap", text: o.notes })) : null,
    h("div", { class: "twocol" },
      h("div", {}, h("h2", { text: "Config" }), kvTable(o.config, "config")),
      h("div", {}, h("h2", { text: "Summary" }), kvTable(o.summary, "summary"))),
    h("h2", { text: "Alerts" }), alertsEl);

  show("charts");
  const results = await set.load();
  seq = Math.max(seq, results[0].seq);

  // Console, alerts, system metrics: read after the charts are drawn (a
  // long run's console is a scan of its records).
  let lastLog = null;
  const addConsole = (lines) => {
    const atEnd = consoleEl.scrollTop + consoleEl.clientHeight >= consoleEl.scrollHeight - 4;
    for (const l of lines) consoleEl.append(h("div", { class: "line" + (l.stderr ? " stderr" : ""), text: l.text.replace(/\n$/, "") }));
    if (!consoleEl.childElementCount) consoleEl.append(h("div", { class: "muted", text: "No console output." }));
    if (atEnd) consoleEl.scrollTop = consoleEl.scrollHeight;
  };
  const addAlerts = (alerts) => {
    for (const a of alerts) alertsEl.append(h("div", { class: "alert " + a.level }, h("strong", { text: a.title }), " ", h("span", { class: "muted", text: fmtTime(a.time) }), h("div", { class: "wrap", text: a.text })));
    if (!alertsEl.childElementCount) alertsEl.append(h("div", { class: "panel empty", text: "No alerts." }));
  };
  consoleEl.dataset.loaded = "";
  api(`/api/runs/${encodeURIComponent(id)}/log`).then((log) => {
    lastLog = log;
    addConsole(log.console);
    addAlerts(log.alerts);
    if (current === "system") renderSystem(systemEl, lastLog);
    consoleEl.dataset.loaded = "1";
  }).catch(showError);

  // Live: only what came after seq.
  if (o.state === "running") {
    const es = new EventSource(`/api/runs/${encodeURIComponent(id)}/live?seq=${seq}`);
    app._close = () => es.close();
    es.onmessage = (m) => {
      const ev = JSON.parse(m.data);
      seq = ev.seq;
      stateEl.replaceChildren(stateBadge(ev.state, true));
      if (ev.reload) { set.load().catch(showError); }
      else if (ev.rows.length && !set.range) {
        const byKey = new Map();
        for (const r of ev.rows) for (const [k, v] of Object.entries(r.values)) {
          if (!byKey.has(k)) byKey.set(k, [[], []]);
          byKey.get(k)[0].push(r.step); byKey.get(k)[1].push(v);
        }
        let fresh = false;
        for (const [k, [steps, values]] of byKey) {
          const c = set.charts.get(k);
          if (c) c.append(o.name || id, steps, values); else fresh = true;
        }
        if (fresh) set.load().catch(showError);
      }
      if (ev.console.length) { if (consoleEl.firstChild && consoleEl.firstChild.classList.contains("muted")) consoleEl.replaceChildren(); addConsole(ev.console); }
      if (ev.alerts.length) addAlerts(ev.alerts);
      if (ev.state !== "running") es.close();
    };
  }
}

function renderSystem(el, log) {
  if (!log || !log.stats.length) { el.replaceChildren(h("div", { class: "panel empty", text: "No system metrics." })); return; }
  const keys = new Set();
  log.stats.forEach((p) => Object.keys(p.items).forEach((k) => keys.add(k)));
  const grid = h("div", { class: "charts" });
  el.replaceChildren(grid);
  for (const k of [...keys].sort()) {
    const c = new Chart(k);
    grid.append(c.el);
    const pts = log.stats.filter((p) => k in p.items);
    const saved = chartOpts.x;
    chartOpts.x = "time";
    c.set([{ label: k, color: COLORS[0], steps: pts.map((p) => p.time), values: pts.map((p) => p.items[k]) }], (t) => t / 1e9);
    chartOpts.x = saved;
  }
}

function auditView(id) {
  const el = h("div", { id: "audit" });
  const verifyEl = h("div", { class: "panel card", id: "verify" }, h("span", { class: "muted", text: "Verifying…" }));
  const tbody = h("tbody");
  const pager = h("div", { class: "pager" });
  let from = 1;
  const stack = [];
  const load = async () => {
    const data = await api(`/api/runs/${encodeURIComponent(id)}/records?from=${from}&limit=100`);
    tbody.replaceChildren(...data.records.map((r) => h("tr", {},
      h("td", { class: "num", text: r.seq }), h("td", { text: fmtTime(r.time) }), h("td", { class: "mono", text: r.client }),
      h("td", { text: r.kind + (r.synthesized ? " (service)" : "") }), h("td", { class: "mono wrap", text: r.content }))));
    pager.replaceChildren(
      h("span", { class: "muted", text: data.records.length ? `records ${data.records[0].seq}–${data.records[data.records.length - 1].seq}` : "" }),
      h("button", { disabled: !stack.length, onclick: () => { from = stack.pop(); load().catch(showError); } }, "Previous"),
      h("button", { disabled: !data.next, onclick: () => { stack.push(from); from = data.next; load().catch(showError); } }, "Next"));
  };
  el.append(h("h2", { text: "Verify" }), verifyEl, h("h2", { text: "Records" }),
    h("div", { class: "panel" }, h("table", { class: "grid", id: "records" }, h("thead", {}, h("tr", {}, ["Seq", "Time", "Client", "Kind", "Content"].map((t) => h("th", { text: t })))), tbody)), pager);
  load().catch(showError);
  api(`/api/runs/${encodeURIComponent(id)}/verify`).then((v) => {
    const ok = !v.problems.length;
    verifyEl.replaceChildren(
      h("span", { class: ok ? "ok" : "bad", text: ok ? "OK" : `${v.problems.length} problem(s)` }),
      ` · ${fmtNum(v.records)} records read, last good seq ${fmtNum(v.last_good_seq)}`,
      v.digest_match === undefined ? "" : v.digest_match ? " · digest matches" : " · digest differs",
      ...v.problems.map((p) => h("div", { class: "mono bad", text: `seq ${p.seq}: ${p.kind}: ${p.message}` })));
  }).catch(showError);
  return el;
}

// ---------------------------------------------------------------- compare

async function renderCompare(app) {
  const ids = (new URLSearchParams(location.search).get("ids") || "").split(",").filter(Boolean);
  const data = await api("/api/compare?ids=" + ids.map(encodeURIComponent).join(","));
  const runs = data.runs.map((r, i) => ({ id: r.id, label: r.name || r.id, color: COLORS[i % COLORS.length], state: r.state }));
  const chartsEl = h("div", { id: "charts" });
  const set = new ChartSet(runs, chartsEl);
  app.replaceChildren(
    h("h1", { text: `Compare ${runs.length} runs` }),
    h("div", { class: "legend", id: "legend" }, runs.map((r) => h("span", { "data-id": r.id }, h("span", { class: "sw", style: null }), h("a", { href: "/run/" + encodeURIComponent(r.id), text: r.label }), " ", stateBadge(r.state)))),
    h("h2", { text: "Config differences" }),
    data.config_diff.length ? h("div", { class: "panel" }, h("table", { class: "grid diff", id: "configdiff" },
      h("thead", {}, h("tr", {}, h("th", { text: "Key" }), runs.map((r) => h("th", { text: r.label })))),
      h("tbody", {}, data.config_diff.map((d) => h("tr", {}, h("td", { text: d.key }), d.values.map((v) => h("td", { class: "wrap", text: v === null || v === undefined ? "—" : fmtValue(v) })))))))
      : h("div", { class: "panel empty", text: "The runs' configs are the same." }),
    h("h2", { text: "Charts" }),
    chartControls(() => set.redraw(), () => set.reset()), chartsEl);
  // Swatch colours through the CSSOM: the page allows no inline style attributes.
  app.querySelectorAll(".legend .sw").forEach((el, i) => { el.style.background = runs[i].color; });
  await set.load();
}

// ---------------------------------------------------------------- router

function showError(err) {
  if (String(err && err.message) === "unauthorized") return;
  const app = document.getElementById("app");
  app.prepend(h("div", { class: "panel card bad", id: "error", text: "Error: " + (err && err.message ? err.message : err) }));
}

function go(path) {
  history.pushState(null, "", path);
  route();
}

async function route() {
  const app = document.getElementById("app");
  if (app._close) { app._close(); app._close = null; }
  const path = location.pathname;
  document.body.dataset.ready = "";
  try {
    if (path.startsWith("/run/")) {
      await renderRun(app, decodeURIComponent(path.slice(5)));
    } else if (path === "/compare") {
      await renderCompare(app);
    } else {
      document.title = "Runs · runlog";
      runsView.state = runsState();
      await renderRuns(app);
    }
  } catch (err) {
    showError(err);
  }
  document.body.dataset.ready = "1";
  performance.mark("runlog-ready");
  window.dispatchEvent(new Event("runlog:ready"));
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a");
  if (!a || a.target || e.ctrlKey || e.metaKey || e.shiftKey || a.origin !== location.origin) return;
  e.preventDefault();
  go(a.pathname + a.search);
});
window.addEventListener("popstate", route);

api("/api/info").then((info) => {
  document.getElementById("source").textContent = info.title;
  document.getElementById("logout").hidden = !info.auth;
}).catch(() => {});
route();
