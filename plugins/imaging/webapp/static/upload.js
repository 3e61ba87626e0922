// Upload page: drag and drop, per-file checks before upload, per-file upload progress, live job list.
"use strict";
nav("upload");
const LIMITS = { files: 100, fileBytes: 20 * 1048576, totalBytes: 500 * 1048576 };
const drop = document.getElementById("drop");
const picker = document.getElementById("picker");
const selBody = document.querySelector("#selected tbody");
const uploadBtn = document.getElementById("upload-btn");
const clearBtn = document.getElementById("clear-btn");
const batchMsg = document.getElementById("batch-msg");
let items = []; // {file, ok, reason, row, progressCell}
let poller = null;

async function sniff(file) {
  const b = new Uint8Array(await file.slice(0, 8).arrayBuffer());
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "JPEG";
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (b.length >= 8 && png.every((v, i) => b[i] === v)) return "PNG";
  return null;
}

async function check(file) {
  if (file.size === 0) return "the file is empty";
  if (file.size > LIMITS.fileBytes) return fmtBytes(file.size) + " exceeds the 20 MB limit per photo";
  const kind = await sniff(file);
  if (!kind) return "not a JPEG or PNG image (checked by content)";
  return null;
}

async function addFiles(list) {
  for (const file of list) {
    const reason = await check(file);
    const item = { file, ok: !reason, reason };
    item.progressCell = el("td", {}, item.ok ? bar(0) : "—");
    item.row = el("tr", { "data-file": file.name },
      el("td", {}, file.name), el("td", {}, fmtBytes(file.size)),
      el("td", {}, item.ok ? el("span", { class: "badge local-ok" }, "ok") : el("span", { class: "badge local-bad", title: reason }, reason)),
      item.progressCell);
    selBody.append(item.row);
    items.push(item);
  }
  refresh();
}

function refresh() {
  document.getElementById("selected").hidden = items.length === 0;
  const good = items.filter(i => i.ok);
  const total = good.reduce((s, i) => s + i.file.size, 0);
  let msg = good.length + " of " + items.length + " file(s) ready, " + fmtBytes(total);
  let blocked = good.length === 0;
  if (good.length > LIMITS.files) { msg += " — at most 100 photos per upload"; blocked = true; }
  if (total > LIMITS.totalBytes) { msg += " — more than 500 MB in total"; blocked = true; }
  batchMsg.textContent = items.length ? msg : "";
  uploadBtn.disabled = blocked;
  clearBtn.disabled = items.length === 0;
}

drop.addEventListener("click", () => picker.click());
drop.addEventListener("keydown", e => { if (e.key === "Enter" || e.key === " ") picker.click(); });
picker.addEventListener("change", () => { addFiles([...picker.files]); picker.value = ""; });
for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, e => { e.preventDefault(); drop.classList.add("over"); });
for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, e => { e.preventDefault(); drop.classList.remove("over"); });
drop.addEventListener("drop", e => addFiles([...e.dataTransfer.files]));
clearBtn.addEventListener("click", () => { items = []; selBody.replaceChildren(); refresh(); });

