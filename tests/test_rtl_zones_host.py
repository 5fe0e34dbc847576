"""Tier 1: the zoned memory's host side and limits in Amaranth's simulator: host reads
and master writes in order, commands outside the layout, a fetch during a re-zoning,
zones and metadata filled to their depths and one word over, the up5k preset."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from pse_hdl.rtl.zones import Op, Target, ZonedMemory
from sim.zones_ref import Network, random_network
from tests.zones_bench import (CFG, command, fetch, host_read, host_write, load, rezone,
                                rezone_and_fetch, run)


def test_host_reads_are_accepted_once_their_data_is_registered():
    """Every block RAM's output is registered before the multiplexer across the memories: a
    host read is accepted the cycle after it is offered (three after for a master, whose
    address and the word chosen among its banks are registered too), and ``rd_data`` follows
    the acceptance by one cycle with ``rd_valid``; the read that follows without a gap waits as
    long."""
    waits = [(Target.PLAN, 1), (Target.META, 1), (Target.TABLE, 1), (Target.SPLIT, 1),
             (Target.ZONE, 1), (Target.MASTER, 3), (Target.MASTER, 3), (Target.ZONE, 1)]

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
