"""Publish human-facing artefacts (contact sheets, reports, run summaries) where the Airflow UI can
link to them.

An artefact is copied (or written) to ``$IMAGING_DATA_DIR/published/<dag_id>/<run_id>/<name>``, every
component made safe with :func:`include.common.files.safe_name` (run ids such as
``manual__2026-11-21T09:00:00+00:00`` become ``manual__2026-11-21T09_00_00+00_00``), so the same
artefact of the same run always lands at the same path. The ``imaging_artefacts`` plugin serves that
root at ``<api base_url>/artefacts/<dag_id>/<run_id>/<name>`` behind the Airflow login;
:func:`artefact_url` builds that URL.

Rules:

* writes are atomic (temp name + rename): a reader never sees half a file;
* rerunning is idempotent: identical content is left as it is (``unchanged``); a retry that
  regenerated the artefact with different content replaces it (``replaced``) - artefacts are derived
  views, never source data, and the newest one of a run is the one to look at;
* nothing can be written outside the published root (names are sanitised, nested names are
  sanitised per component, and the final path is checked with :func:`is_within`).

Airflow-free: the caller passes the base URL (``conf.get("api", "base_url")``).
"""

from __future__ import annotations

import enum
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from include.common.files import _tmp_name, is_within, safe_name, same_content
from include.common.settings import get_settings

PUBLISHED_DIR = "published"
URL_PREFIX = "/artefacts"
DEFAULT_BASE_URL = "http://127.0.0.1:8080"


class PublishError(ValueError):
    """An artefact cannot be published (bad name, missing source)."""


class PublishStatus(enum.StrEnum):
    WRITTEN = "written"  # new
    UNCHANGED = "unchanged"  # identical content already published
    REPLACED = "replaced"  # regenerated with different content (retry of the same run)


@dataclass(frozen=True)
class Published:
    path: str  # absolute path under the published root
    rel: str  # "<dag_id>/<run_id>/<name>" (URL path below /artefacts)
    status: PublishStatus

    def url(self, base_url: str | None = None) -> str:
        return join_url(base_url, self.rel)

    def to_dict(self, base_url: str | None = None) -> dict[str, str]:
        return {
            "path": self.path,
            "rel": self.rel,
            "status": str(self.status),
            "url": self.url(base_url),
        }


