"""When the task changes: streams whose task switches or drifts, dynamic against static.

    python bench/drift.py [--json] [--plot bench/drift.png] [--budget B] [--config NAME|FILE]
                          [--only class camera gradual] [--segment N] [--period P]
                          [--backend model|rtl] [--seeds N]

Three streams, each on a network trained once on everything it will see:

* **class switch** (the digits MLP 64-256-10 of the demo): classes 0-4, then 5-9, then 0-4;
* **camera switch** (a digits MLP 256-64-10 behind four cameras): every image is seen by one
  of four cameras (as is, transposed, upside down, mirrored), each feeding its own 64 inputs,
  the others dark; the active camera goes 0, 1, 2, 3 and back to 0, ``--segment`` samples each.
  This is the input-distribution shift: which inputs carry the signal changes;
* **gradual camera drift**: camera 0, then the share of camera 1 rising from 0 to 1 over a
  segment, then camera 1.

Two more streams run on networks held out of the allocator's development (``--only class_deep
sensor``; ``bench/networks.py``): **class_deep**, the class switch of the held-out digits MLP
64-100-50-10, and **sensor**, the camera construction on other data: the held-out wide
``make_classification`` task (40 features) behind four sensors of 40 inputs each, an MLP
160-64-4, the active sensor going 0, 1, 2, 3, 0.

Every method is calibrated to the same bit budget (metadata included) on the calibration split,
seen the way the stream sees it:

* PSE dynamic: the rolling importance reallocates every ``period`` samples (reversible);
* PSE dynamic destructive: the same, pruned masters cleared (the specification's literal rule);
* PSE static (mixture): the layout profiled on the whole calibration split, never changed;
* PSE static (first task): profiled and calibrated on the first task's calibration samples only;
* uniform int4: every weight at 4 bits, one scale per layer (4.0 bits per weight, no metadata).

Reported per stream: the accuracy in the 200 samples after each switch (averaged over the
switches), the recovery time (samples until the accuracy of the next 100 is back within a
point of the accuracy in the 200 before the switch), for the streams that come back to their
first task the accuracy on the second half of the last segment minus on the second half of the
first, the same images (what destructive pruning loses for good), the accuracy and the bits
per weight per
window of 50 samples (the plot), and the average bits per weight. ``--json`` prints
``{"streams": [{"name", "bits_per_weight", "switches", "after_switch": {...},
"recovery_samples": {...}, "allocation_period"}]}``. ``--backend rtl`` also runs the dynamic
method of the camera switch through the engine's Verilog (every logit and every layout checked
against the golden model as it comes) and scores it from the RTL's logits (key ``"rtl"``,
with what a sample costs the engine: INFER alone and with the allocation amortised, the price
of ``--period``).

A stream's figures depend on the order its samples are drawn in (and the camera network on its
training seed), and 200 samples after a switch are one sample per half point. ``--seeds N``
measures every stream again with the orders (and camera networks) of seeds 1 to N-1 and prints,
per stream, the dynamic run's gain over the better static layout after the switches with each
seed, their mean and their least (key ``"seeds"`` of each stream: ``{"gain_over_static":
{"per_seed", "mean", "min"}, "after_switch": [...], "recovery_samples": [...]}``, one entry per
seed, seed 0 first; the rest of the output, the plot included, is seed 0's).
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pse_hdl.api import Design                                   # noqa: E402
from pse_hdl.model.layer import one_blas_thread                  # noqa: E402
from pse_hdl.config import from_arg                             # noqa: E402
from pse_hdl.errors import BudgetError, UserError               # noqa: E402
from pse_hdl.files import savefig_atomic, to_json               # noqa: E402
from pse_hdl.importers import Source, from_sklearn              # noqa: E402
from pse_hdl.model.network import default_network, digits_splits  # noqa: E402

AFTER = 200          # samples after a switch that are scored
WINDOW = 50          # samples per point of the curves over time
ROLL = 100           # samples of the rolling accuracy the recovery is read from
METHODS = ("dynamic", "dynamic_destructive", "static_mixture", "static_first_task", "int4")
STREAMS = ("class", "camera", "gradual")
HELD_OUT = ("class_deep", "sensor")   # on networks and data held out of the development
CAMERAS = 4


def view(x, k):
    """Camera k's picture of the 8x8 images ``x``: as is, transposed, upside down, mirrored."""
    im = np.asarray(x, np.float64).reshape(-1, 8, 8)
    return (im, im.transpose(0, 2, 1), im[:, ::-1], im[:, :, ::-1])[k].reshape(-1, 64)


