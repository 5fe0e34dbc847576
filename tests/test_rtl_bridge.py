"""Tier 1: the UART and the serial bridge in Amaranth's simulator, against the protocol's
reference model (``pse_hdl.host.link.BridgeModel``)."""

import random

import pytest

from pse_hdl.config import PSEConfig
from pse_hdl.errors import ConfigError
from pse_hdl.host.link import BridgeModel, SlipDecoder, Status
from pse_hdl.rtl.bridge import Bridge
from pse_hdl.rtl.uart import UartRx, UartTx, divisor
from sim.link_frames import LinkBus, flatten, random_traffic
from tests.simutil import run_sim, stream_sink, stream_source

ADDR_BITS, POLLS = 8, 16


def bus_slave(dut, bus, rng, stall):
    """The bus behind the bridge: ``bus`` (a :class:`LinkBus`), random ready and response
    delays."""
    req, rsp = dut.bus.req, dut.bus.rsp

    async def slave(ctx):
        while True:
            ready = rng.random() >= stall
            ctx.set(req.ready, ready)
            _, _, valid, addr, write, data = await ctx.tick().sample(
                req.valid, req.payload.addr, req.payload.write, req.payload.data)
            if not (ready and valid):
                continue
            ctx.set(req.ready, 0)
            if write:
                bus.write(addr, data)
                continue
            value = bus.read(addr)
            while rng.random() < stall:
                await ctx.tick()
            ctx.set(rsp.valid, 1)
            ctx.set(rsp.payload.data, value)
            await ctx.tick().until(rsp.ready)
            ctx.set(rsp.valid, 0)
    return slave


@pytest.mark.parametrize("seed,idle,stall", [(0, 0.0, 0.0), (1, 0.3, 0.3), (2, 0.1, 0.6)])
def test_bridge_matches_the_model(seed, idle, stall):
    """Random traffic (good frames, retries, flipped bits, lost bytes, garbage, too long,
    malformed, empty, bytes with UART errors) with random gaps and backpressure on every stream: the reply bytes and
    the bus's state are the model's."""
    cfg = PSEConfig(bridge_frame_bytes=128)
    rng = random.Random(seed)
    bus, ref_bus = LinkBus(ADDR_BITS, seed), LinkBus(ADDR_BITS, seed)
    model = BridgeModel(ref_bus.read, ref_bus.write, cfg.bridge_frame_bytes, ADDR_BITS, POLLS)
    chunks, replies = random_traffic(rng, model, ref_bus, 80)
    requests, damaged = flatten(chunks)
    statuses = {f[-3] for f in SlipDecoder().feed(replies)}
    assert statuses == {Status.OK, Status.CRC, Status.TOO_LONG, Status.MALFORMED, Status.LINE,
                        Status.TIMEOUT}
    dut = Bridge(cfg, ADDR_BITS, wait_polls=POLLS)
    got = []

    async def source(ctx):
        await stream_source(ctx, dut.i, [{"data": b, "error": int(k in damaged)}
                                         for k, b in enumerate(requests)],
                            random.Random(seed + 10), idle)

    async def sink(ctx):
        got.extend(await stream_sink(ctx, dut.o, len(replies), random.Random(seed + 20), stall))

    run_sim(dut, source, sink, background=[bus_slave(dut, bus, random.Random(seed + 30), stall)])
    assert bytes(got) == replies
    assert bus.mem == ref_bus.mem
    assert (bus.reads, bus.writes) == (ref_bus.reads, ref_bus.writes)


def line_driver(pin, div, rng):
    """Drive an 8N1 line: ``send(ctx, byte, stop=1, bit=div)``."""
    async def send(ctx, byte, stop=1, bit=None):
        bit = bit or div
        for b in [0] + [(byte >> k) & 1 for k in range(8)] + [stop]:
            ctx.set(pin, b)
            await ctx.tick().repeat(bit)
        ctx.set(pin, 1)
    return send


@pytest.mark.parametrize("div", [4, 7, 25])
def test_uart_loopback_with_gaps(div):
    """Transmitter -> receiver: random bytes with random gaps and a slow consumer."""
    from amaranth.hdl import Module
    m = Module()
    m.submodules.tx, m.submodules.rx = tx, rx = UartTx(div), UartRx(div)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [random.Random(div).getrandbits(8) for _ in range(40)] + [0x00, 0xFF, 0xC0]
    got = []

    async def source(ctx):
        await stream_source(ctx, tx.i, data, random.Random(1), idle=0.3)

    async def sink(ctx):
        got.extend(await stream_sink(ctx, rx.o, len(data), random.Random(2), stall=0.3))
    run_sim(m, source, sink)
    assert got == [{"data": b, "error": 0} for b in data]


@pytest.mark.parametrize("skew", [-0.02, 0.0, 0.02])
def test_uart_receiver_errors_and_rate(skew):
    """Back-to-back bytes from a sender 2 % fast or slow; a start glitch is no byte; a low stop
    bit is a framing error (the byte marked, then the receiver waits for the line to rise); an
    unread byte is overrun by the next (marked)."""
    div = 16
    rx = UartRx(div)
    rng = random.Random(3)
    send = line_driver(rx.rx, div, rng)
    bit = round(div * (1 + skew))
    data = [rng.getrandbits(8) for _ in range(12)]
    got, state = [], {"resume": False}

    async def line(ctx):
        for b in data:
            await send(ctx, b, bit=bit)
        ctx.set(rx.rx, 0)                          # a glitch of 3 cycles: no start bit
        await ctx.tick().repeat(3)
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(3 * div)
        await send(ctx, 0x55, stop=0)              # framing error
        ctx.set(rx.rx, 0)                          # the line stays low a while (a break)
        await ctx.tick().repeat(40 * div)
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(2 * div)
        await send(ctx, 0xA7)
        await send(ctx, 0x3C)                      # the consumer does not take 0xA7 in time
        await ctx.tick().repeat(2 * div)
        state["resume"] = True
        await ctx.tick().repeat(4)

    async def consumer(ctx):
        while True:
            # after the marked 0x55, nothing is taken until the line has sent 0xA7 and 0x3C
            want = len(got) != len(data) + 1 or state["resume"]
            ctx.set(rx.o.ready, want)
            _, _, valid, value, err = await ctx.tick().sample(
                rx.o.valid, rx.o.payload.data, rx.o.payload.error)
            if valid and want:
                got.append((value, err))

    run_sim(rx, line, background=[consumer])
    # 0x3C arrived while 0xA7 was unread: 0xA7 is lost and 0x3C marked.
    assert got == [(b, 0) for b in data] + [(0x55, 1), (0x3C, 1)]


def test_baud_rate_checks():
    assert divisor(12e6, 1_000_000) == 12 and divisor(25e6, 1_000_000) == 25
    with pytest.raises(ConfigError, match="uart_baud 3000000 is .* off at a 25 MHz clock"):
        divisor(25e6, 3_000_000)
    with pytest.raises(ConfigError, match="at most a quarter of the board clock"):
        divisor(12e6, 4_000_000)
    with pytest.raises(ConfigError, match="uart_baud must be an integer between 9600"):
        PSEConfig(uart_baud=1200)
    with pytest.raises(ConfigError, match="bridge_frame_bytes must be a power of two"):
        PSEConfig(bridge_frame_bytes=1000)
