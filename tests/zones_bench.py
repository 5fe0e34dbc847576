"""Tier-1 testbench of the zoned memory in Amaranth's simulator: the host's and the
commands' transfers, re-zoning and fetching a network, a run with reset, shared by
the zoned-memory tests."""

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from pse_hdl.config import PSEConfig
from pse_hdl.rtl.zones import Op, Target, ZonedMemory


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
