"""Mutation testing: do the fast tests catch realistic bugs in the RTL and the golden model?

    python bench/mutation.py [--json] [--jobs N] [--only ID ...] [--list]

A curated list of mutants (below): each changes one line of ``pse_hdl/rtl`` or
``pse_hdl/model`` the way a real bug would (an off-by-one comparison, a rounding that ties the
wrong way, a counter that counts invalid cycles, a handshake that ignores a busy condition, a
formula missing a term). For each, the source tree is copied, the mutant applied to the copy, and
the focused fast tests of that file (tier 1, the golden-model tests, the formal proofs where they
are the ones that watch the rule) run on it with ``-x``; the mutant is *killed* when they fail.
The unmutated copy must pass the same tests first, and every mutant's text must occur exactly
once in its file, so a stale list fails loudly instead of reporting kills that never ran.

Mutants that cannot change any behaviour (equivalent) are listed with the reason and left out
of the rate. ``--json`` prints ``{"mutants", "equivalent", "killed", "kill_rate",
"survivors": [{"id", "file", "what"}], "seconds"}``. Not part of CI: a full run takes about ten
minutes on two cores.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPY = ("pse_hdl", "sim", "tests", "pyproject.toml")

MODEL_BLOCKS = ["tests/test_model_blocks.py"]
PA = ["tests/test_rtl_pa.py"]
CONTROL = ["tests/test_rtl_control.py"]
MAC = ["tests/test_rtl_mac.py"]
ZONES = ["tests/test_rtl_zones.py", "tests/test_rtl_zones_host.py"]
ENGINE = ["tests/test_rtl_engine.py"]
MODEL_ZONES = ["tests/test_model_zones.py"]
LAYER = ["tests/test_model_layer.py"]


def M(id, file, find, replace, what, tests, equivalent=None):
    return {"id": id, "file": file, "find": find, "replace": replace, "what": what,
            "tests": tests, "equivalent": equivalent}


MUTANTS = [
    # -- the MAC array's finishing rules --------------------------------------------------------
    M("mac-relu-minus-one", "pse_hdl/rtl/mac.py",
      "Mux(self.relu & (a_acc < 0), 0, a_acc)", "Mux(self.relu & (a_acc < -1), 0, a_acc)",
      "ReLU lets -1 through", MAC),
    M("mac-round-ties-down", "pse_hdl/rtl/mac.py",
      "m.d.sync += half.eq((Const(1, accb + 1) << self.out_shift) >> 1)",
      "m.d.sync += half.eq(((Const(1, accb + 1) << self.out_shift) >> 1) - (self.out_shift != 0))",
      "the requantizer rounds ties downward", MAC),
    M("mac-digit-sign", "pse_hdl/rtl/mac.py",
      "total = -Mux(digit[D], x << D, 0)", "total = Mux(digit[D], x << D, 0)",
      "the top digit is taken as unsigned", MAC),
    M("mac-digit-shift", "pse_hdl/rtl/mac.py",
      "m.d.sync += [d_left.eq(d_left - 1), d_val.eq(d_val << D), d_sign_digit.eq(0)]",
      "m.d.sync += [d_left.eq(d_left - 1), d_val.eq(d_val << (D - 1)), d_sign_digit.eq(0)]",
      "the next digit is taken one bit off", MAC),
    # -- PA -------------------------------------------------------------------------------------
    M("pa-equal-thresholds-refused", "pse_hdl/rtl/pa.py",
      "ordered = ordered & (staged[k - 1] <= staged[k])",
      "ordered = ordered & (staged[k - 1] < staged[k])",
      "a commit of equal thresholds is refused", PA),
    M("pa-band-not-committed", "pse_hdl/rtl/pa.py",
      "m.d.sync += self.band.eq(staged_band)", "pass",
      "the hysteresis band is never committed", PA),
    M("pa-stall-ignored", "pse_hdl/rtl/pa.py",
      "advance = ~self.o.valid | self.o.ready", "advance = Const(1)",
      "the pipeline advances under backpressure", PA),
    M("pa-classify-ge", "pse_hdl/model/pa.py",
      "code += (imp > t[k]) & (imp >= t[0])", "code += (imp >= t[k]) & (imp >= t[0])",
      "the model puts an importance equal to a threshold in the upper class",
      MODEL_BLOCKS + PA),
    M("pa-hysteresis-clamp", "pse_hdl/model/pa.py",
      "return np.clip(to_int64(prev), lo, hi)", "return np.clip(to_int64(prev), lo, hi + 1)",
      "the model's hysteresis lets a code rise one class too far", MODEL_BLOCKS + PA),
    # -- SM, RIC, histogram ---------------------------------------------------------------------
    M("sm-counts-idle", "pse_hdl/rtl/sm.py",
      "with m.If(self.i.valid & is_pruned):", "with m.If(is_pruned):",
      "the pruned counter counts cycles without a transfer", CONTROL),
    M("sm-clear-always", "pse_hdl/rtl/sm.py",
      "m.d.sync += [c_pend.eq(self.i.valid & is_pruned),",
      "m.d.sync += [c_pend.eq(self.i.valid),",
      "destructive mode clears every master, not only the pruned ones", CONTROL),
    M("ric-ema-truncates", "pse_hdl/rtl/ric.py",
      "new.eq(u4[\"old\"] + ((u4_prod + (1 << (K - 1))) >> K))",
      "new.eq(u4[\"old\"] + (u4_prod >> K))",
      "the EMA update truncates instead of rounding", CONTROL),
    M("ric-snapshot-truncates", "pse_hdl/rtl/ric.py",
      "rd_w.data + ((step + (1 << (sh - 1))) >> sh)", "rd_w.data + (step >> sh)",
      "the snapshot blend truncates instead of rounding", CONTROL),
    M("ric-samples-every-x", "pse_hdl/rtl/ric.py",
      "            with m.If(x.last):\n                m.d.sync += self.samples.eq(self.samples + 1)",
      "            with m.If(1):\n                m.d.sync += self.samples.eq(self.samples + 1)",
      "the sample counter counts activations", CONTROL),
    M("ric-importance-halved", "pse_hdl/rtl/ric.py",
      "p2_state if self._literal else p2_abs * p2_state",
      "p2_state if self._literal else (p2_abs * p2_state) >> 1",
      "the factored importance loses a bit", CONTROL),
    M("ric-model-ema-rate", "pse_hdl/model/ric.py",
      "return state + rshift_round(cfg.ema_num * (to_int64(target) - state), cfg.ema_rate_bits)",
      "return state + rshift_round(cfg.ema_num * (to_int64(target) - state), "
      "cfg.ema_rate_bits + 1)",
      "the model's EMA moves at half the rate", MODEL_BLOCKS + CONTROL),
    M("hist-mantissa", "pse_hdl/rtl/histogram.py",
      "m.d.comb += mant.eq((a_value << S) >> a_lead)",
      "m.d.comb += mant.eq((a_value << S) >> (a_lead + 1))",
      "the histogram's sub-bin mantissa is off by a bit", CONTROL),
    M("hist-clamp", "pse_hdl/rtl/histogram.py",
      "bin_.eq(Mux(b1_key > bins - 1, bins - 1, b1_key))",
      "bin_.eq(Mux(b1_key > bins - 2, bins - 2, b1_key))",
      "large importances land in the last-but-one bin", CONTROL),
    M("hist-no-forwarding", "pse_hdl/rtl/histogram.py",
      "hit = c1_valid & (c1_bin == b2_bin)", "hit = c1_valid & (c1_bin == b2_bin) & 0",
      "back-to-back weights of one bin lose a count", CONTROL),
    M("hist-clear-drops-offer", "pse_hdl/rtl/histogram.py",
      "with m.If((self.host.clear | pending) & ~busy & stalled):",
      "with m.If((self.host.clear | pending) & ~busy & stalled & 0):",
      "a clear withdraws an offered, stalled weight",
      ["tests/test_formal.py::test_proven_and_broken_variant_fails[histogram-o.valid_held]"]),
    M("hist-model-key", "pse_hdl/model/histogram.py",
      "out[pos] = n[pos] * (1 << sub_bits) + m[pos] + 1",
      "out[pos] = n[pos] * (1 << sub_bits) + m[pos]",
      "the model's histogram bins are shifted by one", MODEL_BLOCKS + CONTROL),
    # -- zoned memory ---------------------------------------------------------------------------
    M("zones-swap-during-fetch", "pse_hdl/rtl/zones/banks.py",
      "self.cmd.ready.eq(~self.rz_busy & ~self.fetch_busy\n",
      "self.cmd.ready.eq(~self.rz_busy\n",
      "a SWAP is taken while a fetch streams",
      ["tests/test_formal.py::test_proven_and_broken_variant_fails[zones-swap_atomic]"]),
    M("zones-fetch-layer-range", "pse_hdl/rtl/zones/banks.py",
      "fetch_ok = active_valid & (arg < active_layers)",
      "fetch_ok = active_valid & (arg <= active_layers)",
      "FETCH of a layer one past the active layout is accepted", ZONES),
    M("zones-rezone-round", "pse_hdl/rtl/zones/packers.py",
      "m.d.comb += rounded.eq((value + half) >> shift)",
      "m.d.comb += rounded.eq((value + (half >> 1)) >> shift)",
      "re-zoning quantizes with a quarter-LSB offset", ZONES),
    M("fetch-run-across-row-end", "pse_hdl/rtl/zones/walker.py",
      "tok.trim_to.eq(sk - rowrem)]",
      "tok.trim_to.eq(sk - rowrem - 1)]",
      "a pruned run that crosses a row end skips one code too many in the next row", ZONES),
    M("zones-zone-overflow-write", "pse_hdl/rtl/zones/packers.py",
      "                with m.If(waddr < depth):",
      "                with m.If(waddr <= depth):",
      "a full zone's next word is written into the other bank", ZONES),
    M("prefetch-other-slot", "pse_hdl/rtl/zones/prefetch.py",
      "self.word.eq(Mux(word[0], slots[1], slots[0]))",
      "self.word.eq(Mux(word[0], slots[0], slots[1]))",
      "the current element's word is read from the prefetcher's other slot", ZONES),
    M("prefetch-three-ahead", "pse_hdl/rtl/zones/prefetch.py",
      "self.grant & (asked < 2))", "self.grant & (asked < 3))",
      "the prefetcher reads a third word into the current one's slot", ZONES),
    M("walker-row-end", "pse_hdl/rtl/walker.py",
      "r_last.eq(col == cols - 1)", "r_last.eq(col == cols - 2)",
      "the master walker ends rows one column early", ["tests/test_rtl_walker.py"]),
    M("zones-model-unary", "pse_hdl/model/zones.py",
      "bits += [1] * c + ([0] if c < n else [])", "bits += [1] * c + [0]",
      "the unary code spends a stop bit on the top class too", MODEL_ZONES),
    M("zones-model-empty-row", "pse_hdl/model/transfer.py",
      "(i + 1) * cols:\n                    records.append((0, 0, 0, 0, i, 1))",
      "(i + 1) * cols:\n                    pass",
      "an all-pruned row sends no transfer (its row never finishes)",
      MODEL_ZONES + ["tests/test_model_layer.py"]),
    # -- fixed point, quantization, layer -------------------------------------------------------
    M("fixed-round-half", "pse_hdl/model/fixed.py",
      "np.left_shift(np.int64(1), np.maximum(shift - 1, 0))",
      "np.left_shift(np.int64(1), np.maximum(shift - 2, 0))",
      "rshift_round adds a quarter instead of a half", MODEL_BLOCKS),
    M("fixed-saturate-flag", "pse_hdl/model/fixed.py",
      "return np.clip(x, lo, hi), (x < lo) | (x > hi)",
      "return np.clip(x, lo, hi), (x < lo) | (x >= hi)",
      "a value exactly at the top rail is flagged as overflow", MODEL_BLOCKS + LAYER),
    M("quant-tie-smaller-shift", "pse_hdl/model/quant.py",
      "if best_err is None or err < best_err:", "if best_err is None or err <= best_err:",
      "zone-scale ties go to the smaller shift", MODEL_BLOCKS),
    M("quant-fewer-candidates", "pse_hdl/model/quant.py",
      "for s in range(hi, max(-1, hi - 3), -1):", "for s in range(hi, max(-1, hi - 2), -1):",
      "the zone scale never tries clipping by two steps", MODEL_BLOCKS),
    M("layer-relu-minus-one", "pse_hdl/model/layer.py",
      "a = np.maximum(a, 0)", "a = np.maximum(a, -1)",
      "the model's ReLU lets -1 through", LAYER + MAC),
    M("layer-digit-cost", "pse_hdl/model/layer.py",
      "return np.where(bits > 0, -(-bits // cfg.mac_digit_bits), 0)",
      "return np.where(bits > 0, bits // cfg.mac_digit_bits, 0)",
      "a 2-bit weight costs no MAC cycle", LAYER),
    M("layer-bias-unsaturated", "pse_hdl/model/layer.py",
      "b, b_ovf = saturate(bias, cfg.acc_bits)", "b, b_ovf = to_int64(bias), bias != bias",
      "the model does not saturate the bias", LAYER + MAC),
    # -- the engine's register file -------------------------------------------------------------
    M("regs-status-write-refused", "pse_hdl/rtl/registers.py",
      "allowed.eq((~self.state.busy | (hit & ~write) | (write & control))",
      "allowed.eq((~self.state.busy | (hit & ~write))",
      "STATUS and CTRL writes are refused while a command runs", ENGINE),
    M("regs-mixed-register-ro", "pse_hdl/rtl/registers.py",
      "reg_ro.eq(all(f.access == \"ro\" for f in r.fields))",
      "reg_ro.eq(any(f.access == \"ro\" for f in r.fields))",
      "a register with one read-only field refuses every write (STATUS)", ENGINE),
]


def _copy_tree(dest):
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns(
                "__pycache__", "sim_build", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)


def _apply(tree, mutant):
    path = tree / mutant["file"]
    text = path.read_text()
    count = text.count(mutant["find"])
    if count != 1:
        raise SystemExit(f"mutant {mutant['id']}: its text occurs {count} times in "
                         f"{mutant['file']} (must be once): the list is stale")
    path.write_text(text.replace(mutant["find"], mutant["replace"]))
    return path, text


def _run_tests(tree, tests, timeout):
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-n0", "-p", "no:cacheprovider", *tests]
    try:
        r = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    return ("pass" if r.returncode == 0 else "fail"), r.stdout[-2000:]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", nargs="*", help="mutant ids")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per mutant")
    args = ap.parse_args(argv)
    mutants = MUTANTS
    if args.only:
        unknown = set(args.only) - {m["id"] for m in MUTANTS}
        if unknown:
            print(f"mutation.py: error: --only: unknown mutant(s) {', '.join(sorted(unknown))}",
                  file=sys.stderr)
            return 2
        mutants = [m for m in MUTANTS if m["id"] in args.only]
    if args.list:
        for m in mutants:
            print(f"{m['id']:<28} {m['file']:<30} {m['what']}")
        return 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pse_mutation_") as tmp:
        trees = []
        for k in range(max(1, args.jobs)):
            tree = Path(tmp) / f"tree{k}"
            tree.mkdir()
            _copy_tree(tree)
            trees.append(tree)
        for m in mutants:                            # every mutant applies (before any work)
            path, text = _apply(trees[0], m)
            path.write_text(text)
        # The unmutated tree passes every focused test.
        focused = sorted({t for m in mutants for t in m["tests"]})
        status, out = _run_tests(trees[0], focused, args.timeout)
        if status != "pass":
            print(f"mutation.py: the unmutated tree fails its focused tests:\n{out}",
                  file=sys.stderr)
            return 1
        free = list(trees)

        def one(m):
            tree = free.pop()
            try:
                path, text = _apply(tree, m)
                try:
                    status, _ = _run_tests(tree, m["tests"], args.timeout)
                finally:
                    path.write_text(text)
            finally:
                free.append(tree)
            r = {"id": m["id"], "file": m["file"], "what": m["what"],
                 "killed": status != "pass", "equivalent": m["equivalent"], "how": status}
            if not args.json:
                print(f"{m['id']:<28} {'killed' if r['killed'] else 'SURVIVED':<9} "
                      f"{m['what']}", flush=True)
            return r

        with ThreadPoolExecutor(max_workers=len(trees)) as pool:
            results = list(pool.map(one, [m for m in mutants if not m["equivalent"]]))
    equivalent = [{"id": m["id"], "why": m["equivalent"]} for m in mutants if m["equivalent"]]
    killed = sum(r["killed"] for r in results)
    report = {"mutants": len(results), "equivalent": equivalent, "killed": killed,
              "kill_rate": killed / len(results) if results else 1.0,
              "survivors": [{k: r[k] for k in ("id", "file", "what")}
                            for r in results if not r["killed"]],
              "seconds": round(time.monotonic() - t0, 1)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{killed} of {len(results)} non-equivalent mutants killed "
              f"({report['kill_rate']:.1%}); {len(equivalent)} equivalent; "
              f"{report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
