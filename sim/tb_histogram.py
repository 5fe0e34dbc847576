"""cocotb testbench of the importance histogram: a tap that never loses a transfer under random
idle and backpressure, whose bins and class counts equal the golden model's, and whose clear
empties it."""

import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from pse_hdl.model.histogram import histogram
from pse_hdl.rtl import layouts
from sim.common import PATTERNS, SEEDS, WEIGHTS, pump, read_histogram, reset, start
from sim.runner import config_from_env
from sim.streams import Scoreboard

CFG = config_from_env()
N = len(CFG.precisions)
IMAX = (1 << CFG.importance_bits) - 1


async def clear(dut):
    await RisingEdge(dut.clk)
    dut.host__clear.value = 1
    await RisingEdge(dut.clk)
    dut.host__clear.value = 0
    await ClockCycles(dut.clk, CFG.hist_bins + 4)


@cocotb.test(timeout_time=30, timeout_unit="ms")
async def histogram_passes(dut):
    await start(dut, ["i__valid", "o__ready", "host__clear"])
    board = Scoreboard(dut._log)
    for seed in range(SEEDS):
        rng = random.Random(seed)
        await reset(dut)
        await clear(dut)
        kind = seed % 4
        imps = [0] * WEIGHTS if kind == 1 else [IMAX] * WEIGHTS if kind == 2 else \
            [rng.choice([0, 1, IMAX, rng.randrange(1 << 20)]) if rng.random() < 0.1
             else rng.randrange(1 << rng.randrange(1, CFG.importance_bits + 1))
             for _ in range(WEIGHTS)]
        items = [{"code": rng.randint(0, N), "importance": v, "row": rng.randrange(CFG.max_rows),
                  "column": 0, "last": 0} for v in imps]
        got = await pump(dut, "i", "o", layouts.code_out(CFG), layouts.code_out(CFG), items,
                         PATTERNS[seed % len(PATTERNS)], rng)
        board.compare(got[0], items, f"seed {seed} pass-through")
        await ClockCycles(dut.clk, 4)
        bins = await read_histogram(dut, CFG.hist_bins, "host")
        board.compare(bins, histogram(np.array(imps), CFG).tolist(), f"seed {seed} bins")
        counts = [int(dut.class_count.value) >> (32 * k) & 0xFFFF_FFFF for k in range(N + 1)]
        board.compare(counts, np.bincount([it["code"] for it in items], minlength=N + 1).tolist(),
                      f"seed {seed} classes")
    await clear(dut)
    board.compare(await read_histogram(dut, CFG.hist_bins, "host"), [0] * CFG.hist_bins, "clear")
    board.check()
