"""include.common.publish: deterministic, sanitised paths under the published root, atomic and
idempotent writes, no escape from the root, URLs under the api-server base URL."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from include.common.publish import (
    PublishError,
    PublishStatus,
    artefact_path,
    artefact_rel,
    artefact_url,
    md_link,
    publish_bytes,
    publish_file,
    publish_text,
    publish_tree,
    published_root,
)

RUN = "manual__2026-11-21T09:00:00+00:00"


def test_paths_are_deterministic_and_sanitised(tmp_path: Path) -> None:
    rel = artefact_rel("astro_prepare_lights", RUN, "blink C8E@f10.0+ZWO ASI2600MM Pro.png")
    assert rel == (
        "astro_prepare_lights/manual__2026-11-21T09_00_00+00_00/"
        "blink_C8E@f10.0+ZWO_ASI2600MM_Pro.png"
    )
    assert artefact_rel("astro_prepare_lights", RUN, "blink C8E@f10.0+ZWO ASI2600MM Pro.png") == rel
    assert artefact_path("d", RUN, "x.png", root=tmp_path) == (
        tmp_path.resolve() / "d/manual__2026-11-21T09_00_00+00_00/x.png"
    )
    # nested names stay nested, each part sanitised
    assert artefact_rel("d", "r", "report/C8E rig/totals.json") == "d/r/report/C8E_rig/totals.json"


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "/etc/passwd", "..\\..\\secret", "a/../../../b", "./../x", "%2e%2e/x"],
)
def test_traversal_names_stay_inside_the_root(tmp_path: Path, name: str) -> None:
    root = tmp_path / "published"
    pub = publish_text("x", "dag", "run", name, root=root)
    assert Path(pub.path).resolve().is_relative_to(root.resolve())
    assert pub.rel.startswith("dag/run/") and ".." not in pub.rel.split("/")
    assert not (tmp_path / "etc").exists() and not (tmp_path / "secret").exists()


@pytest.mark.parametrize("name", ["", "..", "/", "./."])
def test_names_without_a_usable_part_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(PublishError, match="no usable component"):
        publish_text("x", "dag", "run", name, root=tmp_path)
    with pytest.raises(PublishError):
        artefact_rel("", "run", "a.png")
    # a dag id or run id made of dots cannot climb out either
    assert artefact_rel("..", "..", "a.png") == "file/run/a.png"


def test_symlinked_run_folder_pointing_outside_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "published", tmp_path / "outside"
    (root / "dag").mkdir(parents=True)
    outside.mkdir()
    (root / "dag" / "run").symlink_to(outside)
    with pytest.raises(PublishError, match="escapes"):
        publish_text("x", "dag", "run", "a.txt", root=root)
    assert list(outside.iterdir()) == []


def test_publish_file_is_idempotent_and_keeps_the_source(tmp_path: Path) -> None:
    root = tmp_path / "published"
    src = tmp_path / "sheet.png"
    src.write_bytes(b"\x89PNG" + b"1" * 100)
    first = publish_file(src, "dag", RUN, root=root)
    assert first.status is PublishStatus.WRITTEN
    assert Path(first.path).read_bytes() == src.read_bytes()
    assert src.read_bytes() == b"\x89PNG" + b"1" * 100  # source untouched
    mtime = os.stat(first.path).st_mtime_ns
    again = publish_file(src, "dag", RUN, root=root)
    assert again.status is PublishStatus.UNCHANGED and again.path == first.path
    assert os.stat(first.path).st_mtime_ns == mtime  # not rewritten
    # a retry that regenerated the artefact replaces it atomically
    src.write_bytes(b"\x89PNG" + b"2" * 50)
    third = publish_file(src, "dag", RUN, root=root)
    assert third.status is PublishStatus.REPLACED
    assert Path(third.path).read_bytes() == src.read_bytes()
    # no temp files left behind
    assert sorted(p.name for p in Path(first.path).parent.iterdir()) == ["sheet.png"]
    with pytest.raises(PublishError, match="not a file"):
        publish_file(tmp_path / "missing.png", "dag", RUN, root=root)


def test_a_directory_in_the_way_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "dag" / "run" / "a.txt").mkdir(parents=True)
    with pytest.raises(PublishError, match="not a regular file"):
        publish_bytes(b"x", "dag", "run", "a.txt", root=tmp_path)
    assert [p.name for p in (tmp_path / "dag" / "run").iterdir()] == ["a.txt"]


def test_publish_tree_keeps_relative_links_and_reports_bad_items(tmp_path: Path) -> None:
    src = tmp_path / "report"
    (src / "rig" / "M_31").mkdir(parents=True)
    (src / "index.html").write_text("<a href='rig/M_31/astrobin.csv'>csv</a>")
    (src / "rig" / "M_31" / "astrobin.csv").write_text("date\n")
    (src / ".hidden").write_text("temp")
    root = tmp_path / "published"
    done, errors = publish_tree(src, "dag", "run", "report", root=root)
    assert errors == []
    assert [p.rel for p in done] == [
        "dag/run/report/index.html",
        "dag/run/report/rig/M_31/astrobin.csv",
    ]
    index = Path(done[0].path)
    assert (index.parent / "rig/M_31/astrobin.csv").read_text() == "date\n"
    done, errors = publish_tree(
        src, "dag", "run", "report", files=["index.html", "missing.csv", "../outside"], root=root
    )
    assert [p.status for p in done] == [PublishStatus.UNCHANGED]
    assert [e["file"] for e in errors] == ["missing.csv", "../outside"]
    assert "not a file" in errors[0]["reason"] and "outside" in errors[1]["reason"]


def test_urls_under_the_api_server(tmp_path: Path) -> None:
    url = artefact_url("astro_catalog_report", RUN, "report/index.html", "http://airflow:8080/")
    assert url == (
        "http://airflow:8080/artefacts/astro_catalog_report/"
        "manual__2026-11-21T09_00_00+00_00/report/index.html"
    )
    pub = publish_text("x", "dag", RUN, "summary.md", root=tmp_path)
    assert pub.url("https://af.example.org/base") == (
        "https://af.example.org/base/artefacts/dag/manual__2026-11-21T09_00_00+00_00/summary.md"
    )
    assert pub.url(None).startswith("http://127.0.0.1:8080/artefacts/dag/")
    assert pub.to_dict("http://h")["url"] == "http://h/artefacts/" + pub.rel
    assert md_link("sheet [1]", "http://h/a.png") == "[sheet \\[1\\]](http://h/a.png)"


def test_default_root_is_under_the_data_dir(tmp_path: Path) -> None:
    assert published_root(tmp_path) == (tmp_path / "published").resolve()
    from include.common.settings import get_settings

    assert published_root() == get_settings().data_dir / "published"


def test_the_default_root_is_git_ignored() -> None:
    root = Path(__file__).resolve().parents[3]
    probe = root / ".data" / "published" / "dag" / "run" / "x.png"
    out = subprocess.run(
        ["git", "check-ignore", "-q", str(probe)], cwd=root, capture_output=True, check=False
    )
    assert out.returncode == 0, "the published root must be git-ignored"
