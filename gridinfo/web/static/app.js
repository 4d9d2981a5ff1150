// gridinfo web view: fills each page from its JSON API (/api/...) and refreshes it when the
// daemon says the directory changed (server-sent events on /api/events).  No libraries.
"use strict";

const $ = (sel, root) => (root || document).querySelector(sel);
const page = document.body.dataset.page;
const params = new URLSearchParams(location.search);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c === null || c === undefined ? "" : String(c)));
  return node;
}

function status(text, error) {
  const s = $("#status");
  s.textContent = text || "";
  s.className = "status" + (error ? " error" : "");
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

const link = (href, text) => el("a", { href }, text);
const browseLink = (dn, text) => link("/browse?dn=" + encodeURIComponent(dn), text || dn);
const num = (v, digits) => (v === null || v === undefined ? "" : (digits !== undefined ? Number(v).toFixed(digits) : String(v)));
const age = (s) => (s === null || s === undefined ? "" : s < 0 ? "expired " + duration(-s) + " ago" : duration(s));

function duration(s) {
  s = Math.round(s);
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

function loadBar(load) {
  if (load === null || load === undefined) return "";
  const pct = Math.round(load * 100);
  const cls = pct >= 100 ? "full" : pct >= 80 ? "high" : "";
  const fill = el("span", { class: cls });
  fill.style.width = Math.min(100, pct) + "%";  // CSSOM, not a style attribute: the CSP allows no inline styles
  return el("span", { class: "bar", title: pct + "% busy" }, fill);
}

// A table: columns are [heading, value(row) -> cell content, sort key(row), numeric?].
function fillTable(table, columns, rows) {
  table.replaceChildren();
  const head = el("tr");
  columns.forEach((col, i) => {
    const th = el("th", { "data-col": i }, col[0]);
    th.addEventListener("click", () => sortTable(table, columns, rows, i));
    head.append(th);
  });
  table.append(el("thead", {}, head));
  const state = table._sort;
  if (state) rows = sortedRows(columns, rows, state.col, state.desc);
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    for (const col of columns) {
      const v = col[1](row);
      tr.append(el("td", { class: col[3] ? "num" : null }, v));
    }
    body.append(tr);
  }
  table.append(body);
  if (state) table.querySelector(`th[data-col="${state.col}"]`).className = state.desc ? "sorted-desc" : "sorted-asc";
  table.dataset.rows = rows.length;
}

function sortedRows(columns, rows, col, desc) {
  const key = columns[col][2] || ((r) => { const v = columns[col][1](r); return v instanceof Node ? v.textContent : v; });
  const out = rows.slice().sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === y) return 0;
    if (x === null || x === undefined || x === "") return 1;
    if (y === null || y === undefined || y === "") return -1;
    return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y)));
  });
  return desc ? out.reverse() : out;
}

function sortTable(table, columns, rows, col) {
  const prev = table._sort;
  table._sort = { col, desc: prev && prev.col === col ? !prev.desc : false };
  fillTable(table, columns, rows);
}

function partial(data) {
  if (data.partial) status("partial answer: " + data.partial, true);
  else status("updated " + new Date().toLocaleTimeString());
}

// -- pages ------------------------------------------------------------------------------------

