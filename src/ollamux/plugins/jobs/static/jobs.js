// The jobs page: submit a prompt, watch it, list and cancel jobs. Plain JS, no dependencies.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const PAGE_SIZE = 10;
  const TERMINAL = ["completed", "failed", "cancelled"];
  let page = 1;
  let current = null;
  let watchTimer = null;

  const keyInput = $("api-key");
  keyInput.value = localStorage.getItem("ollamux-key") || "";
  keyInput.addEventListener("change", () => {
    localStorage.setItem("ollamux-key", keyInput.value);
    loadModels();
    refreshList();
  });

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (keyInput.value) headers.Authorization = "Bearer " + keyInput.value;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok && resp.status !== 202) {
      const err = data && data.error;
      throw new Error((err && (err.message || err)) || "HTTP " + resp.status);
    }
    return data;
  }

  function badge(el, status) {
    el.textContent = status;
    el.className = "badge " + status;
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "";
  }

  async function loadModels() {
    const select = $("model");
    try {
      const tags = await api("GET", "/api/tags");
      const names = (tags.models || []).map((m) => m.name || m.model).sort();
      select.replaceChildren(...names.map((n) => new Option(n, n)));
      if (!names.length) select.replaceChildren(new Option("no models available", ""));
    } catch (e) {
      select.replaceChildren(new Option("models unavailable: " + e.message, ""));
    }
  }

  $("submit-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("submit-error").textContent = "";
    const body = { prompt: $("prompt").value, model: $("model").value || undefined };
    const priority = parseInt($("priority").value, 10);
    if (!Number.isNaN(priority)) body.priority = priority;
    $("submit").disabled = true;
    try {
      const created = $("stream").checked ? await detach(body) : await api("POST", "/api/v1/prompt", body);
      watch(created.id);
      refreshList();
    } catch (e) {
      $("submit-error").textContent = e.message;
    } finally {
      $("submit").disabled = false;
    }
  });

  // A streamed generation, detached (Prefer: respond-async): the answer is followed live.
  async function detach(body) {
    const headers = { "Content-Type": "application/json", Prefer: "respond-async" };
    if (keyInput.value) headers.Authorization = "Bearer " + keyInput.value;
    const resp = await fetch("/api/generate", {
      method: "POST", headers,
      body: JSON.stringify({ model: body.model, prompt: body.prompt, stream: true }),
    });
    const data = await resp.json();
    if (resp.status !== 202) throw new Error((data.error && (data.error.message || data.error)) || "HTTP " + resp.status);
    return data;
  }

  // The text of one chunk of kept output (/tasks/{id}/output), whatever its dialect.
  function pieceText(chunk) {
    let line = chunk.trim();
    const data = line.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim());
    if (data.length) line = data.join("");
    if (!line || line === "[DONE]") return "";
    try {
      const obj = JSON.parse(line);
      if (typeof obj.response === "string") return obj.response;
      if (obj.message && typeof obj.message.content === "string") return obj.message.content;
      const c = (obj.choices || [])[0] || {};
      return (c.delta && c.delta.content) || (c.message && c.message.content) || c.text || "";
    } catch (e) {
      return "";
    }
  }

  let outputAbort = null;
  async function followOutput(id) {
    if (outputAbort) outputAbort.abort();
    const abort = outputAbort = new AbortController();
    const out = $("current-output");
    out.textContent = "";
    const headers = keyInput.value ? { Authorization: "Bearer " + keyInput.value } : {};
    try {
      const resp = await fetch("/tasks/" + encodeURIComponent(id) + "/output", { headers, signal: abort.signal });
      if (!resp.ok) return;
      const sse = (resp.headers.get("Content-Type") || "").includes("event-stream");
      const whole = !sse && !(resp.headers.get("Content-Type") || "").includes("ndjson");
      const reader = resp.body.getReader();
      const text = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += text.decode(value, { stream: true });
        if (whole) continue;
        const sep = sse ? "\n\n" : "\n";
        let cut;
        while ((cut = buf.indexOf(sep)) >= 0) {
          out.textContent += pieceText(buf.slice(0, cut));
          buf = buf.slice(cut + sep.length);
        }
      }
      if (buf.trim()) out.textContent += pieceText(buf);
    } catch (e) {
      if (e.name !== "AbortError") out.textContent += " [" + e.message + "]";
    }
  }

  function watch(id) {
    current = id;
    $("current").hidden = false;
    $("current-id").textContent = id;
    $("current-result").textContent = "";
    clearTimeout(watchTimer);
    followOutput(id);
    poll();
  }

  async function poll() {
    const id = current;
    try {
      const doc = await api("GET", "/api/v1/prompt/" + id + "/result");
      if (id !== current) return;
      badge($("current-status"), doc.status);
      $("cancel-current").disabled = TERMINAL.includes(doc.status);
      if (doc.status === "completed") {
        const r = doc.result;
        const streamed = r && typeof r === "object" && "__ollamux_stream__" in r;  // shown above
        $("current-result").textContent =
          streamed ? "" : typeof r === "string" ? r : JSON.stringify(r, null, 2);
      } else if (TERMINAL.includes(doc.status)) {
        $("current-result").textContent = doc.error || doc.status;
      }
      if (!TERMINAL.includes(doc.status)) watchTimer = setTimeout(poll, 1000);
    } catch (e) {
      $("current-result").textContent = e.message;
    }
  }

  async function cancel(id) {
    try {
      await api("DELETE", "/jobs/" + id);
    } catch (e) {
      alert(e.message);
    }
    if (id === current) { clearTimeout(watchTimer); poll(); }
    refreshList();
  }
  $("cancel-current").addEventListener("click", () => current && cancel(current));

  async function refreshList() {
    const status = $("status-filter").value;
    const query = "?page=" + page + "&page_size=" + PAGE_SIZE + (status ? "&status=" + status : "");
    let data;
    try {
      data = await api("GET", "/jobs" + query);
    } catch (e) {
      $("page-info").textContent = e.message;
      return;
    }
    if (page > 1 && page > data.total_pages) { page = Math.max(1, data.total_pages); return refreshList(); }
    const rows = data.jobs.map((job) => {
      const tr = document.createElement("tr");
      tr.dataset.id = job.id;
      const idCell = document.createElement("td");
      const code = document.createElement("code");
      code.textContent = job.id.slice(0, 8);
      code.title = "show " + job.id;
      code.addEventListener("click", () => watch(job.id));
      idCell.append(code);
      const statusCell = document.createElement("td");
      const b = document.createElement("span");
      badge(b, job.status);
      statusCell.append(b);
      const action = document.createElement("td");
      if (!TERMINAL.includes(job.status)) {
        const btn = document.createElement("button");
        btn.type = "button";
        btn.className = "secondary small cancel";
        btn.textContent = "Cancel";
        btn.addEventListener("click", () => cancel(job.id));
        action.append(btn);
      }
      const cells = [job.model, null, when(job.created_at), String(job.attempts)].map((t) => {
        const td = document.createElement("td");
        if (t !== null) td.textContent = t;
        return td;
      });
      cells[1] = statusCell;
      tr.append(idCell, ...cells, action);
      return tr;
    });
    $("jobs-table").tBodies[0].replaceChildren(...rows);
    $("empty").hidden = data.total > 0;
    $("page-info").textContent = "page " + data.page + " of " + Math.max(1, data.total_pages) +
      " · " + data.total + " jobs";
    $("prev").disabled = page <= 1;
    $("next").disabled = page >= data.total_pages;
  }

  $("prev").addEventListener("click", () => { page = Math.max(1, page - 1); refreshList(); });
  $("next").addEventListener("click", () => { page += 1; refreshList(); });
  $("status-filter").addEventListener("change", () => { page = 1; refreshList(); });

  loadModels();
  refreshList();
  setInterval(refreshList, 5000);
  if (location.pathname === "/list") $("jobs").scrollIntoView();
})();
