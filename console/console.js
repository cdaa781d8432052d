/*
 * console.js - the operations console: sign in through the auth API, then
 * follow /api/infrastructure/stream (Server-Sent Events read with fetch,
 * since EventSource cannot send an Authorization header) and draw what
 * each snapshot says. The access token lives in this closure only: never
 * in storage, cookies or the URL. No framework, no build step.
 */
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  let token = null;
  let groupNames = [];
  let lastEventId = "";
  let streamAbort = null;
  let retryMs = 1000;
  const history = new Map(); // consumer group id -> [[t, lag, rate]]
  const HISTORY_MAX = 240;

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }
  const fmt = (n, d = 0) => (n == null ? "—" : Number(n).toLocaleString("en", { maximumFractionDigits: d }));
  const ago = (ms) => (ms == null ? "—" : `${Math.max(0, Math.round((Date.now() - ms) / 1000))} s ago`);
  function bytes(n) {
    if (n == null) return "—";
    const u = ["B", "KiB", "MiB", "GiB"]; let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
  }
  function duration(s) {
    if (s == null) return "—";
    s = Math.round(s);
    if (s < 120) return `${s}s`;
    if (s < 7200) return `${Math.round(s / 60)}m`;
    return `${Math.round(s / 3600)}h`;
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined, cache: "no-store" });
    let data = null;
    try { data = await r.json(); } catch (e) { /* no body */ }
    return { status: r.status, data };
  }

  function setState(state, text) {
    const s = $("#stream-state");
    s.className = `state ${state}`;
    s.dataset.state = state;
    s.textContent = text;
  }

  /* -- sign in ----------------------------------------------------------- */

  async function login(ev) {
    ev.preventDefault();
    $("#login-error").textContent = "";
    const r = await api("POST", "/api/auth/login", { email: $("#login-email").value, password: $("#login-password").value });
    if (r.status !== 200 || !r.data || !r.data.access_token) {
      $("#login-error").textContent = r.data && r.data.mfa_required
        ? "this account uses a second factor: sign in with it through the API first"
        : (r.data && r.data.detail) || `sign-in failed (${r.status})`;
      return;
    }
    token = r.data.access_token;
    $("#login-password").value = "";
    const topo = await api("GET", "/api/infrastructure/topology");
    if (topo.status === 403 || topo.status === 401) {
      token = null;
      $("#login-error").textContent = "this account is not an admin of an operators' organisation";
      return;
    }
    $("#login").hidden = true;
    $("#console").hidden = false;
    $("#logout").hidden = false;
    $("#who").textContent = $("#login-email").value;
    if (topo.status === 200) {
      groupNames = topo.data.groups.map((g) => g.group);
      drawTopology(topo.data.groups.flatMap((g) => g.processes));
    }
    await seedHistory();
    follow();
    others();
  }

  function logout() {
    token = null;
    if (streamAbort) streamAbort.abort();
    $("#console").hidden = true;
    $("#logout").hidden = true;
    $("#login").hidden = false;
    $("#who").textContent = "";
    setState("off", "not connected");
  }

  async function seedHistory() {
    const r = await api("GET", "/api/infrastructure/groups");
    if (r.status !== 200) return;
    await Promise.all(r.data.groups.map(async (g) => {
      const d = await api("GET", `/api/infrastructure/groups/${encodeURIComponent(g.id)}`);
      if (d.status === 200 && d.data.history) history.set(g.id, d.data.history.slice(-HISTORY_MAX));
    }));
  }

  /* -- the stream ---------------------------------------------------------- */

  async function follow() {
    if (!token) return;
    const ctl = new AbortController();
    streamAbort = ctl;
    let watchdog = null;
    const kick = () => { clearTimeout(watchdog); watchdog = setTimeout(() => ctl.abort(), 25000); };
    try {
      const headers = { Authorization: `Bearer ${token}`, Accept: "text/event-stream" };
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      const r = await fetch("/api/infrastructure/stream", { headers, signal: ctl.signal, cache: "no-store" });
      if (r.status === 401) { logout(); $("#login-error").textContent = "the session ended: sign in again"; return; }
      if (r.status !== 200 || !r.body) throw new Error(`HTTP ${r.status}`);
      setState("live", "live");
      retryMs = 1000;
      kick();
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        kick();
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const ev = { id: "", event: "message", data: "" };
          for (const line of frame.split("\n")) {
            if (line.startsWith(":")) continue;
            const i = line.indexOf(":");
            const k = i < 0 ? line : line.slice(0, i);
            const v = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
            if (k === "data") ev.data += (ev.data ? "\n" : "") + v;
            else if (k === "id") ev.id = v;
            else if (k === "event") ev.event = v;
          }
          if (ev.id) lastEventId = ev.id;
          if (ev.event === "infrastructure.snapshot.sampled" && ev.data) snapshot(JSON.parse(ev.data));
        }
      }
      throw new Error("the stream ended");
    } catch (e) {
      if (!token) return;
      setState("down", `stream dropped at ${new Date().toLocaleTimeString()}: reconnecting in ${Math.round(retryMs / 1000)} s`);
    } finally {
      clearTimeout(watchdog);
    }
    setTimeout(follow, retryMs);
    retryMs = Math.min(retryMs * 2, 15000);
  }

  /* -- drawing ------------------------------------------------------------- */

  function snapshot(s) {
    const unknown = [];
    if (!s.ok) unknown.push(`the cluster did not answer the last sample: ${s.error}`);
    $("#unknown").hidden = !unknown.length;
    $("#unknown").textContent = unknown.join("; ");
    $("#sample").textContent = `sampled ${new Date(s.sampled_at).toLocaleTimeString()} in ${s.duration_ms} ms; ${fmt(s.messages_per_s, 1)} messages/s produced`;
    for (const g of s.groups) {
      const h = history.get(g.id) || [];
      h.push([s.sampled_at, (g.lag || 0) + (g.waiting_uncommitted || 0), g.consumed_per_s == null ? null : g.consumed_per_s]);
      while (h.length > HISTORY_MAX) h.shift();
      history.set(g.id, h);
    }
    drawTopology(s.processes);
    drawGroups(s.groups);
    drawDeadLetters(s.dead_letters);
    drawDeps(s.dependencies);
  }

  // One box per group, then the HTTP edges (their heartbeats' group "edge").
  function drawTopology(processes) {
    const box = $("#topology");
    const names = groupNames.length ? groupNames
      : [...new Set(processes.map((p) => p.group))].filter((n) => n !== "edge");
    const procBox = (cls, name, title, mine, unit) => {
      const live = mine.filter((p) => !p.stale).length;
      return el("div", { class: `${cls}${live ? "" : " empty"}`, "data-group": name },
        el("h3", {}, el("span", { text: title }), el("span", { class: "live", text: live ? `${live} live` : "no process" })),
        ...mine.map((p) => el("div", { class: `process${p.stale ? " stale" : ""}`, "data-pid": String(p.pid) },
          el("b", { text: `${p.mode} pid ${p.pid}` }), ` on ${p.host}`, el("br"),
          `v${p.version}, up ${duration(p.uptime_s)}, ${bytes(p.rss_bytes)}, ${fmt(p.messages_per_s, 1)} ${unit}/s`,
          p.stale ? el("span", { text: ` (stale, ${Math.round(p.age_s)} s)` }) : null)));
    };
    box.replaceChildren(
      ...names.map((name) => procBox("group", name, name, processes.filter((p) => p.group === name), "msg")),
      procBox("group-edge", "edge", "edge (HTTP)", processes.filter((p) => p.group === "edge"), "requests"));
  }

  function spark(values, color) {
    const c = el("canvas", { class: "spark", width: "280", height: "52" });
    const ctx = c.getContext("2d");
    const v = values.filter((x) => x != null);
    if (v.length < 2) return c;
    const max = Math.max(1, ...v);
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    values.forEach((y, i) => {
      const px = (i / (values.length - 1)) * 276 + 2;
      const py = 50 - ((y || 0) / max) * 46;
      if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py);
    });
    ctx.stroke();
    return c;
  }

  function drawGroups(groups) {
    const rows = groups.map((g) => {
      const h = history.get(g.id) || [];
      return el("tr", { "data-group": g.id, "data-status": g.status },
        el("td", { text: g.id }),
        el("td", { text: g.state }),
        el("td", {}, el("span", { class: `badge ${g.status}`, text: g.status })),
        el("td", { class: "num members", text: fmt(g.members) }),
        el("td", { class: "num lag", "data-lag": String((g.lag || 0) + (g.waiting_uncommitted || 0)),
                   text: g.waiting_uncommitted ? `${fmt(g.lag)} +${fmt(g.waiting_uncommitted)} uncommitted` : fmt(g.lag) }),
        el("td", { class: "num lag-s", text: g.lag_s == null ? "—" : fmt(g.lag_s) }),
        el("td", { class: "num rate", text: fmt(g.consumed_per_s, 1) }),
        el("td", {}, spark(h.map((p) => p[1]), "#d29922")),
        el("td", {}, spark(h.map((p) => p[2]), "#58a6ff")));
    });
    $("#groups tbody").replaceChildren(...rows);
  }

  function drawDeadLetters(list) {
    $("#dlq tbody").replaceChildren(...(list || []).map((d) =>
      el("tr", { "data-group": d.group },
        el("td", { text: d.group }),
        el("td", { class: "num count", text: d.count == null ? "unknown" : fmt(d.count) }),
        el("td", {}, el("code", { text: d.command })))));
  }

  function drawDeps(list) {
    $("#deps tbody").replaceChildren(...(list || []).map((d) =>
      el("tr", { "data-dep": d.name },
        el("td", { text: d.name }),
        el("td", {}, el("span", { class: `badge ${d.ok ? "up" : "down"}`, text: d.ok ? "up" : "down" })),
        el("td", { class: "num", text: `${fmt(d.latency_ms)} ms` }),
        el("td", { text: d.error ? `${d.error} (${ago(d.error_at)})` : "—" }))));
  }

  /* -- other groups, when this system has them ----------------------------- */

  function items(data, ...keys) {
    for (const k of keys) if (data && Array.isArray(data[k])) return data[k];
    return Array.isArray(data) ? data : [];
  }

  const orNone = (list) => (list.length ? list : [null]);

  async function others() {
    if (!token) return;
    const runs = await api("GET", "/api/workflows/runs?limit=5");
    $("#runs").replaceChildren(...(runs.status === 200
      ? orNone(items(runs.data, "runs", "items")).slice(0, 5).map((r) => r === null ? el("li", { class: "hint", text: "none yet" }) : el("li", {},
          el("b", { text: r.status || "" }), ` ${r.workflow_id || r.workflow || ""} `,
          el("span", { class: "hint", text: r.run_id || r.id || "" })))
      : [el("li", { class: "hint", text: runs.status === 404 ? "no workflow runs in this build" : `not available (${runs.status})` })]));
    const ins = await api("GET", "/api/analytics/insights?limit=5");
    $("#insights").replaceChildren(...(ins.status === 200
      ? orNone(items(ins.data, "insights", "items")).slice(0, 5).map((i) => i === null ? el("li", { class: "hint", text: "none yet" }) : el("li", {},
          el("span", { class: `badge ${i.severity === "high" ? "ERR" : "WARN"}`, text: i.severity || "" }),
          ` ${i.title || i.metric || ""}`))
      : [el("li", { class: "hint", text: ins.status === 404 ? "no insights in this build" : `not available (${ins.status})` })]));
    setTimeout(others, 30000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("#login-form").addEventListener("submit", login);
    $("#logout").addEventListener("click", logout);
  });
})();
