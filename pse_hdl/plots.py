"""Figures of ``pse demo`` and the benches (matplotlib, written as PNG files)."""

import numpy as np

from .files import savefig_atomic

__all__ = ["demo_figure", "frontier_figure", "suite_figure", "sweep_figure"]


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def demo_figure(demo, path):
    """Left: importance of every weight (real units) with the class thresholds. Right: accuracy
    against bits per weight for the calibration candidates, and the run on the test split."""
    plt = _plt()
    engine, table, result = demo.engine, demo.table, demo.figures
    cfg = engine.cfg
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    imps, lines = [], []
    for l, q in enumerate(engine.layers):
        scale = 2.0 ** -(q.fw + q.fx + cfg.ema_frac_bits)
        imps.append(engine.importance(l).ravel() * scale)
        lines.append([t * scale for t in engine.thresholds[l]])
    imp = np.concatenate(imps)
    pos = imp[imp > 0]
    bins = np.logspace(np.log10(pos.min()), np.log10(pos.max()), 80) if pos.size else 10
    ax1.hist(pos, bins=bins, color="#4878a8")
    ax1.set_xscale("log")
    names = ["prune"] + [f">{b}" for b in cfg.precisions[1:]]
    for t, name in zip(lines[0], names):
        if t > 0:
            ax1.axvline(t, color="#c44", ls="--", lw=1)
            ax1.text(t, ax1.get_ylim()[1] * 0.9, name, rotation=90, va="top", ha="right",
                     fontsize=8, color="#c44")
    ax1.set_xlabel("importance |w|·EMA(|x|) (real units, all layers)")
    ax1.set_ylabel("weights")
    ax1.set_title(f"importance histogram ({int((imp == 0).sum())} weights at 0 not shown)")
    b = [r["bits_per_weight"] for r in table]
    a = [100 * r["accuracy"] for r in table]
    ax2.scatter(b, a, s=12, color="#888", label="calibration candidates (calib split)")
    ax2.scatter([result["bits_per_weight"]], [100 * result["pse_accuracy"]], color="#c44",
                marker="*", s=160, label="PSE dynamic run (test split)")
    ax2.axhline(100 * result["float_accuracy"], color="#4878a8", ls=":", label="float (test)")
    ax2.set_xlabel("bits per weight (values + metadata + descriptors)")
    ax2.set_ylabel("accuracy (%)")
    ax2.legend(fontsize=8, loc="lower right")
    ax2.set_title("accuracy against bits per weight")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)


def frontier_figure(rows, path, float_accuracy):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = sorted((r["bits_per_weight"], 100 * r["accuracy"]) for r in rows
                     if r["method"] == method)
        ax.plot(*zip(*pts), marker="o", label=method)
    ax.axhline(100 * float_accuracy - 0.5, color="#c44", ls=":", lw=1, label="float - 0.5 pt")
    ax.axvline(4.5, color="#888", ls=":", lw=1)
    ax.set_xlabel("bits per weight (metadata included)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("digits MLP: accuracy against storage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)


def suite_figure(networks, path):
    """``bench/suite.py``: test accuracy against bits per weight, one panel per network, PSE
    static and dynamic as lines, the baselines as markers."""
    plt = _plt()
    cols = 5
    rows = -(-len(networks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
    for ax, r in zip(axes.ravel(), networks):
        for key, style in (("pse_dynamic", "o-"), ("pse_static", "s--")):
            pts = [(p["bits_per_weight"], 100 * p["accuracy"]) for p in r[key]
                   if p["accuracy"] is not None]
            if pts:
                ax.plot(*zip(*sorted(pts)), style, ms=4, label=key.replace("_", " "))
        for key, marker in (("int4", "v"), ("int4_row", "^"), ("int8", "D"),
                            ("prune_int8", "x")):
            ax.scatter([r[key]["bits_per_weight"]], [100 * r[key]["accuracy"]], marker=marker,
                       label=key)
        ax.axhline(100 * r["float_accuracy"], color="#888", ls=":", lw=1, label="float")
        ax.set_title(f"{r['name']} ({r['weights']} w)", fontsize=9)
        ax.set_xlabel("bits/weight (all metadata)", fontsize=8)
        ax.set_ylabel("test accuracy (%)", fontsize=8)
        ax.set_xlim(2.5, 8.5)
    for ax in axes.ravel()[len(networks):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=90)
    plt.close(fig)


def sweep_figure(report, path):
    """Accuracy against bits per weight of every point of a sweep, the Pareto front marked;
    the marker size follows the MAC cycles (or engine cycles) per sample where measured."""
    plt = _plt()
    rows = report["points"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    front = set(report["pareto"])
    for i, r in enumerate(rows):
        m = r["metrics"]
        if r["error"] or "accuracy" not in m:
            continue
        size = 20 + 200 * m.get("mac_cycle_ratio", 0.1)
        label = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        ax.scatter(m["bits_per_weight"], 100 * m["accuracy"], s=size,
                   color="#c44" if i in front else "#888", alpha=0.8,
                   edgecolors="k" if i in front else "none")
        if i in front:
            ax.annotate(f"{label}, {r['budget']} b", (m["bits_per_weight"], 100 * m["accuracy"]),
                        fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("bits per weight (metadata included)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"sweep {report['name']}: red = Pareto front (size: MAC cycles)")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)
