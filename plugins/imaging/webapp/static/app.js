// Photos web app: shared helpers (plain JS, no build step).
"use strict";
const ROOT = document.querySelector('meta[name="photos-root"]').content;
const LOGIN = document.querySelector('meta[name="photos-login"]').content;
const API = ROOT + "/api/v1/photos";

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.error)) || ("HTTP " + status));
    this.status = status; this.body = body || {};
  }
}

async function api(path, opts = {}) {
  const headers = Object.assign({ "Accept": "application/json", "X-Requested-With": "photos-webapp" }, opts.headers || {});
  const res = await fetch(path.startsWith("/") ? path : API + "/" + path,
    Object.assign({ credentials: "same-origin" }, opts, { headers }));
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (res.status === 401) { window.location.href = LOGIN; throw new ApiError(401, body); }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const STATUS_LABEL = {
  pending: "pending", processing: "processing", completed: "completed", failed: "failed",
  needs_location: "needs location", needs_config: "needs config", needs_calibration: "needs calibration",
  ready: "ready", warning: "warning", uploaded: "uploaded",
};
function badge(kind, status) {
  return el("span", { class: "badge " + kind, "data-status": status }, STATUS_LABEL[status] || status);
}
function bar(pct) { return el("div", { class: "bar" }, el("span", { style: "width:" + Math.max(0, Math.min(100, pct)) + "%" })); }
function fmtBytes(n) { return n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : n >= 1024 ? (n / 1024).toFixed(0) + " KB" : n + " B"; }
function fmtDate(s) { return s ? new Date(s).toLocaleString() : "—"; }
function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2);
}
// a job that a DAG run may still pick up or is running
function isActive(status) { return status === "pending" || status === "processing"; }
// GET `path` every `every` ms until `step(body)` returns true; after an error `onError(e)` and a
// longer pause. Returns { stop() }.
function poll(path, step, onError = null, every = 2000) {
  let timer = null, stopped = false;
  const tick = async () => {
    if (stopped) return;
    try {
      if (!(await step(await api(path))) && !stopped) timer = setTimeout(tick, every);
    } catch (e) {
      if (onError) onError(e);
      if (!stopped) timer = setTimeout(tick, every * 2.5);
    }
  };
  tick();
  return { stop() { stopped = true; clearTimeout(timer); } };
}
function nav(active) {
  for (const a of document.querySelectorAll("header a[data-page]")) a.classList.toggle("active", a.dataset.page === active);
}
