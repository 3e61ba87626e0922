"""Header/metadata scan of 2,000 NINA frames: ``astropy.io.fits.getheader`` per file (baseline) vs
our block reader :func:`include.astro.headers.scan_headers` (same files, same run, warm page cache).
Like astropy (which parses a card's value only when it is looked up) we parse only the keywords
asked for; the truncation check (NAXIS/BITPIX vs file size) is included on our side.

Both sides return the same keywords for every frame (checked). Extra fields: the full parse
(name tokens + header fallback + normalisation, :func:`include.astro.frames.parse_frame`) per frame.
Issue target: ratio >= 10.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import emit, timed  # noqa: E402

N = 2000
KEYS = ("IMAGETYP", "DATE-OBS", "EXPOSURE", "OBJECT", "FILTER", "INSTRUME", "TELESCOP", "GAIN")


def main() -> None:
    from astropy.io import fits

    from include.astro.frames import parse_frame
    from include.astro.headers import scan_headers
    from include.astro.samples import generate_bulk

    with tempfile.TemporaryDirectory(prefix="bench_astro_") as tmp:
        root = Path(tmp)
        paths = generate_bulk(root, N)

        def baseline() -> list[dict]:
            out = []
            for p in paths:
                h = fits.getheader(p)
                out.append({k: h.get(k) for k in KEYS})
            return out

        def ours() -> list[dict]:
            res = scan_headers(paths, keys=KEYS)
            return [{k: res[str(p)].get(k) for k in KEYS} for p in paths]  # type: ignore[union-attr]

        def full_parse() -> int:
            return sum(1 for p in paths if parse_frame(p, root=root).exposure)

        ours()  # warm the page cache for both sides
        base_s, base = timed(baseline, repeat=2)
        ours_s, mine = timed(ours, repeat=3)
        parse_s, n = timed(full_parse, repeat=2)
        assert mine == base, "header values differ from astropy"
        assert n == N
        emit(
            "astro_headers",
            base_s,
            ours_s,
            frames=N,
            baseline="astropy.io.fits.getheader per file",
            ours="include.astro.headers.scan_headers",
            per_frame_baseline_ms=round(1000 * base_s / N, 3),
            per_frame_ours_ms=round(1000 * ours_s / N, 3),
            full_parse_s=round(parse_s, 4),
            full_parse_ratio=round(base_s / parse_s, 2),
            target_ratio=10,
        )


if __name__ == "__main__":
    main()
