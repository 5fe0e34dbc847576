"""What a cheaper storage format would buy: the suite's networks at 4.0 bits per weight, with
the stored layout's metadata counted as the hardware stores it and as other formats would.

    python bench/formats.py [--json] [--only NAME ...] [--budget 4.0] [--small 1024]

For every candidate of the calibration grid (static allocation, the golden model) the layout is
built once; its accuracy does not depend on how its codes are written down, only its bits per
weight do. Each format re-prices the same layouts:

- ``stored``: the engine's format (truncated unary codes, pruned = 1 bit; every layer's
  descriptors, ``fetch_ports - 1`` split descriptors each, none under ``one_port_below``);
- ``order_per_layer``: unary codes whose shortest code goes to the layer's most frequent class;
- ``small_one_port``: layers of fewer than ``--small`` weights on one fetch port (no split
  descriptors);
- ``entropy``: codes at the entropy of the layer's class shares, a lower bound of any
  per-weight code (no real code reaches it);
- ``entropy_one_port``: both of the last two;
- ``row_scales``: the stored format with a zone scale per row and class instead of per layer
  and class (each row's 4- and 8-bit weights at the power-of-two shift that suits them, a
  table of ``shift_bits`` per row and class counted): issue 14's "per-row zone scales, if they
  pay for themselves";
- ``int4_layers``: the stored format, where each layer is either per weight or plain int4
  (every weight 4-bit with the layer's scale: no codes, its split descriptors still stored),
  the calibration choosing the mix (every layer of a layout, either way, but not all int4).
  The engine now has it (uniform layers, docs/SPEC.md section 6), with all-int4 allowed too:
  ``bench/suite.py`` measures it; this column stays as the measurement that chose it.

For each format the layout the calibration split chooses within the budget (as
:func:`best_within` does: the closest to the dense network among those chance cannot tell
from it, :func:`~pse_hdl.model.calibration.rank`) is scored on the
test split, beside uniform per-tensor int4 (4.0 bits, nothing counted for its scales). The
question it answers: how much of PSE's gap to int4 is the price of the format, and how much is
the pruning that any layout under 4 bits needs.
"""

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from suite import NETWORKS, network                                          # noqa: E402

from pse_hdl.api import Design                                               # noqa: E402
from pse_hdl.config import PSEConfig                                         # noqa: E402
from pse_hdl.files import to_json                                            # noqa: E402
from pse_hdl.model import baselines                                          # noqa: E402
from pse_hdl.model.calibration import (argmax_accuracy, best_within, calibrate,  # noqa: E402
                                       closeness, share_grid)
from pse_hdl.model.engine import Engine, dense_activations                   # noqa: E402
from pse_hdl.model.quant import choose_shift, dequantize, quantize           # noqa: E402
from pse_hdl.model.zones import footprint_bits                               # noqa: E402

FORMATS = ("stored", "order_per_layer", "small_one_port", "entropy", "entropy_one_port",
           "int4_layers", "row_scales")


def _entropy_bits(codes):
    p = np.bincount(codes.ravel(), minlength=4) / codes.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) * codes.size


def _ordered_unary_bits(codes, cfg):
    counts = np.sort(np.bincount(codes.ravel(), minlength=len(cfg.precisions) + 1))[::-1]
    lengths = [min(u + 1, len(cfg.precisions)) for u in range(counts.size)]
    return int((counts * np.array(lengths)).sum())


def prices(engine, cfg, small):
    """Bits per weight of the engine's active layout in every format of :data:`FORMATS`."""
    f = engine.footprint()
    codes = engine.active_codes
    fixed = f["total"] - f["metadata"]
    one_port = sum((cfg.layer_ports(c.size) - 1) * cfg.split_desc_bits
                   for c in codes if c.size < small)
    entropy = sum(_entropy_bits(c) for c in codes)
    n = f["weights"]
    return {"stored": f["bits_per_weight"],
            "order_per_layer": (fixed + sum(_ordered_unary_bits(c, cfg) for c in codes)) / n,
            "small_one_port": (f["total"] - one_port) / n,
            "entropy": (fixed + entropy) / n,
            "entropy_one_port": (fixed + entropy - one_port) / n}


