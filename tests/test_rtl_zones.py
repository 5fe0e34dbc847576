"""Tier 1: the zoned memory in Amaranth's simulator against the golden model: re-zoning writes
exactly the model's zone words, metadata and descriptors; every fetch port sends exactly
``port_streams``; swap and reset keep the active layout."""

import random

import numpy as np
import pytest

from pse_hdl.rtl.zones import Op
from sim.zones_ref import Network, random_network
from tests.zones_bench import (CFG, command, fetch, load, read_masters, rezone,
                                rezone_and_fetch, run)


SHAPES = [[(5, 7), (32, 32)], [(1, 1)], [(32, 1), (1, 32)], [(9, 30), (3, 3), (17, 5)]]


@pytest.mark.parametrize("seed", range(4))
def test_rezone_and_fetch_match_model(seed):
    # Odd seeds keep row descriptors (every 4 rows), even ones none (the default); the 95 %
    # sparse network has runs longer than a metadata word (the tokenizer's window is two).
    cfg = CFG.replace(desc_stride=4) if seed % 2 else CFG
    if seed == 3:                 # the 9x30 layer on every port, the 3x3 and 17x5 on port 0
        cfg = cfg.replace(one_port_below=100)
    rng = np.random.default_rng(seed)
    net = random_network(cfg, rng, SHAPES[seed], sparsity=[None, 0.5, 0.95, 0.0][seed])
    rezone_and_fetch(cfg, net, random.Random(seed))


@pytest.mark.parametrize("uniform", [[1, 0, 3], [0, 2, 0], [2, 1, 3]])
def test_uniform_layers_among_coded_ones(uniform):
    """Uniform layers (every weight one class, no metadata) before, between and after coded
    ones: the re-zoning is fed random codes, stores the layer's class instead and no codes;
    the walkers read no metadata for them and the coded layers' metadata follows on."""
    cfg = CFG.replace(desc_stride=4) if uniform[0] else CFG.replace(one_port_below=100)
    rng = np.random.default_rng(sum(uniform))
    net = random_network(cfg, rng, SHAPES[3], sparsity=0.4, uniform=uniform)
    assert all(not net.images[l].meta for l, u in enumerate(uniform) if u)
    rezone_and_fetch(cfg, net, random.Random(sum(uniform)))


MASKED_CASES = {
    # masked layers beside coded and uniform ones, every port
    "mixed": (dict(), [(9, 30), (3, 3), (17, 5)], [1, 0, 2], [True, False, True], None),
    # a masked layer that keeps every column, one that keeps none, a one-row one
    "all-none": (dict(), [(6, 20), (5, 6), (1, 12)], [1, 3, 2], [True, True, True],
                 [0.0, 1.0, 0.5]),
    # wide sparse rows: the run from a row's last kept column to the next row's first is
    # longer than the tokenizer's longest (63 unary codes): split into runs alone
    "wide": (dict(max_cols=256, max_rows=8, master_depth=4096, zone_depth=512),
             [(6, 200), (4, 6)], [1, 0], [True, False], [0.97, 0.3]),
    # one and two ports, a small layer on port 0 alone
    "ports": (dict(lanes=2, one_port_below=40), [(7, 13), (2, 9)], [2, 1], [True, True], None),
    # runs at the token's limits (63 unary codes): exactly 63, 64, 126, 127, 128 and 190
    # pruned columns, within a row and across its end (the kept columns given)
    "limits": (dict(max_cols=256, max_rows=8, master_depth=4096, zone_depth=512),
               [(3, 256), (3, 256), (2, 256), (2, 256)], [1, 1, 2, 1], [True] * 4,
               [(1, 65, 130), (0, 128), (0, 129), (0, 191)]),
}


