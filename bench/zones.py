"""Zoned memory measured in RTL simulation (Verilator): fetch cycles, footprint, re-zoning time.

    python bench/zones.py [--json] [--config PRESET]

Networks: the digits MLP with the layout the PSE allocated (`pse demo`'s final layout) and
random networks of the same shapes (256x64, 10x256) at 50 % and 90 % sparsity with mixed
precisions. For each: the footprint the RTL reports after re-zoning (zone words x word bits +
metadata bits + row and split descriptors + layer descriptors) against the golden model's
`footprint_bits`, the cycles of the re-zoning, and the cycles of every layer's fetch (from the
FETCH command to the last transfer, no backpressure) against the ideal ceil(surviving weights /
fetch ports). Then re-zoning cycles of single layers of growing size.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pse_hdl.config import ConfigError, preset                  # noqa: E402
from pse_hdl.model.zones import footprint_bits                # noqa: E402


def digits_network(cfg):
    from pse_hdl.workflow import run_demo
    from sim.zones_ref import Network
    engine = run_demo(cfg, mode="global").engine  # the layout its figures were first measured on
    return Network(cfg, [np.asarray(m) for m in engine.master],
                   [np.asarray(c) for c in engine.codes],
                   [list(im.shifts) for im in engine.images])


def random_net(cfg, sparsity, shapes, seed=0):
    from sim.zones_ref import random_network
    return random_network(cfg, np.random.default_rng(seed), shapes, sparsity=sparsity,
                          mix=[0.6, 0.3, 0.1][:len(cfg.precisions)]
                          if len(cfg.precisions) == 3 else None)


def measure(cfg, net):
    """Re-zone and fetch ``net`` in Verilator; returns the testbench's JSON."""
    from sim.runner import measure as run
    data = {"count": len(net.images)}
    for i, (m, c, s) in enumerate(zip(net.masters, net.codes, net.shifts)):
        data.update({f"master{i}": m, f"codes{i}": c, f"shifts{i}": np.asarray(s)})
    return run("zones", cfg, "sim.tb_zones", "measure", data)


def rtl_footprint(cfg, r):
    return (sum(r["zone_words"]) * cfg.zone_word_bits + r["meta_bits"]
            + r["row_descs"] * cfg.row_desc_bits + r["split_descs"] * cfg.split_desc_bits
            + r["layers"] * cfg.layer_desc_bits)


def evaluate(cfg, name, net):
    r = measure(cfg, net)
    model = footprint_bits(net.images, cfg)
    layers = []
    for l, im in enumerate(net.images):
        survivors = int(sum(im.counts))
        ideal = -(-survivors // cfg.fetch_ports)
        layers.append({"layer": l, "shape": [im.rows, im.cols], "survivors": survivors,
                       "fetch_cycles": r["fetch_cycles"][l], "fetch_ideal_cycles": ideal})
    return {"network": name, "weights": model["weights"],
            "footprint_bits_rtl": rtl_footprint(cfg, r), "footprint_bits_model": model["total"],
            "bits_per_weight": rtl_footprint(cfg, r) / model["weights"],
            "rezone_cycles": r["rezone_cycles"], "layers": layers,
            "fetch_cycles": sum(x["fetch_cycles"] for x in layers),
            "fetch_ideal_cycles": sum(x["fetch_ideal_cycles"] for x in layers)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--config", default="default", help="preset (default: default)")
    args = ap.parse_args(argv)
    try:
        cfg = preset(args.config)
    except ConfigError as e:
        ap.error(str(e))
    say = (lambda *a: None) if args.json else print
    nets = [("digits (PSE layout)", digits_network(cfg))]
    shapes = [(im.rows, im.cols) for im in nets[0][1].images]
    for sp in (0.5, 0.9):
        nets.append((f"random {int(sp * 100)}% pruned", random_net(cfg, sp, shapes)))
    results = []
    say(f"{'network':<22} {'layer':<10} {'survivors':>9} {'fetch':>7} {'ideal':>7} "
        f"{'over':>6}")
    for name, net in nets:
        res = evaluate(cfg, name, net)
        results.append(res)
        for x in res["layers"]:
            say(f"{name:<22} {'x'.join(map(str, x['shape'])):<10} {x['survivors']:>9} "
                f"{x['fetch_cycles']:>7} {x['fetch_ideal_cycles']:>7} "
                f"{x['fetch_cycles'] / max(1, x['fetch_ideal_cycles']) - 1:>+6.1%}")
        say(f"{name:<22} {'network':<10} {'':>9} {res['fetch_cycles']:>7} "
            f"{res['fetch_ideal_cycles']:>7} "
            f"{res['fetch_cycles'] / max(1, res['fetch_ideal_cycles']) - 1:>+6.1%}")
    say(f"\n{'network':<22} {'footprint RTL':>14} {'model':>10} {'bits/weight':>12} "
        f"{'re-zoning cycles':>17} {'weights':>8}")
    for res in results:
        say(f"{res['network']:<22} {res['footprint_bits_rtl']:>14} "
            f"{res['footprint_bits_model']:>10} {res['bits_per_weight']:>12.3f} "
            f"{res['rezone_cycles']:>17} {res['weights']:>8}")
    sweep = []
    say(f"\n{'re-zoning one layer':<22} {'weights':>8} {'cycles':>8} {'cycles/weight':>14}")
    for rows, cols in ((16, 16), (64, 64), (128, 128), (256, 128)):
        if rows > cfg.max_rows or cols > cfg.max_cols or rows * cols > cfg.master_depth:
            continue
        r = evaluate(cfg, f"{rows}x{cols}", random_net(cfg, 0.5, [(rows, cols)], seed=1))
        sweep.append({"shape": [rows, cols], "weights": rows * cols,
                      "rezone_cycles": r["rezone_cycles"]})
        say(f"{'':<22} {rows * cols:>8} {r['rezone_cycles']:>8} "
            f"{r['rezone_cycles'] / (rows * cols):>14.3f}")
    digits = results[0]
    summary = {"config": args.config, "fetch_ports": cfg.fetch_ports,
               "fetch_cycles": digits["fetch_cycles"],
               "fetch_ideal_cycles": digits["fetch_ideal_cycles"],
               "footprint_bits_rtl": digits["footprint_bits_rtl"],
               "footprint_bits_model": digits["footprint_bits_model"],
               "bits_per_weight": digits["bits_per_weight"],
               "rezone_cycles": digits["rezone_cycles"], "networks": results,
               "rezone_sweep": sweep}
    if args.json:
        print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
