"""The photos web app: a FastAPI app mounted by the ``imaging_webapp`` plugin at ``/photos`` on
the Airflow api-server (same host and login as the Airflow UI).

JSON API under ``/photos/api/v1/photos`` (seed "API Endpoints"):

* ``POST /upload`` — multipart ``files`` (1–100 JPEG/PNG, ≤ 20 MB each, ≤ 500 MB in total), checked
  by content; stages the accepted files and triggers ``photo_ingest``; **202** with the upload
  session id, one job per photo (refused files are ``failed`` jobs with their reason) and the
  poll URL. Optional ``Idempotency-Key`` header: a retried request returns the same session.
* ``GET /jobs/status?upload_session_id=`` — per-job status and progress plus a summary; without the
  id, the user's recent uploads. ``GET /jobs/{job_id}/status`` — one job (e.g. a reprocess).
* ``GET /gallery`` — filters ``date_from``, ``date_to``, ``warehouse_id`` (repeatable), ``status``
  (all|success|warning|error|errors|processing), ``upload_session_id``; ``page``/``per_page``.
* ``GET /{image_id}`` — metadata, EXIF, processing session, history.
* ``POST /{image_id}/reprocess`` — ``{"reason", "storage_location_id"?}``; **202**; triggers
  ``photo_reprocess``.
* ``GET /locations``, ``GET /warehouses`` — for the filters and the location picker.

Image links are presigned S3 GET URLs that expire (``expires_in_s`` in the answers).
Pages: ``/photos/upload``, ``/photos/gallery``, ``/photos/photo/{image_id}`` (plain HTML/JS/CSS).
Errors are JSON ``{"status", "error", "detail", ...}`` with 401/403/404/409/413/415/422/503.
The OpenAPI spec is at ``/photos/openapi.json`` and the Swagger UI at ``/photos/docs``; every
route, including those, requires an Airflow login.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from imaging.webapp.auth import (
    AuthError,
    WebUser,
    authorize_dag_runs,
    current_user,
    login_url,
)
from imaging.webapp.services import Services, TriggerError, is_storage_error

log = logging.getLogger(__name__)

API = "/api/v1/photos"
STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
PAGES = {"upload": "upload.html", "gallery": "gallery.html", "photo": "photo.html"}
# multipart overhead allowed above the 500 MB of file data before the body is cut off
MULTIPART_SLACK = 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra


def _root(request: Request) -> str:
    """Where the app is mounted (``/photos`` under the api-server), without a trailing slash."""
    return request.scope.get("root_path", "").rstrip("/")


def error_body(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"status": status, "error": code, "detail": detail, **extra}


def _json_error(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        error_body(status, code, detail, **extra), status_code=status, headers=headers
    )


# --------------------------------------------------------------------------- body size guard
class _BodyTooLarge(Exception):
    pass


class UploadSizeLimit:
    """Refuse an upload body larger than the total limit while it streams in (413), before it
    fills the disk: by ``Content-Length`` at once, else by counting the received chunks."""

    def __init__(self, app: ASGIApp, limit_bytes: int | None = None):
        self.app = app
        self.limit_bytes = limit_bytes

    def _limit(self) -> int:
        from include.webapp.validation import Limits

        return self.limit_bytes or Limits.from_env().max_total_bytes + MULTIPART_SLACK

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].endswith(f"{API}/upload")
        ):
            await self.app(scope, receive, send)
            return
        limit = self._limit()
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        detail = f"the upload is larger than {limit // (1024 * 1024)} MB"
        if length is not None and length.isdigit() and int(length) > limit:
            await _json_error(413, "total_too_large", detail)(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Any:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return msg

        async def tracking_send(msg: Any) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _json_error(413, "total_too_large", detail)(scope, receive, send)


# --------------------------------------------------------------------------- models
class ErrorBody(BaseModel):
    status: int = Field(description="HTTP status")
    error: str = Field(description="Machine-readable code, e.g. too_large, unsupported_type")
    detail: str = Field(description="What went wrong, for people")
    rejected: list[dict[str, Any]] | None = Field(
        default=None, description="Per-file reasons (index, filename, code, reason) of an upload"
    )


class ReprocessBody(BaseModel):
    reason: str = Field(
        min_length=1, max_length=2000, description="Why (e.g. 'assigned the storage location')"
    )
    storage_location_id: int | None = Field(
        default=None, description="Manual storage location (overrides GPS matching)"
    )


def _services(request: Request) -> Services:
    svc = getattr(request.app.state, "services", None)
    if svc is None:
        svc = request.app.state.services = Services()
    return svc


UserDep = Annotated[WebUser, Depends(current_user)]
SvcDep = Annotated[Services, Depends(_services)]


def _session(svc: Services) -> Any:
    from include.common.db import session_scope

    return session_scope(svc.engine())


# --------------------------------------------------------------------------- API
api = APIRouter(prefix=API, tags=["photos"])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "No, invalid or expired Airflow login",
        403: "Cookie login without the X-Requested-With header",
        404: "Unknown photo, job, upload session or storage location",
        409: "Conflict (e.g. the photo is still being processed)",
        413: "Too large: a file over 20 MB, over 50 MP, or over 500 MB in total",
        415: "Not multipart, or no accepted file is JPEG/PNG (checked by content)",
        422: "Invalid input: no files, over 100 files, corrupt images, bad filters or body",
        503: "S3 or Airflow unavailable: nothing lost, retry (same Idempotency-Key)",
    }
    return {c: {"description": text[c], "model": ErrorBody} for c in codes}


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "minItems": 1,
                            "maxItems": 100,
                            "description": "1-100 JPEG/PNG photos, <= 20 MB each, <= 500 MB total",
                        }
                    },
                }
            }
        },
    }
}


@api.post(
    "/upload",
    status_code=202,
    summary="Upload 1-100 photos and start photo_ingest",
    openapi_extra=UPLOAD_BODY,
    responses={
        202: {"description": "Accepted: upload session, one job per photo, poll URL"},
        **_errors(401, 403, 409, 413, 415, 422, 503),
    },
)
async def upload(
    request: Request,
    user: UserDep,
    svc: SvcDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    from starlette.datastructures import UploadFile

    from include.webapp.validation import Limits

    authorize_dag_runs(user, svc.ingest_dag_id, "POST")
    limits = Limits.from_env()
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise ApiError(
            415, "unsupported_media_type", "send multipart/form-data with the photos as 'files'"
        )
    try:
        form = await request.form(max_files=limits.max_files + 1, max_fields=50)
    except _BodyTooLarge:
        raise  # answered with 413 by UploadSizeLimit
    except Exception as exc:  # noqa: BLE001 - malformed multipart or too many parts
        msg = str(getattr(exc, "detail", exc))
        raise ApiError(422, "bad_multipart", f"cannot read the multipart body: {msg}") from None
    from include.webapp.validation import BatchError, check_batch, too_large

    try:
        parts = form.getlist("files")
        if any(not isinstance(p, UploadFile) for p in parts):
            raise ApiError(422, "bad_field", "every 'files' part must be a file")
        sizes = [p.size or 0 for p in parts]
        try:
            check_batch(sizes, limits)
        except BatchError as exc:
            raise ApiError(exc.http_status, exc.code, exc.reason) from None
        # the parts are spooled to temp files by Starlette: read them one at a time (validation,
        # then staging) so memory stays at a few files, not the whole upload
        files: list[tuple[int, str | None, Any]] = []
        oversize = []
        readers: dict[int, Any] = {}
        for i, (p, size) in enumerate(zip(parts, sizes, strict=True)):
            if size > limits.max_file_bytes:  # never read into memory
                oversize.append(too_large(i, p.filename, size, limits))
            else:
                readers[i] = _reader(p)
                files.append((i, p.filename, readers[i]))
        from starlette.concurrency import run_in_threadpool

        root = _root(request)
        return await run_in_threadpool(
            _upload_sync, svc, user, files, oversize, limits, idempotency_key, root, readers
        )
    finally:
        await form.close()


def _reader(part: Any) -> Any:
    """Read an uploaded part's spooled file from the start (thread-safe per part)."""
    import threading

    lock = threading.Lock()

    def read() -> bytes:
        with lock:
            part.file.seek(0)
            return part.file.read()

    return read