def published_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<data_dir>/published`` (default data dir: ``$IMAGING_DATA_DIR``)."""
    base = Path(data_dir) if data_dir is not None else get_settings().data_dir
    return (base / PUBLISHED_DIR).resolve()


def safe_rel_name(name: str) -> str:
    """A relative artefact name made safe per component (``a/b.png`` stays nested). Empty, ``.`` and
    ``..`` components are dropped; an empty result is an error."""
    parts = [
        p
        for p in PurePosixPath(str(name).replace("\\", "/")).parts
        if p not in ("", ".", "..", "/")
    ]
    parts = [safe_name(p) for p in parts]
    if not parts:
        raise PublishError(f"artefact name {name!r} has no usable component")
    return "/".join(parts)


def artefact_rel(dag_id: str, run_id: str, name: str) -> str:
    """Deterministic ``<dag_id>/<run_id>/<name>`` of an artefact (each part sanitised)."""
    if not dag_id or not run_id:
        raise PublishError("dag_id and run_id are required to publish an artefact")
    return f"{safe_name(dag_id)}/{safe_name(run_id, default='run')}/{safe_rel_name(name)}"


def artefact_path(
    dag_id: str, run_id: str, name: str, *, root: str | os.PathLike[str] | None = None
) -> Path:
    """Where an artefact of this DAG run is published (checked to be inside the root)."""
    base = Path(root).resolve() if root is not None else published_root()
    path = base / artefact_rel(dag_id, run_id, name)
    if not is_within(path, base) or path.resolve() == base:
        raise PublishError(f"artefact path {path} escapes the published root {base}")
    return path


def join_url(base_url: str | None, rel: str) -> str:
    """``<base_url>/artefacts/<rel>`` with every path segment percent-encoded."""
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    return base + URL_PREFIX + "/" + "/".join(quote(p, safe="@+=") for p in rel.split("/"))


def artefact_url(dag_id: str, run_id: str, name: str, base_url: str | None = None) -> str:
    """The URL of a published artefact under the api-server (e.g. the ``[api] base_url``)."""
    return join_url(base_url, artefact_rel(dag_id, run_id, name))


def _rel_of(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _install(tmp: Path, dst: Path) -> PublishStatus:
    """Move ``tmp`` into place at ``dst`` atomically, unless an identical file is there."""
    if dst.is_file() and not dst.is_symlink():
        if same_content(tmp, dst):
            tmp.unlink()
            return PublishStatus.UNCHANGED
        os.replace(tmp, dst)
        return PublishStatus.REPLACED
    if dst.exists() or dst.is_symlink():
        raise PublishError(f"{dst} exists and is not a regular file")
    os.replace(tmp, dst)
    return PublishStatus.WRITTEN


def _prepare(
    dag_id: str, run_id: str, name: str, root: str | os.PathLike[str] | None
) -> tuple[Path, Path]:
    base = Path(root).resolve() if root is not None else published_root()
    dst = artefact_path(dag_id, run_id, name, root=base)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not is_within(dst.parent, base):  # a symlinked run folder pointing elsewhere
        raise PublishError(f"{dst.parent} escapes the published root {base}")
    return base, dst


def publish_bytes(
    data: bytes,
    dag_id: str,
    run_id: str,
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
) -> Published:
    """Write ``data`` as an artefact of the run (atomic; identical content is left untouched)."""
    base, dst = _prepare(dag_id, run_id, name, root)
    tmp = _tmp_name(dst)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        status = _install(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return Published(str(dst), _rel_of(dst, base), status)


def publish_text(
    text: str,
    dag_id: str,
    run_id: str,
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
) -> Published:
    return publish_bytes(text.encode("utf-8"), dag_id, run_id, name, root=root)


def publish_file(
    src: str | os.PathLike[str],
    dag_id: str,
    run_id: str,
    name: str | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
) -> Published:
    """Copy ``src`` (never moved or changed) as an artefact of the run; ``name`` defaults to its
    file name. Atomic; identical content already published is left untouched."""
    src = Path(src)
    if not src.is_file():
        raise PublishError(f"cannot publish {src}: not a file")
    base, dst = _prepare(dag_id, run_id, name or src.name, root)
    tmp = _tmp_name(dst)
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        os.chmod(tmp, 0o644)
        status = _install(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return Published(str(dst), _rel_of(dst, base), status)


def publish_tree(
    src_dir: str | os.PathLike[str],
    dag_id: str,
    run_id: str,
    prefix: str,
    *,
    files: Iterable[str] | None = None,
    root: str | os.PathLike[str] | None = None,
) -> tuple[list[Published], list[dict[str, str]]]:
    """Publish files of ``src_dir`` (all regular files, or the relative ``files``) under
    ``<prefix>/`` keeping their relative paths, so relative links between them (an ``index.html``
    and its images) keep working. Returns ``(published, errors)``: a file that cannot be published
    is reported with its reason and the others go on."""
    src_dir = Path(src_dir)
    if files is None:
        rels = sorted(
            p.relative_to(src_dir).as_posix()
            for p in src_dir.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )
    else:
        rels = list(files)
    done: list[Published] = []
    errors: list[dict[str, str]] = []
    for rel in rels:
        src = src_dir / rel
        try:
            if not is_within(src, src_dir):
                raise PublishError(f"{rel} is outside {src_dir}")
            done.append(publish_file(src, dag_id, run_id, f"{prefix}/{rel}", root=root))
        except (OSError, PublishError) as exc:
            errors.append({"file": rel, "reason": str(exc)})
    return done, errors


def md_link(text: str, url: str) -> str:
    """A markdown link whose text cannot break the markdown (brackets escaped)."""
    for ch in "\\[]":
        text = text.replace(ch, "\\" + ch)
    return f"[{text}](<{url}>)" if " " in url else f"[{text}]({url})"