const renderers = {
  async hierarchy() {
    const node = await api("/api/hierarchy");
    const box = $("#node");
    box.replaceChildren(el("div", { class: "node" },
      el("strong", {}, node.kind.toUpperCase() + " "), browseLink(node.suffix),
      el("span", { class: node.healthy ? "ok" : "bad" }, node.healthy ? "  healthy" : "  unhealthy"),
      el("div", {}, "entries: " + num(node.entries) + "  connections: " + num(node.connections) +
        "  uptime: " + (node.uptime === null ? "" : duration(node.uptime)))));
    const tree = $("#tree");
    tree.replaceChildren(treeNode(node.tree));
    tree.dataset.nodes = tree.querySelectorAll("li").length;
    tree.dataset.unhealthy = node.unhealthy;
    const kids = $("#children");
    if (node.children.length || node.kind === "giis") {
      fillTable(kids, [
        ["child", (c) => (c.mount ? browseLink(c.mount, c.url) : c.url), (c) => c.url],
        ["shown at", (c) => c.mount || ""],
        ["state", (c) => el("span", { class: c.healthy ? "ok" : "bad" }, c.state), (c) => c.state],
        ["lease", (c) => el("span", { class: c.stale ? "bad" : "" }, c.lease + (c.stale ? " (stale)" : "")), (c) => c.lease],
        ["lease left", (c) => age(c.lease_left), (c) => c.lease_left, true],
        ["latency ms", (c) => num(c.latency_ms), (c) => c.latency_ms, true],
        ["entries", (c) => num(c.entries), (c) => c.entries, true],
        ["mode", (c) => c.mode],
      ], node.children);
    }
    if (node.providers.length) {
      fillTable($("#providers"), [
        ["provider", (p) => browseLink(p.dn, p.name), (p) => p.name],
        ["data", (p) => el("span", { class: p.stale ? "warn" : "ok" }, p.state), (p) => p.state],
        ["runs", (p) => num(p.runs), (p) => p.runs, true],
        ["failures", (p) => num(p.failures), (p) => p.failures, true],
        ["entries", (p) => num(p.entries), (p) => p.entries, true],
        ["last run ms", (p) => num(p.duration_ms), (p) => p.duration_ms, true],
        ["last error", (p) => el("span", { class: "bad" }, p.last_error)],
      ], node.providers);
    }
    status(node.partial ? "partial: " + node.partial : "updated " + new Date().toLocaleTimeString(), !!node.partial);
  },

  async queues() {
    const data = await api("/api/queues");
    fillTable($("#sites"), [
      ["site", (s) => browseLink(s.dn, s.name), (s) => s.name],
      ["schema", (s) => s.schema.join(", ")],
      ["queues", (s) => num(s.queues), (s) => s.queues, true],
      ["CPUs", (s) => num(s.total), (s) => s.total, true],
      ["free", (s) => num(s.free), (s) => s.free, true],
      ["running", (s) => num(s.running), (s) => s.running, true],
      ["waiting", (s) => num(s.waiting), (s) => s.waiting, true],
      ["load", (s) => loadBar(s.load), (s) => s.load],
    ], data.sites);
    fillTable($("#queues"), [
      ["queue", (q) => browseLink(q.dn, q.name || q.id), (q) => q.name || q.id],
      ["site", (q) => q.site],
      ["schema", (q) => q.schema],
      ["CPUs", (q) => num(q.total), (q) => q.total, true],
      ["free", (q) => num(q.free), (q) => q.free, true],
      ["running", (q) => num(q.running), (q) => q.running, true],
      ["waiting", (q) => num(q.waiting), (q) => q.waiting, true],
      ["load", (q) => loadBar(q.load), (q) => q.load],
      ["state", (q) => q.state],
      ["history", (q) => historyLinks(q.dn, q.schema === "GLUE2" ?
        ["GLUE2ComputingShareFreeSlots", "GLUE2ComputingShareWaitingJobs"] : ["GlueCEStateFreeCPUs", "GlueCEStateWaitingJobs"])],
    ], data.queues);
    partial(data);
  },

  async vms() {
    const data = await api("/api/vms");
    fillTable($("#vms"), [
      ["VM", (v) => vmLink(v.dn, v.name || v.id), (v) => v.id],
      ["state", (v) => v.state], ["generic", (v) => v.generic_state], ["owner", (v) => v.owner],
      ["host", (v) => v.host], ["physical host", (v) => v.physical_host],
      ["uptime", (v) => (v.uptime === null ? "" : duration(v.uptime)), (v) => v.uptime, true],
      ["runs", (v) => (v.runs === null ? "" : String(v.runs)), (v) => v.runs, true],
      ["hosts ran on", (v) => v.hosts.join(" ")],
      ["jobs", (v) => v.jobs.join(" ")],
    ], data.vms);
    fillTable($("#jobs"), [
      ["job", (j) => vmLink(j.dn, j.id), (j) => j.id], ["state", (j) => j.state],
      ["generic", (j) => j.generic_state], ["owner", (j) => j.owner], ["queue", (j) => j.queue],
      ["node", (j) => j.exec_host], ["VMs", (j) => j.vms.join(" ")],
    ], data.jobs);
    const dn = params.get("dn");
    if (dn) await showVM(dn);
    partial(data);
  },

  async network() {
    const data = await api("/api/paths");
    fillTable($("#paths"), [
      ["path", (p) => browseLink(p.dn, p.id), (p) => p.id],
      ["from", (p) => p.source], ["to", (p) => p.destination], ["method", (p) => p.method],
      ["RTT avg ms", (p) => num(p.rtt_avg, 2), (p) => p.rtt_avg, true],
      ["min", (p) => num(p.rtt_min, 2), (p) => p.rtt_min, true],
      ["max", (p) => num(p.rtt_max, 2), (p) => p.rtt_max, true],
      ["loss %", (p) => num(p.loss), (p) => p.loss, true],
      ["hops", (p) => num(p.hops), (p) => p.hops, true],
      ["bandwidth", (p) => num(p.throughput), (p) => p.throughput, true],
      ["measured", (p) => p.measured],
      ["error", (p) => el("span", { class: "bad" }, p.error)],
      ["history", (p) => historyLinks(p.dn, ["GridinfoPathRTTAvg", "GridinfoPathLoss"])],
    ], data.paths);
    partial(data);
  },

  async browse() {
    const form = $("#search");
    const dn = params.get("dn") || document.body.dataset.suffix;
    form.base.value = params.get("base") || dn;
    if (params.get("filter")) form.filter.value = params.get("filter");
    if (params.get("scope")) form.scope.value = params.get("scope");
    if (!form._wired) {
      form._wired = true;
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const q = new URLSearchParams({ dn, base: form.base.value, scope: form.scope.value, filter: form.filter.value });
        history.replaceState(null, "", "/browse?" + q);
        params.set("base", form.base.value); params.set("scope", form.scope.value); params.set("filter", form.filter.value);
        refresh();
      });
    }
    const entry = await api("/api/entry?dn=" + encodeURIComponent(dn));
    const box = $("#entry");
    box.replaceChildren(entryBlock(entry), el("h2", {}, "Children (" + entry.children.length + ")"),
      el("ul", { id: "children" }, ...entry.children.map((c) => el("li", {}, browseLink(c)))));
    if (params.get("filter")) {
      const q = new URLSearchParams({ base: form.base.value, scope: form.scope.value, filter: form.filter.value });
      const found = await api("/api/search?" + q);
      $("#results").replaceChildren(el("h2", {}, "Search: " + found.entries.length + " entries" + (found.truncated ? " (truncated)" : "")),
        ...found.entries.map(entryBlock));
      partial(found);
    } else {
      $("#results").replaceChildren();
      partial(entry);
    }
  },

  async history() {
    const form = $("#series-form");
    if (params.get("range")) form.range.value = params.get("range");
    if (!form._wired) {
      form._wired = true;
      form.range.addEventListener("change", () => { params.set("range", form.range.value); refresh(); });
    }
    const list = await api("/api/history/series");
    fillTable($("#series"), [
      ["entry", (s) => browseLink(s.dn), (s) => s.dn], ["attribute", (s) => s.attribute],
      ["samples today", (s) => num(s.samples_today), (s) => s.samples_today, true],
      ["plot", (s) => link("/history?" + new URLSearchParams({ dn: s.dn, attribute: s.attribute, range: form.range.value }), "plot")],
    ], list.series);
    const dn = params.get("dn"), attribute = params.get("attribute");
    if (dn && attribute) {
      const data = await api("/api/history?" + new URLSearchParams({ dn, attribute, range: form.range.value }));
      $("#plot").replaceChildren(el("h2", {}, attribute + " of " + dn), plot(data));
    }
    status("updated " + new Date().toLocaleTimeString());
  },
};

