// Photo detail: original + annotated image, counts, history, and the error flow
// (badge -> details -> pick a storage location -> Reprocess).
"use strict";
nav("gallery");
const imageId = location.pathname.split("/").filter(Boolean).pop();
const NEEDS_TEXT = {
  needs_location: "GPS is missing or outside every storage location: pick the location the photo was taken at.",
  needs_config: "The storage location is not configured: configure it (or pick another location), then reprocess.",
  needs_calibration: "The storage location has no density parameters: calibrate it, then reprocess.",
};

function kv(target, pairs) {
  target.replaceChildren(...pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "—")]));
}

function openModal(d) {
  const ps = d.processing_session || {};
  document.getElementById("modal-title").textContent = d.needs.length ? d.needs.map(n => STATUS_LABEL[n]).join(", ") : "Processing failed";
  const warnings = Object.entries(ps.warnings || {});
  document.getElementById("modal-body").replaceChildren(
    ...(warnings.length ? warnings.map(([k, v]) => el("p", {}, el("b", {}, STATUS_LABEL[k] + ": "), v, el("br"), el("span", { class: "muted" }, NEEDS_TEXT[k] || "")))
                        : [el("p", {}, d.error_details || ps.error_message || "unknown error")]));
  document.getElementById("error-modal").classList.add("open");
}
document.getElementById("modal-close").addEventListener("click", () => document.getElementById("error-modal").classList.remove("open"));
document.getElementById("modal-fix").addEventListener("click", () => {
  document.getElementById("error-modal").classList.remove("open");
  document.getElementById("reprocess-card").scrollIntoView({ behavior: "smooth" });
  document.getElementById("location").focus();
});

function render(d) {
  const ps = d.processing_session;
  document.title = (d.filename || d.image_id) + " · Photos";
  document.getElementById("title").replaceChildren(d.filename || d.image_id, " ",
    el("a", { href: "#", id: "status-badge", onclick: e => { e.preventDefault(); if (d.badge !== "success") openModal(d); } }, badge(d.badge, d.status)));
  const alert = document.getElementById("alert");
  if (d.badge === "warning" || d.badge === "error") {
    alert.replaceChildren(el("div", { class: "alert " + d.badge },
      el("b", {}, d.badge === "warning" ? "Needs attention: " : "Failed: "), d.error_details || (ps && ps.error_message) || "",
      " ", el("a", { href: "#", id: "details-link", onclick: e => { e.preventDefault(); openModal(d); } }, "Details")));
  } else alert.replaceChildren();
  document.getElementById("original").src = d.original_url; document.getElementById("orig-link").href = d.original_url;
  if (d.annotated_url) { document.getElementById("annotated").src = d.annotated_url; document.getElementById("ann-link").href = d.annotated_url; }
  else document.getElementById("ann-cap").textContent = "No annotated image yet";
  kv(document.getElementById("counts"), ps ? [
    ["Status", badge(ps.badge, ps.status)], ["Storage location", ps.storage_location_name], ["Warehouse", ps.warehouse_name],
    ["Location from", ps.location_source], ["Detected", ps.total_detected], ["Estimated", ps.total_estimated],
    ["Empty containers", ps.total_empty_containers], ["Avg confidence", ps.avg_confidence],
    ["Categories", Object.entries(ps.category_counts || {}).map(([k, v]) => k + ": " + v).join(", ")],
    ["Quality", ps.quality_band ? ps.quality_band + " (" + ps.quality_score + ")" : null],
    ["Processed in", ps.processing_seconds != null ? ps.processing_seconds + " s" : null],
  ] : [["Status", "not processed yet"]]);
  const m = d.metadata;
  kv(document.getElementById("meta"), [
    ["Image id", el("code", {}, d.image_id)], ["Uploaded", fmtDate(d.uploaded_at)], ["By", d.uploaded_by],
    ["Size", m.file_size_bytes ? fmtBytes(m.file_size_bytes) : null], ["Pixels", m.width_px + " × " + m.height_px],
    ["Type", m.content_type], ["GPS", m.gps ? m.gps.lat.toFixed(6) + ", " + m.gps.lon.toFixed(6) : "none"],
    ["Links expire in", d.expires_in_s + " s"],
  ]);
  const exif = Object.entries(m.exif || {});
  kv(document.getElementById("exif"), exif.length ? exif.map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)]) : [["EXIF", "none in this photo"]]);
  document.querySelector("#history tbody").replaceChildren(...d.processing_history.map(h => el("tr", {},
    el("td", {}, fmtDate(h.created_at)), el("td", {}, h.trigger), el("td", {}, badge(h.badge, h.status)),
    el("td", {}, h.storage_location_name || "—"), el("td", {}, h.total_detected ?? "—"), el("td", {}, h.total_estimated ?? "—"), el("td", {}, h.reason || ""))));
  document.querySelector("#loc-history tbody").replaceChildren(...d.storage_location_history.map(h => el("tr", {},
    el("td", {}, fmtDate(h.timestamp)), el("td", {}, h.event), el("td", {}, h.status), el("td", {}, h.total_plants ?? "—"),
    el("td", {}, h.image_id === d.image_id ? "this photo" : el("a", { href: ROOT + "/photo/" + h.image_id }, h.image_id.slice(0, 8))))));
  const active = d.jobs.find(j => isActive(j.status));
  document.getElementById("reprocess-btn").disabled = !!active;
  if (active) watchJob(active.job_id);
}

async function load() {
  const d = await api(imageId);
  render(d);
  return d;
}

function watchJob(jobId) {
  const msg = document.getElementById("reprocess-msg");
  poll("jobs/" + jobId + "/status", async j => {
    msg.replaceChildren("Reprocess job ", el("code", {}, jobId.slice(0, 8)), " ", badge(j.badge, j.status), " ", bar(j.progress_percent));
    msg.dataset.status = j.status;
    if (isActive(j.status)) return false;
    msg.dataset.done = "1"; await load(); msg.replaceChildren("Reprocess job finished: ", badge(j.badge, j.status), " ", j.error_message || ""); msg.dataset.status = j.status;
    return true;
  }, e => { msg.textContent = "Could not load the reprocess job: " + e.message; });
}

document.getElementById("reprocess-btn").addEventListener("click", async () => {
  const btn = document.getElementById("reprocess-btn");
  const loc = document.getElementById("location").value;
  const msg = document.getElementById("reprocess-msg");
  btn.disabled = true;
  try {
    const body = { reason: document.getElementById("reason").value || "reprocess" };
    if (loc) body.storage_location_id = Number(loc);
    const r = await api(imageId + "/reprocess", { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "Idempotency-Key": newKey() } });
    msg.textContent = r.message + (r.warning ? " — " + r.warning : "");
    watchJob(r.new_job_id);
  } catch (e) {
    msg.replaceChildren(el("span", { class: "badge error" }, "HTTP " + e.status), " ", e.message);
    btn.disabled = false;
  }
});

(async () => {
  try {
    const locs = await api("locations");
    document.getElementById("location").append(...locs.locations.filter(l => l.active).map(l =>
      el("option", { value: l.id }, l.warehouse_name + " / " + l.name + (l.configured ? "" : " (not configured)") + (l.calibrated ? "" : " (not calibrated)"))));
    const d = await load();
    if (d.needs.includes("needs_location")) document.getElementById("reason").value = "GPS missing: assigned the storage location manually";
  } catch (e) {
    document.getElementById("alert").replaceChildren(el("div", { class: "alert error" }, "Could not load the photo: " + e.message));
  }
})();
