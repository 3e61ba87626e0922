"""reef_treatment_upload's step on an in-memory Hypha fake: tile checks (16.8), content-checked
skip and redo (16.7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from include.common.db import make_engine
from include.reef.acquisition import check_folder
from include.reef.pipeline import treatment_upload_folder
from include.reef.samples import GridSpec, generate_timelapse

GRID = GridSpec(rows=2, cols=2, tile=64)


class FakeHypha:
    """Just enough of HyphaArtifactHook: staged/committed files with their bytes, a manifest."""

    def __init__(self) -> None:
        self.arts: dict[str, dict[str, Any]] = {}
        self.uploads: list[str] = []

    def artifact_id(self, alias: str) -> str:
        return alias if "/" in alias else f"ws/{alias}"

    def ensure_collection(self, alias: str, manifest: dict) -> str:
        self.arts.setdefault(self.artifact_id(alias), {"files": {}, "staged": None, "v": 1})
        return self.artifact_id(alias)

    def read(self, alias: str, stage: bool = False) -> dict | None:
        a = self.arts.get(self.artifact_id(alias))
        if a is None:
            return None
        m = a["staged_manifest"] if a["staged"] is not None else a.get("manifest", {})
        return {
            "versions": ["v0"] if a["v"] else [],
            "staging": [] if a["staged"] is not None else None,
            "manifest": m,
        }

    def ensure_staged_dataset(self, alias: str, parent: str, manifest: dict) -> dict:
        aid = self.artifact_id(alias)
        a = self.arts.setdefault(aid, {"files": {}, "staged": None, "v": 0, "manifest": manifest})
        if a["staged"] is None:
            a["staged"] = dict(a["files"])
            a["staged_manifest"] = dict(a.get("manifest") or {})
        return self.read(alias, stage=True) or {}

    def upload_files(self, alias: str, files: list) -> dict:
        a = self.arts[self.artifact_id(alias)]
        for f in files:
            a["staged"][f.remote] = Path(f.local).read_bytes()
            self.uploads.append(f.remote)
        return {f.remote: f.size for f in files}

    def call(self, method: str, aid: str, **kw: Any) -> Any:
        assert method == "edit"
        self.arts[aid]["staged_manifest"] = kw["manifest"]

    def commit(self, alias: str, expected: dict | None = None) -> dict:
        a = self.arts[self.artifact_id(alias)]
        a["files"], a["staged"], a["v"] = a["staged"], None, 1
        a["manifest"] = a["staged_manifest"]
        return self.read(alias) or {}

    def list_files(self, alias: str, stage: bool = False, prefix: str = "") -> dict[str, int]:
        a = self.arts[self.artifact_id(alias)]
        files = a["staged"] if stage and a["staged"] is not None else a["files"]
        return {k: len(v) for k, v in files.items()}


def _item(p: Path) -> dict[str, str]:
    return {"name": p.name, "path": str(p), "taken_at": "2025-04-29T15:38:36"}


def test_missing_and_corrupt_tiles_are_reported_and_the_folder_still_archived(
    sqlite_app_db_url, tmp_path: Path
):
    """Issue 16.8: a folder with a missing tile and a truncated BMP is zipped with warnings."""
    (f,) = generate_timelapse(tmp_path / "mic", "tr", n_folders=1, grid=GRID)
    assert check_folder(f) == []
    (f / "0" / "A1_1_0_Fluorescence_488_nm_Ex.bmp").unlink()
    bmp = f / "0" / "A1_2_0_BF_LED_matrix_full.bmp"
    bmp.write_bytes(bmp.read_bytes()[:-500])
    (f / "0" / "A1_3_0_BF_LED_matrix_full.bmp").write_bytes(b"garbage")
    warnings = check_folder(f)
    assert any("1 tile(s)" in w and "A1_1_0_Fluorescence_488_nm_Ex" in w for w in warnings)
    assert any("2 corrupt tile(s)" in w and "truncated" in w for w in warnings)
    hook = FakeHypha()
    r = treatment_upload_folder(
        make_engine(sqlite_app_db_url), hook, _item(f), experiment_id="tr", work_dir=tmp_path / "w"
    )
    assert r["status"] == "done" and r["warnings"] == warnings


def test_same_size_other_content_is_uploaded_and_redo_reuploads(sqlite_app_db_url, tmp_path: Path):
    """Issue 16.7: the upload skip checks content, not size only; redo processes a done folder."""
    engine = make_engine(sqlite_app_db_url)
    (f,) = generate_timelapse(tmp_path / "mic", "tr2", n_folders=1, grid=GRID)
    hook = FakeHypha()
    kw = {"experiment_id": "tr2", "work_dir": tmp_path / "w"}
    first = treatment_upload_folder(engine, hook, _item(f), **kw)
    assert first["status"] == "done" and hook.uploads == [f"{f.name}.zip"]
    assert treatment_upload_folder(engine, hook, _item(f), **kw)["status"] == "already_done"
    # the same folder again with redo: identical archive already committed -> recorded only
    again = treatment_upload_folder(engine, hook, _item(f), redo=True, **kw)
    assert again["status"] == "done" and len(hook.uploads) == 1
    # a tile corrected in place (same size, other pixels): redo uploads the new archive
    tile = f / "0" / "A1_0_0_BF_LED_matrix_full.bmp"
    data = bytearray(tile.read_bytes())
    data[-10:] = bytes(255 - b for b in data[-10:])
    tile.write_bytes(bytes(data))
    third = treatment_upload_folder(engine, hook, _item(f), redo=True, **kw)
    assert third["status"] == "done" and len(hook.uploads) == 2
    stored = hook.arts["ws/tr2-treatment"]["files"][f"{f.name}.zip"]
    assert len(stored) == third["size"]