def _upload_sync(
    svc: Services,
    user: WebUser,
    files: list[tuple[int, str | None, bytes]],
    oversize: list[Any],
    limits: Any,
    idempotency_key: str | None,
    root: str,
    readers: dict[int, Any],
) -> JSONResponse:
    from include.webapp import staging
    from include.webapp.validation import Rejection, rejection_status, validate_all

    ok, bad = [], list(oversize)
    for res in validate_all(files, limits, keep_data=False):
        (bad if isinstance(res, Rejection) else ok).append(res)
    bad.sort(key=lambda r: r.index)
    rejected = [r.as_dict() for r in bad]
    if not ok:
        status = rejection_status(bad)
        codes = sorted({r.code for r in bad})
        raise ApiError(
            status,
            codes[0] if len(codes) == 1 else "no_valid_photos",
            "no photo was accepted: " + "; ".join(f"{r.filename}: {r.reason}" for r in bad),
            rejected=rejected,
        )
    sid = staging.upload_session_id_for(user.name, idempotency_key)
    engine = svc.engine()
    from include.common.db import session_scope

    try:
        staging.stage_upload(
            engine,
            svc.s3(),
            svc.bucket,
            sid,
            ok,
            bad,
            user.name,
            read=lambda p: readers[p.index](),
        )
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        log.warning("staging upload %s failed: %s", sid, exc)
        raise ApiError(
            503,
            "storage_unavailable",
            f"the photo storage (S3) is not available ({type(exc).__name__}: {exc}); nothing was "
            "recorded: retry the upload later",
        ) from None
    body: dict[str, Any] = {
        "status": "accepted",
        "upload_session_id": str(sid),
        "total_files": len(ok) + len(bad),
        "accepted_files": len(ok),
        "rejected": rejected,
        "estimated_completion_time_minutes": max(1, round(len(ok) * 20 / 60)),
        "poll_url": f"{root}{API}/jobs/status?upload_session_id={sid}",
    }
    try:
        run_id = svc.trigger(
            svc.ingest_dag_id,
            staging.ingest_run_id(sid),
            {"upload_session_id": str(sid), "uploaded_by": user.name},
            user.name,
        )
    except TriggerError as exc:
        raise ApiError(
            503,
            "trigger_failed",
            f"the photos are staged but processing could not start: {exc}. Retry the request "
            "with the same Idempotency-Key.",
            upload_session_id=str(sid),
        ) from None
    with session_scope(engine) as s:
        staging.record_dag_run(s, run_id, upload_session_id=sid)
        from include.webapp.queries import job_view

        body["jobs"] = [job_view(j) for j in staging.jobs_of(s, sid)]
    body["dag_run_id"] = run_id
    if svc.dag_paused(svc.ingest_dag_id):
        body["warning"] = f"{svc.ingest_dag_id} is paused: the run waits until it is unpaused"
    return JSONResponse(body, status_code=202)


