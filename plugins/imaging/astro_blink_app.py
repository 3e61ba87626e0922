"""The blink page of the astro lights pipeline, mounted at ``/astro-blink`` on the api-server.

Linked from each *Blink review* approval (``?dag_id=&run_id=&task_id=&map_index=``): the rig's
frames at screen size with an automatic stretch, keyboard blinking (``←``/``→`` previous/next,
``space`` play/pause, ``x`` mark/unmark reject), per-frame star count, HFR, FWHM, eccentricity and
background with their deviation from the median of the frame's set (its light directory: one
target, night, filter and exposure) in a sortable table, the suggestions of
:func:`include.astro.metrics.suggestions`, and two buttons that send the approval's answer
(*Continue* with the marked frames, or *Hold*) through Airflow's HITL REST API with the user's own
Airflow token. The approval form keeps working without this page.

What the page shows comes from the run's published manifest ``blink_<map_index>.json`` (written by
the ``blink_sheet`` task); previews are built streaming (:mod:`include.astro.preview`, bounded
memory on 61 Mpx frames) and cached next to the published root. Every route checks the Airflow
login (:func:`imaging.webapp.auth.current_user`) and the user's right to see runs of the DAG.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from imaging.webapp.auth import AuthError, WebUser, authorize_dag_runs, current_user, login_url

URL_PREFIX = "/astro-blink"
PREVIEW_PX = 1600
UserDep = Annotated[WebUser, Depends(current_user)]


def _root() -> Path:
    from include.common.publish import published_root

    return published_root()


def manifest_path(root: Path, dag_id: str, run_id: str, map_index: int) -> Path:
    from include.common.files import safe_name

    return root / safe_name(dag_id) / safe_name(run_id, default="run") / f"blink_{map_index}.json"


def load_manifest(root: Path, dag_id: str, run_id: str, map_index: int) -> dict[str, Any]:
    p = manifest_path(root, dag_id, run_id, int(map_index))
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        raise AuthError(404, "not_found", "no blink manifest for this review") from None


def create_app(root: str | Path | None = None) -> FastAPI:
    app = FastAPI(title="Astro blink page", openapi_url=None, docs_url=None, redoc_url=None)

    def base() -> Path:
        return Path(root) if root is not None else _root()

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> Response:
        if exc.status == 401 and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(login_url(request), status_code=303)
        return JSONResponse({"error": exc.code, "detail": exc.message}, status_code=exc.status)

    @app.get("/api/manifest")
    async def manifest(
        user: UserDep, dag_id: str, run_id: str, map_index: Annotated[int, Query()] = 0
    ) -> JSONResponse:
        authorize_dag_runs(user, dag_id, "GET")
        m = load_manifest(base(), dag_id, run_id, map_index)
        frames = [{k: v for k, v in f.items() if k != "file"} for f in m["frames"]]
        return JSONResponse({"rig": m["rig"], "frames": frames, "options": m.get("options")})

    @app.get("/api/preview")
    def preview(
        user: UserDep,
        dag_id: str,
        run_id: str,
        n: int,
        map_index: Annotated[int, Query()] = 0,
        size: Annotated[int, Query(ge=64, le=4096)] = PREVIEW_PX,
    ) -> Response:
        from include.astro.preview import preview_png

        authorize_dag_runs(user, dag_id, "GET")
        m = load_manifest(base(), dag_id, run_id, map_index)
        frame = next((f for f in m["frames"] if int(f["n"]) == int(n)), None)
        if frame is None:  # only frames of the manifest: no path comes from the request
            raise AuthError(404, "not_found", "no such frame in this review")
        try:
            png = preview_png(frame["file"], size, cache_dir=base().parent / "blink_cache")
        except (OSError, ValueError) as exc:
            return JSONResponse({"error": "unreadable", "detail": str(exc)}, status_code=422)
        return Response(
            png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"}
        )

    @app.get("/", response_class=HTMLResponse)
    async def page(
        user: UserDep,
        dag_id: str,
        run_id: str,
        task_id: str = "blink_review",
        map_index: Annotated[int, Query()] = 0,
    ) -> HTMLResponse:
        authorize_dag_runs(user, dag_id, "GET")
        load_manifest(base(), dag_id, run_id, map_index)
        nonce = secrets.token_urlsafe(16)
        cfg = json.dumps(
            {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index}
        ).replace("<", "\\u003c")
        body = PAGE.replace("__CFG__", cfg).replace("__NONCE__", nonce)
        csp = (
            f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
            "img-src 'self' blob:; frame-ancestors 'self'"
        )
        return HTMLResponse(body, headers={"Content-Security-Policy": csp})

    return app


PAGE = r"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Blink review</title>
<style>
body{margin:0;background:#111;color:#ddd;font:13px system-ui,sans-serif;display:flex;height:100vh}
#view{flex:1;display:flex;flex-direction:column;min-width:0}
#img{flex:1;object-fit:contain;min-height:0;background:#000;width:100%}
#bar{padding:6px 10px;background:#222;display:flex;gap:12px;align-items:center}
#side{width:600px;flex:none;overflow:auto;background:#1a1a1a;border-left:1px solid #333}
table{border-collapse:collapse;width:100%}th,td{padding:3px 5px;border-bottom:1px solid #2a2a2a;text-align:right;white-space:nowrap}
th{cursor:pointer;position:sticky;top:0;background:#262626}td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}
td:nth-child(2){white-space:normal;word-break:break-all;font-size:11px;min-width:150px}
tr.cur{background:#2d3d55}tr.rej td{color:#ff7070;text-decoration:line-through}
.hint{color:#f0c040}.dev{color:#888;font-size:11px}
button{background:#345;color:#fff;border:0;padding:6px 12px;border-radius:4px;cursor:pointer}
button.hold{background:#553}button:disabled{opacity:.4;cursor:default}#msg{margin-left:auto}
</style></head><body>
<div id="view"><img id="img" alt="frame"><div id="bar">
<span id="title"></span><span id="hints" class="hint"></span>
<button id="send">Continue: reject <span id="count">0</span></button><button class="hold" id="hold">Hold</button>
<span id="msg">← → blink · space play · x mark reject</span></div></div>
<div id="side"><table><thead><tr id="head"></tr></thead><tbody id="rows"></tbody></table></div>
<script nonce="__NONCE__">
const CFG = __CFG__;
const COLS = [["n","#"],["name","frame"],["stars","stars"],["hfr","HFR"],["fwhm","FWHM"],
  ["eccentricity","ecc."],["background","bkg"]];
let frames = [], order = [], cur = 0, timer = null, rejected = new Set(), sortKey = "n", asc = true;
let answered = false;  // once the approval has its answer nothing on the page changes it
const q = (o) => new URLSearchParams(o).toString();
const base = {dag_id: CFG.dag_id, run_id: CFG.run_id, map_index: CFG.map_index};
function fmt(v){ return v === null || v === undefined ? "–" : (typeof v === "number" ? +v.toFixed(2) : v); }
function esc(t){ return String(t).replace(/&/g,"&amp;").replace(/</g,"&lt;"); }
function dev(v){ return v === null || v === undefined ? "" : ` <span class="dev">${v>0?"+":""}${Math.round(v*100)}%</span>`; }
function render(){
  document.getElementById("head").innerHTML = COLS.map(([k,l]) => `<th data-k="${k}">${l}${k===sortKey?(asc?" ▲":" ▼"):""}</th>`).join("");
  document.getElementById("rows").innerHTML = order.map((i, pos) => { const f = frames[i];
    return `<tr data-pos="${pos}" class="${pos===cur?"cur":""} ${rejected.has(f.n)?"rej":""}">` +
      COLS.map(([k]) => `<td>${k==="name"?`<span class="dev">${esc(f.set||"")}</span><br>${esc(f.name)}`:fmt(f[k])}${["stars","hfr","fwhm","eccentricity","background"].includes(k)?dev(f[k+"_dev"]):""}</td>`).join("") + "</tr>"; }).join("");
  const f = frames[order[cur]]; if (!f) return;
  document.getElementById("img").src = "api/preview?" + q({...base, n: f.n});
  document.getElementById("title").textContent = `${f.n}/${frames.length} ${f.name}${rejected.has(f.n)?"  [REJECT]":""}`;
  document.getElementById("hints").textContent = (f.hints||[]).join("; ");
  document.getElementById("count").textContent = rejected.size;
  for (const k of [1,2]) { const g = frames[order[(cur+k)%order.length]]; if (g) new Image().src = "api/preview?" + q({...base, n: g.n}); }
}
function sortBy(k){ asc = sortKey === k ? !asc : true; sortKey = k; const n = frames[order[cur]].n;
  order.sort((a,b) => { const x = frames[a][k], y = frames[b][k]; return (x>y?1:x<y?-1:0)*(asc?1:-1); });
  cur = order.findIndex(i => frames[i].n === n); render(); }
function step(d){ cur = (cur + d + order.length) % order.length; render(); }
function toggle(){ if (answered) return; const n = frames[order[cur]].n; rejected.has(n) ? rejected.delete(n) : rejected.add(n); render(); }
function token(){ const m = document.cookie.match(/(?:^|; )_token=([^;]+)/); return m ? decodeURIComponent(m[1]) : null; }
const HITL = `/api/v2/dags/${encodeURIComponent(CFG.dag_id)}/dagRuns/${encodeURIComponent(CFG.run_id)}/taskInstances/${encodeURIComponent(CFG.task_id)}/${CFG.map_index}/hitlDetails`;
function headers(){ const h = {"Content-Type": "application/json"}; const t = token(); if (t) h.Authorization = "Bearer " + t; return h; }
function say(text){ document.getElementById("msg").textContent = text; }
function buttons(on){ for (const id of ["send", "hold"]) document.getElementById(id).disabled = !on; }
function numbers(text){ const out = new Set();
  for (const part of String(text || "").split(",")) { const m = part.trim().match(/^(\d+)(?:-(\d+))?$/); if (!m) continue;
    for (let i = +m[1]; i <= +(m[2] || m[1]); i++) out.add(i); } return out; }
function lock(text){ answered = true; buttons(false); if (timer) { clearInterval(timer); timer = null; } say(text); render(); }
function shown(d){ const who = d.responded_by_user ? ` by ${d.responded_by_user.name}` : "";
  const rej = (d.params_input || {}).reject; return `answered${who}: ${(d.chosen_options || []).join(", ")}${rej ? " (reject " + rej + ")" : ""}`; }
async function answer(option){
  if (answered) return;
  const reject = option === "Continue" ? [...rejected].sort((a,b)=>a-b).join(",") : null;
  if (document.activeElement) document.activeElement.blur();  // space/enter blink, never resend
  buttons(false); say("sending…");
  let r;
  try { r = await fetch(HITL, {method: "PATCH", headers: headers(), credentials: "same-origin",
    body: JSON.stringify({chosen_options: [option], params_input: {reject: reject || null}})}); }
  catch (e) { buttons(true); say(`not sent (${e}): try again or answer in the approval form`); return; }
  if (r.ok) { lock(`sent: ${option}${reject ? " (reject " + reject + ")" : ""}`); return; }
  if (r.status === 409) { const d = await fetch(HITL, {headers: headers(), credentials: "same-origin"}).then(x => x.ok ? x.json() : null).catch(() => null);
    lock(d ? "already " + shown(d) : "already answered"); return; }
  buttons(true); say(`not sent (${r.status}): answer in the approval form`);
}
async function state(){  // an answered review (here or in the approval form) cannot be answered again
  const r = await fetch(HITL, {headers: headers(), credentials: "same-origin"}).catch(() => null);
  if (!r || !r.ok) { if (r && r.status === 404) say("this review is not waiting for an answer (yet)"); return; }
  const d = await r.json();
  if (d.response_received) { if ((d.chosen_options || [])[0] === "Continue") rejected = numbers((d.params_input || {}).reject); lock(shown(d)); }
}
document.addEventListener("keydown", (e) => {
  if (e.key === "ArrowRight" || e.key === "n") step(1); else if (e.key === "ArrowLeft" || e.key === "p") step(-1);
  else if (e.key === " ") { e.preventDefault(); if (timer) { clearInterval(timer); timer = null; } else timer = setInterval(() => step(1), 700); }
  else if (e.key === "x" || e.key === "Delete") toggle(); });
document.getElementById("head").addEventListener("click", (e) => { const k = e.target.dataset.k; if (k) sortBy(k); });
document.getElementById("rows").addEventListener("click", (e) => { const tr = e.target.closest("tr"); if (!tr) return;
  const pos = +tr.dataset.pos; if (pos === cur) toggle(); else { cur = pos; render(); } });
document.getElementById("send").onclick = () => answer("Continue");
document.getElementById("hold").onclick = () => answer("Hold");
fetch("api/manifest?" + q(base)).then(r => r.json()).then(m => { frames = m.frames; order = frames.map((_, i) => i); render(); state(); });
</script></body></html>
"""

app: Any = create_app()
