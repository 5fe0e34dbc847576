"""The engine end to end: the digits test split through its Verilog, cycles and simulation speed.

    python bench/engine.py [--json] [--samples N] [--config NAME|FILE] [--keep-cache]

Runs ``pse demo --backend rtl`` (the fast Verilated model; every sample checked bit for bit
against the golden model) and reports, measured in the same run:

* engine cycles per sample for inference alone (the INFER command, from the engine's counters)
  and with the allocation, recalibration and re-zoning passes amortised over the samples,
  against the ideal ``sum(ceil(b/4)) / lanes`` and the same array dense at 16 bits, and where
  the rest goes;
* build seconds of the model, cold (an empty cache) and cached, run seconds, simulated cycles,
  cycles per second, and the golden model's time on the same samples.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pse_hdl.config import from_arg                           # noqa: E402


def measure(cfg, samples=None, keep_cache=False):
    from pse_hdl.host import verilated
    from pse_hdl.workflow import run_demo
    with tempfile.TemporaryDirectory(prefix="pse-engine-bench-") as tmp:
        if not keep_cache:                     # a cold build: an empty cache of our own
            os.environ["PSE_FAST_BUILD"] = tmp
        _, cold = verilated.build(cfg)
        start = time.monotonic()
        verilated.build(cfg)
        cached = time.monotonic() - start
        d = run_demo(cfg, backend="rtl", samples=samples).figures
    n = d["samples"]
    infer = d["engine_cycles_per_sample"]
    alloc, rezone = d["allocation_cycles"] / n, d["rezone_cycles"] / n
    ideal = d["ideal_cycles_per_sample"]
    return {
        "samples": n, "bit_exact": d["bit_exact"], "pse_accuracy": d["pse_accuracy"],
        "bits_per_weight": d["bits_per_weight"], "allocations": d["allocations"],
        "inference_cycles_per_sample": infer,
        "amortised_cycles_per_sample": infer + alloc + rezone,
        "ideal_cycles_per_sample": ideal,
        "mac_cycles_per_sample": d["mac_cycles_per_sample"],
        "dense16_cycles_per_sample": d["dense16_cycles_per_sample"],
        "allocation_cycles_per_sample": alloc, "rezone_cycles_per_sample": rezone,
        "layers": len(d["layers"]),
        "build_s_cold": cold, "build_s_cached": cached, "run_s": d["rtl_run_s"],
        "sim_cycles": d["sim_cycles"], "cycles_per_s": d["cycles_per_s"],
        "model_run_s": d["model_run_s"],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--samples", type=int, help="the first N test samples (default all 540)")
    ap.add_argument("--config")
    ap.add_argument("--keep-cache", action="store_true",
                    help="use the user's model cache (no cold build measurement)")
    args = ap.parse_args(argv)
    cfg = from_arg(args.config)
    r = measure(cfg, args.samples, args.keep_cache)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    ideal, infer = r["ideal_cycles_per_sample"], r["inference_cycles_per_sample"]

    def pct(x):
        return f"{100 * (x / ideal - 1):+.1f} %"
    print(f"engine, digits MLP, {r['samples']} test samples through the Verilog, bit-exact with "
          f"the golden model: {'yes' if r['bit_exact'] else 'NO'}; accuracy "
          f"{100 * r['pse_accuracy']:.2f} %, {r['bits_per_weight']:.3f} bits/weight, "
          f"{r['allocations']} allocations")
    print(f"\n{'cycles per sample':<52} {'cycles':>9} {'vs ideal':>9}")
    rows = [
        ("ideal: sum(ceil(b/4)) / lanes", ideal),
        ("busiest MAC lane (the schedule)", r["mac_cycles_per_sample"]),
        ("INFER, command to last logit", infer),
        ("  of which layer start and drain "
         f"({r['layers']} layers)", infer - r["mac_cycles_per_sample"]),
        ("ALLOCATE + HISTOGRAM passes, amortised", r["allocation_cycles_per_sample"]),
        ("REZONE, amortised", r["rezone_cycles_per_sample"]),
        ("inference + allocation + re-zoning", r["amortised_cycles_per_sample"]),
        ("dense 16-bit on the same lanes", r["dense16_cycles_per_sample"]),
    ]
    for name, v in rows:
        vs = pct(v) if not name.startswith(("  ", "ALLOC", "REZONE")) else ""
        print(f"{name:<52} {v:>9.0f} {vs:>9}")
    print(f"\n{'simulation':<52} {'value':>9}")
    for name, v in [("model build, cold (s)", r["build_s_cold"]),
                    ("model build, cached (s)", r["build_s_cached"]),
                    ("RTL run (s)", r["run_s"]), ("simulated cycles", r["sim_cycles"]),
                    ("cycles per second", r["cycles_per_s"]),
                    ("golden model, same samples (s)", r["model_run_s"])]:
        print(f"{name:<52} {v:>9.3g}" if isinstance(v, float) else f"{name:<52} {v:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
