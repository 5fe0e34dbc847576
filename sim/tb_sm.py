"""cocotb testbench of the Sparsification Manager: codes pass in order, the pruned counter, and
in destructive mode one master clear per pruned weight, under random idle and backpressure on
every stream."""

import random

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from pse_hdl.rtl import layouts
from sim.common import PATTERNS, SEEDS, WEIGHTS, pump, reset, start
from sim.runner import config_from_env
from sim.streams import Scoreboard, StreamDriver, StreamMonitor, Stuck

CFG = config_from_env()
N = len(CFG.precisions)


@cocotb.test(timeout_time=30, timeout_unit="ms")
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


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def a_stuck_stream_fails(dut):
    """The harness, not the block: a monitor waiting for a transfer that never comes, and a
    driver whose transfer is never taken, fail with the stream's name within their limit."""
    inputs = ["i__valid", "o__ready"] + ([] if CFG.reversible else ["clear__ready"])
    await start(dut, inputs)
    await reset(dut)
    t0 = cocotb.utils.get_sim_time("ns")
    try:
        await StreamMonitor(dut, "o", dut.clk).collect(1, limit=50)
    except Stuck as e:
        assert "stream o (monitor)" in str(e) and "0 of 1" in str(e), e
    else:
        raise AssertionError("a monitor with nothing to receive returned")
    assert cocotb.utils.get_sim_time("ns") - t0 <= 60 * 10
    # o never ready: the SM's input fills and then refuses.
    await RisingEdge(dut.clk)
    dut.o__ready.value = 0
    try:
        await StreamDriver(dut, "i", dut.clk).send([0] * 64, limit=50)
    except Stuck as e:
        assert "stream i (driver)" in str(e) and "not taken" in str(e), e
    else:
        raise AssertionError("a driver whose transfers are never taken returned")

