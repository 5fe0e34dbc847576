"""The engine end to end: the digits test split through its Verilog, cycles and simulation speed.

    python bench/engine.py [--json] [--samples N] [--config NAME|FILE] [--keep-cache]

Runs ``pse demo --backend rtl`` (the fast Verilated model; every sample checked bit for bit
against the golden model) and reports, measured in the same run:

* engine cycles per sample for inference alone (the INFER command, from the engine's counters)
  and with the allocation, recalibration and re-zoning amortised over the samples, against the
  ideal ``sum(ceil(b/4)) / lanes`` and the same array dense at 16 bits, and where the rest goes,
  for the engine that allocates in the background (``swap_delay = period``: the jobs overlap
  inference; the cost is the snapshot and any wait for a job at a swap) and, in the same run,
  the one that blocks (``swap_delay = 0``: every job waited for before the next sample);
* build seconds of the model, cold (an empty cache) and cached, run seconds, simulated cycles,
  cycles per second, and the golden model's time on the same samples.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pse_hdl.config import ConfigError, from_arg                # noqa: E402
from pse_hdl.files import to_json                             # noqa: E402


def run(cfg, samples):
    from pse_hdl.workflow import run_demo
    d = run_demo(cfg, mode="global", backend="rtl", samples=samples).figures  # as first measured
    n = d["samples"]
    infer = d["engine_cycles_per_sample"]
    hidden = d["swap_delay"] > 0
    return {
        "swap_delay": d["swap_delay"], "samples": n, "bit_exact": d["bit_exact"],
        "pse_accuracy": d["pse_accuracy"], "bits_per_weight": d["bits_per_weight"],
        "allocations": d["allocations"],
        "inference_cycles_per_sample": infer,
        "amortised_cycles_per_sample": d["amortised_cycles_per_sample"],
        "ideal_cycles_per_sample": d["ideal_cycles_per_sample"],
        "mac_cycles_per_sample": d["mac_cycles_per_sample"],
        "dense16_cycles_per_sample": d["dense16_cycles_per_sample"],
        "snapshot_cycles_per_sample": d["snapshot_cycles"] / n,
        "job_wait_cycles_per_sample": d["job_wait_cycles"] / n,
        "allocation_cycles_per_sample": d["allocation_cycles"] / n,
        "rezone_cycles_per_sample": d["rezone_cycles"] / n,
        "jobs_hidden": hidden,
        "wall_cycles_per_sample": d["run_cycles"] / n,
        "layers": len(d["layers"]),
        "run_s": d["rtl_run_s"], "sim_cycles": d["sim_cycles"], "cycles_per_s": d["cycles_per_s"],
        "model_run_s": d["model_run_s"],
    }


def measure(cfg, samples=None, keep_cache=False):
    """The pipelined engine (swap_delay = period: allocation jobs in the background) and, in
    the same run, the blocking one (swap_delay = 0), with the build times."""
    from pse_hdl.host import verilated
    with tempfile.TemporaryDirectory(prefix="pse-engine-bench-") as tmp:
        if not keep_cache:                     # a cold build: an empty cache of our own
            os.environ["PSE_FAST_BUILD"] = tmp
        _, cold = verilated.build(cfg)
        start = time.monotonic()
        verilated.build(cfg)
        cached = time.monotonic() - start
        out = run(cfg.replace(swap_delay=cfg.period), samples)
        out["blocking"] = run(cfg.replace(swap_delay=0), samples)
    out.update(build_s_cold=cold, build_s_cached=cached)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--samples", type=int, help="the first N test samples (default all 540)")
    ap.add_argument("--config")
    ap.add_argument("--keep-cache", action="store_true",
                    help="use the user's model cache (no cold build measurement)")
    args = ap.parse_args(argv)
    try:
        cfg = from_arg(args.config)
    except ConfigError as e:
        ap.error(str(e))
    r = measure(cfg, args.samples, args.keep_cache)
    if args.json:
        print(to_json(r, indent=2))
        return 0
    ideal = r["ideal_cycles_per_sample"]

    def pct(x):
        return f"{100 * (x / ideal - 1):+.1f} %"
    b = r["blocking"]
    print(f"engine, digits MLP, {r['samples']} test samples through the Verilog, bit-exact with "
          f"the golden model: {'yes' if r['bit_exact'] and b['bit_exact'] else 'NO'}; "
          f"{r['allocations']} allocations, every {cfg.period} samples")
    print(f"\n{'cycles per sample':<50} {'blocking':>10} {'pipelined':>10} {'vs ideal':>9}")
    print(f"{'(swap_delay)':<50} {b['swap_delay']:>10} {r['swap_delay']:>10}")
    rows = [
        ("ideal: sum(ceil(b/4)) / lanes", "ideal_cycles_per_sample", True),
        ("busiest MAC lane (the schedule)", "mac_cycles_per_sample", True),
        ("INFER, command to last logit", "inference_cycles_per_sample", True),
        ("SNAPSHOT of the EMA states", "snapshot_cycles_per_sample", False),
        ("waiting for allocation jobs at swaps", "job_wait_cycles_per_sample", False),
        ("inference + allocation, amortised", "amortised_cycles_per_sample", True),
        ("  (jobs: ALLOCATE + HISTOGRAM)", "allocation_cycles_per_sample", False),
        ("  (jobs: REZONE)", "rezone_cycles_per_sample", False),
        ("wall clock incl. host bus traffic", "wall_cycles_per_sample", False),
        ("dense 16-bit on the same lanes", "dense16_cycles_per_sample", True),
    ]
    for name, key, vs in rows:
        print(f"{name:<50} {b[key]:>10.0f} {r[key]:>10.0f} {pct(r[key]) if vs else '':>9}")
    print(f"{'accuracy (%)':<50} {100 * b['pse_accuracy']:>10.2f} {100 * r['pse_accuracy']:>10.2f}")
    print(f"{'bits per weight':<50} {b['bits_per_weight']:>10.3f} {r['bits_per_weight']:>10.3f}")
    print(f"\n{'simulation':<50} {'value':>10}")
    for name, v in [("model build, cold (s)", r["build_s_cold"]),
                    ("model build, cached (s)", r["build_s_cached"]),
                    ("RTL run, pipelined (s)", r["run_s"]), ("simulated cycles", r["sim_cycles"]),
                    ("cycles per second", r["cycles_per_s"]),
                    ("golden model, same samples (s)", r["model_run_s"])]:
        print(f"{name:<50} {v:>10.3g}" if isinstance(v, float) else f"{name:<50} {v:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
