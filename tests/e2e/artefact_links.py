"""Helpers of the e2e tests: find the markdown links to published artefacts in an approval body or a
task result, and fetch them through the real ``/artefacts`` app with an Airflow login; find the
links to an external server (Hypha) on a summary page and fetch them as a user's browser would,
without any token."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE = "http://127.0.0.1:8080/artefacts/"  # [api] base_url is not set in the test session
_LINK = re.compile(r"\[([^\]]*)\]\((http[^)\s]+/artefacts/[^)\s]+)\)")


def links(markdown: str) -> list[tuple[str, str]]:
    """``[(text, url)]`` of the artefact links in a markdown text."""
    return _LINK.findall(markdown)


def published_path(url: str) -> Path:
    """The file under the published root that an artefact URL names."""
    from include.common.publish import published_root

    assert url.startswith(BASE), url
    path = published_root() / unquote(urlsplit(url).path[len("/artefacts/") :])
    assert path.resolve().is_relative_to(published_root())
    return path


def fetch(url: str) -> tuple[int, str, bytes]:
    """GET the artefact through the ``imaging.artefacts_app`` app as a logged-in Airflow user."""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from imaging.artefacts_app import create_app

    token = create_auth_manager().generate_jwt(SimpleAuthManagerUser(username="e2e", role="viewer"))
    with TestClient(create_app()) as c:
        r = c.get(
            urlsplit(url).path[len("/artefacts") :], headers={"Authorization": f"Bearer {token}"}
        )
        unauthenticated = c.get(urlsplit(url).path[len("/artefacts") :]).status_code
    assert unauthenticated == 401
    return r.status_code, r.headers.get("content-type", ""), r.content


_HREF = re.compile(r'href="([^"]+)"')


def external_links(page_html: str, server_url: str) -> list[str]:
    """The distinct ``href``s of a summary page that point at ``server_url`` (e.g. Hypha)."""
    hrefs = (html.unescape(h) for h in _HREF.findall(page_html))
    return list(dict.fromkeys(h for h in hrefs if h.startswith(server_url.rstrip("/") + "/")))


def fetch_anonymous(url: str) -> tuple[int, bytes]:
    """GET ``url`` with plain HTTP: no token, no cookie, redirects followed (what a click does)."""
    import httpx

    with httpx.Client(timeout=60, follow_redirects=True) as c:
        r = c.get(url)
    assert "authorization" not in {k.lower() for k in r.request.headers}
    return r.status_code, r.content
