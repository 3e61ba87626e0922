"""Airflow login for the plugin's routes.

Routes of a plugin's FastAPI app are not protected by Airflow. Every route of the photos app
depends on :func:`current_user`, which validates the same JWT the Airflow UI uses — from the
``Authorization: Bearer`` header (API clients) or the ``_token`` cookie the Airflow login sets
(the pages) — with the auth manager's own validator (signature, expiry, audience, revocation).

* no token, an invalid, expired or revoked token → **401** JSON; pages redirect to Airflow's login
  page with ``next`` pointing back;
* a state-changing request authenticated by the cookie must carry ``X-Requested-With`` (a custom
  header a cross-site form cannot send), else **403** — cookie auth without CSRF protection would
  let any site upload or reprocess in the user's name;
* authorization is Airflow's: :func:`authorize_dag_runs` asks the auth manager whether the user may
  read (``GET``) or start (``POST``) runs of ``photo_ingest`` / ``photo_reprocess`` → **403**.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import Request

log = logging.getLogger(__name__)

COOKIE = "_token"
CSRF_HEADER = "x-requested-with"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class AuthError(Exception):
    """Raised by :func:`current_user`; the app turns it into a JSON error or a login redirect."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class WebUser:
    name: str
    via: str  # "bearer" | "cookie"
    user: Any  # the auth manager's user object


def auth_manager() -> Any:
    """Airflow's auth manager singleton (initialised by the api-server; created on first use in
    tests that mount the app alone)."""
    from airflow.api_fastapi.app import create_auth_manager

    return create_auth_manager()


def _token(request: Request) -> tuple[str | None, str]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), "bearer"
    return request.cookies.get(COOKIE) or None, "cookie"


async def current_user(request: Request) -> WebUser:
    """FastAPI dependency: the logged-in Airflow user, or :class:`AuthError`."""
    from jwt import ExpiredSignatureError, InvalidTokenError

    token, via = _token(request)
    if not token:
        raise AuthError(401, "not_authenticated", "log in to Airflow first (no token)")
    try:
        user = await auth_manager().get_user_from_token(token)
    except ExpiredSignatureError:
        raise AuthError(
            401, "token_expired", "your Airflow login has expired: log in again"
        ) from None
    except InvalidTokenError as exc:
        raise AuthError(401, "invalid_token", f"invalid Airflow token: {exc}") from None
    if (
        via == "cookie"
        and request.method not in SAFE_METHODS
        and not request.headers.get(CSRF_HEADER)
    ):
        raise AuthError(
            403,
            "csrf",
            "cookie-authenticated requests that change data need the X-Requested-With header",
        )
    name = user.get_name() if hasattr(user, "get_name") else str(user)
    return WebUser(name=str(name), via=via, user=user)


def authorize_dag_runs(user: WebUser, dag_id: str, method: str) -> None:
    """Airflow's own permission check: reading photo results needs read access to the runs of
    ``dag_id`` (``GET``), uploading/reprocessing needs the right to start them (``POST``).
    Raises :class:`AuthError` 403 otherwise (e.g. a ``viewer`` trying to upload)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )

    allowed = auth_manager().is_authorized_dag(
        method=method,  # type: ignore[arg-type]
        user=user.user,
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=dag_id),
    )
    if not allowed:
        what = "start runs of" if method != "GET" else "see runs of"
        raise AuthError(403, "forbidden", f"{user.name} may not {what} {dag_id} in Airflow")


def login_url(request: Request) -> str:
    """Airflow's login page, coming back to the current page afterwards."""
    try:
        return auth_manager().get_url_login(next_url=str(request.url))
    except Exception:  # noqa: BLE001 - any auth manager: fall back to Airflow's default route
        from urllib.parse import urlencode

        return "/auth/login?" + urlencode({"next": str(request.url)})
