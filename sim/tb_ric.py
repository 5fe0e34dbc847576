"""cocotb testbench of the Rolling Importance Calculator (factored or literal form) against the
golden model: baseline load, activation samples with random idle, then an allocation pass with
random idle and backpressure; every importance compared. Edge seeds: all-zero activations,
saturating activations (the EMA's upper end), a layer of one weight."""

import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from pse_hdl.model.ric import FactoredRIC, LiteralRIC, blend_snapshot
from pse_hdl.rtl import layouts
from sim.common import PATTERNS, SEEDS, WEIGHTS, host_write, pump, reset, snapshot, start
from sim.runner import config_from_env
from sim.streams import Codec, Scoreboard, StreamDriver, stall_pattern

CFG = config_from_env()
LITERAL = CFG.importance_form == "literal"
AMAX = 1 << (CFG.act_bits - 1)


async def read_states(dut, addrs):
    """EMA states through ``host_rd`` (data one cycle after the address)."""
    out = []
    for a in addrs:
        await RisingEdge(dut.clk)
        dut.host_rd__addr.value = a
        await RisingEdge(dut.clk)
        await ReadOnly()
        out.append(int(dut.host_rd__data.value))
    return out


async def run_seed(dut, seed, board):
    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    pattern = PATTERNS[seed % len(PATTERNS)]
    one = seed == SEEDS                                   # the extra one-weight seed
    cols = 1 if one else int(min(CFG.max_cols, 1 << rng.integers(2, 8)))
    rows = 1 if one else int(min(CFG.max_rows, -(-WEIGHTS // cols)))
    base = rng.integers(0, AMAX << CFG.ema_frac_bits, cols)
    kind = seed % 5
    if kind in (1, 2):                    # constant samples: the EMA runs to its end
        count = 6 if LITERAL else 40
    else:
        count = int(rng.integers(1, 3 if LITERAL else 10))
    await reset(dut)
    # The factored RIC keeps every layer's states: this seed uses layer ``seed % max_layers``.
    layer = 0 if LITERAL else seed % CFG.max_layers
    if not LITERAL:
        dut.x_layer.value = dut.w_layer.value = layer
    codec = Codec(layouts.product(CFG) if LITERAL else layouts.observation(CFG))
    model = None
    for p in range(1 if one else -(-WEIGHTS // (rows * cols))):
        master = rng.integers(-(1 << (CFG.weight_bits - 1)), 1 << (CFG.weight_bits - 1),
                              (rows, cols))
        master[rng.random((rows, cols)) < 0.05] = -(1 << (CFG.weight_bits - 1))
        samples = [np.zeros(cols, np.int64) if kind == 1 else np.full(cols, -AMAX) if kind == 2
                   else rng.integers(-AMAX, AMAX, cols) for _ in range(count)]
        if LITERAL:                     # the per-weight state belongs to these weights: reload
            init = np.abs(master) * base[None, :]
            model = LiteralRIC(CFG, (rows, cols), init)
            await host_write(dut, "host", {i * CFG.max_cols + j: v for (i, j), v in
                                           np.ndenumerate(init)})
        elif model is None:
            model = FactoredRIC(CFG, cols, base)
            snap = base.copy()                        # a host write loads the snapshot too
            await host_write(dut, "host", {layer * CFG.max_cols + j: v
                                           for j, v in enumerate(base)})
        items = []
        for x in samples:
            if LITERAL:
                model.update(x, master)
                items += [{"value": int(x[j]), "master": int(master[i, j]), "row": i,
                           "column": j, "last": i == rows - 1 and j == cols - 1}
                          for i in range(rows) for j in range(cols)]
            else:
                model.update(x)
                items += [{"value": int(v), "column": j, "last": j == cols - 1}
                          for j, v in enumerate(x)]
        drv = StreamDriver(dut, "x", dut.clk, stall_pattern(pattern[0], pyrng))
        await drv.send([codec.pack(it) for it in items])
        await ClockCycles(dut.clk, 5)
        if not LITERAL:
            states = await read_states(dut, [layer * CFG.max_cols + j for j in range(cols)])
            board.compare(states, model.state.tolist(), f"seed {seed} pass {p} states")
            await snapshot(dut, layer * CFG.max_cols, cols)
            snap = blend_snapshot(snap, model.state, CFG, base)   # the floor: the loaded base
        imp = model.importance(master) if LITERAL else np.abs(master) * snap[None, :]
        prev = rng.integers(0, len(CFG.precisions) + 1, (rows, cols))
        w = [{"master": int(master[i, j]), "prev": int(prev[i, j]), "row": i, "column": j,
              "last": j == cols - 1} for i in range(rows) for j in range(cols)]
        want = [{"importance": int(imp[i, j]), "prev": int(prev[i, j]), "row": i, "column": j,
                 "last": int(j == cols - 1)} for i in range(rows) for j in range(cols)]
        got = await pump(dut, "w", "o", layouts.master_in(CFG), layouts.importance_in(CFG), w,
                         pattern, pyrng)
        board.compare(got[0], want, f"seed {seed} pass {p}")
        await ReadOnly()
        board.compare([int(dut.samples.value)], [count * (p + 1)], f"seed {seed} samples")


@cocotb.test(timeout_time=140, timeout_unit="ms")
async def importance_passes(dut):
    await start(dut, ["x__valid", "w__valid", "o__ready", "host__en"]
                + ([] if LITERAL else ["snap__start"]))
    board = Scoreboard(dut._log)
    for seed in range(SEEDS + 1):
        await run_seed(dut, seed, board)
    board.check()