def sensor(x, k):
    """Inputs of a four-sensor network with sensor k measuring ``x`` and the others dark."""
    n = x.shape[1]
    out = np.zeros((len(x), n * CAMERAS))
    out[:, n * k:n * (k + 1)] = x
    return out


def camera(x, k):
    """Inputs of the four-camera network with camera k seeing ``x`` and the others dark."""
    return sensor(view(x, k), k)


def every_camera(x, y, place=camera):
    """``(x, y)`` seen by each camera (``place``: or sensor) in turn: the mixture the network
    is trained on."""
    return np.concatenate([place(x, k) for k in range(CAMERAS)]), np.concatenate([y] * CAMERAS)


def camera_network(splits, seed=0):
    """The four-camera digits MLP 256-64-10, trained on the train split through every camera."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    mlp = MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3, max_iter=600, random_state=seed)
    with warnings.catch_warnings(), one_blas_thread:     # small products: see one_blas_thread
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(*every_camera(*splits["train"]))
    return from_sklearn(mlp, "four-camera digits MLP")


def held_out_streams(only, segment=300, seed=0):
    """The streams on networks held out of the development (``bench/networks.py``): the class
    switch of digits 64-100-50-10 (its own standardised splits), and a sensor switch: the wide
    ``make_classification`` task (40 features, 10 informative) measured by one of four
    sensors, each feeding its own 40 inputs of an MLP 160-64-4 trained through every sensor,
    the active sensor going 0, 1, 2, 3, 0 (the camera switch's construction on other data)."""
    from networks import _data, _split, _standardised, network
    out = []
    if "class_deep" in only:
        source, splits = network("digits 64-100-50-10", seed)
        out.append(class_switch(splits, source, np.random.default_rng([seed, 3]),
                                "class_deep", ", digits 64-100-50-10 (held out)"))
    if "sensor" in only:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
        splits = _standardised(_split(*_data("wide", seed), seed))
        (x, y), (xc, yc) = splits["test"], splits["calib"]
        mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=600, random_state=seed)
        with warnings.catch_warnings(), one_blas_thread:
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.fit(*every_camera(*splits["train"], place=sensor))
        rng = np.random.default_rng([seed, 4])
        segs = [rng.permutation(len(y))[:segment] for _ in range(4)]
        segs.append(segs[0])                          # the first sensor's samples again
        xs = np.concatenate([sensor(x[i], k) for k, i in enumerate(segs[:4])]
                            + [sensor(x[segs[4]], 0)])
        out.append({"name": "sensor switch 0 / 1 / 2 / 3 / 0, wide 160-64-4 (held out)",
                    "key": "sensor", "source": from_sklearn(mlp, "four-sensor wide MLP"),
                    "x": xs, "y": np.concatenate([y[i] for i in segs]),
                    "switches": [segment * k for k in range(1, 5)],
                    "calib_mixture": every_camera(xc, yc, place=sensor),
                    "calib_first": (sensor(xc, 0), yc)})
    return out


def class_switch(splits, source, rng, key, suffix=""):
    """The class switch on ``source``: its test split's classes 0-4, then 5-9, then the same
    0-4 samples in the same order, drawn with ``rng``."""
    (x, y), (xc, yc) = splits["test"], splits["calib"]
    a, b = np.flatnonzero(y < 5), np.flatnonzero(y >= 5)
    first = rng.permutation(a)                  # shown again, in order, at the end
    order = np.concatenate([first, rng.permutation(b), first])
    return {"name": "class switch 0-4 / 5-9 / 0-4" + suffix, "key": key, "source": source,
            "x": x[order], "y": y[order], "switches": [len(a), len(a) + len(b)],
            "calib_mixture": (xc, yc), "calib_first": (xc[yc < 5], yc[yc < 5])}


