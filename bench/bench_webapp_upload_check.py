"""Upload check of the photos web app: how long the server needs to validate a batch of phone-size
photos before it can answer ``202`` (seed: "Response time < 500 ms after upload completes").

* baseline: the obvious check — ``Image.open(...).verify()`` then a full ``load()`` (decode every
  pixel) of each photo, one after the other;
* ours: :func:`include.webapp.validation.validate_all` — magic bytes, header, pixel limit,
  ``verify()`` and a walk over the JPEG marker segments that requires the end-of-image marker
  after the scan (catches truncated uploads without decoding a pixel), in a thread pool.
  Also reported: the opt-in ``decode_check`` mode (adds a DCT-scaled 1/8 decode).

Target (seed "Upload View"): < 500 ms to answer after a 100-photo upload arrived; reported as
``ours_100_photos_s_estimate`` (validation only). Staging the accepted photos to S3 is I/O on
top: measured against a local ``rclone serve s3`` (``staging_s``: 6 parallel PUTs as the app does,
``staging_sequential_s``: one after the other) and reported, not hidden.

Both must accept the same good photos and refuse the same truncated one. Photos: 12 MP
(4032×3024) JPEGs, quality 90, generated deterministically (smooth content + noise, ~2-3 MB).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench._util import emit, timed  # noqa: E402
from include.webapp.validation import Limits, Rejection, ValidPhoto, validate_all  # noqa: E402

N = 12
W, H = 4032, 3024


def make_photos(n: int = N) -> list[bytes]:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = []
    for i in range(n):
        base = np.stack(
            [
                128 + 80 * np.sin(xx / (180 + 7 * i)) * np.cos(yy / 230),
                120 + 70 * np.cos(xx / 310 + i) * np.sin(yy / (150 + 5 * i)),
                90 + 50 * np.sin((xx + yy) / 400),
            ],
            axis=-1,
        )
        base += rng.normal(0, 6, base.shape).astype(np.float32)
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def baseline(files: list[tuple[int, str, bytes]]) -> list[bool]:
    ok = []
    for _, _, data in files:
        try:
            Image.open(io.BytesIO(data)).verify()
            Image.open(io.BytesIO(data)).load()
            ok.append(True)
        except (OSError, SyntaxError, ValueError):
            ok.append(False)
    return ok


def measure_staging(photos: list[ValidPhoto]) -> tuple[float, float]:
    """Stage the photos to a real local S3 server: the app's 6 parallel PUTs vs one by one."""
    import tempfile
    import uuid

    from include.common.local_services import S3Server
    from include.webapp.staging import plan_jobs, stage_files

    with tempfile.TemporaryDirectory(prefix="bench-webapp-") as tmp:
        server = S3Server(root=Path(tmp) / "s3").start(buckets=("imaging",))
        try:
            client = server.client()
            times = []
            for workers in (6, 1):
                sid = uuid.uuid4()  # fresh keys: every PUT really uploads
                jobs = plan_jobs(sid, photos)
                t, _ = timed(
                    lambda s=sid, j=jobs, w=workers: stage_files(
                        client, "imaging", s, photos, j, "bench", w
                    )
                )
                times.append(t)
            return times[0], times[1]
        finally:
            server.stop()


def main() -> None:
    photos = make_photos()
    truncated = photos[0][: len(photos[0]) // 2]
    files = [(i, f"p{i}.jpg", d) for i, d in enumerate([*photos, truncated])]
    mb = sum(len(d) for _, _, d in files) / 1e6

    base_s, base_ok = timed(lambda: baseline(files), repeat=2)
    ours_s, ours = timed(lambda: validate_all(files), repeat=5)
    ours_ok = [isinstance(r, ValidPhoto) for r in ours]
    assert base_ok == ours_ok == [True] * N + [False], (base_ok, ours_ok)
    assert isinstance(ours[-1], Rejection) and "truncated" in ours[-1].reason
    ours_1, _ = timed(lambda: validate_all(files, workers=1), repeat=2)
    decode_s, dec = timed(lambda: validate_all(files, Limits(decode_check=True)), repeat=2)
    assert [isinstance(r, ValidPhoto) for r in dec] == ours_ok
    per_photo_ms = ours_s / len(files) * 1000
    staging_s, staging_seq_s = measure_staging([r for r in ours if isinstance(r, ValidPhoto)])
    emit(
        "webapp_upload_check",
        base_s,
        ours_s,
        photos=len(files),
        megapixels_each=round(W * H / 1e6, 1),
        batch_mb=round(mb, 1),
        ours_single_thread_s=round(ours_1, 4),
        decode_check_s=round(decode_s, 4),
        ours_ms_per_photo=round(per_photo_ms, 1),
        ours_100_photos_s_estimate=round(per_photo_ms * 100 / 1000, 2),
        baseline_ms_per_photo=round(base_s / len(files) * 1000, 1),
        staging_s=round(staging_s, 4),
        staging_sequential_s=round(staging_seq_s, 4),
        staging_mb_per_s=round(
            sum(p.size for p in ours if isinstance(p, ValidPhoto)) / 1e6 / staging_s, 1
        ),
        target_100_photos_s=0.5,
        meets_target=per_photo_ms * 100 / 1000 < 0.5,
    )


if __name__ == "__main__":
    main()