uploadBtn.addEventListener("click", () => {
  const good = items.filter(i => i.ok);
  const form = new FormData();
  let offset = 0;
  for (const it of good) { form.append("files", it.file, it.file.name); it.start = offset; offset += it.file.size; }
  const xhr = new XMLHttpRequest();
  xhr.open("POST", API + "/upload");
  xhr.setRequestHeader("X-Requested-With", "photos-webapp");
  xhr.setRequestHeader("Idempotency-Key", newKey());
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.onprogress = e => {
    // the multipart body holds the files in order: map the bytes sent onto each file
    const sent = e.lengthComputable ? e.loaded * offset / e.total : 0;
    for (const it of good) {
      const pct = Math.max(0, Math.min(100, (sent - it.start) * 100 / it.file.size));
      it.progressCell.replaceChildren(bar(pct), el("span", { class: "muted" }, Math.round(pct) + "%"));
    }
  };
  xhr.onload = () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
    if (xhr.status === 401) { window.location.href = LOGIN; return; }
    if (xhr.status !== 202) {
      batchMsg.replaceChildren(el("span", { class: "badge error" }, "HTTP " + xhr.status), " ",
        (body && body.detail) || xhr.statusText);
      uploadBtn.disabled = false;
      return;
    }
    for (const it of good) it.progressCell.replaceChildren(bar(100), el("span", { class: "muted" }, "sent"));
    batchMsg.textContent = "Uploaded: " + body.accepted_files + " accepted, " + body.rejected.length + " refused by the server." +
      (body.warning ? " " + body.warning : "");
    showSession(body.upload_session_id);
    history.replaceState(null, "", ROOT + "/upload?session=" + body.upload_session_id);
    loadRecent();
  };
  xhr.onerror = () => { batchMsg.textContent = "Network error: the upload did not finish. Try again."; uploadBtn.disabled = false; };
  uploadBtn.disabled = true;
  xhr.send(form);
});

function renderJobs(data) {
  document.getElementById("jobs-card").hidden = false;
  document.getElementById("session-id").textContent = data.upload_session_id;
  const s = data.summary;
  document.getElementById("summary").replaceChildren(
    el("span", {}, "total " + s.total_jobs), el("span", { class: "badge success" }, s.completed + " completed"),
    el("span", { class: "badge warning" }, s.warnings + " warnings"), el("span", { class: "badge error" }, s.failed + " failed"),
    el("span", { class: "badge processing" }, (s.pending + s.processing) + " in progress"),
    el("div", { style: "flex:1 1 200px" }, bar(s.overall_progress_percent)), el("span", { id: "overall" }, s.overall_progress_percent + "%"));
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren(...data.jobs.map(j => {
    const r = j.result || {};
    let result = j.error_message || "";
    if (r.session_id) result = (r.total_detected ?? "?") + " detected" + (r.storage_location_name ? " · " + r.storage_location_name : "");
    if (r.warnings && Object.keys(r.warnings).length) result += " · " + Object.values(r.warnings).join("; ");
    const link = j.image_id && j.status !== "failed" && j.status !== "pending" ? el("a", { href: ROOT + "/photo/" + j.image_id }, j.filename) : j.filename;
    const prog = isActive(j.status) ? [bar(j.progress_percent), el("span", { class: "muted" }, "~" + Math.round(j.estimated_remaining_seconds || 0) + " s left")] : [bar(100)];
    const run = j.airflow_run_url ? [" ", el("a", { href: j.airflow_run_url, class: "muted", title: "the Airflow run of this job" }, "run")] : [];
    return el("tr", { "data-job": j.job_id, "data-status": j.status }, el("td", {}, link), el("td", {}, badge(j.badge, j.status)), el("td", {}, ...prog), el("td", {}, result, ...run));
  }));
  return s.done;
}

function showSession(sid) {
  if (poller) poller.stop();
  poller = poll("jobs/status?upload_session_id=" + encodeURIComponent(sid), data => {
    if (!renderJobs(data)) return false;
    loadRecent();
    return true;
  }, e => { document.getElementById("summary").textContent = "Could not load the job status: " + e.message; });
}

async function loadRecent() {
  const data = await api("jobs/status");
  document.querySelector("#recent tbody").replaceChildren(...data.uploads.map(u => el("tr", {},
    el("td", {}, fmtDate(u.created_at)), el("td", {}, u.total_files),
    el("td", {}, u.status, " ", el("span", { class: "muted" }, Object.entries(u.by_status).map(([k, v]) => v + " " + k).join(", "))),
    el("td", {}, el("button", { class: "secondary", onclick: () => showSession(u.upload_session_id) }, "Show jobs")))));
}

loadRecent();
const fromUrl = new URLSearchParams(location.search).get("session");
if (fromUrl) showSession(fromUrl);
