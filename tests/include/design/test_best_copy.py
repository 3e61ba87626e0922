"""Issue 17 items 1-3: the best copy of a near-duplicate group is kept, a better copy of a stored
design is asked about (and the answer sticks), simultaneous runs of one shop store one copy and
leave no NAS file behind, every file gets an outcome, and the ledger keeps each run's history."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from include.common.db import make_engine, session_scope
from include.design import pipeline, quality, samples
from include.design.models import DesignImage, DesignReplacement
from include.design.nas import MountedNas

WHEN = datetime(2026, 3, 1, 12, 0, 0)


def _copies(dest: Path, index: int = 11) -> dict[str, Path]:
    """An original (transparent PNG, 600 px) and its worse copies. The original's name sorts last
    and is the longest, so neither "first by name" nor "shortest name" picks it by accident."""
    dest.mkdir(parents=True, exist_ok=True)
    im = samples.make_design(index, (600, 600), transparent=True)
    out = {}
    out["zz_the_original_master_file.png"] = im
    out["a_half.png"] = im.resize((300, 300), Image.Resampling.BILINEAR)
    out["b_flat.png"] = samples.flatten_white(im)
    out["c_q70.jpg"] = samples.flatten_white(im)
    out["d_crop.png"] = im.crop((12, 12, 588, 588))
    out["e_palette.png"] = im.quantize(colors=64, method=Image.Quantize.FASTOCTREE)
    paths = {}
    for name, img in out.items():
        p = dest / name
        if name.endswith(".jpg"):
            img.save(p, "JPEG", quality=70)
        else:
            img.save(p)
        paths[name] = p
    return paths


def _process(paths: dict[str, Path], work: Path) -> list[dict[str, Any]]:
    return pipeline.process_batch(
        [{"key": k, "path": str(p)} for k, p in sorted(paths.items())], work, workers=1
    )


def _store(engine: Any, backend: Any, items: list[dict[str, Any]], shop: str, run: str) -> list:
    d = pipeline.check_duplicates(engine, items, shop=shop, run_id=run, backend=backend)
    up = pipeline.upload_to_nas(backend, d, shop=shop, template="t", when=WHEN)
    return pipeline.record_designs(
        engine, up, shop=shop, template="t", user_id=None, run_id=run, backend=backend
    )


def test_quality_order_prefers_the_original(tmp_path: Path) -> None:
    paths = _copies(tmp_path)
    facts = {k: quality.of_file(str(p)) for k, p in paths.items()}
    best = max(facts, key=lambda k: quality.rank(facts[k], k))
    assert best == "zz_the_original_master_file.png"
    assert facts["c_q70.jpg"]["jpeg_quality"] in range(65, 76)
    assert facts["b_flat.png"]["alpha"] is False and facts[best]["alpha"] is True
    assert facts["e_palette.png"]["truecolour"] is False
    for k in facts:
        if k != best:
            assert quality.better(facts[best], facts[k]), k
            assert not quality.better(facts[k], facts[best]), k
    assert not quality.better(facts[best], None)  # a design stored before facts were recorded


def test_the_best_copy_of_a_group_is_kept(any_app_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(any_app_db_url)
    shop = f"best-{any_app_db_url[:6]}"
    items = _process(_copies(tmp_path / "src"), tmp_path / "p")
    out = _store(engine, MountedNas(tmp_path / "nas"), items, shop, "run-best")
    new = [i["key"] for i in out if i.get("decision") == "new"]
    assert new == ["zz_the_original_master_file.png"]
    assert {i["key"]: i.get("matched_name") for i in out if i["key"] != new[0]} == {
        k: new[0] for k in ("a_half.png", "b_flat.png", "c_q70.jpg", "d_crop.png", "e_palette.png")
    }
    with session_scope(engine) as s:
        row = s.scalars(select(DesignImage).where(DesignImage.shop == shop)).one()
        assert row.source_name == new[0] and row.quality["alpha"] is True


def _answer(option: str, who: str = "alice") -> dict[str, Any]:
    return {"chosen_options": [option], "responded_by_user": {"id": who, "name": who}}


@pytest.mark.parametrize("choice", ["replace", "keep"])
def test_a_better_copy_of_a_stored_design_is_asked_about_once(
    app_db_url: str, tmp_path: Path, choice: str
) -> None:
    engine = make_engine(app_db_url)
    shop = f"better-{choice}"
    backend = MountedNas(tmp_path / "nas")
    paths = _copies(tmp_path / "src", index=12)
    half = {"a_half.png": paths["a_half.png"]}
    orig = {"zz_the_original_master_file.png": paths["zz_the_original_master_file.png"]}
    first = _store(engine, backend, _process(half, tmp_path / "p"), shop, "run-1")
    stored_id = first[0]["design_image_id"]
    # run 2: the original arrives; it is not dropped, it is a better copy waiting for an answer
    second = _store(engine, backend, _process(orig, tmp_path / "p"), shop, "run-2")
    assert second[0]["decision"] == "better_copy" and second[0]["design_image_id"] == stored_id
    assert "MP" in second[0]["better_reason"]
    pics: list[str] = []
    questions = pipeline.replacement_questions(
        engine, second, shop=shop, picture=lambda p, n: pics.append(p) or f"/artefacts/{n}"
    )
    assert len(questions) == 1 and "/artefacts/better/" in questions[0]["body"]
    assert any(p.startswith("nas:") for p in pics)  # the stored design is shown too
    option = pipeline.REPLACE_OPTION if choice == "replace" else pipeline.KEEP_OPTION
    done = pipeline.apply_replacements(
        engine, backend, questions, [_answer(option)], shop=shop, template="t", when=WHEN,
        run_id="run-2",
    )  # fmt: skip
    with session_scope(engine) as s:
        row = s.get(DesignImage, stored_id)
        rep = s.scalars(select(DesignReplacement).where(DesignReplacement.shop == shop)).one()
        assert rep.answered_by == "alice"
        if choice == "replace":
            assert done[0]["state"] == "replaced" and rep.state == "replaced"
            assert row.source_name == "zz_the_original_master_file.png"
            assert (tmp_path / "nas" / row.nas_path).is_file()
            assert (tmp_path / "nas" / rep.old_nas_path).is_file()  # the old file is kept
        else:
            assert rep.state == "keep" and row.source_name == "a_half.png"
    # a rerun (or a later upload of the same file) does not ask again and does not undo it
    third = _store(engine, backend, _process(orig, tmp_path / "p"), shop, "run-3")
    assert third[0]["decision"] == "duplicate"
    assert pipeline.replacement_questions(engine, third, shop=shop, picture=lambda p, n: None) == []
    with session_scope(engine) as s:
        assert s.get(DesignImage, stored_id).source_name == (
            "zz_the_original_master_file.png" if choice == "replace" else "a_half.png"
        )


def test_an_unanswered_question_stays_pending(app_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(app_db_url)
    shop = "better-timeout"
    backend = MountedNas(tmp_path / "nas")
    paths = _copies(tmp_path / "src", index=13)
    _store(
        engine, backend, _process({"a_half.png": paths["a_half.png"]}, tmp_path / "p"), shop, "r1"
    )
    orig = {"zz_the_original_master_file.png": paths["zz_the_original_master_file.png"]}
    second = _store(engine, backend, _process(orig, tmp_path / "p"), shop, "r2")
    qs = pipeline.replacement_questions(engine, second, shop=shop, picture=lambda p, n: None)
    timeout = {"chosen_options": [pipeline.KEEP_OPTION], "responded_by_user": None}
    done = pipeline.apply_replacements(
        engine, backend, qs, [timeout], shop=shop, template="t", when=WHEN, run_id="r2"
    )
    assert done[0]["state"] == "pending"
    again = _store(engine, backend, _process(orig, tmp_path / "p"), shop, "r3")
    assert (
        len(pipeline.replacement_questions(engine, again, shop=shop, picture=lambda p, n: None))
        == 1
    )


def test_simultaneous_runs_store_one_copy_and_leave_no_nas_file(
    any_app_db_url: str, tmp_path: Path
) -> None:
    """Two runs of one shop with near-duplicates (not identical hashes) check the database before
    either inserts; the per-shop lock makes the second insert see the first: one row, one file."""
    engine = make_engine(any_app_db_url)
    shop = f"race-near-{any_app_db_url[:6]}"
    backend = MountedNas(tmp_path / "nas")
    paths = _copies(tmp_path / "src", index=14)
    batches = {
        "run-a": _process({"zz_the_original_master_file.png": paths["zz_the_original_master_file.png"]}, tmp_path / "pa"),
        "run-b": _process({"c_q70.jpg": paths["c_q70.jpg"]}, tmp_path / "pb"),
    }  # fmt: skip
    assert batches["run-a"][0]["hashes"] != batches["run-b"][0]["hashes"]
    decided = {
        r: pipeline.check_duplicates(engine, items, shop=shop, run_id=r)
        for r, items in batches.items()
    }
    assert all(d[0]["decision"] == "new" for d in decided.values())
    uploaded = {
        r: pipeline.upload_to_nas(backend, d, shop=shop, template="t", when=WHEN)
        for r, d in decided.items()
    }
    out: dict[str, Any] = {}
    barrier = threading.Barrier(2)

    def record(run: str) -> None:
        barrier.wait()
        out[run] = pipeline.record_designs(
            engine, uploaded[run], shop=shop, template="t", user_id=None, run_id=run,
            backend=backend,
        )  # fmt: skip

    threads = [threading.Thread(target=record, args=(r,)) for r in uploaded]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(out) == {"run-a", "run-b"}
    decisions = sorted(o[0]["decision"] for o in out.values())
    assert decisions[0] in ("better_copy", "duplicate") and decisions[1] == "new"
    with session_scope(engine) as s:
        rows = s.scalars(select(DesignImage).where(DesignImage.shop == shop)).all()
        assert len(rows) == 1
        on_nas = sorted(
            p.relative_to(tmp_path / "nas").as_posix() for p in (tmp_path / "nas").rglob("*.*")
        )
        assert on_nas == [rows[0].nas_path]
        assert (
            s.scalar(select(func.count()).select_from(DesignImage).where(DesignImage.shop == shop))
            == 1
        )


def _larger_worse_copies(dest: Path, index: int = 12) -> dict[str, Path]:
    """A clean, whole original at 600 px and two copies with MORE pixels that are worse: a crop
    of a 1200 px master (4 % per side) and a watermarked 800 px copy. The original's name is the
    longest and sorts last."""
    from include.design import evalset

    dest.mkdir(parents=True, exist_ok=True)
    master = samples.make_design(index, (1200, 1200), transparent=False).convert("RGB")
    copies = {
        "zz_the_clean_original_file.png": master.resize((600, 600), Image.Resampling.LANCZOS),
        "a_crop_big.png": master.crop((48, 48, 1152, 1152)),
        "b_watermark_big.png": evalset.watermark(
            master.resize((800, 800), Image.Resampling.LANCZOS), "(c) my shop", 1 / 24, 160, "br"
        ),
    }
    out = {}
    for name, img in copies.items():
        img.save(dest / name)
        out[name] = dest / name
    return out


def test_crops_and_watermarks_are_seen_against_the_group(tmp_path: Path) -> None:
    from include.design import copies

    paths = _larger_worse_copies(tmp_path)
    names = list(paths)
    rel = dict(zip(names, copies.relative_facts([str(paths[n]) for n in names]), strict=True))
    assert rel["a_crop_big.png"] == {"cropped": True, "watermark": False}
    assert rel["b_watermark_big.png"] == {"cropped": False, "watermark": True}
    assert rel["zz_the_clean_original_file.png"] == {"cropped": False, "watermark": False}
    facts = {n: {**quality.of_file(str(p)), **rel[n]} for n, p in paths.items()}
    assert facts["a_crop_big.png"]["pixels"] > facts["zz_the_clean_original_file.png"]["pixels"]
    best = max(facts, key=lambda k: quality.rank(facts[k], k))
    assert best == "zz_the_clean_original_file.png"
    assert quality.reasons(facts[best], facts["a_crop_big.png"]).startswith("the whole picture")
    assert quality.reasons(facts[best], facts["b_watermark_big.png"]).startswith("no watermark")


def test_the_whole_clean_copy_is_kept_over_larger_crops_and_watermarks(
    app_db_url: str, tmp_path: Path
) -> None:
    engine = make_engine(app_db_url)
    shop = "best-relative"
    items = _process(_larger_worse_copies(tmp_path / "src"), tmp_path / "p")
    out = _store(engine, MountedNas(tmp_path / "nas"), items, shop, "run-relative")
    new = [i["key"] for i in out if i.get("decision") == "new"]
    assert new == ["zz_the_clean_original_file.png"]
    by_key = {i["key"]: i for i in out}
    assert by_key["a_crop_big.png"]["quality"]["cropped"] is True
    assert by_key["b_watermark_big.png"]["quality"]["watermark"] is True
    with session_scope(engine) as s:
        row = s.scalars(select(DesignImage).where(DesignImage.shop == shop)).one()
        assert row.source_name == new[0] and row.quality["watermark"] is False


@pytest.mark.parametrize("stored_first", ["watermarked", "clean"])
def test_against_a_stored_design_the_watermark_decides(
    app_db_url: str, tmp_path: Path, stored_first: str
) -> None:
    """A clean copy of a stored watermarked design is a better copy (asked about) although it has
    fewer pixels; a watermarked copy of a stored clean design is only a duplicate although it has
    more."""
    engine = make_engine(app_db_url)
    shop = f"library-{stored_first}"
    backend = MountedNas(tmp_path / "nas")
    paths = _larger_worse_copies(tmp_path / "src", index=14)
    clean = {"zz_the_clean_original_file.png": paths["zz_the_clean_original_file.png"]}
    marked = {"b_watermark_big.png": paths["b_watermark_big.png"]}
    first, later = (marked, clean) if stored_first == "watermarked" else (clean, marked)
    _store(engine, backend, _process(first, tmp_path / "p"), shop, "run-1")
    out = _store(engine, backend, _process(later, tmp_path / "p"), shop, "run-2")
    if stored_first == "watermarked":
        assert out[0]["decision"] == "better_copy"
        assert out[0]["better_reason"].startswith("no watermark")
    else:
        assert out[0]["decision"] == "duplicate" and out[0]["quality"]["watermark"] is True


def test_the_crop_relation_does_not_depend_on_the_order_of_the_files(tmp_path: Path) -> None:
    """A wide picture with plain borders and its crop: each also fits inside the other; the crop
    is flagged whichever file comes first."""
    from include.design import copies

    full = Image.new("RGB", (1100, 400), (236, 232, 225))
    motif = samples.make_design(15, (500, 300), transparent=True)
    full.paste(motif, (300, 50), motif)
    crop = full.crop((22, 12, 1056, 392))
    full.save(tmp_path / "full.png")
    crop.save(tmp_path / "crop.png")
    pair = [str(tmp_path / "full.png"), str(tmp_path / "crop.png")]
    assert [f["cropped"] for f in copies.relative_facts(pair)] == [False, True]
    assert [f["cropped"] for f in copies.relative_facts(pair[::-1])] == [True, False]


def _photo(side: int = 512) -> Image.Image:
    import numpy as np
    from skimage import data

    im = Image.fromarray(np.asarray(data.astronaut()))
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    return im.convert("RGB")


def _format_swaps(dest: Path) -> dict[str, Path]:
    """A JPEG original (q85), a PNG saved from it (the format swap, shortest name), a lossless
    WebP saved from it, and a worse JPEG (q60)."""
    dest.mkdir(parents=True, exist_ok=True)
    src = _photo()
    paths = {"zz_original.jpg": dest / "zz_original.jpg"}
    src.save(paths["zz_original.jpg"], "JPEG", quality=85)
    with Image.open(paths["zz_original.jpg"]) as jpeg:
        decoded = jpeg.convert("RGB")
    paths["a.png"] = dest / "a.png"
    decoded.save(paths["a.png"])
    paths["b.webp"] = dest / "b.webp"
    decoded.save(paths["b.webp"], "WEBP", lossless=True)
    paths["c_q60.jpg"] = dest / "c_q60.jpg"
    src.save(paths["c_q60.jpg"], "JPEG", quality=60)
    return paths


def test_a_lossless_copy_of_a_jpeg_ranks_as_that_jpeg(tmp_path: Path) -> None:
    paths = _format_swaps(tmp_path)
    facts = {k: quality.of_file(str(p)) for k, p in paths.items()}
    for swap in ("a.png", "b.webp"):
        assert facts[swap]["jpeg_history"] is True, swap
        assert facts[swap]["lossless"] is False and facts[swap]["jpeg_quality"] in range(83, 88)
        assert not quality.better(facts[swap], facts["zz_original.jpg"]), swap
        assert quality.better(facts["zz_original.jpg"], facts[swap]), swap
        assert quality.better(facts[swap], facts["c_q60.jpg"]), swap
        assert "re-save" in quality.reasons(facts["zz_original.jpg"], facts[swap])
    best = max(facts, key=lambda k: quality.rank(facts[k], k))
    assert best == "zz_original.jpg"
    assert facts["zz_original.jpg"]["jpeg_history"] is False  # a JPEG is measured by its header


@pytest.mark.parametrize("kind", ["photo", "design", "noise"])
def test_a_lossless_picture_without_jpeg_history_stays_lossless(tmp_path: Path, kind: str) -> None:
    import numpy as np

    if kind == "photo":  # scikit-image's astronaut PNG: never a JPEG at a detectable quality
        im = _photo()
    elif kind == "design":
        im = samples.make_design(7, (640, 500), transparent=False).convert("RGB")
    else:
        rng = np.random.default_rng(5)
        im = Image.fromarray(rng.integers(0, 256, (256, 320, 3), dtype=np.uint8))
    p = tmp_path / "x.png"
    im.save(p)
    q = quality.of_file(str(p))
    assert q["lossless"] is True and q["jpeg_history"] is False and q["jpeg_quality"] == 100


def test_the_jpeg_is_kept_over_its_lossless_re_save(any_app_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(any_app_db_url)
    shop = f"swap-{any_app_db_url[:6]}"
    paths = _format_swaps(tmp_path / "src")
    items = _process({k: paths[k] for k in ("zz_original.jpg", "a.png")}, tmp_path / "p")
    out = _store(engine, MountedNas(tmp_path / "nas"), items, shop, "run-swap")
    assert [i["key"] for i in out if i.get("decision") == "new"] == ["zz_original.jpg"]


@pytest.mark.parametrize("index", [0, 5, 7])
def test_a_faint_watermark_is_seen_against_the_group(tmp_path: Path, index: int) -> None:
    """A watermark at 39 % opacity (missed with a gain/offset brightness fit and 24 grey levels)
    next to a re-encode, a half-size copy and a brightened copy (it clips colours: not a mark)."""
    from PIL import ImageEnhance

    from include.design import copies, evalset

    im = samples.make_design(index, (560, 560), transparent=(index % 4 != 3))
    bright = ImageEnhance.Brightness(im.convert("RGB")).enhance(1.1)
    bright.putalpha(im.getchannel("A"))
    files = {
        "orig.png": im,
        "q80.jpg": samples.flatten_white(im),
        "half.png": im.resize((280, 280), Image.Resampling.BILINEAR),
        "bright.png": bright,
        "mark.png": evalset.watermark(im, text="SAMPLE", height=1 / 24, alpha=100),
    }
    paths = []
    for name, img in files.items():
        img.save(tmp_path / name, **({"quality": 80} if name.endswith(".jpg") else {}))
        paths.append(str(tmp_path / name))
    facts = copies.relative_facts(paths)
    assert [f["watermark"] for f in facts] == [False, False, False, False, True]
    assert not any(f["cropped"] for f in facts)


@pytest.mark.parametrize("winner", ["watermarked", "clean"])
def test_a_lost_race_is_decided_like_the_first_check(
    any_app_db_url: str, tmp_path: Path, winner: str
) -> None:
    """Two runs check at once (neither sees the other's design), the winner stores first: the
    loser is compared with the winner's file under the shop lock as the first check would have
    (a watermarked copy with more pixels is only a duplicate of a clean design; a clean copy of a
    watermarked design is a better copy)."""
    engine = make_engine(any_app_db_url)
    shop = f"race-{winner}-{any_app_db_url[:6]}"
    backend = MountedNas(tmp_path / "nas")
    paths = _larger_worse_copies(tmp_path / "src", index=14)
    clean = {"zz_the_clean_original_file.png": paths["zz_the_clean_original_file.png"]}
    marked = {"b_watermark_big.png": paths["b_watermark_big.png"]}
    first, second = (marked, clean) if winner == "watermarked" else (clean, marked)
    checked = []
    for run, files in (("run-a", first), ("run-b", second)):
        items = _process(files, tmp_path / run)
        d = pipeline.check_duplicates(engine, items, shop=shop, run_id=run, backend=backend)
        assert d[0]["decision"] == "new"  # neither run sees the other's design yet
        checked.append(pipeline.upload_to_nas(backend, d, shop=shop, template="t", when=WHEN))
    pipeline.record_designs(
        engine, checked[0], shop=shop, template="t", user_id=None, run_id="run-a", backend=backend
    )
    out = pipeline.record_designs(
        engine, checked[1], shop=shop, template="t", user_id=None, run_id="run-b", backend=backend
    )
    if winner == "watermarked":
        assert out[0]["decision"] == "better_copy"
        assert out[0]["better_reason"].startswith("no watermark")
    else:
        assert out[0]["decision"] == "duplicate" and out[0]["quality"]["watermark"] is True
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).where(DesignImage.shop == shop)) == 1


def _rocket_and_crop(dest: Path) -> dict[str, Path]:
    """A photo and a copy cut by 2-4 % per side: whole-image index keys 15 bits apart (beyond
    the limit of 10); the original's crop alias is within it."""
    from skimage import data

    dest.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(data.rocket()).convert("RGB")
    im.thumbnail((640, 640), Image.Resampling.LANCZOS)
    w, h = im.size
    crop = im.crop((round(w * 0.021), round(h * 0.033), w - round(w * 0.034), h - round(h * 0.041)))
    paths = {"rocket.jpg": dest / "rocket.jpg", "rocket_cut.jpg": dest / "rocket_cut.jpg"}
    im.save(paths["rocket.jpg"], "JPEG", quality=92)
    crop.save(paths["rocket_cut.jpg"], "JPEG", quality=90)
    return paths


def test_a_crop_beyond_the_key_limit_is_found_by_the_crop_alias(
    any_app_db_url: str, tmp_path: Path
) -> None:
    from include.design import hashing

    paths = _rocket_and_crop(tmp_path / "src")
    whole, cut = (hashing.hash_file(paths[n]) for n in ("rocket.jpg", "rocket_cut.jpg"))
    assert not hashing.is_duplicate(whole, cut)  # the first stage alone misses it
    engine = make_engine(any_app_db_url)
    backend = MountedNas(tmp_path / "nas")
    shop = f"alias-{any_app_db_url[:6]}"
    # in one batch: the whole picture is kept, the crop is its duplicate
    out = _store(engine, backend, _process(paths, tmp_path / "p"), shop, "run-a")
    assert {i["key"]: i.get("decision") for i in out} == {
        "rocket.jpg": "new",
        "rocket_cut.jpg": "duplicate",
    }
    # the crop stored first (another shop), the original arriving later is matched to it
    shop2 = shop + "-2"
    one = {"rocket_cut.jpg": paths["rocket_cut.jpg"]}
    _store(engine, backend, _process(one, tmp_path / "p1"), shop2, "run-b")
    later = {"rocket.jpg": paths["rocket.jpg"]}
    d = pipeline.check_duplicates(
        engine, _process(later, tmp_path / "p2"), shop=shop2, run_id="run-c", backend=backend
    )
    assert [i.get("decision") for i in d if i["key"] == "rocket.jpg"] != ["new"]


def _rocket_and_3pc_crop(dest: Path) -> dict[str, Path]:
    """A photo and a copy cut by 3 % on every side: whole-image keys 13 bits apart (beyond the
    limit of 10), the original's crop alias 5 bits from the crop."""
    from skimage import data

    dest.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(data.rocket()).convert("RGB")
    im.thumbnail((640, 640), Image.Resampling.LANCZOS)
    w, h = im.size
    crop = im.crop((round(w * 0.03), round(h * 0.03), w - round(w * 0.03), h - round(h * 0.03)))
    paths = {"rocket.jpg": dest / "rocket.jpg", "rocket_3pc.jpg": dest / "rocket_3pc.jpg"}
    im.save(paths["rocket.jpg"], "JPEG", quality=92)
    crop.save(paths["rocket_3pc.jpg"], "JPEG", quality=90)
    return paths


def _one(paths: dict[str, Path], name: str, work: Path) -> list[dict[str, Any]]:
    return _process({name: paths[name]}, work)


def test_a_crop_arriving_after_its_stored_original_is_its_duplicate(
    any_app_db_url: str, tmp_path: Path
) -> None:
    """Two-way against the library: the stored design's crop alias is in the database (written at
    insert time) and in the index, so a 3 % crop uploaded in a later run is recognised, and the
    original stays the kept copy (a duplicate, not a better copy: nobody is asked)."""
    from include.design import hashing

    paths = _rocket_and_3pc_crop(tmp_path / "src")
    whole, cut = (hashing.hash_file(paths[n]) for n in ("rocket.jpg", "rocket_3pc.jpg"))
    assert not hashing.is_duplicate(whole, cut)  # the whole-image rule alone misses it
    engine = make_engine(any_app_db_url)
    backend = MountedNas(tmp_path / "nas")
    shop = f"later-crop-{any_app_db_url[:6]}"
    first = _store(engine, backend, _one(paths, "rocket.jpg", tmp_path / "p1"), shop, "run-1")
    (stored_id,) = [i["design_image_id"] for i in first]
    with session_scope(engine) as s:
        row = s.get(DesignImage, stored_id)
        assert row is not None and row.alias_phash and row.alias_dhash  # written at insert time
    later = _store(engine, backend, _one(paths, "rocket_3pc.jpg", tmp_path / "p2"), shop, "run-2")
    (crop,) = later
    assert crop["decision"] == "duplicate", crop.get("decision")
    assert (crop["matched_kind"], crop["design_image_id"]) == ("database", stored_id)
    assert crop["quality"]["cropped"] is True  # measured against the stored file
    with session_scope(engine) as s:
        assert s.scalars(select(DesignImage.id).where(DesignImage.shop == shop)).all() == [
            stored_id
        ]
        assert s.scalar(select(func.count()).where(DesignReplacement.shop == shop)) == 0


def test_designs_stored_without_an_alias_get_one_from_the_nas(
    any_app_db_url: str, tmp_path: Path
) -> None:
    """Rows from before migration 0008 have no crop alias: the NAS backfill step computes it from
    the stored file (one outcome per row, only rows still without one, a missing file is an error
    outcome and is tried again next time); afterwards a later crop is found."""
    from sqlalchemy import update

    paths = _rocket_and_3pc_crop(tmp_path / "src")
    engine = make_engine(any_app_db_url)
    backend = MountedNas(tmp_path / "nas")
    shop = f"alias-backfill-{any_app_db_url[:6]}"
    first = _store(engine, backend, _one(paths, "rocket.jpg", tmp_path / "p1"), shop, "run-1")
    (stored_id,) = [i["design_image_id"] for i in first]
    gone = _store(
        engine, backend, _one({"x.png": _copies(tmp_path / "x")["b_flat.png"]}, "x.png", tmp_path / "p3"),
        shop, "run-0",
    )  # fmt: skip
    (gone_id,) = [i["design_image_id"] for i in gone]
    with session_scope(engine) as s:
        s.execute(
            update(DesignImage)
            .where(DesignImage.shop == shop)
            .values(alias_phash=None, alias_dhash=None)
        )
        gone_path = s.get(DesignImage, gone_id).nas_path
    (tmp_path / "nas" / gone_path).unlink()
    # without the stored alias the later crop is not recognised (what the backfill fixes)
    d = pipeline.check_duplicates(
        engine, _one(paths, "rocket_3pc.jpg", tmp_path / "p2"), shop=shop, run_id="probe"
    )
    assert [i["decision"] for i in d] == ["new"]
    counts = pipeline.backfill_nas(engine, backend, shop)
    assert counts["aliases_added"] == 1
    assert [(e["id"], e["outcome"]) for e in counts["alias_errors"]] == [(gone_id, "error")]
    with session_scope(engine) as s:
        assert s.get(DesignImage, stored_id).alias_phash is not None
        assert s.get(DesignImage, gone_id).alias_phash is None
    again = pipeline.backfill_design_aliases(engine, backend, shop)  # rerun: only the missing file
    assert [(o["id"], o["outcome"]) for o in again] == [(gone_id, "error")]
    d = pipeline.check_duplicates(
        engine, _one(paths, "rocket_3pc.jpg", tmp_path / "p2"), shop=shop, run_id="run-2"
    )
    assert [(i["decision"], i.get("design_image_id")) for i in d] == [("duplicate", stored_id)]
