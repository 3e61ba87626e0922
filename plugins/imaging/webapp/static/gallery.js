// Gallery: thumbnail grid with filters, status badges and lazy loading (infinite scroll).
"use strict";
nav("gallery");
const form = document.getElementById("filters");
const grid = document.getElementById("grid");
const countEl = document.getElementById("count");
const endEl = document.getElementById("end");
let page = 0, totalPages = 1, loading = false, query = "";
const PER_PAGE = Math.min(200, Math.max(1, Number(new URLSearchParams(location.search).get("per_page")) || 24));
// "Show in gallery" of one upload: /gallery?upload_session_id=... keeps to that upload until Reset
let sessionFilter = new URLSearchParams(location.search).get("upload_session_id") || "";

function currentQuery() {
  const p = new URLSearchParams();
  const fd = new FormData(form);
  for (const k of ["date_from", "date_to", "status"]) if (fd.get(k)) p.set(k, fd.get(k));
  for (const o of form.warehouse_id.selectedOptions) p.append("warehouse_id", o.value);
  if (sessionFilter) p.set("upload_session_id", sessionFilter);
  return p;
}

function tile(ph) {
  const ps = ph.processing_session || {};
  const info = ph.status === "ready" || ph.status === "warning"
    ? (ps.total_detected ?? "?") + " plants" + (ps.storage_location_name ? " · " + ps.storage_location_name : "")
    : (ph.error_details || ph.status);
  const img = ph.thumbnail_url ? el("img", { src: ph.thumbnail_url, loading: "lazy", alt: ph.filename || ph.image_id }) : el("span", { class: "muted" }, "no thumbnail");
  return el("a", { class: "tile", href: ROOT + "/photo/" + ph.image_id, "data-image": ph.image_id, "data-status": ph.status, title: ph.error_details || "" },
    el("div", { class: "thumb" }, img),
    el("div", { class: "meta" },
      el("div", { class: "name" }, ph.filename || ph.image_id),
      el("div", {}, badge(ph.badge, ph.status === "warning" && ph.error_details ? ph.error_details.split(":")[0] : ph.status)),
      el("div", { class: "muted" }, info),
      el("div", { class: "muted" }, fmtDate(ph.uploaded_at), ph.warehouse_name ? " · " + ph.warehouse_name : "")));
}

// Every reload() starts a new generation: a response of an older query (still in flight when the
// filters changed, or sent by the scroll observer before the page's own filters were applied) is
// dropped instead of being appended to the new grid with the old counts.
let generation = 0, ready = false;

async function loadMore() {
  if (!ready || loading || page >= totalPages) return;
  const mine = generation;
  loading = true;
  let data = null;
  try {
    const p = new URLSearchParams(query);
    p.set("page", page + 1); p.set("per_page", PER_PAGE);
    data = await api("gallery?" + p.toString());
  } catch (e) {
    if (mine === generation) countEl.textContent = "Could not load the gallery: " + e.message;
  } finally {
    if (mine === generation) loading = false;
  }
  if (mine !== generation || !data) return;
  page = data.pagination.page; totalPages = data.pagination.total_pages;
  grid.append(...data.photos.map(tile));
  countEl.textContent = data.pagination.total_items + " photo(s)" + (sessionFilter ? " of one upload (Reset shows every photo)" : "") + (totalPages > 1 ? ", page " + page + " of " + totalPages : "");
  endEl.hidden = page < totalPages;
  // keep filling while the sentinel is still on screen
  const r = document.getElementById("sentinel").getBoundingClientRect();
  if (page < totalPages && r.top < window.innerHeight + 200) loadMore();
}

function reload() {
  generation += 1; ready = true; loading = false;
  query = currentQuery().toString();
  history.replaceState(null, "", ROOT + "/gallery" + (query ? "?" + query : ""));
  page = 0; totalPages = 1; grid.replaceChildren(); endEl.hidden = true;
  loadMore();
}

form.addEventListener("submit", e => { e.preventDefault(); reload(); });
for (const b of form.querySelectorAll("button[data-days]")) b.addEventListener("click", () => {
  const d = new Date(Date.now() - Number(b.dataset.days) * 86400000);
  form.date_from.value = d.toISOString().slice(0, 10); form.date_to.value = ""; reload();
});
document.getElementById("reset").addEventListener("click", () => {
  form.reset(); sessionFilter = ""; for (const o of form.warehouse_id.options) o.selected = false; reload();
});
new IntersectionObserver(es => { if (es.some(e => e.isIntersecting)) loadMore(); }, { rootMargin: "300px" })
  .observe(document.getElementById("sentinel"));

(async () => {
  const init = new URLSearchParams(location.search);
  try {
    const w = await api("warehouses");
    form.warehouse_id.replaceChildren(...w.warehouses.map(x => el("option", { value: x.id }, x.name)));
  } catch (e) { /* the filter stays empty */ }
  for (const k of ["date_from", "date_to", "status"]) if (init.get(k)) form[k].value = init.get(k);
  const ws = init.getAll("warehouse_id");
  for (const o of form.warehouse_id.options) o.selected = ws.includes(o.value);
  reload();
})();