// One node of the hierarchy (giis-tree's picture) and its children, as nested lists.
function treeNode(n) {
  const marks = [];
  const mark = (text, cls) => marks.push(" ", el("span", { class: "mark " + (cls || "") }, text));
  if (n.registration_status) mark(n.registration_status, n.registration_status === "INVALID" ? "bad" : "");
  if (n.state_at_parent && n.state_at_parent !== "ok" && n.state_at_parent !== "new") mark("parent says " + n.state_at_parent, "bad");
  if (n.lease_seconds_left !== null && n.lease_seconds_left !== undefined) mark("lease " + age(n.lease_seconds_left));
  if (n.latency_ms !== null && n.latency_ms !== undefined) mark(num(n.latency_ms, 1) + " ms");
  const entries = n.entries !== null && n.entries !== undefined ? n.entries : n.published_entries;
  if (entries !== null && entries !== undefined) mark(entries + " entries");
  if (n.stale) mark("stale", "warn");
  if (n.partial) mark("partial: " + n.partial, "warn");
  if (n.error) mark("unreachable: " + n.error, "bad");
  if (n.degraded) mark("providers failing: " + Object.keys(n.failing_providers).join(", "), "bad");
  if (n.note) mark(n.note, "warn");
  if (n.depth_limited) mark("depth limit: not descended", "warn");
  const name = n.link ? link(n.link, n.name) : el("span", {}, n.name);
  if (n.web_url && n.link === n.web_url) name.className = "web";
  const li = el("li", { class: n.healthy ? "healthy" : "unhealthy", "data-url": n.url || "", "data-suffix": n.suffix },
    el("span", { class: n.healthy ? "ok" : "bad" }, n.healthy ? "\u2713 " : "\u2717 "), name, " ",
    el("code", {}, n.url || n.suffix), ...marks);
  if (n.children && n.children.length) li.append(el("ul", {}, ...n.children.map(treeNode)));
  return li;
}

function historyLinks(dn, attributes) {
  const span = el("span");
  for (const a of attributes) span.append(link("/history?" + new URLSearchParams({ dn, attribute: a }), a.replace(/^(Glue(CEState)?|GLUE2ComputingShare|GridinfoPath)/, "")), " ");
  return span;
}

function vmLink(dn, text) { return link("/vms?dn=" + encodeURIComponent(dn), text); }

