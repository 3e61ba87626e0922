"""Published pipeline artefacts in the browser: a FastAPI app mounted by the ``imaging_artefacts``
plugin at ``/artefacts`` on the Airflow api-server (same host and login as the Airflow UI).

* ``GET|HEAD /artefacts/<dag_id>/<run_id>/<name>`` - one file of the published root
  (``$IMAGING_DATA_DIR/published``, see :mod:`include.common.publish`) with its content type;
* ``GET|HEAD /artefacts/<dag_id>/<run_id>/`` - an HTML list of the run's artefacts.

Only regular files inside the published root are served: hidden names (temp files of an atomic
write), ``..``, encoded separators, NUL bytes and symlinks leading out of the root are all **404**, as
is anything that does not exist. Every route requires the Airflow login (the JWT of the UI's
``_token`` cookie or an ``Authorization: Bearer`` header, checked by
:func:`imaging.webapp.auth.current_user`) and Airflow's permission to read runs of that DAG
(**403** otherwise). Without a login: **401** JSON, or a redirect to the login page for a browser.
Responses carry ``X-Content-Type-Options: nosniff`` and a CSP that forbids scripts, so a published
HTML report cannot run code in the Airflow origin.
"""

from __future__ import annotations

import html
import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from imaging.webapp.auth import AuthError, WebUser, authorize_dag_runs, current_user, login_url

log = logging.getLogger(__name__)

URL_PREFIX = "/artefacts"
# what include.common.files.safe_name produces: the only segment shape that can exist on disk
_SEGMENT = re.compile(r"^[A-Za-z0-9_+@=-][A-Za-z0-9._+@=-]*$")
CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".pdf": "application/pdf",
    ".fits": "application/fits",
    ".fit": "application/fits",
}
SHOWN_INLINE = ("image/", "text/", "application/json", "application/pdf")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; "
    "style-src 'unsafe-inline'; frame-ancestors 'self'",
    "Cache-Control": "private, no-cache",
    "Referrer-Policy": "same-origin",
}

UserDep = Annotated[WebUser, Depends(current_user)]


class NotFound(Exception):
    pass


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


def resolve_artefact(root: Path, parts: list[str]) -> Path:
    """The regular file under ``root`` named by the URL ``parts``, or :class:`NotFound`."""
    if len(parts) < 2 or any(not _SEGMENT.match(p) for p in parts):
        raise NotFound()
    root = root.resolve()
    candidate = root.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise NotFound() from None
    if not real.is_relative_to(root) or real == root:
        raise NotFound()
    return real


def _default_root() -> Path:
    from include.common.publish import published_root

    return published_root()


def _json_error(status: int, code: str, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return JSONResponse(
        {"status": status, "error": code, "detail": detail},
        status_code=status,
        headers={**headers, "X-Content-Type-Options": "nosniff"},
    )


def _wants_html(request: Request) -> bool:
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", "")


def _listing(request: Request, dag_id: str, run_id: str, run_dir: Path) -> HTMLResponse:
    base = request.url.path.rstrip("/")
    files = sorted(
        p.relative_to(run_dir).as_posix()
        for p in run_dir.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(run_dir).parts)
        and p.resolve().is_relative_to(run_dir)
    )
    e = html.escape
    items = (
        "".join(f"<li><a href='{e(base + '/' + quote(f))}'>{e(f)}</a></li>" for f in files)
        or "<li>(nothing published)</li>"
    )
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{e(dag_id)} {e(run_id)}</title></head><body>"
        f"<h1>Artefacts of {e(dag_id)} / {e(run_id)}</h1><ul>{items}</ul></body></html>"
    )
    return HTMLResponse(body, headers=SECURITY_HEADERS)


def create_app(root: str | os.PathLike[str] | None = None) -> FastAPI:
    """The app; ``root`` overrides the published root (tests)."""
    app = FastAPI(
        title="Published pipeline artefacts",
        description=__doc__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )

    def _root() -> Path:
        return Path(root).resolve() if root is not None else _default_root()

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> Response:
        if exc.status == 401 and _wants_html(request):
            return RedirectResponse(login_url(request), status_code=303)
        return _json_error(exc.status, exc.code, exc.message)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return _json_error(404, "not_found", "no such artefact")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return _json_error(404, "not_found", "no such artefact")
        code = {405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _json_error(exc.status_code, code, str(exc.detail))

    @app.api_route("/{dag_id}/{run_id}/", methods=["GET", "HEAD"], include_in_schema=False)
    async def run_listing(request: Request, dag_id: str, run_id: str, user: UserDep) -> Response:
        if not (_SEGMENT.match(dag_id) and _SEGMENT.match(run_id)):
            raise NotFound()
        authorize_dag_runs(user, dag_id, "GET")
        run_dir = resolve_artefact(_root(), [dag_id, run_id])
        if not run_dir.is_dir():
            raise NotFound()
        return _listing(request, dag_id, run_id, run_dir)

    @app.api_route(
        "/{dag_id}/{run_id}/{name:path}", methods=["GET", "HEAD"], include_in_schema=False
    )
    async def artefact(
        request: Request, dag_id: str, run_id: str, name: str, user: UserDep
    ) -> Response:
        parts = [dag_id, run_id, *name.split("/")]
        if any(not _SEGMENT.match(p) for p in parts):
            raise NotFound()
        authorize_dag_runs(user, dag_id, "GET")
        path = resolve_artefact(_root(), parts)
        if not path.is_file():
            raise NotFound()
        ctype = content_type(path.name)
        disposition = "inline" if ctype.startswith(SHOWN_INLINE) else "attachment"
        return FileResponse(
            path,
            media_type=ctype,
            headers={
                **SECURITY_HEADERS,
                "Content-Disposition": f'{disposition}; filename="{path.name}"',
            },
        )

    return app


app: Any = create_app()
