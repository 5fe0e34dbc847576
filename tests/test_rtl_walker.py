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
    """The walker on a master store and a code buffer holding known values."""

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
        wiring.connect(m, w.master, mm.read_port())
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
