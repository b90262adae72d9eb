// The ollamux dashboard: polls /ollamux/stats every second and draws what it says.
// Plain JS, no libraries: the page must work with no internet access.
"use strict";

const POLL_MS = 1000;
const KEY_STORE = "ollamux.adminKey";
const $ = (id) => document.getElementById(id);

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function fmtMs(ms) {
  if (ms == null) return "–";
  return ms >= 1000 ? (ms / 1000).toFixed(ms >= 10000 ? 0 : 1) + " s" : Math.round(ms) + " ms";
}

async function fetchStats() {
  const key = sessionStorage.getItem(KEY_STORE);
  const headers = key ? { Authorization: "Bearer " + key } : {};
  const resp = await fetch("/ollamux/stats", { headers, cache: "no-store" });
  if (resp.status === 401 || resp.status === 403) {
    $("auth").style.display = "flex";
    throw new Error("admin key needed");
  }
  if (!resp.ok) throw new Error("HTTP " + resp.status);
  return resp.json();
}

// A small line chart on a canvas: several series over the same x axis.
function drawChart(canvas, series, colors) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const pad = { l: 44, r: 8, t: 8, b: 18 };
  let max = 0;
  for (const s of series) for (const v of s) if (v != null && v > max) max = v;
  max = max > 0 ? niceMax(max) : 1;
  const style = getComputedStyle(document.documentElement);
  g.strokeStyle = style.getPropertyValue("--line");
  g.fillStyle = style.getPropertyValue("--dim");
  g.font = "11px system-ui, sans-serif";
  g.lineWidth = 1;
  for (let i = 0; i <= 2; i++) {
    const y = pad.t + (h - pad.t - pad.b) * (i / 2);
    g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
    g.fillText(fmtAxis(max * (1 - i / 2)), 4, y + 4);
  }
  const n = series[0].length;
  g.fillText("-" + n + " s", pad.l, h - 4);
  g.fillText("now", w - pad.r - 22, h - 4);
  series.forEach((s, k) => {
    g.strokeStyle = style.getPropertyValue(colors[k]);
    g.lineWidth = 1.6;
    g.beginPath();
    let pen = false;
    s.forEach((v, i) => {
      const x = pad.l + (w - pad.l - pad.r) * (i / Math.max(1, n - 1));
      if (v == null) { pen = false; return; }
      const y = pad.t + (h - pad.t - pad.b) * (1 - v / max);
      if (pen) g.lineTo(x, y); else g.moveTo(x, y);
      pen = true;
    });
    g.stroke();
    // A lone point (its neighbours empty) would draw nothing as a line: mark it.
    g.fillStyle = g.strokeStyle;
    s.forEach((v, i) => {
      if (v == null || s[i - 1] != null || s[i + 1] != null) return;
      const x = pad.l + (w - pad.l - pad.r) * (i / Math.max(1, n - 1));
      const y = pad.t + (h - pad.t - pad.b) * (1 - v / max);
      g.beginPath(); g.arc(x, y, 2.5, 0, 2 * Math.PI); g.fill();
    });
  });
}

function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmtAxis(v) {
  return v >= 1000 ? (v / 1000).toFixed(1) + "k" : (v >= 10 ? Math.round(v) : v.toFixed(1));
}

function renderBackends(backends) {
  const rows = backends.map((b) => {
    const health = b.draining ? '<span class="pill warn">draining</span>'
      : b.healthy ? '<span class="pill ok">healthy</span>' : '<span class="pill bad">down</span>';
    const pct = Math.min(100, (100 * b.in_flight) / Math.max(1, b.max_concurrency));
    return `<tr data-backend="${esc(b.name)}"><td>${esc(b.name)}</td><td><code>${esc(b.url)}</code></td>` +
      `<td>${esc(b.api)}</td><td>${health}</td>` +
      `<td><span class="bar"><b style="width:${pct}%"></b></span>${b.in_flight} / ${b.max_concurrency}</td>` +
      `<td>${esc((b.loaded_models || []).join(", ")) || "–"}</td><td>${(b.models || []).length}</td></tr>`;
  });
  $("backends").tBodies[0].innerHTML =
    rows.join("") || '<tr><td class="empty" colspan="7">no backends</td></tr>';
}

function renderTasks(tasks) {
  const rows = tasks.map((t) =>
    `<tr data-task="${esc(t.task_id)}"><td><code>${esc(t.task_id || "–")}</code></td><td>${esc(t.key)}</td>` +
    `<td>${esc(t.method)} ${esc(t.path)}</td><td>${esc(t.model || "–")}</td>` +
    `<td>${esc(t.backend || "–")}</td>` +
    `<td><span class="pill ${t.state === "RUNNING" ? "ok" : "warn"}">${esc(t.state)}</span></td>` +
    `<td>${t.chunks}</td><td>${fmtMs(t.elapsed_ms)}</td></tr>`);
  $("tasks").tBodies[0].innerHTML =
    rows.join("") || '<tr><td class="empty" colspan="8">nothing in flight</td></tr>';
}

// Gauges and counters plugins publish (queue, tasks, jobs), two name/value pairs a row.
function renderGauges(gauges, counters) {
  const items = Object.entries({ ...gauges, ...counters }).sort(([a], [b]) => a.localeCompare(b));
  const cells = items.map(([k, v]) =>
    `<td data-gauge="${esc(k)}">${esc(k)}</td><td>${Number.isInteger(v) ? v : v.toFixed(3)}</td>`);
  const rows = [];
  for (let i = 0; i < cells.length; i += 2) rows.push(`<tr>${cells[i]}${cells[i + 1] || "<td></td><td></td>"}</tr>`);
  $("gauges").tBodies[0].innerHTML =
    rows.join("") || '<tr><td class="empty" colspan="4">none published</td></tr>';
}

