"""Thresholds from the hardware histogram against exact quantiles, on the digits MLP.

    python bench/histogram.py [--json]

For the calibrated class shares of `pse demo`, the allocation from the baseline importance with
thresholds taken (a) from exact quantiles and (b) from the importance histogram the hardware
keeps (log2 bins with 2**S bins per octave), for S = 0..3: the class shares reached, bits per
weight and test accuracy.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pse_hdl.config import PSEConfig                                                # noqa
from pse_hdl.model.calibration import calibrate                            # noqa: E402
from pse_hdl.model.engine import Engine, exact_thresholds, histogram_thresholds  # noqa: E402
from pse_hdl.workflow import accuracy, prepare                                     # noqa
from pse_hdl.files import to_json                             # noqa: E402


def evaluate(engine, thresholds, p):
    engine.thresholds = thresholds
    engine.codes = [None] * len(engine.layers)
    engine.allocate()
    return {"shares": [round(float(v), 4) for v in engine.class_shares()],
            "bits_per_weight": round(engine.footprint()["bits_per_weight"], 4),
            "accuracy": accuracy(engine.infer(p.xq["test"])[-1], p.splits["test"][1])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    cfg = PSEConfig()
    p = prepare(cfg)
    engine = Engine(p.qnet, cfg, allocate=False)
    # Per-weight layouts only: a uniform layer ignores the thresholds, which would confound
    # the shares they reach.
    best, _ = calibrate(engine, p.xq["calib"], p.splits["calib"][1], target_bits=4.5,
                        uniform_classes=())
    shares = best["shares"]
    rows = [{"method": "exact quantiles", **evaluate(engine, exact_thresholds(engine, shares), p)}]
    for sub in range(4):
        c = cfg.replace(hist_sub_bits=sub, hist_bins=min(1024, 33 << sub))
        e = Engine(p.qnet, c, allocate=False)
        rows.append({"method": f"histogram, {1 << sub} bins/octave ({c.hist_bins} bins)",
                     **evaluate(e, histogram_thresholds(e, shares), p)})
    for r in rows:
        r["max_share_error"] = round(float(np.max(np.abs(np.array(r["shares"]) -
                                                         np.array(shares)))), 4)
    if args.json:
        print(to_json({"target_shares": shares, "rows": rows}, indent=2))
        return
    print(f"target shares (pruned, {', '.join(f'{b}-bit' for b in cfg.precisions)}): {shares}")
    print(f"{'thresholds from':<36} {'shares reached':<34} {'max err':>7} {'bits/w':>7} "
          f"{'accuracy':>8}")
    for r in rows:
        print(f"{r['method']:<36} {str(r['shares']):<34} {r['max_share_error']:>7} "
              f"{r['bits_per_weight']:>7} {100 * r['accuracy']:>7.2f}%")


if __name__ == "__main__":
    main()
