"""A local fake of the Etsy Open API v3 endpoints the design pipeline uses, following the documented
request/response shapes, auth headers, rate-limit headers and errors:

* ``POST /v3/application/shops/{shop_id}/listings`` createDraftListing (form-encoded; required
  quantity, title, description, price, who_made, when_made, taxonomy_id) -> 201 ShopListing;
* ``GET  /v3/application/shops/{shop_id}/listings?state=&limit=&offset=`` getListingsByShop;
* ``POST /v3/application/shops/{shop_id}/listings/{listing_id}/images`` uploadListingImage
  (multipart ``image`` file, ``rank``, ``alt_text``) -> 201 ListingImage;
* ``GET  /v3/application/listings/{listing_id}/images`` getListingImages;
* ``x-api-key`` and ``Authorization: Bearer`` checked (401 ``invalid_token`` / 403);
* every response carries ``x-limit-per-second``, ``x-remaining-this-second``, ``x-limit-per-day``,
  ``x-remaining-today``; over either limit: 429 with ``retry-after``.

Fault injection for tests: ``server.fail(path_regex, status, times, after_effect=False)`` answers the
next ``times`` matching requests with ``status``; with ``after_effect=True`` the request is carried
out first and the error is returned anyway (a lost response: the retry must not duplicate it).

Run standalone: ``python -m tests.fakes.etsy_server --port 8765 --api-key K --token T --shop-id 1``.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

REQUIRED = ("quantity", "title", "description", "price", "who_made", "when_made", "taxonomy_id")
WHO_MADE = {"i_did", "someone_else", "collective"}
WHEN_MADE = {"made_to_order", "2020_2026", "2010_2019", "2007_2009", "before_2007"}


@dataclass
class Fault:
    pattern: re.Pattern[str]
    status: int
    times: int
    after_effect: bool = False


@dataclass
class FakeEtsyState:
    api_key: str
    token: str
    shop_id: str
    per_second: int = 10
    per_day: int = 10_000
    listings: dict[int, dict[str, Any]] = field(default_factory=dict)
    images: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    window: list[float] = field(default_factory=list)
    used_today: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Any = field(default_factory=lambda: itertools.count(1_000_001))
    image_ids: Any = field(default_factory=lambda: itertools.count(5_000_001))


class _Handler(BaseHTTPRequestHandler):
    state: FakeEtsyState  # set on the subclass
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        return

    # ------------------------------------------------------------ plumbing

    def _send(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        s = self.state
        s.requests.append((self.command, self.path, status))  # before the client can read it
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-limit-per-second", str(s.per_second))
        self.send_header("x-remaining-this-second", str(max(0, s.per_second - len(s.window))))
        self.send_header("x-limit-per-day", str(s.per_day))
        self.send_header("x-remaining-today", str(max(0, s.per_day - s.used_today)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _admit(self) -> bool:
        """Auth and rate limits; False when an error was already sent."""
        s = self.state
        key = self.headers.get("x-api-key", "")
        if key.split(":", 1)[0] != s.api_key:
            self._send(
                403,
                {"error": "Invalid API key: should be in the format 'keystring:shared_secret'."},
            )
            return False
        if self.headers.get("Authorization", "") != f"Bearer {s.token}":
            self._send(401, {"error": "invalid_token"})
            return False
        with s.lock:
            now = time.monotonic()
            s.window = [t for t in s.window if now - t < 1.0]
            if s.used_today >= s.per_day:
                self._send(
                    429,
                    {"error": "You have exceeded your quota of requests for today."},
                    {"retry-after": "3600"},
                )
                return False
            if len(s.window) >= s.per_second:
                self._send(
                    429,
                    {"error": "Too many requests: limit of requests per second exceeded."},
                    {"retry-after": "1"},
                )
                return False
            s.window.append(now)
            s.used_today += 1
        return True

    def _fault(self) -> Fault | None:
        s = self.state
        with s.lock:
            for f in s.faults:
                if f.times > 0 and f.pattern.search(f"{self.command} {urlparse(self.path).path}"):
                    f.times -= 1
                    return f
        return None

    def _dispatch(self) -> None:
        if not self._admit():
            self._body()
            return
        fault = self._fault()
        if fault is not None and not fault.after_effect:
            self._body()
            self._send(fault.status, {"error": f"injected fault {fault.status}"})
            return
        status, body = self._route()
        if fault is not None:
            status, body = (
                fault.status,
                {"error": f"injected fault {fault.status} after the effect"},
            )
        self._send(status, body)

    do_GET = do_POST = do_PUT = do_DELETE = lambda self: self._dispatch()  # noqa: E731

    # ------------------------------------------------------------ routes

    def _route(self) -> tuple[int, Any]:
        s = self.state
        url = urlparse(self.path)
        path = url.path
        m = re.fullmatch(r"/v3/application/shops/(\d+)/listings", path)
        if m:
            if m.group(1) != s.shop_id:
                self._body()
                return 403, {"error": "The shop does not belong to the authenticated user"}
            if self.command == "POST":
                return self._create_listing()
            if self.command == "GET":
                return self._list_listings(parse_qs(url.query))
        m = re.fullmatch(r"/v3/application/shops/(\d+)/listings/(\d+)/images", path)
        if m and self.command == "POST":
            return self._upload_image(int(m.group(2)))
        m = re.fullmatch(r"/v3/application/listings/(\d+)/images", path)
        if m and self.command == "GET":
            lid = int(m.group(1))
            if lid not in s.listings:
                return 404, {"error": f"Listing {lid} not found"}
            imgs = s.images.get(lid, [])
            return 200, {"count": len(imgs), "results": imgs}
        self._body()
        return 404, {"error": f"No route for {self.command} {path}"}

    def _create_listing(self) -> tuple[int, Any]:
        ctype = self.headers.get("Content-Type", "")
        raw = self._body()
        if ctype.startswith("application/json"):
            form = {k: str(v) for k, v in json.loads(raw or b"{}").items()}
        else:
            form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        missing = [k for k in REQUIRED if not form.get(k)]
        if missing:
            return 400, {"error": f"Missing required parameter(s): {', '.join(missing)}"}
        try:
            quantity, price, taxonomy = (
                int(form["quantity"]),
                float(form["price"]),
                int(form["taxonomy_id"]),
            )
        except ValueError as exc:
            return 400, {"error": f"Invalid parameter: {exc}"}
        if quantity < 1 or price < 0.2 or len(form["title"]) > 140:
            return 400, {"error": "Invalid quantity, price or title"}
        if form["who_made"] not in WHO_MADE or form["when_made"] not in WHEN_MADE:
            return 400, {"error": "Invalid who_made or when_made"}
        tags = [t.strip() for t in form.get("tags", "").split(",") if t.strip()]
        if len(tags) > 13 or any(len(t) > 20 for t in tags):
            return 400, {"error": "Tags: at most 13, each at most 20 characters"}
        with self.state.lock:
            lid = next(self.state.ids)
            listing = {
                "listing_id": lid,
                "shop_id": int(self.state.shop_id),
                "title": form["title"],
                "description": form["description"],
                "state": "draft",
                "quantity": quantity,
                "price": {"amount": round(price * 100), "divisor": 100, "currency_code": "USD"},
                "taxonomy_id": taxonomy,
                "who_made": form["who_made"],
                "when_made": form["when_made"],
                "tags": tags,
                "url": f"https://www.etsy.com/listing/{lid}",
            }
            self.state.listings[lid] = listing
        return 201, listing

    def _list_listings(self, q: dict[str, list[str]]) -> tuple[int, Any]:
        state = q.get("state", ["active"])[0]
        limit = min(100, max(1, int(q.get("limit", ["25"])[0])))
        offset = max(0, int(q.get("offset", ["0"])[0]))
        rows = [v for _, v in sorted(self.state.listings.items()) if v["state"] == state]
        return 200, {"count": len(rows), "results": rows[offset : offset + limit]}

    def _upload_image(self, lid: int) -> tuple[int, Any]:
        raw = self._body()
        if lid not in self.state.listings:
            return 404, {"error": f"Listing {lid} not found"}
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            return 400, {"error": "uploadListingImage needs multipart/form-data"}
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + raw
        )
        fields: dict[str, Any] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = part.get_payload(decode=True)
        image = fields.get("image")
        if not image:
            return 400, {"error": "Missing required parameter: image"}
        if not (image.startswith(b"\xff\xd8\xff") or image.startswith(b"\x89PNG")):
            return 400, {"error": "The image must be a JPEG, PNG or GIF file"}
        rank = int((fields.get("rank") or b"1").decode())
        with self.state.lock:
            imgs = self.state.images.setdefault(lid, [])
            if len(imgs) >= 20:
                return 400, {"error": "A listing can have at most 20 images"}
            img = {
                "listing_id": lid,
                "listing_image_id": next(self.state.image_ids),
                "rank": rank,
                "alt_text": (fields.get("alt_text") or b"").decode(),
                "full_width": None,
                "url_fullxfull": f"https://i.etsystatic.com/fake/{lid}/{rank}.jpg",
                "size_bytes": len(image),
            }
            imgs.append(img)
        return 201, img


class FakeEtsyServer:
    """The fake on a free loopback port, in a background thread."""

    def __init__(
        self,
        *,
        api_key: str = "fakekeystring",
        token: str = "123456.fake-oauth-token",
        shop_id: str = "424242",
        per_second: int = 10,
        per_day: int = 10_000,
        port: int = 0,
    ) -> None:
        self.state = FakeEtsyState(api_key, token, str(shop_id), per_second, per_day)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeEtsyServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail(self, pattern: str, status: int, times: int = 1, after_effect: bool = False) -> None:
        with self.state.lock:
            self.state.faults.append(Fault(re.compile(pattern), status, times, after_effect))

    def airflow_connection(self) -> dict[str, Any]:
        return {
            "conn_type": "etsy",
            "host": self.url,
            "login": self.state.api_key,
            "password": self.state.token,
            "extra": {"shop_id": self.state.shop_id, "per_second": self.state.per_second},
        }

    @property
    def listings(self) -> dict[int, dict[str, Any]]:
        return self.state.listings

    def images(self, listing_id: int) -> list[dict[str, Any]]:
        return self.state.images.get(listing_id, [])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Fake Etsy Open API v3 server")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--api-key", default="fakekeystring")
    ap.add_argument("--token", default="123456.fake-oauth-token")
    ap.add_argument("--shop-id", default="424242")
    ap.add_argument("--per-second", type=int, default=10)
    ap.add_argument("--per-day", type=int, default=10_000)
    a = ap.parse_args(argv)
    srv = FakeEtsyServer(
        api_key=a.api_key,
        token=a.token,
        shop_id=a.shop_id,
        per_second=a.per_second,
        per_day=a.per_day,
        port=a.port,
    )
    print(json.dumps({"url": srv.url, "connection": srv.airflow_connection()}), flush=True)
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()


if __name__ == "__main__":
    main()
