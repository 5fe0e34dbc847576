"""How a sweep scales with Dask workers: the same grid on 1 and on N local workers.

    python bench/sweep.py [--workers N] [--json]

Two grids, each run from an empty cache with 1 worker and with N (default: the machine's
cores): a synthesis-bound one (the MAC array of 4 configurations placed on the ECP5-85F) and a
model-bound one (the dynamic run of the digits MLP for 8 points). Prints the wall-clock seconds
and the speed-up; ``--json`` prints ``{"grids": [{"name", "tasks", "seconds": {workers: s},
"speedup"}]}``.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pse_hdl.sweep import SweepSpec, run_sweep              # noqa: E402
from pse_hdl.files import to_json                             # noqa: E402

BASE = {"preset": "default", "zone_depth": 512, "master_depth": 4096, "max_rows": 64,
        "max_cols": 64}
GRIDS = {
    "synthesis (MAC array, ECP5)": {
        "sweep": {"name": "synth", "measure": ["synth"], "synth_block": "mac",
                  "boards": ["ulx3s"], "budgets": [4.5]},
        "base": BASE, "grid": {"lanes": [1, 2, 4], "precisions": [[4, 8, 16], [8, 16]]}},
    "model (digits MLP 64-256-10)": {
        "sweep": {"name": "model", "measure": ["model"],
                  "networks": [{"name": "digits", "hidden": [256]}],
                  "budgets": [3.5, 4.0, 4.5, 5.0]},
        "base": {"preset": "default"}, "grid": {"lanes": [2, 4]}},
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = []
    for name, data in GRIDS.items():
        seconds = {}
        for n in sorted({1, args.workers}):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.monotonic()
                report = run_sweep(SweepSpec(data), tmp, workers=n)
                seconds[n] = time.monotonic() - start
        out.append({"name": name, "tasks": report["computed"], "seconds": seconds,
                    "speedup": seconds[1] / seconds[args.workers]})
    if args.json:
        print(to_json({"grids": out}, indent=2))
        return 0
    print(f"{'grid':<34} {'tasks':>6} {'1 worker (s)':>13} "
          f"{f'{args.workers} workers (s)':>14} {'speed-up':>9}")
    for g in out:
        print(f"{g['name']:<34} {g['tasks']:>6} {g['seconds'][1]:>13.1f} "
              f"{g['seconds'][args.workers]:>14.1f} {g['speedup']:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