@api.get(
    "/jobs/status",
    summary="Status of the jobs of an upload session (or recent uploads)",
    responses=_errors(401, 404, 422),
)
def jobs_status(
    user: UserDep,
    svc: SvcDep,
    upload_session_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    hours: Annotated[int, Query(ge=1, le=24 * 30, description="age of the listed uploads")] = 48,
) -> dict[str, Any]:
    from datetime import UTC, datetime, timedelta

    authorize_dag_runs(user, svc.ingest_dag_id, "GET")
    from include.webapp import queries

    with _session(svc) as s:
        if upload_session_id is None:
            # a view of the recent past for people (not pipeline logic): the wall clock is right
            since = datetime.now(UTC) - timedelta(hours=hours)
            return {
                "uploads": queries.recent_uploads(s, user.name, limit, since),
                "hours": hours,
            }
        return queries.job_status(s, upload_session_id)


@api.get(
    "/jobs/{job_id}/status",
    summary="Status of one job (ingest or reprocess)",
    responses=_errors(401, 404, 422),
)
def job_status(job_id: uuid.UUID, user: UserDep, svc: SvcDep) -> dict[str, Any]:
    authorize_dag_runs(user, svc.ingest_dag_id, "GET")
    from include.webapp import queries

    with _session(svc) as s:
        return queries.one_job(s, job_id)


