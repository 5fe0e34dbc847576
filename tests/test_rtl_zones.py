"""Tier 1: the zoned memory in Amaranth's simulator against the golden model: re-zoning writes
exactly the model's zone words, metadata and descriptors; every fetch port sends exactly
``port_streams``; swap and reset keep the active layout."""

import random

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from pse_hdl.config import PSEConfig
from pse_hdl.rtl.zones import Op, Target, ZonedMemory
from sim.zones_ref import Network, random_network

# Every layer on every port unless a test says otherwise (one_port_below).
CFG = PSEConfig(max_rows=32, max_cols=32, zone_depth=128, master_depth=2000, max_layers=4,
                one_port_below=0)


async def offer(ctx, stream, **fields):
    """One transfer on an input stream, held until it is taken."""
    ctx.set(stream.valid, 1)
    for name, value in fields.items():
        ctx.set(getattr(stream.payload, name), value)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def host_write(ctx, dut, target, addr, value):
    await offer(ctx, dut.host_wr, target=target, addr=addr, data=value)


async def host_read(ctx, dut, target, addr, bank):
    await offer(ctx, dut.host_rd, target=target, addr=addr, bank=bank)
    await ctx.delay(1e-9)
    assert ctx.get(dut.rd_valid)
    return ctx.get(dut.rd_data)


async def command(ctx, dut, op, arg=0):
    await offer(ctx, dut.cmd, op=op, arg=arg)


async def load(ctx, dut, net):
    for addr, v in net.master_writes():
        await host_write(ctx, dut, Target.MASTER, addr, v)
    for l, w in enumerate(net.plan_words()):
        await host_write(ctx, dut, Target.PLAN, l, w)


async def rezone(ctx, dut, net, rng, idle=0.3, abort_after=None, started=None):
    """Send the codes; with ``abort_after`` assert reset after that many codes instead.
    ``started`` (a dict) learns when the command was taken."""
    await command(ctx, dut, Op.REZONE, len(net.images))
    if started is not None:
        started["started"] = True
    for i, c in enumerate(net.code_stream()):
        if abort_after is not None and i == abort_after:
            ctx.set(dut.codes.valid, 0)
            return
        while rng.random() < idle:
            ctx.set(dut.codes.valid, 0)
            await ctx.tick()
        ctx.set(dut.codes.valid, 1)
        ctx.set(dut.codes.payload.code, c)
        await ctx.tick().until(dut.codes.ready)
    ctx.set(dut.codes.valid, 0)
    while ctx.get(dut.status.rezoning):
        await ctx.tick()


async def fetch(ctx, dut, net, l, rng, stall=0.3):
    await command(ctx, dut, Op.FETCH, l)
    want = net.port_words(l)
    got = [[] for _ in want]
    await ctx.tick()
    idle = 0
    while idle < 8:
        busy = ctx.get(dut.status.fetching)
        for p, o in enumerate(dut.o):
            ctx.set(o.ready, rng.random() >= stall)
        await ctx.delay(1e-9)
        for p, o in enumerate(dut.o):
            if ctx.get(o.ready) and ctx.get(o.valid):
                got[p].append(ctx.get(o.payload.as_value()))
        await ctx.tick()
        idle = 0 if busy else idle + 1
    for p, o in enumerate(dut.o):
        ctx.set(o.ready, 0)
    return got, want


def run(cfg, body):
    dut = ZonedMemory(cfg)
    top = Module()
    top.domains.sync = cd = ClockDomain()
    top.submodules.dut = dut
    dut.rst = cd.rst
    sim = Simulator(top)
    sim.add_clock(1e-8)

    async def tb(ctx):
        await body(ctx, dut)
    sim.add_testbench(tb)
    sim.run()


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
            keep = np.zeros(cols, bool) if sp == 1.0 else rng.random(cols) >= sp
            net.codes[l] = np.where(keep, uniform[l], 0)[None, :].repeat(rows, 0)
    net = Network(cfg, net.masters, net.codes, net.shifts, uniform, masked)
    rezone_and_fetch(cfg, net, random.Random(seed))


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


