from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from include.common.files import FileConflictError
from include.design import nas

WHEN = datetime(2026, 5, 17, 8, 30, 5)


def test_layout_is_deterministic_and_bounded() -> None:
    name = nas.nas_filename("My Design ü/..\\" + "x" * 80, "png", WHEN, "ab" * 32, "shop-1")
    stem, ts, uid = name.rsplit(".", 1)[0].rsplit("_", 2)
    assert ts == "20260517T083005" and len(uid) == 8 and name.endswith(".png")
    assert len(stem) <= 50 and "/" not in stem and ".." not in stem
    assert name == nas.nas_filename("My Design ü/..\\" + "x" * 80, "png", WHEN, "ab" * 32, "shop-1")
    other_shop = nas.nas_filename("My Design ü/..\\" + "x" * 80, "png", WHEN, "ab" * 32, "shop-2")
    assert other_shop != name
    rel = nas.design_relpath("shop 1", "poster", name)
    assert rel == f"shop_1/poster/{name}" and nas.shop_of(rel) == "shop_1"
    assert (
        nas.mockup_relpath("shop 1", "poster", name, "wall")
        == f"shop_1/poster/mockups/{name.rsplit('.', 1)[0]}__wall.jpg"
    )


@pytest.mark.parametrize(
    ("rel", "ok"),
    [
        ("s/t/a.png", True),
        ("s/t/A.JPG", True),
        ("s/t/mockups/a__wall.jpg", False),
        ("s/t/.a.png.1234.partial", False),
        ("s/t/notes.txt", False),
        ("a.png", False),
    ],
)
def test_design_files(rel: str, ok: bool) -> None:
    assert nas.is_design_file(rel) is ok


def test_mounted_backend(tmp_path: Path) -> None:
    backend = nas.MountedNas(tmp_path / "root")
    src = tmp_path / "a.png"
    src.write_bytes(b"one")
    assert backend.put(src, "s/t/a.png") == "stored"
    assert backend.put(src, "s/t/a.png") == "already_present"
    other = tmp_path / "b.png"
    other.write_bytes(b"two")
    with pytest.raises(FileConflictError):
        backend.put(other, "s/t/a.png")
    with pytest.raises(ValueError):
        backend.put(src, "../escape.png")
    assert [(f.path, f.size) for f in backend.walk()] == [("s/t/a.png", 3)]
    assert list(nas.MountedNas(tmp_path / "missing").walk()) == []
