"""Tier 1: the layer walker streams a layer's masters and previous codes in row-major order."""

import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, signed
from amaranth.lib import memory, wiring

from pse_hdl.config import PSEConfig
from pse_hdl.rtl.walker import LayerWalker
from tests.simutil import run_sim, stream_sink

CFG = PSEConfig(max_rows=8, max_cols=16, master_depth=256)
CPW = 16                                   # codes per 32-bit word of 2-bit codes


class _Bench(Elaboratable):
    """The walker on a master store (three cycles of latency, as ``ZonedMemory.master_walk``)
    and a code buffer holding known values."""

    def __init__(self, masters, codes):
        self.walker = LayerWalker(CFG, CPW)
        self.masters = [int(v) for v in masters]
        self.words = [sum(int(c) << (CFG.code_bits * k) for k, c in enumerate(codes[i:i + CPW]))
                      for i in range(0, len(codes), CPW)]

    def elaborate(self, platform):
        m = Module()
        m.submodules.walker = w = self.walker
        m.submodules.masters = mm = memory.Memory(shape=signed(CFG.weight_bits),
                                                  depth=CFG.master_depth, init=self.masters)
        m.submodules.codes = cm = memory.Memory(shape=CPW * CFG.code_bits,
                                                depth=len(self.words), init=self.words)
        # The master store's port as the zoned memory's: address and enable registered, and
        # the block RAM's output (``zones.masters``).
        master = mm.read_port()
        m.d.sync += [master.addr.eq(w.master.addr), master.en.eq(w.master.en),
                     w.master.data.eq(master.data)]
        wiring.connect(m, w.codes, cm.read_port())
        return m


@pytest.mark.parametrize("rows, cols, base, seed", [(3, 5, 7, 0), (8, 16, 0, 1), (1, 1, 255, 2),
                                                    (4, 1, 30, 3), (2, 16, 100, 4)])
def test_walker_streams_the_layer_in_order(rows, cols, base, seed):
    rng = np.random.default_rng(seed)
    masters = rng.integers(-32768, 32768, CFG.master_depth)
    codes = rng.integers(0, len(CFG.precisions) + 1, CFG.master_depth)
    bench = _Bench(masters, codes)
    w = bench.walker
    total = rows * cols
    got = []

    async def control(ctx):
        ctx.set(w.base, base)
        ctx.set(w.total, total)
        ctx.set(w.cols, cols)
        ctx.set(w.start, 1)
        await ctx.tick()
        ctx.set(w.start, 0)

    async def sink(ctx):
        await ctx.tick()
        got.extend(await stream_sink(ctx, w.o, total, random.Random(seed), stall=0.4))
        await ctx.tick().repeat(4)
        assert not ctx.get(w.busy) and not ctx.get(w.o.valid)      # nothing more comes

    run_sim(bench, control, sink)
    want = [{"master": int(masters[base + k]), "prev": int(codes[base + k]), "row": k // cols,
             "column": k % cols, "last": int(k % cols == cols - 1)} for k in range(total)]
    assert [{k: int(v) for k, v in g.items()} for g in got] == want


def test_walker_sends_a_weight_every_cycle_without_backpressure():
    """Five-entry queue, reads issued from its free entries: the first weight five cycles
    after ``start``, then one a cycle (a walker that waited for ``ready`` before reading, or
    a queue too shallow for the port's three cycles of latency, fails this)."""
    rows, cols, base = 5, 16, 3
    rng = np.random.default_rng(9)
    bench = _Bench(rng.integers(-32768, 32768, CFG.master_depth),
                   rng.integers(0, len(CFG.precisions) + 1, CFG.master_depth))
    w = bench.walker
    cycles = []

    async def tb(ctx):
        ctx.set(w.o.ready, 1)
        ctx.set(w.base, base)
        ctx.set(w.total, rows * cols)
        ctx.set(w.cols, cols)
        ctx.set(w.start, 1)
        await ctx.tick()
        ctx.set(w.start, 0)
        for t in range(1, rows * cols + 10):
            if ctx.get(w.o.valid):
                cycles.append(t)
            await ctx.tick()

    run_sim(bench, tb)
    assert cycles == list(range(5, 5 + rows * cols))      # five cycles to the first weight