def rezone_and_fetch(cfg, net, prng):
    """Load, re-zone, check the shadow bank word by word and the footprint counts, swap, and
    fetch every layer on every port under backpressure, all against the model."""

    async def body(ctx, dut):
        await load(ctx, dut, net)
        await rezone(ctx, dut, net, prng)
        assert not ctx.get(dut.status.error.as_value())
        assert ctx.get(dut.status.shadow_ready)
        counts = net.footprint_counts()
        assert [ctx.get(dut.status.zone_words[k]) for k in range(len(cfg.precisions))] == counts["zone_words"]
        assert ctx.get(dut.status.meta_bits) == counts["meta_bits"]
        assert ctx.get(dut.status.row_descs) == counts["row_descs"]
        assert ctx.get(dut.status.split_descs) == counts["split_descs"]
        shadow = 1 - ctx.get(dut.status.active)
        for (target, addr), want in net.expected().items():
            got = await host_read(ctx, dut, target, addr, shadow)
            assert got == want, (Target(min(target, 6)), target, addr, hex(got), hex(want))
        await command(ctx, dut, Op.SWAP)
        for l in range(len(net.images)):
            got, want = await fetch(ctx, dut, net, l, prng)
            for p in range(len(want)):
                assert got[p] == want[p], (l, p, len(got[p]), len(want[p]))
            mask = (1 << cfg.row_bits) - 1
            assert [(ctx.get(s.row), ctx.get(s.cont)) for s in dut.sched] == \
                [(row & mask, cont) for row, cont in net.port_schedule(l)]

    run(cfg, body)


async def read_masters(ctx, dut, net):
    out = []
    for base, mm in zip(net.master_base, net.masters):
        vals = [await host_read(ctx, dut, Target.MASTER, int(base) + i, 0) for i in range(mm.size)]
        v = np.array(vals, np.int64)
        out.append(np.where(v >= 1 << (CFG.weight_bits - 1), v - (1 << CFG.weight_bits), v)
                   .reshape(mm.shape))
    return out


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


def test_host_reads_are_accepted_once_their_data_is_registered():
    """Every block RAM's output is registered before the multiplexer across the memories: a
    host read is accepted the cycle after it is offered (two after for a master, whose address
    is registered too), and ``rd_data`` follows the acceptance by one cycle with ``rd_valid``;
    the read that follows without a gap waits as long."""
    waits = [(Target.PLAN, 1), (Target.META, 1), (Target.TABLE, 1), (Target.SPLIT, 1),
             (Target.ZONE, 1), (Target.MASTER, 2), (Target.MASTER, 2), (Target.ZONE, 1)]

    async def body(ctx, dut):
        rd = dut.host_rd
        for target, wait in waits:
            ctx.set(rd.valid, 1)
            ctx.set(rd.payload.target, target)
            ctx.set(rd.payload.addr, 1)
            for _ in range(wait):
                assert not ctx.get(rd.ready), target
                await ctx.tick()
            assert ctx.get(rd.ready), target
            await ctx.tick()
            assert ctx.get(dut.rd_valid), target
        ctx.set(rd.valid, 0)
        await ctx.tick()
        assert not ctx.get(dut.rd_valid)
    run(CFG, body)


ADDRS = [0, 1, 2, 1023, 1024, 1999]


def test_master_store_reads_see_every_write_before_them():
    """The master store's port is registered (a read takes three cycles, a write lands a cycle
    after it is taken): reads and writes interleaved back to back, on the same addresses, and
    reads through ``master_walk``, each see the last write before them; addresses in both of
    the store's banks (``master_bank`` 1024 of ``master_depth`` 2000)."""
    prng = random.Random(11)
    store = {}

    async def body(ctx, dut):
        for _ in range(300):
            addr = prng.choice(ADDRS)               # few addresses: reads follow their writes
            if prng.random() < 0.5:
                value = prng.randrange(1 << CFG.weight_bits)
                await host_write(ctx, dut, Target.MASTER, addr, value)
                store[addr] = value
            elif addr in store:
                assert await host_read(ctx, dut, Target.MASTER, addr, 0) == store[addr], addr
            if prng.random() < 0.2:
                await ctx.tick().repeat(prng.randrange(1, 3))
        # The allocation walk's port: data three cycles after the request, held after it.
        walk = dut.master_walk
        for addr, value in store.items():
            ctx.set(walk.addr, addr)
            ctx.set(walk.en, 1)
            await ctx.tick()
            ctx.set(walk.en, 0)
            ctx.set(walk.addr, prng.choice(ADDRS))
            await ctx.tick().repeat(2)
            for _ in range(prng.randrange(1, 4)):
                assert ctx.get(walk.data) & 0xffff == value, addr
                await ctx.tick()

    run(CFG, body)


