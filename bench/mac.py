"""MAC array cycles measured in RTL simulation (Verilator), against the cycle model's ideal.

    python bench/mac.py [--json] [--no-synth]

Layers: the digits MLP with the code maps the PSE allocated (`pse demo`'s final layout, on a
test sample), random 256x64 layers at 0 %, 50 % and 90 % sparsity with mixed precisions, and
all-4-bit and all-16-bit maps. Each is also run dense at 16 bits on the same array. Ideal =
ceil(sum of per-weight costs / lanes). Then LUT/FF/DSP and Fmax of the array for 1, 4 and 16
lanes on iCE40 UP5K and ECP5-85F (`pse synth` flow).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pse_hdl.config import PSEConfig                          # noqa: E402
from pse_hdl.model.layer import cycle_model                   # noqa: E402
from pse_hdl.model.pa import code_bits_of                     # noqa: E402
from pse_hdl.model.zones import unpack_layer                  # noqa: E402
from pse_hdl.rtl import build                                 # noqa: E402
from pse_hdl.files import to_json                             # noqa: E402


def digits_layers(cfg):
    from pse_hdl.workflow import run_demo
    r = run_demo(cfg, mode="global")  # the layout its figures were first measured on
    engine, p = r.engine, r.prepared
    acts = engine.infer(p.xq["test"][:1])
    out = []
    for l, (q, image) in enumerate(zip(engine.layers, engine.images)):
        codes, values, _ = unpack_layer(image, cfg)
        out.append((f"digits layer {l} ({q.shape[0]}x{q.shape[1]})", codes, values,
                    image.shifts, q.bias, acts[l][0], q.relu, q.shift))
    return out


def random_layer(cfg, name, sparsity, seed, only=None, rows=256, cols=64):
    rng = np.random.default_rng(seed)
    n = len(cfg.precisions)
    codes = rng.choice(np.arange(1, n + 1), (rows, cols), p=[0.6, 0.3, 0.1][:n] if n == 3
                       else None) if only is None else np.full((rows, cols), only)
    codes[rng.random((rows, cols)) < sparsity] = 0
    bits = np.array((0,) + tuple(cfg.precisions))[codes]
    values = np.where(bits > 0, rng.integers(-32768, 32768, (rows, cols))
                      >> (16 - np.maximum(bits, 1)), 0)
    shifts = tuple(16 - b for b in cfg.precisions)
    return (name, codes, values, shifts, rng.integers(-1000, 1000, rows),
            rng.integers(0, 128, cols), True, 12)


def dense16(cfg, layer):
    name, codes, values, shifts, bias, x, relu, shift = layer
    rng = np.random.default_rng(0)
    full = rng.integers(-32768, 32768, codes.shape)
    return (name + " dense 16-bit", np.full(codes.shape, len(cfg.precisions)), full,
            (0,) * len(cfg.precisions), bias, x, relu, shift)


def measure(cfg, layers):
    """Cycles of each layer in the RTL (Verilator via cocotb)."""
    from sim.runner import measure as run
    data = {"count": len(layers)}
    for n, (_, codes, values, shifts, bias, x, relu, shift) in enumerate(layers):
        data.update({f"codes{n}": codes, f"values{n}": values, f"shifts{n}": shifts,
                     f"bias{n}": bias, f"x{n}": x, f"relu{n}": relu, f"out_shift{n}": shift})
    return run("mac", cfg, "sim.tb_mac", "measure_cycles", data)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-synth", action="store_true", help="skip the synthesis table")
    args = ap.parse_args(argv)
    cfg = PSEConfig()
    layers = digits_layers(cfg) + [
        random_layer(cfg, "random 256x64, 0 % pruned", 0.0, 1),
        random_layer(cfg, "random 256x64, 50 % pruned", 0.5, 2),
        random_layer(cfg, "random 256x64, 90 % pruned", 0.9, 3),
        random_layer(cfg, "random 256x64, all 4-bit", 0.0, 4, only=1),
        random_layer(cfg, "random 256x64, all 16-bit", 0.0, 5, only=len(cfg.precisions)),
    ]
    runs = layers + [dense16(cfg, layer) for layer in layers]
    cycles = measure(cfg, runs)
    rows = []
    for k, layer in enumerate(layers):
        model = cycle_model(code_bits_of(layer[1], cfg), cfg)
        rows.append({"layer": layer[0], "weights": int(layer[1].size),
                     "surviving": int((layer[1] > 0).sum()), "cycles": cycles[k],
                     "ideal": model["ideal"], "scheduled_model": model["scheduled"],
                     "dense16_cycles": cycles[len(layers) + k],
                     "overhead_pct": round(100 * (cycles[k] / max(model["ideal"], 1) - 1), 1),
                     "utilization_pct": round(100 * model["work"] / (cfg.lanes * cycles[k]), 1),
                     "speedup_vs_dense16": round(cycles[len(layers) + k] / cycles[k], 2)})
    digits = [r for r in rows if r["layer"].startswith("digits")]
    summary = {"lanes": cfg.lanes,
               "digits_cycles": sum(r["cycles"] for r in digits),
               "digits_ideal_cycles": sum(r["ideal"] for r in digits),
               "digits_dense16_cycles": sum(r["dense16_cycles"] for r in digits),
               "layers": rows}
    synth_rows = []
    if not args.no_synth:
        from pse_hdl.synth.flow import synthesize
        for lanes in (1, 4, 16):
            for board in ("icebreaker", "ulx3s"):
                try:
                    r = synthesize(build("mac", cfg.replace(lanes=lanes)), board)
                except RuntimeError as e:
                    r = {"device": board, "error": str(e)}
                synth_rows.append({"lanes": lanes, **r})
        summary["synthesis"] = synth_rows
    if args.json:
        print(to_json(summary, indent=2))
        return
    print(f"MAC array, {cfg.lanes} lanes, {cfg.mac_digit_bits}-bit digits; cycles measured in "
          f"Verilator")
    print(f"{'layer':<36} {'weights':>7} {'kept':>6} {'cycles':>7} {'ideal':>7} {'over':>6} "
          f"{'util':>6} {'dense16':>8} {'speedup':>7}")
    for r in rows:
        print(f"{r['layer']:<36} {r['weights']:>7} {r['surviving']:>6} {r['cycles']:>7} "
              f"{r['ideal']:>7} {r['overhead_pct']:>5}% {r['utilization_pct']:>5}% "
              f"{r['dense16_cycles']:>8} {r['speedup_vs_dense16']:>6}x")
    print(f"digits network: {summary['digits_cycles']} cycles, ideal "
          f"{summary['digits_ideal_cycles']}, dense 16-bit {summary['digits_dense16_cycles']}")
    for r in synth_rows:
        if "error" in r:
            print(f"L={r['lanes']:<3} {r['device']:<10} {r['error']}")
        else:
            print(f"L={r['lanes']:<3} {r['device']:<10} LUT {r['luts']:>6} ({r['lut_util_pct']}%) "
                  f"FF {r['ffs']:>6} BRAM {r['brams']:>3} DSP {r['dsps']:>3} "
                  f"Fmax {r['fmax_mhz']} MHz (target {r['target_mhz']:g})")


if __name__ == "__main__":
    main()
