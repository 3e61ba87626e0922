"""Run every benchmark (``bench/bench_*.py``) in its own process and print one JSON line each:
``{"name", "baseline_s", "ours_s", "ratio", ...}`` with ``ratio = baseline time / our time`` measured
in the same run (above 1 means we are faster).

    make bench                  # all
    make bench BENCH=astro      # those whose file name contains "astro"
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main(argv: list[str]) -> int:
    selected = sorted(HERE.glob("bench_*.py"))
    if argv:
        selected = [p for p in selected if any(a in p.stem for a in argv)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH", "")]
    )
    failures = 0
    for path in selected:
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, str(path)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
        if proc.returncode != 0 or not lines:
            failures += 1
            err = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            print(
                json.dumps({"name": path.stem.removeprefix("bench_"), "error": " | ".join(err)}),
                flush=True,
            )
            continue
        for line in lines:
            record = json.loads(line)
            record.setdefault("wall_s", round(time.monotonic() - t0, 2))
            print(json.dumps(record), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
