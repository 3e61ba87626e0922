"""Etsy listings: request payloads, rate-limit bookkeeping, the idempotent publish sequence, and the
outbox used when no Etsy connection is configured. The HTTP calls live in ``imaging.hooks.etsy``.

Etsy Open API v3 (developers.etsy.com):

* ``POST /v3/application/shops/{shop_id}/listings`` (createDraftListing, form-encoded: quantity,
  title, description, price, who_made, when_made, taxonomy_id, tags...) -> 201 ShopListing;
* ``POST /v3/application/shops/{shop_id}/listings/{listing_id}/images`` (uploadListingImage,
  multipart ``image`` + ``rank``) -> 201 ListingImage;
* ``GET /v3/application/shops/{shop_id}/listings?state=draft`` (getListingsByShop) and
  ``GET /v3/application/listings/{listing_id}/images`` (getListingImages);
* headers ``x-api-key`` (keystring[:shared secret]) and ``Authorization: Bearer <oauth token>``;
* rate limits per app: 10 requests/s and a daily quota (10,000 by default); every response carries
  ``x-limit-per-second``, ``x-remaining-this-second``, ``x-limit-per-day``, ``x-remaining-today``;
  over the limit Etsy answers 429 (with ``retry-after``).

Idempotency: Etsy has no idempotency keys, so each listing carries a deterministic tag
(``d-`` + 12 hex digits of a hash of the shop and the design's content) and the database row is claimed before the create call. A retry
after a crash between "created on Etsy" and "recorded here" looks the tag up among the shop's draft
listings and adopts that listing instead of creating a second one. Images are uploaded by rank and
ranks already present on the listing are skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from include.common.files import atomic_write_text, safe_copy, safe_name

MAX_TITLE = 140
MAX_TAGS = 13
MAX_TAG_LEN = 20


class EtsyError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Etsy API error {status}: {message}")
        self.status = status
        self.message = message


class EtsyAuthError(EtsyError):
    """401/403: the token or key is wrong or expired; retrying does not help."""


class EtsyRateLimited(EtsyError):
    def __init__(self, retry_after: float, message: str = "rate limited") -> None:
        super().__init__(429, message)
        self.retry_after = retry_after


class EtsyQuotaExhausted(EtsyError):
    """The daily quota is used up: stop until it refills (Etsy's window is a sliding 24 h)."""

    def __init__(self, message: str = "daily request quota exhausted") -> None:
        super().__init__(429, message)


def idempotency_tag(shop: str, sha256: str) -> str:
    """A listing tag (<= 20 characters) unique per shop and design content."""
    return "d-" + hashlib.sha256(f"{shop}/{sha256}".encode()).hexdigest()[:12]


def _clean_tag(tag: str) -> str:
    keep = "".join(c for c in tag if c.isalnum() or c in " -'")
    return keep.strip()[:MAX_TAG_LEN]


def listing_payload(
    *, title: str, stem: str, listing: Mapping[str, Any], tag: str, description: str | None = None
) -> dict[str, str]:
    """Form fields of createDraftListing for one design (deterministic)."""
    pretty = " ".join(stem.replace("_", " ").replace("-", " ").split()).title() or "Design"
    full_title = f"{title} - {pretty}"[:MAX_TITLE]
    tags = [t for t in (_clean_tag(t) for t in listing.get("tags", [])) if t]
    tags = [t for t in tags if t != tag][: MAX_TAGS - 1] + [tag]
    return {
        "quantity": str(int(listing.get("quantity", 1))),
        "title": full_title,
        "description": description
        or listing.get("description")
        or f"{full_title}. Printed to order.",
        "price": f"{float(listing.get('price', 10.0)):.2f}",
        "who_made": str(listing.get("who_made", "i_did")),
        "when_made": str(listing.get("when_made", "made_to_order")),
        "taxonomy_id": str(int(listing.get("taxonomy_id", 2078))),
        "tags": ",".join(tags),
        "is_supply": "false",
    }


# ---------------------------------------------------------------- rate limits


def _num(headers: Mapping[str, str], name: str) -> int | None:
    for k, v in headers.items():
        if k.lower() == name:
            try:
                return int(float(v))
            except ValueError:
                return None
    return None


@dataclass
class RateState:
    limit_per_second: int | None = None
    remaining_this_second: int | None = None
    limit_per_day: int | None = None
    remaining_today: int | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateState:
        return cls(
            _num(headers, "x-limit-per-second"),
            _num(headers, "x-remaining-this-second"),
            _num(headers, "x-limit-per-day"),
            _num(headers, "x-remaining-today"),
        )


def retry_after_seconds(headers: Mapping[str, str], default: float = 1.0) -> float:
    value = _num(headers, "retry-after")
    return float(value) if value is not None and value >= 0 else default


@dataclass
class RateLimiter:
    """Client-side pacing: at most ``per_second`` requests in any 1-second window, and a stop when
    the server says the daily quota is gone. Thread-safe; ``clock``/``sleep`` injectable."""

    per_second: int = 10
    daily_quota: int | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _sent: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    remaining_today: int | None = None
    used: int = 0

    def acquire(self) -> None:
        while True:
            with self._lock:
                if self.remaining_today is not None and self.remaining_today <= 0:
                    raise EtsyQuotaExhausted()
                if self.daily_quota is not None and self.used >= self.daily_quota:
                    raise EtsyQuotaExhausted(f"configured daily quota of {self.daily_quota} used")
                now = self.clock()
                self._sent = [t for t in self._sent if now - t < 1.0]
                if len(self._sent) < self.per_second:
                    self._sent.append(now)
                    self.used += 1
                    return
                wait = 1.0 - (now - self._sent[0]) + 0.001
            self.sleep(wait)

    def observe(self, state: RateState) -> None:
        """Adopt the server's view (its limits may be lower than configured)."""
        with self._lock:
            if state.limit_per_second:
                self.per_second = min(self.per_second, state.limit_per_second)
            if state.remaining_today is not None:
                self.remaining_today = state.remaining_today
            if state.remaining_this_second == 0:  # other clients of the app used this second up
                now = self.clock()
                self._sent = [now] * self.per_second

    def backoff(self, seconds: float) -> None:
        """After a 429: nothing more this window."""
        self.sleep(max(seconds, 0.05))


# ---------------------------------------------------------------- publish


class EtsyClient(Protocol):
    def create_draft_listing(self, payload: Mapping[str, str]) -> dict[str, Any]: ...
    def find_draft_listing_by_tag(self, tag: str) -> dict[str, Any] | None: ...
    def get_listing_images(self, listing_id: int) -> list[dict[str, Any]]: ...
    def upload_listing_image(
        self, listing_id: int, path: str | os.PathLike[str], rank: int, alt_text: str = ""
    ) -> dict[str, Any]: ...


@dataclass
class PublishResult:
    listing_id: int
    created: bool  # False: an existing listing with our tag was adopted or already recorded
    uploaded: list[int]  # ranks uploaded by this call
    skipped: list[int]  # ranks already on the listing
    image_ids: list[int]


def publish(
    client: EtsyClient,
    *,
    payload: Mapping[str, str],
    tag: str,
    images: Sequence[str | os.PathLike[str]],
    known_listing_id: int | None,
    on_listing: Callable[[int], None],
    alt_text: str = "",
) -> PublishResult:
    """Create (or find) the draft listing, record it via ``on_listing`` at once, then upload the
    images that are not on it yet. Safe to call again after any failure."""
    created = False
    listing_id = known_listing_id
    if listing_id is None:
        found = client.find_draft_listing_by_tag(tag)
        if found is None:
            try:
                listing_id = int(client.create_draft_listing(payload)["listing_id"])
                created = True
            except EtsyError as exc:
                if exc.status < 500:
                    raise
                # the response was lost: the listing may exist all the same
                found = client.find_draft_listing_by_tag(tag)
                if found is None:
                    raise
        if found is not None:
            listing_id = int(found["listing_id"])
        assert listing_id is not None
        on_listing(listing_id)

    def ranks() -> dict[int, int]:
        return {
            int(i.get("rank", 0)): int(i["listing_image_id"])
            for i in client.get_listing_images(listing_id)
        }

    existing = ranks()
    uploaded, skipped = [], []
    for rank, path in enumerate(images, start=1):
        if rank in existing:
            skipped.append(rank)
            continue
        try:
            res = client.upload_listing_image(listing_id, path, rank, alt_text)
            existing[rank] = int(res["listing_image_id"])
        except EtsyError as exc:
            if exc.status < 500:
                raise
            existing = ranks()  # lost response: did the upload happen?
            if rank not in existing:
                raise
        uploaded.append(rank)
    return PublishResult(
        listing_id, created, uploaded, skipped, [existing[r] for r in sorted(existing)]
    )


# ---------------------------------------------------------------- outbox


def write_outbox(
    root: str | os.PathLike[str],
    *,
    shop: str,
    tag: str,
    payload: Mapping[str, str],
    images: Sequence[str | os.PathLike[str]],
    design_ref: str,
) -> Path:
    """``<root>/<shop>/<tag>/listing.json`` + the images (``01_<name>``...), written so that a rerun
    produces the same folder; listing.json is written last (its presence = complete)."""
    folder = Path(root) / safe_name(shop) / safe_name(tag)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for rank, img in enumerate(images, start=1):
        name = f"{rank:02d}_{safe_name(Path(img).name)}"
        safe_copy(img, folder / name)
        names.append(name)
    doc = {
        "endpoint": "POST /v3/application/shops/{shop_id}/listings",
        "form": dict(payload),
        "images": names,
        "design": design_ref,
        "idempotency_tag": tag,
    }
    atomic_write_text(folder / "listing.json", json.dumps(doc, indent=2, sort_keys=True))
    return folder
