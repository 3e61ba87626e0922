"""EtsyHook: Etsy Open API v3 for draft listings and listing images.

Connection ``etsy_default`` (conn_type ``etsy``):

* ``host``: API base URL (default ``https://openapi.etsy.com``; tests point it at the local fake);
* ``login``: the app keystring (sent as ``x-api-key``, with ``extra.shared_secret`` appended as
  ``keystring:secret`` when given);
* ``password``: the OAuth 2 access token (``Authorization: Bearer``);
* ``extra``: ``{"shop_id": 12345, "per_second": 10, "daily_quota": 10000, "timeout": 30}``.

Every request waits for the client-side rate limiter (10 requests/s), adopts the
``x-remaining-*`` headers, retries 429 (after ``retry-after``) and 5xx/connection errors with
exponential backoff, fails at once on 401/403 and other 4xx, and stops when the daily quota is
used up. Listing creation is idempotent through :func:`include.design.etsy.publish`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from include.common.retry import retrying
from include.design.etsy import (
    EtsyAuthError,
    EtsyError,
    EtsyQuotaExhausted,
    EtsyRateLimited,
    RateLimiter,
    RateState,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

DEFAULT_API = "https://openapi.etsy.com"


class _Retryable(Exception):
    pass


class EtsyHook(BaseHook):
    """Etsy Open API v3 (draft listings, listing images)."""

    conn_name_attr = "etsy_conn_id"
    default_conn_name = "etsy_default"
    conn_type = "etsy"
    hook_name = "Etsy Open API v3"

    def __init__(
        self,
        etsy_conn_id: str = default_conn_name,
        *,
        attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.etsy_conn_id = etsy_conn_id
        self.attempts = attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "port"],
            "relabeling": {
                "login": "Keystring (x-api-key)",
                "password": "OAuth access token",
                "host": "API URL",
            },
            "placeholders": {
                "extra": '{"shop_id": 12345, "shared_secret": "", "daily_quota": 10000}'
            },
        }

    @classmethod
    def is_configured(cls, conn_id: str = default_conn_name) -> bool:
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            cls.get_connection(conn_id)
        except AirflowNotFoundException:
            return False
        return True

    @cached_property
    def _conn(self) -> Any:
        return self.get_connection(self.etsy_conn_id)

    @cached_property
    def extras(self) -> dict[str, Any]:
        return dict(self._conn.extra_dejson)

    @property
    def base_url(self) -> str:
        host = (self._conn.host or DEFAULT_API).rstrip("/")
        host = host.removesuffix("/v3")  # the endpoints below carry /v3 themselves
        if not host.startswith("http"):
            host = f"https://{host}"
        if self._conn.port and host.count(":") < 2:
            host = f"{host}:{self._conn.port}"
        return host

    @property
    def shop_id(self) -> str:
        shop_id = self.extras.get("shop_id")
        if not shop_id:
            raise ValueError(f"connection {self.etsy_conn_id!r} has no extra.shop_id")
        return str(shop_id)

    @cached_property
    def limiter(self) -> RateLimiter:
        quota = self.extras.get("daily_quota")
        return RateLimiter(
            per_second=int(self.extras.get("per_second", 10)),
            daily_quota=int(quota) if quota else None,
        )

    def get_conn(self) -> Any:
        """A ``requests.Session`` with the auth headers."""
        return self._session

    @cached_property
    def _session(self) -> Any:
        import requests

        s = requests.Session()
        key = self._conn.login or ""
        secret = self.extras.get("shared_secret")
        s.headers.update(
            {
                "x-api-key": f"{key}:{secret}" if secret else key,
                "Authorization": f"Bearer {self._conn.password or ''}",
                "Accept": "application/json",
            }
        )
        return s

    # ------------------------------------------------------------ transport

    def _once(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests

        self.limiter.acquire()
        try:
            resp = self._session.request(
                method,
                self.base_url + path,
                timeout=float(self.extras.get("timeout", 30)),
                **kwargs,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retryable(f"{method} {path}: {exc}") from exc
        state = RateState.from_headers(resp.headers)
        self.limiter.observe(state)
        if resp.status_code == 429:
            if state.remaining_today == 0:
                raise EtsyQuotaExhausted(
                    f"{method} {path}: daily quota exhausted ({_message(resp)})"
                )
            wait = retry_after_seconds(resp.headers)
            log.warning("Etsy rate limit on %s %s: retry after %.1f s", method, path, wait)
            self.limiter.backoff(wait)
            raise EtsyRateLimited(wait, _message(resp))
        if resp.status_code in (401, 403):
            raise EtsyAuthError(resp.status_code, _message(resp))
        if resp.status_code >= 500:
            raise _Retryable(f"{method} {path}: {resp.status_code} {_message(resp)}")
        if resp.status_code >= 400:
            raise EtsyError(resp.status_code, _message(resp))
        return resp.json() if resp.content else {}

    def request(self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any) -> Any:
        """One API call with pacing and retries. 429 is always retried (Etsy did not process the
        request); server errors and lost connections only for ``idempotent`` calls — a POST whose
        response was lost may have taken effect, and :func:`include.design.etsy.publish` checks."""
        policy = retrying(
            attempts=self.attempts,
            base=self.backoff_base,
            cap=self.backoff_cap,
            retry_on=(_Retryable, EtsyRateLimited) if idempotent else (EtsyRateLimited,),
            name=f"Etsy {method} {path}",
        )
        try:
            return policy(self._once, method, path, **kwargs)
        except _Retryable as exc:
            raise EtsyError(503, str(exc)) from exc

    # ------------------------------------------------------------ endpoints

    def create_draft_listing(self, payload: Mapping[str, str]) -> dict[str, Any]:
        return self.request(
            "POST",
            f"/v3/application/shops/{self.shop_id}/listings",
            idempotent=False,
            data=dict(payload),
        )

    def get_listings_by_shop(
        self, state: str = "draft", limit: int = 100, offset: int = 0
    ) -> dict[str, Any]:
        return self.request(
            "GET",
            f"/v3/application/shops/{self.shop_id}/listings",
            params={"state": state, "limit": limit, "offset": offset},
        )

    def find_draft_listing_by_tag(self, tag: str) -> dict[str, Any] | None:
        offset = 0
        while True:
            page = self.get_listings_by_shop("draft", 100, offset)
            results = page.get("results", [])
            for listing in results:
                if tag in (listing.get("tags") or []):
                    return listing
            offset += len(results)
            if not results or offset >= int(page.get("count", 0)):
                return None

    def get_listing_images(self, listing_id: int) -> list[dict[str, Any]]:
        return self.request("GET", f"/v3/application/listings/{listing_id}/images").get(
            "results", []
        )

    def upload_listing_image(
        self, listing_id: int, path: str | os.PathLike[str], rank: int, alt_text: str = ""
    ) -> dict[str, Any]:
        p = Path(path)
        mime = "image/png" if p.suffix.lower() == ".png" else "image/jpeg"
        data = p.read_bytes()
        return self.request(
            "POST",
            f"/v3/application/shops/{self.shop_id}/listings/{listing_id}/images",
            idempotent=False,
            files={"image": (p.name, data, mime)},
            data={"rank": str(rank), "alt_text": alt_text[:500]},
        )

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.get_listings_by_shop(limit=1)
        except Exception as exc:
            return False, str(exc)
        return True, "Etsy API reachable"


def _message(resp: Any) -> str:
    try:
        body = resp.json()
        return str(body.get("error") or body.get("error_description") or body)
    except ValueError:
        return resp.text[:200]
