"""cocotb testbench of the Sparsification Manager: codes pass in order, the pruned counter, and
in destructive mode one master clear per pruned weight, under random idle and backpressure on
every stream."""

import random

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly

from pse_hdl.rtl import layouts
from sim.common import PATTERNS, SEEDS, WEIGHTS, pump, reset, start
from sim.runner import config_from_env
from sim.streams import Scoreboard

CFG = config_from_env()
N = len(CFG.precisions)


@cocotb.test()
async def code_streams(dut):
    inputs = ["i__valid", "o__ready"] + ([] if CFG.reversible else ["clear__ready"])
    await start(dut, inputs)
    board = Scoreboard(dut._log)
    for seed in range(SEEDS):
        rng = random.Random(seed)
        await reset(dut)
        p_pruned = [0.0, 1.0, 0.5, 0.9, 0.1][seed % 5]           # none, all, ... pruned
        items = [{"code": 0 if rng.random() < p_pruned else rng.randint(1, N),
                  "importance": rng.randrange(1 << CFG.importance_bits),
                  "row": rng.randrange(CFG.max_rows), "column": rng.randrange(CFG.max_cols),
                  "last": rng.randrange(2)} for _ in range(WEIGHTS)]
        pruned = [{"row": it["row"], "column": it["column"]} for it in items if it["code"] == 0]
        extra = [] if CFG.reversible else [("clear", layouts.clear(CFG), len(pruned))]
        got = await pump(dut, "i", "o", layouts.code_out(CFG), layouts.code_out(CFG), items,
                         PATTERNS[seed % len(PATTERNS)], rng, extra)
        board.compare(got[0], [{**it, "last": int(it["last"])} for it in items], f"seed {seed}")
        if not CFG.reversible:
            board.compare(got[1], pruned, f"seed {seed} clears")
        await ClockCycles(dut.clk, 2)
        await ReadOnly()
        board.compare([int(dut.pruned.value)], [len(pruned)], f"seed {seed} counter")
    board.check()
