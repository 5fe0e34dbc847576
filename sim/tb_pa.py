"""cocotb testbench of the Precision Allocator against the golden model (pse_hdl.model.pa).

Driver -> DUT -> monitor, with the model's codes as the expected transactions and an in-order
scoreboard. Every seed uses a new random ordered threshold set and hysteresis band, written
through the register port, and a different idle/backpressure pattern.
"""

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from pse_hdl.model.pa import allocate
from pse_hdl.rtl.layouts import code_out, importance_in
from sim.common import PATTERNS, SEEDS, WEIGHTS
from sim.runner import config_from_env
from sim.streams import (Codec, Scoreboard, StreamDriver, StreamMonitor, run_streams,
                         stall_pattern)

CFG = config_from_env()
N = len(CFG.precisions)
IMAX = (1 << CFG.importance_bits) - 1


async def start(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.csr__wr_en.value = 0
    dut.csr__commit.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


async def write_thresholds(dut, thresholds, band):
    for k, value in enumerate(list(thresholds) + [band]):
        await RisingEdge(dut.clk)
        dut.csr__wr_en.value, dut.csr__wr_addr.value, dut.csr__wr_data.value = 1, k, value
    await RisingEdge(dut.clk)
    dut.csr__wr_en.value, dut.csr__commit.value = 0, 1
    await RisingEdge(dut.clk)
    dut.csr__commit.value = 0
    await RisingEdge(dut.clk)


def random_thresholds(rng):
    kind = rng.randrange(4)
    if kind == 0:                                    # all at zero: nothing pruned
        return [0] * N
    if kind == 1:                                    # top of the range
        return sorted(rng.choice([IMAX, IMAX - 1, rng.randrange(IMAX)]) for _ in range(N))
    if kind == 2:                                    # equal thresholds (empty middle classes)
        t = rng.randrange(IMAX)
        return [t] * N
    return sorted(rng.randrange(1 << rng.randrange(1, CFG.importance_bits)) for _ in range(N))


def random_importances(rng, thresholds, count):
    """A mix of values at, next to and between the thresholds, and extremes."""
    out = []
    for _ in range(count):
        r = rng.random()
        if r < 0.4:
            t = rng.choice(thresholds)
            v = t + rng.randint(-3, 3)
        elif r < 0.45:
            v = rng.choice([0, 1, IMAX])
        else:
            v = rng.randrange(1 << rng.randrange(1, CFG.importance_bits + 1))
        out.append(min(max(v, 0), IMAX))
    return out


def stimulus(rng, thresholds, count):
    imps = random_importances(rng, thresholds, count)
    prev = [rng.randrange(N + 1) for _ in range(count)]
    pos = [(rng.randrange(CFG.max_rows), rng.randrange(CFG.max_cols), rng.randrange(2))
           for _ in range(count)]
    return imps, prev, pos


def expected(imps, prev, pos, thresholds, band):
    codes = allocate(np.array(imps), thresholds, np.array(prev), band)
    return [{"code": int(c), "importance": i, "row": r, "column": col, "last": last}
            for c, i, (r, col, last) in zip(codes, imps, pos)]


async def run_stream(dut, rng, imps, prev, pos, pattern):
    cin, cout = Codec(importance_in(CFG)), Codec(code_out(CFG))
    items = [cin.pack({"importance": i, "prev": p, "row": r, "column": c, "last": last})
             for i, p, (r, c, last) in zip(imps, prev, pos)]
    drv = StreamDriver(dut, "i", dut.clk, stall_pattern(pattern[0], random.Random(rng.random())))
    mon = StreamMonitor(dut, "o", dut.clk, stall_pattern(pattern[1], random.Random(rng.random())))
    await run_streams(drv.load(items), mon.expect(len(items)))
    return [cout.unpack(x) for x in mon.items]


@cocotb.test(timeout_time=25, timeout_unit="ms")
async def random_streams(dut):
    """SEEDS x WEIGHTS random importances; every output compared with the golden model."""
    await start(dut)
    board = Scoreboard(dut._log)
    for seed in range(SEEDS):
        rng = random.Random(seed)
        thresholds = random_thresholds(rng)
        band = rng.choice([0, 0, 1, rng.randrange(1 << 12), rng.randrange(IMAX)])
        await write_thresholds(dut, thresholds, band)
        assert dut.error.value == 0
        imps, prev, pos = stimulus(rng, thresholds, WEIGHTS)
        got = await run_stream(dut, rng, imps, prev, pos, PATTERNS[seed % len(PATTERNS)])
        board.compare(got, expected(imps, prev, pos, thresholds, band), f"seed {seed}")
    board.check()


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def unordered_thresholds_rejected(dut):
    """An unordered commit raises error and leaves the active thresholds in force."""
    await start(dut)
    rng = random.Random(100)
    good = sorted(rng.randrange(1 << 20) for _ in range(N))
    await write_thresholds(dut, good, 0)
    assert dut.error.value == 0
    if N > 1:
        bad = list(good)
        bad[0], bad[-1] = good[-1] + 1, good[0]
        await write_thresholds(dut, bad, 0)
        await ReadOnly()
        assert dut.error.value == 1, "unordered thresholds were accepted"
        imps, prev, pos = stimulus(rng, good, 2000)
        got = await run_stream(dut, rng, imps, prev, pos, ("random", "random"))
        board = Scoreboard(dut._log)
        board.compare(got, expected(imps, prev, pos, good, 0), "after rejected commit")
        board.check()
        await write_thresholds(dut, good, 0)
        await ReadOnly()
        assert dut.error.value == 0, "a good commit did not clear the error"


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def reset_mid_stream(dut):
    """Reset while a stream is stalled in the pipeline: the PA comes back idle with its reset
    thresholds, and the next stream is bit-exact."""
    await start(dut)
    rng = random.Random(7)
    thresholds = sorted(rng.randrange(1 << 24) for _ in range(N))
    await write_thresholds(dut, thresholds, 0)
    cin = Codec(importance_in(CFG))
    # Fill the pipeline with output stalled, then reset.
    dut.o__ready.value = 0
    for k in range(4):
        await RisingEdge(dut.clk)
        dut.i__valid.value, dut.i__payload.value = 1, cin.pack({"importance": k})
    await RisingEdge(dut.clk)
    dut.i__valid.value = 0
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    await ReadOnly()
    assert dut.o__valid.value == 0, "output still valid after reset"
    imps, prev, pos = stimulus(rng, list(CFG.thresholds), 3000)
    got = await run_stream(dut, rng, imps, prev, pos, ("random", "heavy"))
    board = Scoreboard(dut._log)
    board.compare(got, expected(imps, prev, pos, list(CFG.thresholds), CFG.hysteresis),
                  "after reset")
    board.check()
