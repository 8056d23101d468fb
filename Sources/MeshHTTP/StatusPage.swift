/// The status page at `GET /`: one self-contained HTML document (no build step, no external
/// assets) whose script polls `/v1/status`, `/v1/topics`, `/v1/routes` and `/v1/connectors` every
/// second and derives rates from successive answers. Elements the browser test reads carry ids
/// (`events-total`, `topics-count`, …).
enum StatusPage {
    static let html: [UInt8] = Array(source.utf8)

    static let source = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>meshgate</title>
<style>
:root {
  --bg: #f6f7f9; --panel: #fff; --text: #1c2330; --muted: #667085; --line: #e4e7ec;
  --accent: #2f6fed; --ok: #12b76a; --warn: #f79009; --bad: #e5484d; --chip: #eef2f6;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #0e1117; --panel: #161b22; --text: #e6edf3; --muted: #8b949e; --line: #262c36;
          --accent: #6ea8fe; --chip: #21262d; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px; padding: 14px 20px;
         background: var(--panel); border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
header h1 { font-size: 17px; margin: 0; letter-spacing: .2px; }
header h1 span { color: var(--accent); }
.meta { color: var(--muted); font-size: 13px; display: flex; flex-wrap: wrap; gap: 4px 14px; }
.meta b { color: var(--text); font-weight: 600; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600;
         background: var(--chip); color: var(--muted); white-space: nowrap; }
.badge.ok { background: color-mix(in srgb, var(--ok) 16%, transparent); color: var(--ok); }
.badge.warn { background: color-mix(in srgb, var(--warn) 18%, transparent); color: var(--warn); }
.badge.bad { background: color-mix(in srgb, var(--bad) 16%, transparent); color: var(--bad); }
#live { margin-left: auto; }
main { max-width: 1200px; margin: 0 auto; padding: 18px 20px 40px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; margin-bottom: 18px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; }
.card .value { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; margin-top: 2px; }
.card .sub { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
.card svg { display: block; width: 100%; height: 28px; margin-top: 6px; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; margin-bottom: 18px; overflow: hidden; }
section h2 { font-size: 14px; margin: 0; padding: 11px 14px; border-bottom: 1px solid var(--line);
             display: flex; align-items: center; gap: 10px; }
section h2 .count { color: var(--muted); font-weight: 500; }
.note { padding: 10px 14px; color: var(--muted); }
.note.err { color: var(--bad); font-family: var(--mono); font-size: 12.5px; white-space: pre-wrap; }
.scroll { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 7px 14px; text-align: right; white-space: nowrap; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 600; font-size: 12px; background: color-mix(in srgb, var(--chip) 50%, transparent); }
th:first-child, td:first-child, td.l, th.l { text-align: left; }
tr:last-child td { border-bottom: 0; }
td.name { font-family: var(--mono); font-size: 13px; max-width: 360px; overflow: hidden; text-overflow: ellipsis; }
td .dim { color: var(--muted); }
.bar { height: 4px; border-radius: 2px; background: var(--accent); opacity: .75; margin-top: 3px; }
.hot { color: var(--accent); font-weight: 600; }
.badn { color: var(--bad); font-weight: 600; }
@media (max-width: 640px) {
  header { padding: 10px 12px; }
  main { padding: 12px 10px 30px; }
  .card .value { font-size: 20px; }
  th, td { padding: 6px 8px; }
  .wide { display: none; }
  td.name { max-width: 170px; }
}
</style>
</head>
<body>
<header>
  <h1><span>mesh</span>gate</h1>
  <div class="meta">
    <span>node <b id="node">…</b></span>
    <span>v<b id="version">…</b></span>
    <span>up <b id="uptime">…</b></span>
    <span id="listeners"></span>
  </div>
  <span id="ready" class="badge">…</span>
  <span id="live" class="badge">connecting</span>
</header>
<main>
  <div class="cards">
    <div class="card"><div class="label">Publish rate</div><div class="value" id="rate-total">–</div>
      <div class="sub">events/s, all topics</div><svg id="spark" viewBox="0 0 120 28" preserveAspectRatio="none"></svg></div>
    <div class="card"><div class="label">Events stored</div><div class="value" id="events-total">–</div>
      <div class="sub" id="events-sub">&nbsp;</div></div>
    <div class="card"><div class="label">Topics</div><div class="value" id="topics-count">–</div>
      <div class="sub" id="storage-total">&nbsp;</div></div>
    <div class="card"><div class="label">Delivered</div><div class="value" id="delivered-total">–</div>
      <div class="sub" id="delivered-rate">&nbsp;</div></div>
    <div class="card"><div class="label">Dead-lettered</div><div class="value" id="dead-total">–</div>
      <div class="sub" id="lag-total">&nbsp;</div></div>
  </div>

  <section>
    <h2>Topics <span class="count" id="topics-n"></span></h2>
    <div class="scroll"><table>
      <thead><tr><th>Topic</th><th>Rate</th><th>Events</th><th class="wide">Offsets</th><th>Size</th>
        <th class="wide">Segments</th><th class="wide">Partitions</th><th class="wide l">fsync</th></tr></thead>
      <tbody id="topics"></tbody>
    </table></div>
  </section>

  <section>
    <h2>Routes <span class="count" id="routes-n"></span> <span id="reload" class="badge"></span></h2>
    <div id="reload-note" class="note"></div>
    <div class="scroll"><table>
      <thead><tr><th>Route → destination</th><th class="l">State</th><th>Rate</th><th class="wide">Matched</th><th>Delivered</th>
        <th class="wide">Retries</th><th>Dead</th><th class="wide">In flight</th><th>Lag</th></tr></thead>
      <tbody id="routes"></tbody>
    </table></div>
  </section>

  <section>
    <h2>Connectors &amp; bridges <span class="count" id="connectors-n"></span></h2>
    <div class="scroll"><table>
      <thead><tr><th>Connector</th><th class="l">Type</th><th class="l">State</th><th>Lag</th><th class="l wide">Detail</th></tr></thead>
      <tbody id="connectors"></tbody>
    </table></div>
  </section>
</main>
<script>
"use strict";
const $ = id => document.getElementById(id);
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const num = n => n >= 1e9 ? (n/1e9).toFixed(2)+"G" : n >= 1e6 ? (n/1e6).toFixed(2)+"M" : n >= 1e4 ? (n/1e3).toFixed(1)+"k" : String(Math.round(n));
const rate = r => r >= 100 ? num(r) : r >= 10 ? r.toFixed(0) : r > 0 ? r.toFixed(1) : "0";
const bytes = b => { const u = ["B","KiB","MiB","GiB","TiB"]; let i = 0; while (b >= 1024 && i < u.length-1) { b /= 1024; i++; } return (i ? b.toFixed(1) : b) + " " + u[i]; };
const dur = s => { s = Math.floor(s); const d = Math.floor(s/86400), h = Math.floor(s/3600)%24, m = Math.floor(s/60)%60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s%60}s` : `${s}s`; };
const secs = s => s >= 3600 ? dur(s) : s >= 60 ? dur(s) : s >= 1 ? s.toFixed(1)+"s" : s > 0 ? Math.round(s*1000)+"ms" : "0";
const badge = (text, kind) => `<span class="badge ${kind||""}">${esc(text)}</span>`;

let prev = null;          // {t, topics: {name: end}, dests: {key: delivered}}
const history = [];       // total publish rate, last 60 samples

function sparkline(values) {
  const max = Math.max(1, ...values), n = values.length;
  if (n < 2) return "";
  const pts = values.map((v, i) => `${(i*(120/(n-1))).toFixed(1)},${(27 - v/max*25).toFixed(1)}`).join(" ");
  return `<polyline fill="none" stroke="var(--accent)" stroke-width="1.6" points="${pts}"/>`;
}

async function get(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(path + " answered " + r.status);
  return r.json();
}

async function tick() {
  let status, topics, routes, connectors;
  try {
    [status, topics, routes, connectors] = await Promise.all(["/v1/status", "/v1/topics", "/v1/routes", "/v1/connectors"].map(get));
  } catch (e) {
    $("live").className = "badge bad"; $("live").textContent = "offline";
    return;
  }
  const now = performance.now() / 1000;
  const dt = prev ? Math.max(0.001, now - prev.t) : 0;
  $("live").className = "badge ok"; $("live").textContent = "live";
  $("node").textContent = status.node; $("version").textContent = status.version;
  $("uptime").textContent = dur(status.uptime_seconds);
  $("listeners").innerHTML = (status.listeners || []).map(l => `${esc(l.name)} <b>${esc(l.address)}</b>`).join(" · ");
  $("ready").className = "badge " + (status.ready ? "ok" : "warn"); $("ready").textContent = status.ready ? "ready" : "not ready";

  // Topics
  const list = topics.topics || [];
  let totalEvents = 0, totalRetained = 0, totalBytes = 0, totalRate = 0;
  const ends = {};
  const rows = list.map(t => {
    const parts = t.partitions || [];
    const end = parts.reduce((a, p) => a + p.end_offset, 0);
    const retained = parts.reduce((a, p) => a + (p.end_offset - p.start_offset), 0);
    ends[t.name] = end;
    const r = prev && prev.topics[t.name] !== undefined ? Math.max(0, end - prev.topics[t.name]) / dt : 0;
    totalEvents += end; totalRetained += retained; totalBytes += t.bytes || 0; totalRate += r;
    return {t, end, retained, r, parts};
  });
  const maxRate = Math.max(1, ...rows.map(x => x.r));
  rows.sort((a, b) => b.r - a.r || a.t.name.localeCompare(b.t.name));
  $("topics").innerHTML = rows.slice(0, 200).map(({t, retained, r, parts}) => `<tr>
    <td class="name" title="${esc(t.name)}">${esc(t.name)}${r > 0 ? `<div class="bar" style="width:${Math.max(4, r/maxRate*100).toFixed(0)}%"></div>` : ""}</td>
    <td class="${r > 0 ? "hot" : ""}">${rate(r)}<span class="dim">/s</span></td>
    <td>${num(retained)}</td>
    <td class="wide dim">${parts.map(p => p.start_offset + "–" + p.end_offset).join(" ")}</td>
    <td>${bytes(t.bytes || 0)}</td><td class="wide">${t.segments ?? ""}</td><td class="wide">${parts.length}</td>
    <td class="wide l dim">${esc(t.durability)}</td></tr>`).join("") ||
    `<tr><td colspan="8" class="l dim">no topics yet — publish with <code>curl -d hi localhost:8080/v1/publish/demo</code></td></tr>`;
  $("topics-n").textContent = list.length > 200 ? `${list.length} (200 busiest shown)` : list.length;
  $("topics-count").textContent = num(list.length);
  $("storage-total").textContent = bytes(totalBytes) + " on disk";
  $("events-total").textContent = num(totalEvents);
  $("events-total").dataset.value = totalEvents;
  $("events-sub").textContent = num(totalRetained) + " retained";
  $("rate-total").textContent = prev ? rate(totalRate) : "–";
  if (prev) { history.push(totalRate); if (history.length > 60) history.shift(); }
  $("spark").innerHTML = sparkline(history);

  // Routes: one row per (route, destination)
  const dests = connectors.destinations || [];
  const delivered = {};
  let sumDelivered = 0, sumDead = 0, sumLag = 0, deliveredRate = 0;
  $("routes").innerHTML = dests.map(d => {
    const key = d.route + "#" + d.index;
    delivered[key] = d.delivered;
    const r = prev && prev.dests[key] !== undefined ? Math.max(0, d.delivered - prev.dests[key]) / dt : 0;
    sumDelivered += d.delivered; sumDead += d.dead_lettered; sumLag += d.lag; deliveredRate += r;
    const state = d.state === "running" ? badge("running", "ok") : badge(d.state, "warn");
    const err = d.last_error ? `<div class="dim" title="${esc(d.last_error)}">${esc(d.last_error).slice(0, 60)}</div>` : "";
    const waiting = d.waiting_reason ? `<div class="dim">${esc(d.waiting_reason)}</div>` : "";
    return `<tr><td class="name" title="${esc(d.route)} → ${esc(d.destination)}">${esc(d.route)} <span class="dim">→</span> ${esc(d.destination)}${waiting}${err}</td>
      <td class="l">${state}</td><td class="${r > 0 ? "hot" : ""}">${rate(r)}<span class="dim">/s</span></td>
      <td class="wide">${num(d.matched)}</td><td>${num(d.delivered)}</td><td class="wide">${num(d.failed_attempts)}</td>
      <td class="${d.dead_lettered ? "badn" : ""}">${num(d.dead_lettered)}</td><td class="wide">${num(d.in_flight ?? 0)}</td>
      <td>${num(d.lag)}${d.lag_seconds ? ` <span class="dim">${secs(d.lag_seconds)}</span>` : ""}</td></tr>`;
  }).join("") || `<tr><td colspan="9" class="l dim">no routes running</td></tr>`;
  $("routes-n").textContent = dests.length;
  $("delivered-total").textContent = num(sumDelivered);
  $("delivered-rate").textContent = prev ? rate(deliveredRate) + " /s" : "\u00a0";
  $("dead-total").textContent = num(sumDead);
  $("dead-total").className = "value" + (sumDead ? " badn" : "");
  $("lag-total").textContent = num(sumLag) + " events behind";
  const ok = !routes.last_error;
  $("reload").className = "badge " + (routes.loaded ? (ok ? "ok" : "bad") : "warn");
  $("reload").textContent = routes.loaded ? `generation ${routes.generation}` + (ok ? "" : " · last reload failed") : "not loaded";
  const when = routes.last_reload ? `last reload ${new Date(routes.last_reload).toLocaleTimeString()}` : "";
  $("reload-note").className = "note" + (ok ? "" : " err");
  $("reload-note").textContent = ok ? [when, (routes.files || []).length + " file(s)", (routes.reloads ?? 0) + " reload(s), " + (routes.failed_reloads ?? 0) + " rejected"].filter(Boolean).join(" · ")
                                    : routes.last_error;

  // Connectors: declared ones, with what their runtimes report
  const runtime = {};
  for (const r of connectors.runtime || []) if (r.name) runtime[r.name] = r;
  const declared = connectors.connectors || [];
  $("connectors").innerHTML = declared.map(c => {
    const rt = runtime[c.name] || {};
    const st = rt.state || "no runtime";
    const kind = /^(running|connected|up)$/.test(st) ? "ok" : /down|error|failed|disconnected/.test(st) ? "bad" : "warn";
    const detail = rt.last_error || rt.url || (c.options && c.options.url) || "";
    return `<tr><td class="name">${esc(c.name)}</td><td class="l">${esc(c.type)}</td><td class="l">${badge(st, kind)}</td>
      <td>${rt.lag !== undefined ? num(rt.lag) : "–"}</td><td class="l wide dim">${esc(detail)}</td></tr>`;
  }).join("") || `<tr><td colspan="5" class="l dim">no connectors declared</td></tr>`;
  $("connectors-n").textContent = declared.length;

  prev = {t: now, topics: ends, dests: delivered};
}

async function loop() { await tick(); setTimeout(loop, 1000); }
loop();
</script>
</body>
</html>
"""#
}
