"""Resources and Fmax of every block (and the largest assembly) on iCE40 UP5K and ECP5-85F.

    python bench/synth.py [--json] [--blocks pa,sm,...]

Runs the `pse synth` flow (yosys + nextpnr from YoWASP, constraints from pse_hdl/synth/constraints/) for:
the `default` preset on both devices, the `tiny` preset (4 lanes) on the iCE40 UP5K at its 30 MHz
target, and the `wide` preset (16 lanes) on the ECP5-85F at its 100 MHz target. Figures include
the synthesis harness (one flip-flop per input bit of the block, an XOR fold of its outputs):
the column `harness FFs` gives its share of the flip-flops.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pse_hdl.config import preset                   # noqa: E402
from pse_hdl.rtl import BLOCKS, build               # noqa: E402
from pse_hdl.synth.flow import harness_overhead, synthesize  # noqa: E402

RUNS = [("default", "icebreaker"), ("default", "ulx3s"), ("tiny", "icebreaker"),
        ("wide", "ulx3s")]
# The literal (per-weight) RIC is measured against the factored one on the tiny preset: its
# 128 x 128 states already need 512 kbit; the default preset's 2 Mbit fits neither device well.
# The zoned memory is measured here on the ECP5 with the tiny preset's short zones; its figures
# at the default preset (one copy of every memory, shared by the fetch walkers) are in
# docs/SYNTHESIS.md.
SPECIAL = {"ric_literal": [("tiny", "icebreaker"), ("tiny", "ulx3s")],
           "ric": RUNS + [("tiny", "ulx3s")],
           "zones": [("tiny", "ulx3s")]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--blocks", default=",".join(BLOCKS))
    args = ap.parse_args(argv)
    rows = []
    for name in args.blocks.split(","):
        for pname, board in SPECIAL.get(name, RUNS):
            cfg = preset(pname)
            block = build(name, cfg)
            hff, _ = harness_overhead(block)
            try:
                r = synthesize(block, board)
            except RuntimeError as e:
                r = {"device": board, "error": str(e)}
            rows.append({"block": name, "preset": pname, "harness_ffs": hff, **r})
            if not args.json:
                print(_line(rows[-1]), flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))


def _line(r):
    if "error" in r:
        return f"{r['block']:<12} {r['preset']:<8} {r['device']:<10} {r['error']}"
    return (f"{r['block']:<12} {r['preset']:<8} {r['device']:<10} LUT {r['luts']:>6} "
            f"({r['lut_util_pct']:>5}%)  FF {r['ffs']:>6} (harness {r['harness_ffs']:>4})  "
            f"BRAM {r['brams']:>3}  DSP {r['dsps']:>2}  Fmax {r['fmax_mhz']:>7} MHz "
            f"(target {r['target_mhz']:g}: {'met' if r['met'] else 'MISSED'})")


if __name__ == "__main__":
    main()