def test_commands_outside_the_layout_raise_the_layer_error():
    rng = np.random.default_rng(3)
    net = random_network(CFG, rng, [(4, 4)])

    async def body(ctx, dut):
        for bad in (0, CFG.max_layers + 1):
            await command(ctx, dut, Op.REZONE, bad)
            await ctx.tick()
            assert ctx.get(dut.status.error.layer) and not ctx.get(dut.status.rezoning)
        await load(ctx, dut, net)
        await rezone(ctx, dut, net, random.Random(0))
        assert not ctx.get(dut.status.error.layer)
        await command(ctx, dut, Op.FETCH, 0)      # nothing swapped in yet
        await ctx.tick()
        assert ctx.get(dut.status.error.layer) and not ctx.get(dut.status.fetching)
        await command(ctx, dut, Op.SWAP)
        await command(ctx, dut, Op.FETCH, 1)      # the layout has one layer: exactly one past
        await ctx.tick()
        assert ctx.get(dut.status.error.layer) and not ctx.get(dut.status.fetching)

    run(CFG, body)


def test_fetch_while_rezoning_reads_the_active_layout():
    """A re-zoning builds the shadow bank while fetches of the active one go on, unchanged."""
    rng = np.random.default_rng(31)
    shapes = [(12, 20), (9, 12)]
    old = random_network(CFG, rng, shapes)
    new = Network(CFG, old.masters, random_network(CFG, rng, shapes).codes,
                  random_network(CFG, rng, shapes).shifts)
    done = {}

    dut = ZonedMemory(CFG)
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def host(ctx):
        prng = random.Random(4)
        await load(ctx, dut, old)
        await rezone(ctx, dut, old, prng)
        await command(ctx, dut, Op.SWAP)
        await load(ctx, dut, new)
        await rezone(ctx, dut, new, prng, idle=0.6, started=done)     # a long re-zoning
        done["rezoned"] = True

    async def fetcher(ctx):
        prng = random.Random(5)
        while not done.get("started"):
            await ctx.tick()
        rounds = 0
        while not done.get("rezoned"):
            for l in range(len(shapes)):
                got, want = await fetch(ctx, dut, old, l, prng)
                assert got == want, (rounds, l)
            rounds += 1
        done["rounds"] = rounds
        assert ctx.get(dut.status.shadow_ready)
        await command(ctx, dut, Op.SWAP)
        for l in range(len(shapes)):
            got, want = await fetch(ctx, dut, new, l, prng)
            assert got == want

    sim.add_testbench(host)
    sim.add_testbench(fetcher)
    sim.run()
    assert done["rounds"] >= 2