def int4_layer_mixes(engine, layers, u4, cal, test, dense, cfg):
    """Every mix of the engine's active layout with plain-int4 layers (not all int4), as rows
    for :func:`best_within`: scored on the calibration split ``cal = (xq, y)`` as
    :func:`calibrate` scores layouts (``dense``: the dense network's calibration logits), with
    the accuracy on ``test`` and the bits per weight."""
    per_layer = [footprint_bits([im], cfg)["total"] for im in engine.images]
    plain = [4 * q.master.size + cfg.layer_desc_bits
             + (cfg.layer_ports(q.master.size) - 1) * cfg.split_desc_bits for q in layers]
    n = sum(q.master.size for q in layers)
    rows = []
    for mask in itertools.product((False, True), repeat=len(layers)):
        if all(mask):
            continue
        w = [u4[l] if mask[l] else engine.weights[l] for l in range(len(layers))]
        logits = dense_activations(layers, cal[0], cfg, w)[-1]
        rows.append({"accuracy": argmax_accuracy(logits, cal[1]), **closeness(logits, dense),
                     "samples": len(cal[1]), "dense_accuracy": argmax_accuracy(dense, cal[1]),
                     "test_accuracy": argmax_accuracy(
                         dense_activations(layers, test[0], cfg, w)[-1], test[1]),
                     "bits_per_weight": sum(p if m else a for a, p, m in
                                            zip(per_layer, plain, mask)) / n,
                     "int4_layers": [l for l in range(len(layers)) if mask[l]]})
    return rows


def row_scaled(engine, layers, cal, test, dense, cfg):
    """The engine's active layout with a zone scale per row instead of per layer: each row's
    weights of a class below ``weight_bits`` quantized at the power-of-two shift that suits
    them (``choose_shift``), priced as the stored format plus a table of ``shift_bits`` per row
    and such class in every layer. One row for :func:`best_within`, scored as
    :func:`int4_layer_mixes` scores its rows."""
    w, table = [], 0
    for l, q in enumerate(layers):
        codes, m = engine.active_codes[l], engine.master[l]
        out = engine.weights[l].copy()
        for k, b in enumerate(cfg.precisions, start=1):
            if b >= cfg.weight_bits:
                continue
            table += codes.shape[0] * cfg.shift_bits
            for r in np.flatnonzero((codes == k).any(axis=1)):
                sel = codes[r] == k
                s = choose_shift(m[r][sel], b, cfg.weight_bits)
                out[r, sel] = dequantize(quantize(m[r][sel], b, s), s)
        w.append(out)
    logits = dense_activations(layers, cal[0], cfg, w)[-1]
    n = sum(q.master.size for q in layers)
    return {"accuracy": argmax_accuracy(logits, cal[1]), **closeness(logits, dense),
            "samples": len(cal[1]), "dense_accuracy": argmax_accuracy(dense, cal[1]),
            "test_accuracy": argmax_accuracy(dense_activations(layers, test[0], cfg, w)[-1],
                                             test[1]),
            "bits_per_weight": (engine.footprint()["total"] + table) / n}


