"""Accuracy against bits per weight on the digits MLP: the frontier of storage methods.

    python bench/accuracy.py [--json] [--plot bench/accuracy.png] [--config NAME|FILE]

Methods: float; uniform int16/int8/int4 (per-layer power-of-two scale); magnitude pruning +
int8 (bitmask metadata); PSE with profiled codes (static) and the dynamic run (EMA rate 0.1 as
specified, and 2^-7), each at several bit budgets. Bits per weight include all metadata.
Shares and thresholds are calibrated on the calibration split; every accuracy is on the test
split.
"""

import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pse_hdl.config import ConfigError, from_arg                # noqa: E402
from pse_hdl.model import baselines                                         # noqa: E402
from pse_hdl.model.calibration import calibrate                            # noqa: E402
from pse_hdl.model.engine import Engine, dense_activations                 # noqa: E402
from pse_hdl.plots import frontier_figure                                  # noqa: E402
from pse_hdl.workflow import accuracy, prepare, run_demo                    # noqa: E402
from pse_hdl.files import to_json                             # noqa: E402

TARGETS = (3.0, 3.5, 4.0, 4.5, 5.0)
SLOW_RATE = 1 / 128      # a slower EMA than the specification's 0.1 (see docs/ALLOCATION.md)


def test_acc(p, weights):
    return accuracy(dense_activations(p.qnet.layers, p.xq["test"], p.cfg, weights)[-1],
                    p.splits["test"][1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plot", default="bench/accuracy.png")
    ap.add_argument("--config")
    args = ap.parse_args(argv)
    try:
        cfg = from_arg(args.config)
    except ConfigError as e:
        ap.error(str(e))
    p = prepare(cfg)
    masters = [q.master for q in p.qnet.layers]
    rows = [{"method": "float", "setting": "float32", "bits_per_weight": 32.0,
             "accuracy": p.float_accuracy, "mac_cycle_ratio": None}]
    for bits in (16, 8, 4):
        w, fp = baselines.uniform(masters, bits, cfg)
        rows.append({"method": "uniform", "setting": f"int{bits}",
                     "bits_per_weight": fp["bits_per_weight"], "accuracy": test_acc(p, w),
                     "mac_cycle_ratio": cfg.mac_cost(bits) / cfg.mac_cost(16)})
    for frac in (0.3, 0.5, 0.6, 0.7, 0.8):
        w, fp = baselines.magnitude_pruned(masters, frac, cfg)
        rows.append({"method": "magnitude prune + int8", "setting": f"prune {frac:.0%}",
                     "bits_per_weight": fp["bits_per_weight"], "accuracy": test_acc(p, w),
                     "mac_cycle_ratio": (1 - frac) * cfg.mac_cost(8) / cfg.mac_cost(16)})
    engine = Engine(p.qnet, cfg, allocate=False)
    for target in TARGETS:
        best, _ = calibrate(engine, p.xq["calib"], p.splits["calib"][1], target_bits=target)
        cyc = engine.cycles()
        rows.append({"method": "PSE static (profiled codes)", "setting": f"<= {target} b/w",
                     "bits_per_weight": engine.footprint()["bits_per_weight"],
                     "accuracy": accuracy(engine.infer(p.xq["test"])[-1], p.splits["test"][1]),
                     "mac_cycle_ratio": cyc["scheduled"] / cyc["dense16"]})
        for rate, label in ((cfg.ema_rate, f"rate {cfg.ema_rate:g}"), (SLOW_RATE, "rate 2^-7")):
            c = cfg if rate == cfg.ema_rate else cfg.replace(ema_rate=rate)
            # the static rows' mode (calibrate's default)
            r = run_demo(c, target_bits=target, mode="global", prepared=p).figures
            rows.append({"method": f"PSE dynamic, EMA {label}", "setting": f"<= {target} b/w",
                         "bits_per_weight": r["bits_per_weight"], "accuracy": r["pse_accuracy"],
                         "mac_cycle_ratio": r["mac_cycle_ratio"]})
    if args.plot:
        frontier_figure(rows, args.plot, p.float_accuracy)
    if args.json:
        print(to_json({"float_accuracy": p.float_accuracy, "rows": rows}, indent=2))
        return
    print(f"digits MLP {' -> '.join(str(q.shape[1]) for q in p.qnet.layers)} -> "
          f"{p.qnet.layers[-1].shape[0]}; test split {len(p.splits['test'][1])} samples; "
          f"{cfg.lanes} lanes")
    print(f"{'method':<40} {'setting':<12} {'bits/weight':>11} {'accuracy':>9} "
          f"{'vs float':>9} {'MAC cycles':>10}")
    for r in rows:
        mc = "" if r["mac_cycle_ratio"] is None else f"{100 * r['mac_cycle_ratio']:.1f} %"
        print(f"{r['method']:<40} {r['setting']:<12} {r['bits_per_weight']:>11.3f} "
              f"{100 * r['accuracy']:>8.2f}% {100 * (r['accuracy'] - p.float_accuracy):>+8.2f} "
              f"{mc:>10}")
    if args.plot:
        print(f"figure written to {args.plot}")


if __name__ == "__main__":
    main()