@pytest.mark.parametrize("over_shape", [(8, 17), (5, 26)])
def test_per_precision_depths_at_their_limits(over_shape):
    """Zones of different depths (4-bit: 16 words, 8-bit: 64, 16-bit: 32): a layout that fills
    the 4-bit zone exactly is built and fetched as the model says; one with a word more sets the
    zone error bit, cannot be swapped in and writes nothing outside its zone: the active layout
    reads back and fetches unchanged."""
    cfg = CFG.replace(zone_depth=(16, 64, 32))
    roomy = cfg.replace(zone_depth=(32, 64, 32))        # same widths, room for the overflow
    rng = np.random.default_rng(41)
    masters = rng.integers(-30000, 30000, (8, 16)).astype(np.int64)
    mixed = rng.choice([0, 2, 3], (4, 16))              # no 4-bit weight
    full = np.ones((8, 16), np.int64)                   # 128 4-bit weights: 16 words, full
    # One word over: 136 weights fill a 17th word (written as it fills), 130 half of one
    # (written when the layer ends).
    over = np.ones(over_shape, np.int64)
    net_full = Network(cfg, [masters, masters[:4]], [full, mixed], [[3, 2, 0]] * 2)
    assert net_full.footprint_counts()["zone_words"][0] == 16
    over_masters = rng.integers(-30000, 30000, over.shape).astype(np.int64)
    net_over = Network(roomy, [over_masters], [over], [[3, 2, 0]])
    assert net_over.footprint_counts()["zone_words"][0] == 17
    prng = random.Random(6)

    async def body(ctx, dut):
        await full_then_over(ctx, dut, net_full, net_over, "zone", prng)
        assert ctx.get(dut.status.zone_words[0]) == 17      # what the last re-zoning needed

    run(cfg, body)


async def full_then_over(ctx, dut, net_full, net_over, bit, prng):
    """Build ``net_full`` (it fits exactly) and swap it in; build ``net_over``, which sets the
    ``bit`` error bit alone and cannot be swapped in; the active layout reads back and fetches
    unchanged."""
    await load(ctx, dut, net_full)
    await rezone(ctx, dut, net_full, prng)
    assert not ctx.get(dut.status.error.as_value()) and ctx.get(dut.status.shadow_ready)
    await command(ctx, dut, Op.SWAP)
    active = ctx.get(dut.status.active)
    await load(ctx, dut, net_over)
    await rezone(ctx, dut, net_over, prng)
    error = ctx.get(dut.status.error)
    assert {b: int(getattr(error, b)) for b in ("cost", "zone", "meta")} == \
        {b: int(b == bit) for b in ("cost", "zone", "meta")}
    assert not ctx.get(dut.status.shadow_ready)
    for (target, addr), want in net_full.expected().items():
        if target >= Target.ZONE.value or target == Target.META:
            assert await host_read(ctx, dut, target, addr, active) == want, (target, addr)
    for l in range(len(net_full.images)):
        got, want = await fetch(ctx, dut, net_full, l, prng)
        assert got == want, l


def test_metadata_depth_at_its_limit():
    """The metadata memory sized by ``meta_bits`` (256 masters at one bit: 8 words per bank): a
    layout whose codes fill it exactly is built and fetched as the model says; one whose codes
    take one bit more sets the metadata error bit, cannot be swapped in and writes nothing into
    the active bank (the next one in the memory): the active layout reads back and fetches
    unchanged."""
    cfg = CFG.replace(master_depth=256, meta_bits=1)
    assert cfg.meta_depth == 8
    rng = np.random.default_rng(43)
    masters = rng.integers(-30000, 30000, (8, 16)).astype(np.int64)
    full = np.ones((8, 16), np.int64)                   # 128 codes of 2 bits: 8 words, full
    over = full.copy()
    over[5, 7] = 2                                      # one code of 3 bits: one bit over
    net_full = Network(cfg, [masters], [full], [[3, 2, 0]])
    net_over = Network(cfg.replace(meta_bits=2), [masters], [over], [[3, 2, 0]])
    assert net_full.footprint_counts()["meta_bits"] == 8 * 32
    assert net_over.footprint_counts()["meta_bits"] == 8 * 32 + 1
    prng = random.Random(7)

    async def body(ctx, dut):
        await full_then_over(ctx, dut, net_full, net_over, "meta", prng)

    run(cfg, body)


def test_up5k_preset():
    """The iCE40 UP5K preset (one port, zones of 256, 256 and 128 words) with a digits MLP
    64-32-10 at half sparsity: re-zoned and fetched as the model says."""
    from pse_hdl.config import preset
    cfg = preset("up5k")
    net = random_network(cfg, np.random.default_rng(12), [(32, 64), (10, 32)], sparsity=0.5)
    rezone_and_fetch(cfg, net, random.Random(12))
