from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.design import etsy


def test_payload_is_deterministic_and_within_etsy_limits() -> None:
    tag = etsy.idempotency_tag("shop", "f" * 64)
    assert tag.startswith("d-") and len(tag) <= 20 and tag == etsy.idempotency_tag("shop", "f" * 64)
    assert tag != etsy.idempotency_tag("other", "f" * 64)
    listing = {
        "price": 9.5,
        "tags": [f"tag number {i}" for i in range(20)] + ["way too long tag for etsy!!"],
    }
    p = etsy.listing_payload(title="T" * 130, stem="my_cool-design", listing=listing, tag=tag)
    tags = p["tags"].split(",")
    assert len(tags) == 13 and tags[-1] == tag and all(len(t) <= 20 for t in tags)
    assert len(p["title"]) <= 140 and p["price"] == "9.50" and p["quantity"] == "1"
    assert p == etsy.listing_payload(
        title="T" * 130, stem="my_cool-design", listing=listing, tag=tag
    )


class Clock:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def test_rate_limiter_paces_to_per_second() -> None:
    clock = Clock()
    lim = etsy.RateLimiter(per_second=10, clock=clock, sleep=clock.sleep)
    for _ in range(25):
        lim.acquire()
    assert len(clock.slept) == 2 and clock.t == pytest.approx(102.002, abs=0.01)


def test_rate_limiter_waits_when_the_server_says_this_second_is_used_up() -> None:
    clock = Clock()
    lim = etsy.RateLimiter(per_second=10, clock=clock, sleep=clock.sleep)
    lim.acquire()
    lim.observe(etsy.RateState(limit_per_second=10, remaining_this_second=0))
    lim.acquire()
    assert clock.slept and clock.t >= 101.0


def test_rate_limiter_adopts_server_headers_and_quota() -> None:
    clock = Clock()
    lim = etsy.RateLimiter(per_second=10, clock=clock, sleep=clock.sleep)
    state = etsy.RateState.from_headers(
        {
            "X-Limit-Per-Second": "5",
            "x-remaining-this-second": "4",
            "x-limit-per-day": "100",
            "x-remaining-today": "1",
        }
    )
    assert state == etsy.RateState(5, 4, 100, 1)
    lim.observe(state)
    assert lim.per_second == 5
    lim.acquire()
    lim.observe(etsy.RateState(remaining_today=0))
    with pytest.raises(etsy.EtsyQuotaExhausted):
        lim.acquire()
    capped = etsy.RateLimiter(daily_quota=2, clock=clock, sleep=clock.sleep)
    capped.acquire()
    capped.acquire()
    with pytest.raises(etsy.EtsyQuotaExhausted, match="configured"):
        capped.acquire()
    assert etsy.retry_after_seconds({"Retry-After": "7"}) == 7.0
    assert etsy.retry_after_seconds({}) == 1.0


def test_outbox_is_complete_and_rerunnable(tmp_path: Path) -> None:
    imgs = []
    for i in range(2):
        p = tmp_path / f"m{i}.jpg"
        p.write_bytes(b"\xff\xd8\xff" + bytes([i]))
        imgs.append(p)
    kw = {
        "shop": "s",
        "tag": "d-1",
        "payload": {"title": "x"},
        "images": imgs,
        "design_ref": "s/t/a.png",
    }
    folder = etsy.write_outbox(tmp_path / "out", **kw)
    doc = json.loads((folder / "listing.json").read_text())
    assert doc["images"] == ["01_m0.jpg", "02_m1.jpg"] and doc["form"] == {"title": "x"}
    assert etsy.write_outbox(tmp_path / "out", **kw) == folder
    assert sorted(p.name for p in folder.iterdir()) == ["01_m0.jpg", "02_m1.jpg", "listing.json"]


# ---------------------------------------------------------------- listings a shop would publish


def test_titles_follow_etsys_documented_rules() -> None:
    raw = "Sunset 🌅 Poster: Orange & Blue & Gold: 100% + more % $5 ^ `x` back\\slash\u0007"
    t = etsy.clean_title(raw)
    assert "🌅" not in t and "$" not in t and "^" not in t and "`" not in t and "\\" not in t
    assert "\u0007" not in t
    for c in "%:&+":
        assert t.count(c) <= 1, (c, t)
    assert t.startswith("Sunset Poster: Orange & Blue")
    long = etsy.clean_title(" ".join(["Botanical"] * 40))
    assert len(long) <= 140 and not long.endswith(" ") and long.endswith("Botanical")


def test_tags_follow_etsys_documented_rules() -> None:
    tags = etsy.clean_tags(
        ["art print", "Art Print", "-wall art", "🌅 sunset", "a tag that is far too long", "x&y"]
        + [f"tag {n}" for n in range(20)],
        "d-0123456789ab",
    )
    assert len(tags) == 13 and tags[-1] == "d-0123456789ab"
    assert tags[:4] == ["art print", "wall art", "sunset", "a tag that is far to"]
    assert all(len(t) <= 20 and not t.startswith(("-", "'")) for t in tags)
    assert "xy" in tags  # & is not allowed in a tag


def test_listing_from_the_shop_template_never_the_file_name() -> None:
    listing = etsy.shop_listing(
        {"price": 18, "title": "{colours} Abstract {product}", "tags": ["{colour} wall art"]},
        {"botanic": {"title": "{colours} Botanical {product} ✿", "price": 22}},
        "botanic",
    )
    facts = etsy.listing_facts(
        product="Art Print", shop="botanic", colours=["green", "pink"], width=600, height=900
    )
    p = etsy.listing_payload(
        title="Art Print", stem="7A08D8Ec20E524Dc", listing=listing, tag="d-1", facts=facts
    )
    assert p["title"] == "Green and Pink Botanical Art Print"
    assert "7A08" not in p["title"] + p["description"]
    assert p["price"] == "22.00" and p["tags"] == "Green wall art,d-1"
