"""Issue 15, Deliver 2: previews are built streaming with bounded memory.

A 24 Mpx NINA-style frame (``BITPIX=16``, ``BZERO=32768``) is previewed at 800 px while
``tracemalloc`` records the peak of Python/numpy allocations: the old way
(``fits.getdata`` + a float copy) needs the whole frame (48 MB as int16, 96 MB as float32); the
streaming preview holds one block of sampled rows. The binned pixels are checked against numpy on
the same data (BZERO applied, every ``k``-th row, ``k`` columns averaged). Measured: about 9 MB
peak for the whole preview (stretch and PNG image included)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np

from include.astro.preview import binned, preview_image
from include.astro.samples import write_fits


def test_preview_of_a_large_16bit_frame_is_streamed(tmp_path: Path) -> None:
    h, w = 4000, 6000  # 24 Mpx, 48 MB of pixels
    rng = np.random.default_rng(3)
    data = rng.integers(900, 60000, size=(h, w), dtype=np.uint16)
    path = write_fits(tmp_path / "big.fits", data, {"IMAGETYP": "LIGHT"})
    assert b"BZERO   =                32768" in path.read_bytes()[:2880]
    frame_mb = data.nbytes / 1e6
    expected = data[4::8, : (w // 8) * 8].reshape(-1, w // 8, 8).mean(axis=2)
    del data

    # warm-up: the first call imports astropy.visualization and PIL (tens of MB of module objects)
    preview_image(write_fits(tmp_path / "small.fits", np.full((48, 64), 1000, np.uint16), {}), 64)
    tracemalloc.start()
    try:
        small = binned(path, 800)
        img = preview_image(path, 800)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert img.size == (800, 533)  # longer side = the size asked for
    assert small.shape == expected.shape == (500, 750)
    np.testing.assert_allclose(small, expected, rtol=1e-6)
    assert peak / 1e6 < frame_mb / 4, f"peak {peak / 1e6:.1f} MB for a {frame_mb:.0f} MB frame"