def evaluate(name, cfg, budget, small):
    source, splits = network(name)
    (x_cal, y_cal), (x_test, y_test) = splits["calib"], splits["test"]
    design = Design(cfg, source, x_cal, y_cal, "classification")
    xq_test = design.quantize(x_test)
    masters = [q.master for q in design.qnet.layers]
    u4, _ = baselines.uniform(masters, 4, cfg)
    int4 = argmax_accuracy(dense_activations(design.qnet.layers, xq_test, cfg, u4)[-1], y_test)
    engine = Engine(design.qnet, cfg, allocate=False)
    xq_cal = design.quantize(x_cal)
    # Every candidate of the grid, not only those near the budget: a cheaper format admits
    # layouts the stored one prices out.
    _, table = calibrate(engine, xq_cal, y_cal, target_bits=64.0,
                         grid=share_grid(cfg), uniform_classes=())
    dense = dense_activations(design.qnet.layers, xq_cal, cfg)[-1].astype(np.float64)
    mixes, rowscaled = [], []
    for row in table:
        engine.thresholds = [list(t) for t in row["thresholds"]]
        engine.codes = [None] * len(engine.layers)
        engine.allocate()                # calibrate kept only the layouts that fit
        row["prices"] = prices(engine, cfg, small)
        row["test_accuracy"] = argmax_accuracy(engine.infer(xq_test)[-1], y_test)
        rowscaled.append({**row_scaled(engine, design.qnet.layers, (xq_cal, y_cal),
                                       (xq_test, y_test), dense, cfg), "shares": row["shares"]})
        mixes += [{**mix, "shares": row["shares"]} for mix in int4_layer_mixes(
            engine, design.qnet.layers, u4, (xq_cal, y_cal), (xq_test, y_test), dense, cfg)]
    out = {"name": name, "weights": int(sum(m.size for m in masters)),
           "test_samples": int(len(y_test)), "int4": int4, "formats": {}}
    for fmt in FORMATS:
        priced = mixes if fmt == "int4_layers" else rowscaled if fmt == "row_scales" else \
            [{**r, "bits_per_weight": r["prices"][fmt]} for r in table]
        ok = [r for r in priced if r["bits_per_weight"] <= budget]
        if not ok:
            out["formats"][fmt] = None
            continue
        best = best_within(priced, budget)
        out["formats"][fmt] = {"accuracy": best["test_accuracy"],
                               "bits_per_weight": best["bits_per_weight"],
                               "shares": list(best["shares"])}
        if fmt == "int4_layers":
            out["formats"][fmt]["int4_layers"] = best["int4_layers"]
    return out


def table(results, budget):
    head = f"{'network':<28} {'int4':>7}" + "".join(f" {f:>22}" for f in FORMATS)
    lines = [f"test accuracy % @ bits per weight, layout chosen on calibration within {budget:g}",
             head, "-" * len(head)]
    for r in results:
        cells = []
        for fmt in FORMATS:
            p = r["formats"][fmt]
            cells.append(f" {'none':>22}" if p is None else
                         f" {100 * p['accuracy']:>13.2f} @ {p['bits_per_weight']:.2f}")
        lines.append(f"{r['name']:<28} {100 * r['int4']:>7.2f}" + "".join(cells))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="networks whose name contains one of these words")
    ap.add_argument("--budget", type=float, default=4.0, help="bits per weight (default 4.0)")
    ap.add_argument("--small", type=int, default=1024,
                    help="layers of fewer weights go on one port in the *_one_port formats")
    args = ap.parse_args(argv)
    if not 0 < args.budget < 64:
        ap.error(f"--budget must be bits per weight between 0 and 64, not {args.budget:g}")
    if args.small < 0:
        ap.error(f"--small must be a weight count >= 0, not {args.small}")
    names = [n[0] for n in NETWORKS if not args.only or any(w in n[0] for w in args.only)]
    if not names:
        ap.error(f"--only matches no network; the names are: {', '.join(n[0] for n in NETWORKS)}")
    cfg = PSEConfig()
    results = []
    for name in names:
        results.append(evaluate(name, cfg, args.budget, args.small))
        if not args.json:
            print(f"{name}: done", file=sys.stderr, flush=True)
    if args.json:
        print(to_json({"budget": args.budget, "networks": results}, indent=1))
    else:
        print(table(results, args.budget))


if __name__ == "__main__":
    main()