@api.get(
    "/gallery",
    summary="Photos, newest first, with filters and pagination",
    responses=_errors(401, 422),
)
def gallery(
    user: UserDep,
    svc: SvcDep,
    date_from: date | None = None,
    date_to: date | None = None,
    warehouse_id: Annotated[list[int] | None, Query()] = None,
    status: str = "all",
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
    upload_session_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    authorize_dag_runs(user, svc.ingest_dag_id, "GET")
    from include.webapp import queries

    try:
        f = queries.GalleryFilter(
            date_from,
            date_to,
            tuple(warehouse_id or ()),
            status,
            page,
            per_page,
            upload_session_id,
        )
    except ValueError as exc:
        raise ApiError(422, "bad_filter", str(exc)) from None
    with _session(svc) as s:
        out = queries.gallery(s, f, svc.presign)
    out["expires_in_s"] = svc.url_expiry_s
    return out


@api.get("/locations", summary="Storage locations (for the manual location picker)")
def list_locations(user: UserDep, svc: SvcDep) -> dict[str, Any]:
    authorize_dag_runs(user, svc.ingest_dag_id, "GET")
    from include.webapp import queries

    with _session(svc) as s:
        return {"locations": queries.locations(s)}


@api.get("/warehouses", summary="Warehouses (for the gallery filter)")
def list_warehouses(user: UserDep, svc: SvcDep) -> dict[str, Any]:
    authorize_dag_runs(user, svc.ingest_dag_id, "GET")
    from include.webapp import queries

    with _session(svc) as s:
        return {"warehouses": queries.warehouses(s)}


@api.get(
    "/{image_id}",
    summary="One photo: metadata, EXIF, processing session, history",
    responses=_errors(401, 404, 422),
)
def photo(image_id: uuid.UUID, user: UserDep, svc: SvcDep) -> dict[str, Any]:
    authorize_dag_runs(user, svc.ingest_dag_id, "GET")
    from include.webapp import queries

    with _session(svc) as s:
        out = queries.photo_detail(s, image_id, svc.presign)
    out["expires_in_s"] = svc.url_expiry_s
    return out


@api.post(
    "/{image_id}/reprocess",
    status_code=202,
    summary="Reprocess a photo from its S3 original",
    responses={
        202: {"description": "Accepted: the reprocess job and its poll URL"},
        **_errors(401, 403, 404, 409, 422, 503),
    },
)
def reprocess(
    request: Request,
    image_id: uuid.UUID,
    body: ReprocessBody,
    user: UserDep,
    svc: SvcDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    from include.common.db import session_scope
    from include.photos.jobs import fail_job
    from include.webapp import staging

    authorize_dag_runs(user, svc.reprocess_dag_id, "POST")
    engine = svc.engine()
    with session_scope(engine) as s:
        job, created = staging.create_reprocess_job(
            s,
            image_id,
            body.reason,
            body.storage_location_id,
            user.name,
            idempotency_key or str(uuid.uuid4()),
        )
        job_id, run_id = job.job_id, job.dag_run_id or ""
    conf: dict[str, Any] = {"image_id": str(image_id), "reason": body.reason}
    if body.storage_location_id is not None:
        conf["storage_location_id"] = body.storage_location_id
    try:
        run_id = svc.trigger(svc.reprocess_dag_id, run_id, conf, user.name)
    except TriggerError as exc:
        if created:
            fail_job(
                engine,
                job_id,
                f"could not start {svc.reprocess_dag_id}: {exc}",
                only_active=True,
            )
        raise ApiError(503, "trigger_failed", f"reprocessing could not start: {exc}") from None
    root = _root(request)
    out = {
        "status": "accepted",
        "image_id": str(image_id),
        "new_job_id": str(job_id),
        "dag_run_id": run_id,
        "message": "Photo reprocessing started from S3 original",
        "poll_url": f"{root}{API}/jobs/{job_id}/status",
    }
    if svc.dag_paused(svc.reprocess_dag_id):
        out["warning"] = f"{svc.reprocess_dag_id} is paused: the run waits until it is unpaused"
    return JSONResponse(out, status_code=202)


# --------------------------------------------------------------------------- app
def _page(request: Request, name: str, user: WebUser) -> HTMLResponse:
    import html

    root = _root(request)
    airflow_root = root.rsplit("/", 1)[0] + "/" if root else "/"
    values = {
        "{{ROOT}}": html.escape(root),
        "{{LOGIN}}": html.escape(login_url(request)),
        "{{AIRFLOW}}": html.escape(airflow_root),
        "{{USER}}": html.escape(user.name),
    }
    text = (STATIC / PAGES[name]).read_text()
    for k, v in values.items():
        text = text.replace(k, v)
    return HTMLResponse(
        text,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "frame-ancestors 'self'",
            "X-Content-Type-Options": "nosniff",
        },
    )


def create_app(services: Services | None = None) -> FastAPI:
    app = FastAPI(
        title="Photos (upload and gallery)",
        version="1.0.0",
        description=__doc__,
        openapi_url=None,  # served below, behind the login
        docs_url=None,
        redoc_url=None,
    )
    if services is not None:
        app.state.services = services
    app.add_middleware(UploadSizeLimit)

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> Response:
        path = request.url.path
        is_page = API not in path and "/static/" not in path and not path.endswith(".json")
        if request.method == "GET" and is_page and exc.status == 401:
            return RedirectResponse(login_url(request), status_code=303)
        return _json_error(exc.status, exc.code, exc.message)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return _json_error(exc.status, exc.code, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errs = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        text = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errs)
        return _json_error(422, "validation_error", text, errors=errs)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _json_error(exc.status_code, code, str(exc.detail))

    from include.webapp.staging import Conflict, NotFound

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return _json_error(404, "not_found", str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> Response:
        return _json_error(409, "conflict", str(exc))

    app.include_router(api)

    @app.get("/", include_in_schema=False)
    async def index(request: Request, user: UserDep) -> RedirectResponse:
        root = _root(request)
        return RedirectResponse(f"{root}/upload", status_code=303)

    @app.get("/upload", include_in_schema=False, response_class=HTMLResponse)
    async def upload_page(request: Request, user: UserDep) -> HTMLResponse:
        return _page(request, "upload", user)

    @app.get("/gallery", include_in_schema=False, response_class=HTMLResponse)
    async def gallery_page(request: Request, user: UserDep) -> HTMLResponse:
        return _page(request, "gallery", user)

    @app.get("/photo/{image_id}", include_in_schema=False, response_class=HTMLResponse)
    async def photo_page(request: Request, image_id: uuid.UUID, user: UserDep) -> HTMLResponse:
        return _page(request, "photo", user)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str, user: UserDep) -> Response:
        path = STATIC / name
        if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES:
            raise ApiError(404, "not_found", f"no static file {name}")
        if not path.is_file():
            raise ApiError(404, "not_found", f"no static file {name}")
        return Response(
            path.read_bytes(),
            media_type=STATIC_TYPES[path.suffix],
            headers={"Cache-Control": "private, max-age=300"},
        )

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(user: UserDep) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request, user: UserDep) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title=app.title)

    return app


app = create_app()