@pytest.mark.parametrize("case", MASKED_CASES)
def test_masked_layers_fetch_their_kept_columns(case):
    """Masked layers (``input_masks``): the re-zoning stores the kept columns' weights, no
    codes, their indices in the kept-column table and the split descriptors' ranks; every port
    sends exactly the model's stream (the walk steps over the pruned columns)."""
    change, shapes, uniform, masked, sparsity = MASKED_CASES[case]
    cfg = CFG.replace(input_masks=True, **change)
    seed = sorted(MASKED_CASES).index(case)
    rng = np.random.default_rng(seed)
    net = random_network(cfg, rng, shapes, sparsity=0.4, uniform=uniform, masked=masked)
    for l, sp in enumerate(sparsity or ()):
        if masked[l]:
            rows, cols = shapes[l]
            if isinstance(sp, tuple):               # the kept columns themselves
                keep = np.isin(np.arange(cols), sp)
            else:
                keep = np.zeros(cols, bool) if sp == 1.0 else rng.random(cols) >= sp
            net.codes[l] = np.where(keep, uniform[l], 0)[None, :].repeat(rows, 0)
    net = Network(cfg, net.masters, net.codes, net.shifts, uniform, masked)
    rezone_and_fetch(cfg, net, random.Random(seed))


@pytest.mark.parametrize("kept, lanes", [(13, 4), (3, 4), (5, 2), (3, 1)])
def test_masked_layers_stream_a_weight_a_cycle_on_every_port(kept, lanes):
    """The kept-column table is one copy that the walkers read in turns, a word of
    ``fetch_ports`` entries a turn, each walker keeping the list's first word: a masked layer
    whose kept columns are not a whole number of words (13 over four ports; 3, less than one
    word; 5 over two) still streams a weight a cycle on every port without backpressure: the
    fetch takes the ideal ``ceil(weights / ports)`` cycles and a start-up (15-19 cycles; a
    turn a row lost would be 24 or more), the same stream."""
    cfg = CFG.replace(input_masks=True, lanes=lanes)
    rng = np.random.default_rng(kept)
    rows, cols = 32, 30
    net = random_network(cfg, rng, [(rows, cols)], sparsity=0.0, uniform=[1], masked=[True])
    keep = np.zeros(cols, bool)
    keep[rng.choice(cols, kept, replace=False)] = True
    net.codes[0] = np.where(keep, 1, 0)[None, :].repeat(rows, 0)
    net = Network(cfg, net.masters, net.codes, net.shifts, [1], [True])
    ideal = -(-rows * kept // cfg.fetch_ports)

    async def body(ctx, dut):
        await load(ctx, dut, net)
        await rezone(ctx, dut, net, random.Random(kept), idle=0.0)
        await command(ctx, dut, Op.SWAP)
        await command(ctx, dut, Op.FETCH, 0)
        got = [[] for _ in dut.o]
        for o in dut.o:
            ctx.set(o.ready, 1)
        cycles = 0
        while cycles < 3 * ideal:
            await ctx.delay(1e-9)
            for p, o in enumerate(dut.o):
                if ctx.get(o.valid):
                    got[p].append(ctx.get(o.payload.as_value()))
            await ctx.tick()
            cycles += 1
            if not ctx.get(dut.status.fetching):
                break
        assert got == net.port_words(0)
        assert cycles <= ideal + 20, (cycles, ideal)

    run(cfg, body)


# Every way the metadata can be written: unary codes of 2 and 4 classes (codes of up to 4
# bits), fixed-width codes that divide the word and that do not (3 bits: codes cross words),
# and words of 16 and 64 bits.
ENCODINGS = {
    "unary-n2": dict(precisions=(8, 16), thresholds=(1, 2)),
    "unary-n4": dict(precisions=(2, 4, 8, 16), thresholds=(1, 2, 3, 4)),
    "fixed-c2": dict(meta_encoding="fixed"),
    "fixed-c3": dict(precisions=(2, 4, 8, 16), thresholds=(1, 2, 3, 4), meta_encoding="fixed"),
    "unary-w16": dict(zone_word_bits=16, zone_depth=256),
    "fixed-c3-w64": dict(precisions=(2, 4, 8, 16), thresholds=(1, 2, 3, 4),
                         meta_encoding="fixed", zone_word_bits=64, zone_depth=64),
}


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("sparsity", [0.3, 0.9])
def test_every_metadata_encoding(name, sparsity):
    """The tokenizer decodes every encoding, dense and very sparse: walks that begin at any
    bit of a word (the split points), codes that cross words, runs longer than a word."""
    cfg = CFG.replace(**ENCODINGS[name])
    seed = sorted(ENCODINGS).index(name) + int(10 * sparsity)
    rng = np.random.default_rng(seed)
    net = random_network(cfg, rng, SHAPES[3], sparsity=sparsity)
    rezone_and_fetch(cfg, net, random.Random(seed))


def test_pruned_runs_across_row_ends():
    """Directed: pruned runs that cross one row end, two (through an all-pruned row), start a
    layer, end it, and a row whose only weight is its last, on every port split."""
    rows = [[1, 2, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 3, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0]]
    codes = np.array(rows, np.int64)
    # One and two ports keep the long runs inside a port's walk (with more, the split points at
    # surviving weights cut them); the default ports in the random tests.
    for cfg in (CFG.replace(lanes=1), CFG.replace(lanes=2, desc_stride=2),
                CFG.replace(lanes=1, meta_encoding="fixed")):
        rng = np.random.default_rng(5)
        masters = rng.integers(-3000, 3000, codes.shape).astype(np.int64)
        first = np.array([[0, 0, 1, 0, 0, 2, 0, 0]] * 3, np.int64)     # starts pruned
        net = Network(cfg, [masters, masters[:3]], [codes, first], [[2, 1, 0], [3, 2, 0]])
        rezone_and_fetch(cfg, net, random.Random(3))


@pytest.mark.parametrize("seed", range(3))
def test_reset_during_rezoning_keeps_the_active_layout(seed):
    rng = np.random.default_rng(100 + seed)
    prng = random.Random(seed)
    shapes = [(6, 9), (10, 13)]
    old = random_network(CFG, rng, shapes)
    new = random_network(CFG, rng, shapes)
    new = Network(CFG, old.masters, new.codes, new.shifts)     # same masters, new codes
    stop = prng.randrange(len(new.code_stream()))

    async def body(ctx, dut):
        await load(ctx, dut, old)
        await rezone(ctx, dut, old, prng)
        await command(ctx, dut, Op.SWAP)
        active = ctx.get(dut.status.active)
        await load(ctx, dut, new)
        await rezone(ctx, dut, new, prng, abort_after=stop)
        for _ in range(prng.randrange(4)):
            await ctx.tick()
        ctx.set(dut.rst, 1)
        await ctx.tick()
        ctx.set(dut.rst, 0)
        assert ctx.get(dut.status.active) == active and not ctx.get(dut.status.shadow_ready)
        for l in range(len(shapes)):
            got, want = await fetch(ctx, dut, old, l, prng)
            assert got == want
        for got, want in zip(await read_masters(ctx, dut, old), old.masters):
            np.testing.assert_array_equal(got, want)
        # The interrupted re-zoning, done again, completes and swaps in.
        await rezone(ctx, dut, new, prng)
        await command(ctx, dut, Op.SWAP)
        for l in range(len(shapes)):
            got, want = await fetch(ctx, dut, new, l, prng)
            assert got == want

    run(CFG, body)


def test_destructive_mode_clears_pruned_masters():
    cfg = CFG.replace(reversible=False)
    rng = np.random.default_rng(7)
    net = random_network(cfg, rng, [(8, 8)], sparsity=0.5)

    async def body(ctx, dut):
        await load(ctx, dut, net)
        await rezone(ctx, dut, net, random.Random(0))
        for got, want in zip(await read_masters(ctx, dut, net), net.masters_after()):
            np.testing.assert_array_equal(got, want)

    run(cfg, body)
