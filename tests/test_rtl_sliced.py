"""Tier 1: a zone memory stored as slices. Its slices are as wide as the DP16KD's mode for the
depth (so each is whole block RAMs, with no multiplexer after them), and it reads and writes as
one memory: random writes of random logical words, random reads, against a dictionary."""

import random
import re

import pytest
from amaranth.back import rtlil

from pse_hdl.rtl.zones.sliced import SlicedMemory, slice_bits
from tests.simutil import run_sim


@pytest.mark.parametrize("depth, bits", [(16, 32), (512, 32), (513, 16), (1024, 16),
                                         (2048, 8), (4096, 4), (8192, 2), (16384, 1)])
def test_slices_are_as_wide_as_the_block_rams_mode(depth, bits):
    assert slice_bits(depth, 32) == bits


def test_a_slice_is_never_wider_than_a_logical_word():
    assert slice_bits(1024, 8) == 8 and slice_bits(64, 8) == 8


@pytest.mark.parametrize("registered", [False, True])
@pytest.mark.parametrize("width, depth, granularity, seed", [(128, 1024, 32, 0), (128, 64, 32, 1),
                                                             (64, 2048, 16, 2), (32, 600, 8, 3)])
def test_reads_what_was_written(width, depth, granularity, seed, registered):
    """A read's data one cycle after it (two when ``registered``), as the memory was before
    that cycle's write."""
    mem = SlicedMemory(width, depth, granularity, registered)
    rng = random.Random(seed)
    lanes = width // granularity
    model = {}

    async def bench(ctx):
        pending = [None] * (1 + registered)    # reads in flight: (address, expected), oldest first
        for _ in range(3000):
            en = rng.getrandbits(lanes) if rng.random() < 0.5 else 0
            waddr, wdata = rng.randrange(depth), rng.getrandbits(width)
            raddr, ren = rng.randrange(depth), rng.random() < 0.7
            ctx.set(mem.wr.en, en)
            ctx.set(mem.wr.addr, waddr)
            ctx.set(mem.wr.data, wdata)
            ctx.set(mem.rd.en, ren)
            ctx.set(mem.rd.addr, raddr)
            if pending[0] is not None:
                addr, want = pending[0]
                assert ctx.get(mem.rd.data) == want, f"address {addr}"
            # A read sees the memory before this cycle's write (no transparency).
            pending = pending[1:] + [(raddr, model.get(raddr, 0)) if ren else None]
            old = model.get(waddr, 0)
            mask = sum(((1 << granularity) - 1) << (i * granularity)
                       for i in range(lanes) if en >> i & 1)
            if en:
                model[waddr] = (old & ~mask) | (wdata & mask)
            await ctx.tick()

    run_sim(mem, bench)


@pytest.mark.parametrize("width, depth, memories", [
    (128, 1024, ["memory width 16 size 1024"] * 8),
    (128, 512, ["memory width 32 size 512"] * 4)])
def test_the_slices_in_the_netlist(width, depth, memories):
    """What yosys is given: the default preset's 4-bit zone (1024 physical words of 128 bits)
    as eight 1024 x 16 memories; a 512-deep zone as four 512 x 32 ones."""
    text = rtlil.convert(SlicedMemory(width, depth, 32))
    assert re.findall(r"memory width \d+ size \d+", text) == memories