def streams(splits, only=STREAMS, segment=300, seed=0):
    """``[{name, key, source, x, y, switches, calib_mixture, calib_first}]`` of the streams
    (each drawn with its own generator, so ``only`` does not change the others)."""
    x, y = splits["test"]
    xc, yc = splits["calib"]
    out = []
    if "class" in only:
        out.append(class_switch(splits, Source(default_network(), "digits MLP",
                                               "classification"),
                                np.random.default_rng([seed, 0]), "class"))
    if {"camera", "gradual"} & set(only):
        net = camera_network(splits, seed)
        mixture, first = every_camera(xc, yc), (camera(xc, 0), yc)

        def shots(cams, rng, back=False):
            """One test image per entry of ``cams``, each segment a fresh permutation (with
            ``back`` the last segment shows the first one's images again)."""
            segs = [rng.permutation(len(y))[:segment] for _ in range(-(-len(cams) // segment))]
            if back:
                segs[-1] = segs[0]
            idx = np.concatenate(segs)[:len(cams)]
            xs = np.concatenate([camera(x[i:i + 1], k) for i, k in zip(idx, cams)])
            return xs, y[idx]
        if "camera" in only:
            cams = np.repeat([0, 1, 2, 3, 0], segment)
            out.append({"name": "camera switch 0 / 1 / 2 / 3 / 0", "key": "camera",
                        "source": net,
                        **dict(zip("xy", shots(cams, np.random.default_rng([seed, 1]),
                                               back=True))),
                        "switches": [segment * k for k in range(1, 5)],
                        "calib_mixture": mixture, "calib_first": first})
        if "gradual" in only:
            rng = np.random.default_rng([seed, 2])
            ramp = rng.random(segment) < np.linspace(0, 1, segment)
            cams = np.concatenate([np.zeros(segment, int), ramp.astype(int),
                                   np.ones(segment, int)])
            out.append({"name": "gradual camera drift 0 -> 1", "key": "gradual",
                        "source": net, **dict(zip("xy", shots(cams, rng))),
                        "switches": [segment + segment // 2],
                        "calib_mixture": mixture, "calib_first": first})
    return out + held_out_streams(only, segment, seed)


def per_sample_bits(figures, n):
    """Bits per weight of the layout that served each of ``n`` samples of a dynamic run."""
    bits = np.empty(n)
    starts = figures["layout_from_sample"] + [n]
    for b, s, e in zip(figures["layout_bits_per_weight"], starts, starts[1:]):
        bits[s:e] = b
    return bits


def method_run(cfg, stream, method, budget, backend="model", figures=None):
    """``(correct per sample, bits per weight per sample)`` of one method on one stream; a
    dynamic run's figures (``Design.run``'s) into the dict ``figures`` if one is given."""
    x, y = stream["x"], stream["y"]
    calib = stream["calib_first" if method == "static_first_task" else "calib_mixture"]
    if method == "dynamic_destructive":   # masked layers need the masters kept: none then
        cfg = cfg.replace(reversible=False, input_masks=False)
    design = Design(cfg, stream["source"], calib[0], calib[1], "classification")
    labels = design.labels(y)
    if method == "int4":
        from pse_hdl.model.engine import dense_activations
        from pse_hdl.model.quant import uniform_weights
        w = uniform_weights([q.master for q in design.qnet.layers], 4, cfg.weight_bits)
        logits = dense_activations(design.qnet.layers, design.quantize(x), cfg, w)[-1]
        return np.argmax(logits, axis=1) == labels, np.full(len(y), 4.0)
    design.allocate(budget, "global")  # the mode its figures were measured in
    if method.startswith("static"):
        logits = design.engine().infer(design.quantize(x))[-1]
        return (np.argmax(logits, axis=1) == labels,
                np.full(len(y), design.report()["bits_per_weight"]))
    logits, run_figures = design.run(x, backend)
    if figures is not None:
        figures.update(run_figures)
    return np.argmax(logits, axis=1) == labels, per_sample_bits(run_figures, len(y))


def recovery(correct, s, pre=AFTER):
    """Samples after switch s until the accuracy of the next ROLL samples is back within a point
    of the accuracy in the ``pre`` samples before s (None: not within the stream)."""
    level = correct[max(0, s - pre):s].mean()
    csum = np.concatenate([[0], np.cumsum(correct)])
    for t in range(s + ROLL, len(correct) + 1):
        if (csum[t] - csum[t - ROLL]) / ROLL >= level - 0.01:
            return t - ROLL - s
    return None


def score(correct, bits, switches, returns=False):
    """The figures of one method's run: after-switch accuracy, recovery, windows, bits; with
    ``returns`` (the last segment shows the first segment's images again, on the first task)
    the accuracy on the second half of the last segment minus on the second half of the first,
    the same images, both settled (0: the first task is served as well as before)."""
    r = [recovery(correct, s) for s in switches]
    n = switches[0]
    return {"after_switch": float(np.mean([correct[s:s + AFTER].mean() for s in switches])),
            "recovery_samples": None if None in r else float(np.mean(r)),
            "return_to_first": float(correct[switches[-1] + n // 2:].mean()
                                     - correct[n // 2:n].mean()) if returns else None,
            "windows": [float(correct[i:i + WINDOW].mean())
                        for i in range(0, len(correct), WINDOW)],
            "bits_windows": [float(bits[i:i + WINDOW].mean())
                             for i in range(0, len(bits), WINDOW)],
            "bits_per_weight": float(bits.mean())}


def measure(cfg, budget, only=STREAMS, segment=300, backend="model", seed=0):
    splits = digits_splits(0)
    out = []
    for st in streams(splits, only, segment, seed):
        back = st["key"] != "gradual"
        runs = {m: score(*method_run(cfg, st, m, budget), st["switches"], back)
                for m in METHODS}
        r = {"name": st["name"], "samples": int(len(st["y"])), "switches": st["switches"],
             "allocation_period": cfg.period, "budget": budget,
             **{k: {m: runs[m][k] for m in METHODS}
                for k in ("bits_per_weight", "after_switch", "recovery_samples",
                          "return_to_first", "windows", "bits_windows")}}
        if backend == "rtl" and st["key"] == "camera":
            fig = {}
            rtl = score(*method_run(cfg, st, "dynamic", budget, "rtl", fig), st["switches"],
                        back)
            r["rtl"] = {"method": "dynamic", "bit_exact": True,
                        "same_figures": rtl == runs["dynamic"],
                        **{k: rtl[k] for k in ("bits_per_weight", "after_switch",
                                               "recovery_samples", "return_to_first")},
                        **engine_cycles(fig)}
        out.append(r)
    return out


def engine_cycles(fig):
    """What the engine's counters say a sample costs (``bench/engine.py``'s figures): INFER
    alone, and with the waits for the allocation jobs (ALLOCATE, HISTOGRAM, REZONE) and the
    snapshots amortised over the samples: the price of the allocation period."""
    return {"infer_cycles_per_sample": fig["engine_cycles_per_sample"],
            "amortised_cycles_per_sample": fig["amortised_cycles_per_sample"],
            "dense16_cycles_per_sample": fig["dense16_cycles_per_sample"],
            "swap_delay": fig["swap_delay"]}


def gain_over_static(r):
    """The dynamic run's accuracy after the switches less the better static layout's."""
    a = r["after_switch"]
    return a["dynamic"] - max(a["static_mixture"], a["static_first_task"])


def measure_seeds(cfg, budget, only, segment, seeds, first):
    """``first`` (seed 0's results) with each stream's ``"seeds"`` summary over seeds 0 to
    ``seeds - 1`` (the model backend for the seeds after the first)."""
    runs = [first] + [measure(cfg, budget, only, segment, seed=k) for k in range(1, seeds)]
    for i, r in enumerate(first):
        per = [run[i] for run in runs]
        gains = [gain_over_static(p) for p in per]
        r["seeds"] = {"gain_over_static": {"per_seed": gains, "mean": float(np.mean(gains)),
                                           "min": float(min(gains))},
                      "after_switch": [p["after_switch"] for p in per],
                      "recovery_samples": [p["recovery_samples"] for p in per]}
    return first


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(results), 2, figsize=(12, 3.0 * len(results)), squeeze=False,
                             gridspec_kw={"width_ratios": (3, 1.2)})
    for (ax, bx), r in zip(axes, results):
        t = np.arange(len(r["windows"]["dynamic"])) * WINDOW + WINDOW / 2
        for m in METHODS:
            style = {"marker": "."} if m.startswith("dynamic") else {}
            ax.plot(t, 100 * np.array(r["windows"][m]), label=m, **style)
            if m != "int4":
                bx.plot(t, r["bits_windows"][m], label=m, **style)
        for s in r["switches"]:
            ax.axvline(s, color="#444", ls=":", lw=1)
            bx.axvline(s, color="#444", ls=":", lw=1)
        ax.set_title(f"{r['name']} (budget {r['budget']:g} bits/weight, allocation every "
                     f"{r['allocation_period']})", fontsize=9)
        ax.set_ylabel(f"accuracy per {WINDOW} (%)")
        bx.set_ylabel("bits/weight")
    axes[-1, 0].set_xlabel("sample")
    axes[-1, 1].set_xlabel("sample")
    axes[0, 0].legend(fontsize=7, ncol=3)
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plot", default="bench/drift.png")
    ap.add_argument("--budget", type=float, default=2.5,
                    help="bits per weight, metadata included (default 2.5)")
    ap.add_argument("--config")
    ap.add_argument("--only", nargs="+", choices=STREAMS + HELD_OUT,
                    help="streams (default the three of the issue: class, camera, gradual); "
                         "class_deep and sensor run on networks held out of the development")
    ap.add_argument("--segment", type=int, default=300,
                    help="samples per camera in the camera streams (100-540, default 300)")
    ap.add_argument("--period", type=int, default=8,
                    help="allocation period (and warm-up) in samples (default 8; the "
                         "configuration's own with --period 0)")
    ap.add_argument("--backend", choices=("model", "rtl"), default="model")
    ap.add_argument("--seeds", type=int, default=1,
                    help="measure with the sample orders (and camera networks) of seeds 0 to "
                         "N-1 and report the spread of the dynamic run's gain (default 1)")
    args = ap.parse_args(argv)
    args.only = args.only or list(STREAMS)
    if args.plot and not Path(args.plot).resolve().parent.is_dir():
        ap.error(f"--plot: the directory of {args.plot!r} does not exist")
    if not 100 <= args.segment <= 540:
        ap.error(f"--segment must be between 100 and 540 samples, not {args.segment}")
    if not 1 <= args.seeds <= 100:
        ap.error(f"--seeds must be between 1 and 100, not {args.seeds}")
    try:
        cfg = from_arg(args.config)
        if args.period:
            cfg = cfg.replace(period=args.period, warmup=args.period,
                              swap_delay=min(cfg.swap_delay, args.period))
        results = measure(cfg, args.budget, args.only, args.segment, args.backend)
        if args.seeds > 1:
            results = measure_seeds(cfg, args.budget, args.only, args.segment, args.seeds,
                                    results)
    except BudgetError as e:               # a budget no layout reaches, in this bench's flag
        ap.error(f"no layout reaches --budget {e.target_bits:g} (metadata and descriptors "
                 f"included): the smallest costs {e.least:.2f} bits per weight; give at "
                 f"least that")
    except UserError as e:                 # a wrong --config
        ap.error(str(e))
    if args.plot:
        plot(results, args.plot)
    if args.json:
        print(to_json({"streams": [{k: v for k, v in r.items()
                                    if k not in ("windows", "bits_windows")}
                                   for r in results]}, indent=2))
        return 0
    for r in results:
        print(f"\n{r['name']}: {r['samples']} samples, switches at {r['switches']}, "
              f"allocation every {r['allocation_period']}, budget {r['budget']:g}")
        print(f"  {'method':<22} {'bits/weight':>11} {'after switch':>13} {'recovery':>9} "
              f"{'back to first':>14}")
        rows = [(m, r["bits_per_weight"][m], r["after_switch"][m], r["recovery_samples"][m],
                 r["return_to_first"][m]) for m in METHODS]
        if "rtl" in r:
            rows.append(("dynamic, RTL", *(r["rtl"][k] for k in (
                "bits_per_weight", "after_switch", "recovery_samples", "return_to_first"))))
        for m, bits, after, rec, back in rows:
            print(f"  {m:<22} {bits:>11.3f} {100 * after:>12.2f}% "
                  f"{'-' if rec is None else f'{rec:.0f}':>9} "
                  f"{'-' if back is None else f'{100 * back:+.2f}':>14}")
        if "rtl" in r:
            c = r["rtl"]
            print(f"  engine cycles a sample (RTL, swap_delay {c['swap_delay']}): "
                  f"{c['infer_cycles_per_sample']:.0f} INFER, "
                  f"{c['amortised_cycles_per_sample']:.0f} with the allocation amortised "
                  f"(dense 16-bit: {c['dense16_cycles_per_sample']:.0f})")
        if "seeds" in r:
            g = r["seeds"]["gain_over_static"]
            print(f"  dynamic less the better static layout after the switches, seeds 0-"
                  f"{len(g['per_seed']) - 1}: "
                  + " ".join(f"{100 * v:+.2f}" for v in g["per_seed"])
                  + f" (mean {100 * g['mean']:+.2f}, least {100 * g['min']:+.2f} points)")
    if args.plot:
        print(f"\nfigure written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
