"""Generate the demo's sample data for every pipeline (deterministic, small) and write the
trigger confs to ``<dest>/demo_confs.json``.

Each domain package exposes ``include.<domain>.samples.generate_demo(dest) -> dict`` returning
``{dag_id: conf}`` (or one conf for the domain's main DAG).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

DOMAINS = ("astro", "reef", "photos", "design", "roboflow")


def main(dest: Path) -> dict[str, object]:
    dest.mkdir(parents=True, exist_ok=True)
    confs: dict[str, object] = {}
    for domain in DOMAINS:
        try:
            mod = importlib.import_module(f"include.{domain}.samples")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(f"include.{domain}"):
                print(f"samples: {domain}: no generator yet")
                continue
            raise
        t0 = time.monotonic()
        out = mod.generate_demo(dest / domain)
        print(f"samples: {domain}: {time.monotonic() - t0:.1f} s")
        confs[domain] = out
    (dest / "demo_confs.json").write_text(json.dumps(confs, indent=2, default=str))
    return confs


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".data" / "samples")
