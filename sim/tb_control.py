"""cocotb testbench of the control chain RIC -> PA -> SM -> histogram against the golden model.

Per seed: reset, load a baseline into the RIC, write thresholds and a hysteresis band, clear the
histogram, stream activation samples, then run allocation passes (master weights in, codes out)
until at least ``PSE_WEIGHTS`` weights have been compared. Checked: every code transfer
(code, importance, position), the destructive clears, the histogram bins, the per-class counts,
the pruned and sample counters. Seeds cycle through edge cases: all-zero activations,
saturating activations, thresholds at 0 and at the maximum, a layer of one weight.
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from pse_hdl.model.histogram import histogram
from pse_hdl.model.pa import allocate
from pse_hdl.model.ric import FactoredRIC, blend_snapshot
from pse_hdl.rtl import layouts
from sim.common import (PATTERNS, SEEDS, WEIGHTS, host_write, pump, read_histogram, reset,
                        snapshot, start, write_thresholds)
from sim.runner import config_from_env
from sim.streams import Codec, Scoreboard

CFG = config_from_env()
N = len(CFG.precisions)
IMAX = (1 << CFG.importance_bits) - 1
INPUTS = ["x__valid", "w__valid", "o__ready", "ric_host__en", "csr__wr_en", "csr__commit",
          "hist_host__clear", "x_layer", "w_layer", "snap__start"] + ([] if CFG.reversible else ["clear__ready"])
EDGE = {1: "zero-activations", 2: "max-activations", 3: "thresholds-0", 4: "thresholds-max"}
ONE_WEIGHT = -1          # the seed of the one-weight layer, run after the SEEDS seeds


def scenario(seed):
    """Layer shape, samples, baseline, thresholds and band for one seed."""
    edge = "one-weight" if seed == ONE_WEIGHT else EDGE.get(seed % 8)
    rng = np.random.default_rng(abs(seed))
    cols = 1 if edge == "one-weight" else int(min(CFG.max_cols, 1 << rng.integers(3, 9)))
    rows = 1 if edge == "one-weight" else int(min(CFG.max_rows, -(-WEIGHTS // cols)))
    passes = 3 if edge == "one-weight" else -(-WEIGHTS // (rows * cols))
    base = rng.integers(0, (1 << (CFG.act_bits - 1)) << CFG.ema_frac_bits, cols)
    n_samples = int(rng.integers(1, 12))
    if edge == "zero-activations":
        samples = [np.zeros(cols, np.int64) for _ in range(60)]
    elif edge == "max-activations":
        samples = [np.full(cols, -(1 << (CFG.act_bits - 1))) for _ in range(60)]
    else:
        samples = [rng.integers(-(1 << (CFG.act_bits - 1)), 1 << (CFG.act_bits - 1), cols)
                   * (rng.random(cols) < 0.8) for _ in range(n_samples)]
    if edge == "thresholds-0":
        thresholds = [0] * N
    elif edge == "thresholds-max":
        thresholds = [IMAX] * N
    else:
        thresholds = sorted(int(x) for x in np.exp(rng.uniform(np.log(1e3), np.log(2e9), N)))
    band = int(rng.choice([0, 0, 1 << 12, 1 << 20]))
    return rows, cols, passes, base, samples, thresholds, band, rng


async def run_seed(dut, seed, board):
    cfg = CFG
    rows, cols, passes, base, samples, thresholds, band, rng = scenario(seed)
    pyrng = random.Random(seed)
    pattern = PATTERNS[abs(seed) % len(PATTERNS)]
    await reset(dut)
    # Reset leaves the histogram memory as it was: clear it, as the firmware does.
    await RisingEdge(dut.clk)
    dut.hist_host__clear.value = 1
    await RisingEdge(dut.clk)
    dut.hist_host__clear.value = 0
    await ClockCycles(dut.clk, cfg.hist_bins + 4)
    layer = abs(seed) % cfg.max_layers          # the RIC holds every layer's states
    dut.x_layer.value = dut.w_layer.value = layer
    await host_write(dut, "ric_host", {layer * cfg.max_cols + j: v for j, v in enumerate(base)})
    await write_thresholds(dut, thresholds, band)
    ric = FactoredRIC(cfg, cols, base)
    snap = base.copy()                            # a host write loads the snapshot too
    all_imp, all_codes = [], []
    for p in range(passes):
        xs = [{"value": int(v), "column": j, "last": j == cols - 1} for x in samples
              for j, v in enumerate(x)]
        await pump_in(dut, xs, pattern, pyrng)
        await snapshot(dut, layer * cfg.max_cols, cols)
        for x in samples:
            ric.update(x)
        snap = blend_snapshot(snap, ric.state, cfg, base)     # floor: the loaded base
        master = rng.integers(-(1 << (cfg.weight_bits - 1)), 1 << (cfg.weight_bits - 1),
                              (rows, cols))
        master[rng.random((rows, cols)) < 0.05] = -(1 << (cfg.weight_bits - 1))
        prev = rng.integers(0, N + 1, (rows, cols))
        imp = np.abs(master) * snap[None, :]          # the pass reads the snapshot
        codes = allocate(imp, thresholds, prev, band)
        items = [{"master": int(master[i, j]), "prev": int(prev[i, j]), "row": i, "column": j,
                  "last": j == cols - 1} for i in range(rows) for j in range(cols)]
        want = [{"code": int(codes[i, j]), "importance": int(imp[i, j]), "row": i, "column": j,
                 "last": int(j == cols - 1)} for i in range(rows) for j in range(cols)]
        extra = [] if cfg.reversible else [("clear", layouts.clear(cfg), int((codes == 0).sum()))]
        got = await pump(dut, "w", "o", layouts.master_in(cfg), layouts.code_out(cfg), items,
                         pattern, pyrng, extra)
        board.compare(got[0], want, f"seed {seed} pass {p} codes")
        if not cfg.reversible:
            board.compare(got[1], [{"row": w["row"], "column": w["column"]} for w in want
                                   if w["code"] == 0], f"seed {seed} pass {p} clears")
        all_imp.append(imp.ravel())
        all_codes.append(codes.ravel())
    await ClockCycles(dut.clk, 4)
    imp, codes = np.concatenate(all_imp), np.concatenate(all_codes)
    bins = await read_histogram(dut, cfg.hist_bins, "hist_host")
    board.compare(bins, histogram(imp, cfg).tolist(), f"seed {seed} histogram")
    counts = [int(dut.class_count.value) >> (32 * k) & 0xFFFF_FFFF for k in range(N + 1)]
    board.compare(counts, np.bincount(codes, minlength=N + 1).tolist(), f"seed {seed} classes")
    board.compare([int(dut.pruned.value), int(dut.samples.value)],
                  [int((codes == 0).sum()), passes * len(samples)], f"seed {seed} counters")
    return int(codes.size)


async def pump_in(dut, items, pattern, rng):
    """Activations into ``x`` (no output side: the RIC absorbs them)."""
    from sim.streams import StreamDriver, stall_pattern
    drv = StreamDriver(dut, "x", dut.clk, stall_pattern(pattern[0], random.Random(rng.random())))
    await drv.send([Codec(layouts.observation(CFG)).pack(it) for it in items])
    await ClockCycles(dut.clk, 5)


@cocotb.test(timeout_time=40, timeout_unit="ms")
async def allocation_passes(dut):
    """SEEDS seeds of at least WEIGHTS weights each, every transaction compared."""
    await start(dut, INPUTS)
    board = Scoreboard(dut._log)
    total = 0
    for seed in [*range(SEEDS), ONE_WEIGHT]:
        total += await run_seed(dut, seed, board)
    dut._log.info("%d weights through the chain", total)
    board.check()


@cocotb.test(timeout_time=15, timeout_unit="ms")
async def reset_in_the_middle_of_a_pass(dut):
    """Reset at a random point of a pass (with stalls), then a full seed is bit-exact."""
    await start(dut, INPUTS)
    from sim.streams import StreamDriver, StreamMonitor, run_streams, stall_pattern
    for k, at in enumerate([3, 57, 411]):     # cycles into the pass
        rng = random.Random(k)
        cin = Codec(layouts.master_in(CFG))
        items = [cin.pack({"master": rng.randrange(1 << 15), "row": i % CFG.max_rows,
                           "column": i % CFG.max_cols}) for i in range(1000)]
        drv = StreamDriver(dut, "w", dut.clk, stall_pattern("random", rng))
        mon = StreamMonitor(dut, "o", dut.clk, stall_pattern("heavy", rng))
        streams = cocotb.start_soon(run_streams(drv.load(items), mon.expect(len(items))))
        await ClockCycles(dut.clk, at)
        streams.cancel()
        dut.w__valid.value, dut.o__ready.value = 0, 0
        await reset(dut)
        await ReadOnly()
        assert dut.o__valid.value == 0 and dut.error.value == 0
        assert int(dut.samples.value) == 0 and int(dut.pruned.value) == 0
        board = Scoreboard(dut._log)
        await run_seed(dut, 10 * k + 7, board)
        board.check()
