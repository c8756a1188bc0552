#include "http/status_page.h"

namespace ep::http {

namespace {

constexpr std::string_view kPage = R"EP(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>EdgePier node</title>
<style>
  :root { --fg:#1d2430; --muted:#6b7585; --line:#e3e7ee; --bg:#f6f8fb; --ok:#1f9d55; --warn:#d97706;
          --bad:#dc2626; --up:#e07b24; --peer:#2563eb; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; align-items:baseline; gap:1em; padding:14px 24px; background:#fff;
           border-bottom:1px solid var(--line); }
  header h1 { margin:0; font-size:18px; }
  header .meta { color:var(--muted); }
  main { padding:16px 24px; display:grid; gap:16px; }
  section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
  section h2 { margin:0 0 8px; font-size:15px; }
  table { width:100%; border-collapse:collapse; }
  th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
  th { color:var(--muted); font-weight:600; font-size:12px; text-transform:uppercase; }
  code { font-size:12px; }
  .tiles { display:grid; grid-template-columns:repeat(auto-fit, minmax(160px, 1fr)); gap:12px; }
  .tile { border:1px solid var(--line); border-radius:6px; padding:8px 12px; }
  .tile .v { font-size:20px; font-weight:600; }
  .tile .k { color:var(--muted); font-size:12px; }
  .badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; color:#fff; }
  .alive { background:var(--ok); } .suspect { background:var(--warn); } .dead, .left { background:var(--bad); }
  .bar { position:relative; height:14px; background:var(--line); border-radius:7px; overflow:hidden; min-width:90px; }
  .bar > span { position:absolute; inset:0 auto 0 0; background:var(--peer); }
  .bar.done > span { background:var(--ok); }
  .prog { display:grid; grid-template-columns:minmax(60px, max-content) 1fr 44px; gap:6px; align-items:center;
          font-size:12px; margin:2px 0; }
  .empty { color:var(--muted); }
  .kind { color:var(--muted); font-size:12px; }
  #error { display:none; padding:8px 24px; background:#fee2e2; color:var(--bad); }
  #token-form { display:none; }
  .legend span { margin-right:14px; font-size:12px; }
  .legend i { display:inline-block; width:10px; height:10px; margin-right:4px; border-radius:2px; }
  svg { width:100%; height:140px; display:block; }
</style>
</head>
<body>
<header>
  <h1>EdgePier</h1>
  <span class="meta">node <b id="node-name">…</b></span>
  <span class="meta" id="site-size"></span>
  <span class="meta" id="updated"></span>
</header>
<div id="error"></div>
<main>
  <section id="token-form">
    <h2>Admin token</h2>
    <p>This node's admin API needs its token (admin-token-file).</p>
    <form><input id="token-input" type="password" size="40" autocomplete="off"> <button>Use</button></form>
  </section>
  <section id="traffic">
    <h2>Traffic</h2>
    <div class="tiles">
      <div class="tile"><div class="v" id="from-upstream">–</div><div class="k">from upstream (uplink)</div></div>
      <div class="tile"><div class="v" id="from-peers">–</div><div class="k">from peers</div></div>
      <div class="tile"><div class="v" id="to-clients">–</div><div class="k">to clients</div></div>
      <div class="tile"><div class="v" id="to-peers">–</div><div class="k">to peers</div></div>
      <div class="tile"><div class="v" id="uplink-saved">–</div><div class="k">uplink saved (peer share of fetched bytes)</div></div>
    </div>
    <div class="legend"><span><i style="background:var(--up)"></i>from upstream</span>
      <span><i style="background:var(--peer)"></i>from peers</span><span id="chart-range"></span></div>
    <svg id="chart" viewBox="0 0 600 140" preserveAspectRatio="none" role="img" aria-label="bytes per second"></svg>
  </section>
  <section id="members">
    <h2>Members</h2>
    <table><thead><tr><th>Name</th><th>State</th><th>Registry</th><th>Cluster</th><th>Data</th>
      <th>Last seen</th><th>Blobs announced</th></tr></thead><tbody></tbody></table>
  </section>
  <section id="images">
    <h2>Images and pins</h2>
    <table><thead><tr><th>Image</th><th>Copies</th><th>Size</th><th>Pinned by</th><th>Replication on each node</th>
      </tr></thead><tbody></tbody></table>
  </section>
  <section id="transfers">
    <h2>Transfers on this node</h2>
    <table><thead><tr><th>Blob</th><th>Progress</th><th>Bytes</th><th>Rate</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
"use strict";
const REFRESH_MS = 3000;
let timer = 0;
let token = sessionStorage.getItem("edgepier-admin-token") || "";
if (location.hash.startsWith("#token=")) {
  token = decodeURIComponent(location.hash.slice(7));
  sessionStorage.setItem("edgepier-admin-token", token);
  history.replaceState(null, "", location.pathname);
}
const $ = (sel) => document.querySelector(sel);
// Builds an element; children are nodes or text (always set as text).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k === "style") node.style.cssText = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}
function ago(ms) {
  if (!ms) return "–";
  const s = Math.round(ms / 1000);
  return s < 60 ? s + " s ago" : Math.round(s / 60) + " min ago";
}
function bar(done, fraction) {
  const pct = Math.max(0, Math.min(100, Math.floor(fraction * 100)));
  return el("div", {class: "bar" + (done ? " done" : "")}, el("span", {style: "width:" + pct + "%"}));
}
async function get(path) {
  const r = await fetch(path, {headers: token ? {Authorization: "Bearer " + token} : {}, cache: "no-store"});
  if (r.status === 401) { $("#token-form").style.display = "block"; throw new Error("the admin API wants its token"); }
  if (!r.ok) throw new Error(path + " answered " + r.status);
  return r.json();
}
function fill(section, rows, empty, columns) {
  const body = $(section + " tbody");
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", {class: "empty", colspan: columns}, empty))]));
}
function renderMembers(doc) {
  const members = doc.members;
  const self = members.find((m) => m.self);
  if (self) $("#node-name").textContent = self.name;
  const alive = members.filter((m) => m.state === "alive").length;
  $("#site-size").textContent = alive + " of " + members.length + " members alive";
  fill("#members", members.map((m) => el("tr", {"data-node": m.name, "data-state": m.state},
    el("td", {}, m.name + (m.self ? " (this node)" : "")),
    el("td", {}, el("span", {class: "badge " + m.state}, m.state)),
    el("td", {}, el("code", {}, m.registry_address)), el("td", {}, el("code", {}, m.cluster_address)),
    el("td", {}, el("code", {}, m.data_address)), el("td", {}, m.self ? "–" : ago(m.last_seen_ms)),
    el("td", {}, m.blobs_announced))), "no members", 7);
}
function renderPins(doc) {
  fill("#images", doc.pins.map((p) => {
    const nodes = el("div", {});
    for (const g of p.progress || []) {
      const fraction = g.complete ? 1 : (g.total ? g.bytes / g.total : 0);
      const pct = Math.floor(fraction * 100);
      nodes.append(el("div", {class: "prog", "data-node": g.node, "data-percent": pct, "data-complete": g.complete},
        el("span", {}, g.node), bar(g.complete, fraction), el("span", {}, pct + "%")));
    }
    const kind = (p.kind || "") + (p.lapsed ? ", lapsed" : "");
    return el("tr", {"data-ref": p.ref, "data-holders": p.holders.length, "data-kind": kind},
      el("td", {}, el("code", {}, p.ref), kind ? el("div", {class: "kind"}, kind + " pin") : ""),
      el("td", {}, p.holders.length + " of " + p.target + (p.replicas === "all" ? " (all)" : "")),
      el("td", {}, p.size ? bytes(p.size) : "–"), el("td", {}, p.pinned_by || "–"), el("td", {}, nodes));
  }), "no pinned images", 5);
}
let lastBlobs = new Map(), lastBlobsAt = 0;
function renderTransfers(doc, now) {
  const moving = doc.blobs.filter((b) => !b.complete);
  const seconds = lastBlobsAt ? (now - lastBlobsAt) / 1000 : 0;
  fill("#transfers", moving.map((b) => {
    const before = lastBlobs.get(b.digest);
    const rate = seconds && before !== undefined ? Math.max(0, b.bytes_present - before) / seconds : null;
    return el("tr", {"data-digest": b.digest},
      el("td", {}, el("code", {}, b.digest.slice(0, 19) + "…")),
      el("td", {}, b.size ? bar(false, b.bytes_present / b.size) : "–"),
      el("td", {}, bytes(b.bytes_present) + (b.size ? " of " + bytes(b.size) : "")),
      el("td", {}, rate === null ? "–" : bytes(rate) + "/s"));
  }), "nothing moving", 4);
  lastBlobs = new Map(moving.map((b) => [b.digest, b.bytes_present]));
  lastBlobsAt = now;
}
function renderTraffic(stats, history) {
  $("#from-upstream").textContent = bytes(stats.bytes_from_upstream);
  $("#from-peers").textContent = bytes(stats.bytes_from_peers);
  $("#to-clients").textContent = bytes(stats.bytes_to_clients);
  $("#to-peers").textContent = bytes(stats.bytes_to_peers);
  const fetched = stats.bytes_from_upstream + stats.bytes_from_peers;
  $("#uplink-saved").textContent = fetched ? Math.round(100 * stats.bytes_from_peers / fetched) + "%" : "–";
  const s = history.samples;
  const rates = [];
  for (let i = 1; i < s.length; i++) {
    const dt = Math.max(1, s[i].time_ms - s[i - 1].time_ms) / 1000;
    rates.push({up: (s[i].bytes_from_upstream - s[i - 1].bytes_from_upstream) / dt,
                peer: (s[i].bytes_from_peers - s[i - 1].bytes_from_peers) / dt});
  }
  const top = Math.max(1, ...rates.map((r) => Math.max(r.up, r.peer)));
  const line = (key) => rates.map((r, i) =>
    (rates.length > 1 ? (600 * i) / (rates.length - 1) : 0).toFixed(1) + "," + (135 - 125 * r[key] / top).toFixed(1)).join(" ");
  const svg = $("#chart");
  const ns = "http://www.w3.org/2000/svg";
  const poly = (key, color) => {
    const p = document.createElementNS(ns, "polyline");
    p.setAttribute("points", line(key)); p.setAttribute("fill", "none");
    p.setAttribute("stroke", color); p.setAttribute("stroke-width", "2"); p.setAttribute("data-series", key);
    return p;
  };
  svg.replaceChildren(poly("up", "#e07b24"), poly("peer", "#2563eb"));
  const minutes = Math.round(rates.length * history.period_ms / 60000);
  $("#chart-range").textContent = "last " + (minutes || "<1") + " min, peak " + bytes(top) + "/s";
}
async function refresh() {
  try {
    const [members, pins, blobs, stats, history] = await Promise.all([
      get("/admin/v1/members"), get("/admin/v1/pins"), get("/admin/v1/blobs"),
      get("/admin/v1/stats"), get("/admin/v1/stats/history")]);
    const now = Date.now();
    renderMembers(members); renderPins(pins); renderTransfers(blobs, now); renderTraffic(stats, history);
    $("#token-form").style.display = "none";
    $("#error").style.display = "none";
    $("#updated").textContent = "updated " + new Date(now).toLocaleTimeString();
    document.body.dataset.loaded = "true";
  } catch (e) {
    $("#error").textContent = "cannot refresh: " + e.message;
    $("#error").style.display = "block";
  }
  timer = setTimeout(refresh, REFRESH_MS);
}
$("#token-form form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("#token-input").value.trim();
  sessionStorage.setItem("edgepier-admin-token", token);
  clearTimeout(timer);
  refresh();
});
refresh();
</script>
</body>
</html>
)EP";

}  // namespace

std::string_view status_page_html() { return kPage; }

}  // namespace ep::http