function render(s) {
  const series = s.series;
  const last10 = series.slice(-10);
  const reqs = last10.reduce((a, p) => a + p.requests, 0);
  const lat = last10.filter((p) => p.latency_ms != null);
  const latAvg = lat.length ? lat.reduce((a, p) => a + p.latency_ms * p.requests, 0) /
    lat.reduce((a, p) => a + p.requests, 0) : null;
  $("rps").textContent = (reqs / 10).toFixed(1);
  $("inflight").textContent = s.in_flight;
  $("queue").textContent = Math.round(s.queue_depth);
  $("latency").textContent = fmtMs(latAvg);
  $("healthy").textContent =
    s.backends.filter((b) => b.healthy && !b.draining).length + " / " + s.backends.length;
  $("total").textContent = s.requests_total;
  $("meta").textContent = `pid ${s.pid} · up ${Math.round(s.uptime_s)} s`;
  drawChart($("chart-rps"), [series.map((p) => p.requests), series.map((p) => p.errors)], ["--a", "--bad"]);
  drawChart($("chart-latency"), [series.map((p) => p.latency_ms), series.map((p) => p.ttft_ms)], ["--a", "--b"]);
  renderBackends(s.backends);
  renderTasks(s.tasks);
  renderGauges(s.gauges, s.counters);
}

async function tick() {
  try {
    render(await fetchStats());
    $("status").className = "ok";
    $("status").textContent = "live";
  } catch (err) {
    $("status").className = "bad";
    $("status").textContent = String(err.message || err);
  } finally {
    setTimeout(tick, POLL_MS);
  }
}

// Requests, live and detached: the task list (PENDING and RUNNING, every instance sharing
// the store), each row followed on its event feed (/tasks/{id}/events) and cancellable
// (DELETE /tasks/{id}). The feed is read with fetch, so the admin key goes along.
const LIST_MS = 2000;
const feeds = new Map(); // task id -> {doc, abort}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { Authorization: "Bearer " + key } : {};
}

async function follow(taskId) {
  const abort = new AbortController();
  const entry = { doc: feeds.get(taskId)?.doc, abort };
  feeds.set(taskId, entry);
  try {
    const resp = await fetch(`/tasks/${encodeURIComponent(taskId)}/events`,
      { headers: authHeaders(), signal: abort.signal, cache: "no-store" });
    if (!resp.ok) return;
    const reader = resp.body.getReader();
    const text = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += text.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trim()).join("\n");
        if (!data) continue;
        entry.doc = JSON.parse(data);
        renderRequests();
      }
    }
  } catch (err) {
    if (err.name !== "AbortError") console.debug("feed", taskId, err);
  }
}

function renderRequests() {
  const rows = [...feeds.entries()].map(([id, { doc }]) => {
    const ext = (doc && doc.extensions) || {};
    const state = doc ? doc.state : "…";
    const live = state === "PENDING" || state === "RUNNING";
    const pill = state === "RUNNING" ? "ok" : state === "PENDING" ? "warn" : state === "SUCCESS" ? "ok" : "bad";
    return `<tr data-live-task="${esc(id)}"><td><code>${esc(id)}</code></td>` +
      `<td>${esc(ext.method)} ${esc(ext.path)}</td><td>${esc(ext.model || "–")}</td>` +
      `<td>${esc(ext.backend || "–")}</td>` +
      `<td class="state"><span class="pill ${pill}">${esc(state)}</span> ${esc(doc ? doc.stage : "")}</td>` +
      `<td class="queue">${ext.queue_position ?? "–"}</td><td class="tokens">${ext.tokens ?? 0}</td>` +
      `<td>${live ? `<button class="cancel" data-cancel="${esc(id)}">cancel</button>` : ""}</td></tr>`;
  });
  $("requests").tBodies[0].innerHTML =
    rows.join("") || '<tr><td class="empty" colspan="8">none</td></tr>';
}

async function listRequests() {
  try {
    const seen = new Set();
    for (const state of ["RUNNING", "PENDING"]) {
      const resp = await fetch(`/tasks/status?limit=50&state=${state}`,
        { headers: authHeaders(), cache: "no-store" });
      if (!resp.ok) continue;
      for (const doc of (await resp.json()).tasks) {
        seen.add(doc.task_id);
        if (!feeds.has(doc.task_id)) {
          feeds.set(doc.task_id, { doc, abort: null });
          follow(doc.task_id);
        }
      }
    }
    // Finished rows stay for one more listing, then go.
    for (const [id, entry] of feeds) {
      const live = entry.doc && (entry.doc.state === "PENDING" || entry.doc.state === "RUNNING");
      if (!seen.has(id) && !live) {
        if (entry.gone) { entry.abort?.abort(); feeds.delete(id); } else entry.gone = true;
      }
    }
    renderRequests();
  } finally {
    setTimeout(listRequests, LIST_MS);
  }
}

$("requests").addEventListener("click", async (ev) => {
  const id = ev.target?.dataset?.cancel;
  if (!id) return;
  ev.target.disabled = true;
  await fetch(`/tasks/${encodeURIComponent(id)}`, { method: "DELETE", headers: authHeaders() });
});

listRequests();

$("auth").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY_STORE, $("key").value);
  $("auth").style.display = "none";
});

tick();
