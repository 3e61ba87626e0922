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
import unicodedata
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


# Etsy Open API v3 reference, createDraftListing (developers.etsy.com/documentation/reference
# #operation/createDraftListing), as used here:
# * title: "valid title strings contain only letters, numbers, punctuation marks, mathematical
#   symbols, whitespace characters, ™, ©, and ®. (regex: /[^\p{L}\p{Nd}\p{P}\p{Sm}\p{Zs}™©®]/u)
#   You can only use the %, :, & and + characters once each." Seller handbook: at most 140
#   characters.
# * tags: up to 13; "valid tag strings contain only letters, numbers, whitespace characters, -, ',
#   ™, ©, and ®"; at most 20 characters each.
# Backslash is a punctuation mark by Unicode but is refused by Etsy's listing form: dropped too.
TITLE_ONCE = "%:&+"
MARKS = "™©®"


def _title_char_ok(c: str) -> bool:
    cat = unicodedata.category(c)
    return c in MARKS or (
        c != "\\" and (cat[0] in "LP" and cat != "Lm" or cat in ("Nd", "Sm", "Zs"))
    )


def clean_title(text: str, max_len: int = MAX_TITLE) -> str:
    """``text`` made acceptable to Etsy: disallowed characters (emoji, currency and other symbols,
    control characters) removed, ``% : & +`` kept once each, spaces collapsed, cut at a word
    boundary to ``max_len`` characters."""
    text = unicodedata.normalize("NFKC", text)
    out, seen = [], set()
    for c in text:
        if c in "\t\n\r":
            c = " "
        if not _title_char_ok(c):
            continue
        if c in TITLE_ONCE:
            if c in seen:
                continue
            seen.add(c)
        out.append(c)
    title = " ".join("".join(out).split())
    if len(title) > max_len:
        cut = title[: max_len + 1].rsplit(" ", 1)[0]
        title = (cut if len(cut) >= max_len // 2 else title[:max_len]).rstrip(" ,-|/:;&+")
    return title


def clean_tag(tag: str) -> str:
    """A tag Etsy accepts: letters, digits, spaces, ``-``, ``'`` and ™©®; at most 20 characters;
    no leading hyphen or apostrophe."""
    tag = unicodedata.normalize("NFKC", tag)
    keep = "".join(
        c for c in tag if c.isalnum() and unicodedata.category(c)[0] in "LN" or c in " -'" + MARKS
    )
    keep = " ".join(keep.split()).lstrip("-' ")
    return keep[:MAX_TAG_LEN].rstrip()


_clean_tag = clean_tag


def clean_tags(tags: Sequence[str], tag: str | None = None) -> list[str]:
    """Up to 13 distinct (case-insensitive) clean tags; ``tag`` (the idempotency tag) always last."""
    out: list[str] = []
    seen: set[str] = set()
    for t in (clean_tag(t) for t in tags):
        if t and t.lower() not in seen and t != tag:
            seen.add(t.lower())
            out.append(t)
    limit = MAX_TAGS - (1 if tag else 0)
    return out[:limit] + ([tag] if tag else [])


class _Blank(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return ""


def _fill(pattern: str, facts: Mapping[str, Any]) -> str:
    return pattern.format_map(_Blank({k: v for k, v in facts.items() if v is not None}))


DEFAULT_TITLE = "{colours} {product}, {orientation} Wall Art Print"
DEFAULT_DESCRIPTION = (
    "{title}.\n\nPrinted to order on {paper} from the original artwork. "
    "Frame not included. Colours may vary slightly between screens."
)


def listing_facts(
    *, product: str, shop: str, colours: Sequence[str] = (), width: int = 0, height: int = 0
) -> dict[str, str]:
    """What a listing template can say about one design (never its file name)."""
    if width and height and abs(width - height) <= 0.05 * max(width, height):
        orientation = "Square"
    elif width and height:
        orientation = "Portrait" if height > width else "Landscape"
    else:
        orientation = ""
    names = [c.title() for c in colours][:2]
    return {
        "product": product,
        "shop": shop,
        "colours": " and ".join(names),
        "colour": names[0] if names else "",
        "orientation": orientation,
        "paper": "archival matte paper",
    }


def listing_payload(
    *,
    title: str,
    stem: str = "",
    listing: Mapping[str, Any],
    tag: str,
    description: str | None = None,
    facts: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Form fields of createDraftListing for one design (deterministic), from the shop's listing
    template (``listing``: ``title``/``description`` patterns with ``{colours}``, ``{colour}``,
    ``{product}``, ``{orientation}``, ``{shop}``; ``tags`` may use the same placeholders; ``price``,
    ``quantity``...). ``title`` is the product name (the template's ``title``). The file name
    (``stem``) is never used: it is what the uploader called the file, not what a buyer reads."""
    f = {"product": title, **(facts or {})}
    f.setdefault("paper", "archival matte paper")
    full_title = clean_title(_fill(str(listing.get("title") or DEFAULT_TITLE), f))
    if not full_title:
        full_title = clean_title(title) or "Art Print"
    f["title"] = full_title
    tags = clean_tags([_fill(str(t), f) for t in listing.get("tags", [])], tag)
    desc = description or _fill(str(listing.get("description") or DEFAULT_DESCRIPTION), f)
    return {
        "quantity": str(int(listing.get("quantity", 1))),
        "title": full_title,
        "description": desc,
        "price": f"{float(listing.get('price', 10.0)):.2f}",
        "who_made": str(listing.get("who_made", "i_did")),
        "when_made": str(listing.get("when_made", "made_to_order")),
        "taxonomy_id": str(int(listing.get("taxonomy_id", 2078))),
        "tags": ",".join(tags),
        "is_supply": "false",
    }


def shop_listing(
    template_listing: Mapping[str, Any], shops: Mapping[str, Any], shop: str
) -> dict[str, Any]:
    """The template's listing settings with the shop's overrides (``template.json`` ``shops``)."""
    return {**template_listing, **(shops.get(shop) or {})}


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