async function showVM(dn) {
  const data = await api("/api/vm?dn=" + encodeURIComponent(dn));
  const box = $("#vm");
  const rows = el("table", { id: "events" });
  fillTable(rows, [["time", (e) => e.time], ["event", (e) => e.type], ["source", (e) => e.source],
    ["seq", (e) => num(e.seq), (e) => e.seq, true], ["facts", (e) => e.attributes.join(", ")]], data.events);
  const states = el("table", { id: "states" });
  fillTable(states, [["state", (s) => s.state], ["since", (s) => s.time]], data.entry.history);
  box.replaceChildren(el("h2", {}, "History of " + data.entry.id), browseLink(dn, "entry"), states, rows);
}

function entryBlock(entry) {
  const dl = el("dl", { class: "attrs" });
  for (const a of entry.attributes) {
    for (const v of a.values) {
      const dd = el("dd", {}, v.link ? link("/browse?" + new URLSearchParams({ dn: entry.dn, base: document.body.dataset.suffix.split(",").slice(-1)[0], scope: "sub", filter: v.link }), v.value) : v.value);
      if (entry.history && entry.history.includes(a.name)) dd.append(" ", link("/history?" + new URLSearchParams({ dn: entry.dn, attribute: a.name }), "plot"));
      dl.append(el("dt", {}, a.name), dd);
    }
  }
  return el("div", { class: "entry" }, el("h2", {}, browseLink(entry.dn)), dl);
}

// An SVG line plot of [time, value] points, time on x.
function plot(data) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 640, H = 240, L = 50, B = 30, T = 10, R = 10;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "plot"); svg.setAttribute("width", W); svg.setAttribute("height", H);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const add = (tag, attrs, text) => { const n = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text !== undefined) n.textContent = text; svg.append(n); return n; };
  const pts = data.points;
  add("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B });
  add("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B });
  if (!pts.length) { add("text", { x: L + 10, y: H / 2 }, "no samples in this range yet"); svg.dataset.points = 0; return svg; }
  const spans = { hour: 3600, day: 86400, week: 604800, month: 2592000, year: 31536000 };
  const x1 = data.now, x0 = x1 - spans[data.range];
  let y0 = Math.min(...pts.map((p) => p[1])), y1v = Math.max(...pts.map((p) => p[1]));
  if (y0 === y1v) { y0 -= 1; y1v += 1; }
  const sx = (t) => L + (t - x0) / (x1 - x0) * (W - L - R);
  const sy = (v) => H - B - (v - y0) / (y1v - y0) * (H - B - T);
  let d = "";
  pts.forEach((p, i) => { d += (i ? " H" + sx(p[0]).toFixed(1) + " V" : "M" + sx(p[0]).toFixed(1) + " ") + sy(p[1]).toFixed(1); });
  d += " H" + sx(x1).toFixed(1);
  add("path", { class: "line", d });
  for (const p of pts) add("circle", { class: "pt", cx: sx(p[0]).toFixed(1), cy: sy(p[1]).toFixed(1), r: 2.5 }, undefined);
  add("text", { x: 4, y: T + 10 }, String(+y1v.toFixed(2)));
  add("text", { x: 4, y: H - B }, String(+y0.toFixed(2)));
  add("text", { x: L, y: H - 8 }, new Date(x0 * 1000).toLocaleString());
  add("text", { x: W - R - 120, y: H - 8 }, new Date(x1 * 1000).toLocaleString());
  svg.dataset.points = pts.length;
  return svg;
}

// -- refreshing -------------------------------------------------------------------------------

let running = false, again = false;
async function refresh() {
  if (running) { again = true; return; }
  running = true;
  try { await renderers[page](); }
  catch (e) { status(e.message, true); }
  finally {
    running = false;
    document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
    if (again) { again = false; refresh(); }
  }
}

let source = null;
function live() {
  const badge = $("#live");
  if (!window.EventSource) { badge.textContent = "polling"; setInterval(refresh, 10000); return; }
  source = new EventSource("/api/events");
  source.addEventListener("hello", () => { badge.textContent = "live"; badge.className = "on"; });
  source.addEventListener("change", (ev) => { document.body.dataset.token = ev.data; refresh(); });
  source.onerror = () => { badge.textContent = "reconnecting"; badge.className = ""; };
}

// A page left for another stays in the browser's back-forward cache with its stream open unless
// it is closed here; six such streams use up the browser's connections to the daemon and the
// next page waits for one.  Closed on leaving, opened again (with a refresh) on coming back.
window.addEventListener("pagehide", () => { if (source) { source.close(); source = null; } });
window.addEventListener("pageshow", (ev) => { if (ev.persisted && !source && window.EventSource) { live(); refresh(); } });

refresh();
live();
// the nodes below this one do not tell it of their changes: the hierarchy is walked again now and then
if (page === "hierarchy") setInterval(refresh, 30000);
