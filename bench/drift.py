"""When the task changes: streams whose task switches or drifts, dynamic against static.

    python bench/drift.py [--json] [--plot bench/drift.png] [--budget B] [--config NAME|FILE]

The digits MLP (64-256-10, trained once on every class) runs three streams made of the test
split: (a) **class switch**, classes 0-4, then 5-9, then 0-4 again; (b) **input shift**, all
classes, then the same images with the top three pixel rows blanked (other inputs carry the
signal), then back; (c) **gradual drift**, the share of classes 5-9 rising from 0 to 1 along the
stream. Each method is calibrated to the same bit budget (metadata included) on the calibration
split:

* PSE dynamic: the rolling importance reallocates every ``period`` samples (reversible);
* PSE dynamic destructive: the same, pruned masters cleared (the specification's literal rule);
* PSE static (mixture): the layout profiled on the whole calibration split, never changed;
* PSE static (first task): profiled and calibrated on the first task's calibration samples only;
* uniform int4: every weight at 4 bits, one scale per layer (4.0 bits per weight, no metadata).

Reported per stream: the accuracy in the 200 samples after each switch (averaged over the
switches), the recovery time (samples until the accuracy of the last 100 is back within a point
of its level in the 200 before the switch), the accuracy per window of 50 samples, and the bits
per weight. ``--json`` prints ``{"streams": [{"name", "bits_per_weight", "switches",
"after_switch": {...}, "recovery_samples": {...}, "allocation_period"}]}``.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pse_hdl.api import Design                                   # noqa: E402
from pse_hdl.config import from_arg                             # noqa: E402
from pse_hdl.errors import UserError                            # noqa: E402
from pse_hdl.importers import Source                            # noqa: E402
from pse_hdl.model.engine import dense_activations              # noqa: E402
from pse_hdl.model.network import default_network, digits_splits  # noqa: E402
from pse_hdl.model.quant import uniform_weights                 # noqa: E402
from pse_hdl.files import to_json                             # noqa: E402

AFTER = 200          # samples after a switch that are scored
WINDOW = 50          # samples per point of the accuracy-over-time curve
ROLL = 100           # samples of the rolling accuracy the recovery is read from
METHODS = ("dynamic", "dynamic_destructive", "static_mixture", "static_first_task", "int4")


def blank_top(x):
    """Task B of the input shift: the top three rows of the 8x8 image blanked."""
    x = np.array(x, np.float64)
    x[:, :24] = 0.0
    return x


def streams(splits, seed=0):
    """``[(name, x, y, switches, first_task_mask_of_calibration, calib_transform)]``."""
    rng = np.random.default_rng(seed)
    x, y = splits["test"]
    a, b = np.flatnonzero(y < 5), np.flatnonzero(y >= 5)
    order = np.concatenate([rng.permutation(a), rng.permutation(b), rng.permutation(a)])
    class_switch = ("class switch 0-4 / 5-9 / 0-4", x[order], y[order],
                    [len(a), len(a) + len(b)], lambda yc: yc < 5, None)
    p = rng.permutation(len(y))
    half = len(p) // 2
    xs = np.concatenate([x[p[:half]], blank_top(x[p[half:]]), x[p[:half]]])
    ys = np.concatenate([y[p[:half]], y[p[half:]], y[p[:half]]])
    shift = ("input shift full / top blanked / full", xs, ys, [half, len(p)], None, blank_top)
    n = 2 * len(y)
    pa, pb = list(rng.permutation(a)), list(rng.permutation(b))
    idx = []
    for t in range(n):
        pool, other = (pb, b) if rng.random() < t / n else (pa, a)
        if not pool:
            pool.extend(rng.permutation(other))
        idx.append(pool.pop())
    gradual = ("gradual drift 0-4 -> 5-9", x[idx], y[idx], [n // 2], lambda yc: yc < 5, None)
    return [class_switch, shift, gradual]


def correct_per_sample(cfg, net, calib, x, y, budget, reversible=True, static=False):
    design = Design(cfg.replace(reversible=reversible), Source(net, "digits MLP",
                                                                "classification"),
                    calib[0], calib[1], "classification")
    design.allocate(budget)
    if static:
        logits = design.engine().infer(design.quantize(x))[-1]
        bits = design.report()["bits_per_weight"]
        series = None
    else:
        series = []
        logits, fig = design.run(x)
        bits = fig["bits_per_weight"]
    return np.argmax(logits, axis=1) == y, bits, series


def recovery(correct, s, pre=AFTER):
    """Samples after switch s until the accuracy of the last ROLL samples is back within a point
    of the accuracy in the ``pre`` samples before s (None: not within the stream)."""
    level = correct[max(0, s - pre):s].mean()
    csum = np.concatenate([[0], np.cumsum(correct)])
    for t in range(s + ROLL, len(correct) + 1):
        if (csum[t] - csum[t - ROLL]) / ROLL >= level - 0.01:
            return t - ROLL - s if t - ROLL > s else 0
    return None


def measure(cfg, budget):
    splits = digits_splits(0)
    net = default_network()
    xc, yc = splits["calib"]
    out = []
    for name, x, y, switches, first_mask, transform in streams(splits):
        calib_mix = (xc, yc)
        if transform is not None:            # the mixture holds both tasks' inputs
            calib_mix = (np.concatenate([xc, transform(xc)]), np.concatenate([yc, yc]))
        first = (xc[first_mask(yc)], yc[first_mask(yc)]) if first_mask else (xc, yc)
        runs = {
            "dynamic": correct_per_sample(cfg, net, calib_mix, x, y, budget),
            "dynamic_destructive": correct_per_sample(cfg, net, calib_mix, x, y, budget,
                                                      reversible=False),
            "static_mixture": correct_per_sample(cfg, net, calib_mix, x, y, budget,
                                                 static=True),
            "static_first_task": correct_per_sample(cfg, net, first, x, y, budget,
                                                    static=True),
        }
        d = Design(cfg, Source(net, "digits MLP", "classification"), xc, yc, "classification")
        w = uniform_weights([q.master for q in d.qnet.layers], 4, cfg.weight_bits)
        logits = dense_activations(d.qnet.layers, d.quantize(x), cfg, w)[-1]
        runs["int4"] = (np.argmax(logits, axis=1) == y, 4.0, None)
        after, rec, windows, bits = {}, {}, {}, {}
        for m, (correct, b, _) in runs.items():
            after[m] = float(np.mean([correct[s:s + AFTER].mean() for s in switches]))
            r = [recovery(correct, s) for s in switches]
            rec[m] = None if any(v is None for v in r) else float(np.mean(r))
            windows[m] = [float(correct[i:i + WINDOW].mean())
                          for i in range(0, len(correct), WINDOW)]
            bits[m] = float(b)
        out.append({"name": name, "samples": int(len(y)), "bits_per_weight": bits,
                    "switches": [int(s) for s in switches], "after_switch": after,
                    "recovery_samples": rec, "allocation_period": cfg.period,
                    "windows": windows, "budget": budget})
    return out


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(results), 1, figsize=(9, 3.2 * len(results)), squeeze=False)
    for ax, r in zip(axes[:, 0], results):
        for m in METHODS:
            w = r["windows"][m]
            ax.plot(np.arange(len(w)) * WINDOW + WINDOW / 2, 100 * np.array(w), label=m,
                    marker="." if m.startswith("dynamic") else None)
        for s in r["switches"]:
            ax.axvline(s, color="#444", ls=":", lw=1)
        ax.set_title(f"{r['name']} (budget {r['budget']} bits/weight)", fontsize=9)
        ax.set_ylabel(f"accuracy per {WINDOW} (%)")
    axes[-1, 0].set_xlabel("sample")
    axes[0, 0].legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plot", default="bench/drift.png")
    ap.add_argument("--budget", type=float, default=4.0)
    ap.add_argument("--config")
    args = ap.parse_args(argv)
    if args.plot and not Path(args.plot).resolve().parent.is_dir():
        ap.error(f"--plot: the directory of {args.plot!r} does not exist")
    try:
        cfg = from_arg(args.config)
        results = measure(cfg, args.budget)
    except UserError as e:                 # a wrong --config or a budget no layout reaches
        ap.error(str(e))
    if args.plot:
        plot(results, args.plot)
    if args.json:
        print(to_json({"streams": [{k: v for k, v in r.items() if k != "windows"}
                                      for r in results]}, indent=2))
        return 0
    for r in results:
        print(f"\n{r['name']}: {r['samples']} samples, switches at {r['switches']}, "
              f"allocation every {r['allocation_period']}, budget {r['budget']}")
        print(f"  {'method':<22} {'bits/weight':>11} {'after switch':>13} {'recovery':>9}")
        for m in METHODS:
            rec = r["recovery_samples"][m]
            print(f"  {m:<22} {r['bits_per_weight'][m]:>11.3f} "
                  f"{100 * r['after_switch'][m]:>12.2f}% "
                  f"{'-' if rec is None else f'{rec:.0f}':>9}")
    if args.plot:
        print(f"\nfigure written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
