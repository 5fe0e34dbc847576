"""Helpers for tier-1 tests in Amaranth's simulator: stream source and sink with random stalls."""

import random

from amaranth.lib import data
from amaranth.sim import Simulator

__all__ = ["run_sim", "stream_source", "stream_sink", "SimTimeout", "MAX_CYCLES",
           "SINK_STUCK_CYCLES"]


# The most cycles a tier-1 test may run: a hang fails here instead of running for ever.
MAX_CYCLES = 5_000_000
# The most cycles a sink waits for its next transfer: a lost transfer fails here, in seconds,
# naming the stream, instead of at the global limit minutes later.
SINK_STUCK_CYCLES = 100_000


class SimTimeout(AssertionError):
    """A tier-1 testbench that did not finish within its cycle limit."""


def run_sim(dut, *testbenches, max_cycles=MAX_CYCLES, background=()):
    """Run the testbenches on ``dut`` (a 100 MHz clock) until they all return (those in
    ``background``, models of what surrounds the DUT, run as long as they do); a background
    watchdog fails the test if they have not after ``max_cycles`` cycles."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)

    async def watchdog(ctx):
        await ctx.delay(max_cycles * 1e-8)
        raise SimTimeout(f"the testbenches did not finish within {max_cycles} cycles: a stream "
                         f"or a condition is stuck")
    sim.add_testbench(watchdog, background=True)
    sim.run()


async def stream_source(ctx, stream, items, rng=None, idle=0.0):
    """Send payload dicts (or ints) on ``stream``; ``idle`` is the probability of a gap."""
    rng = rng or random.Random(0)
    for item in items:
        while idle and rng.random() < idle:
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.valid, 1)
        _set_payload(ctx, stream.payload, item)
        await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_sink(ctx, stream, count, rng=None, stall=0.0):
    """Collect ``count`` payloads (as dicts of ints) from ``stream`` with random backpressure."""
    rng = rng or random.Random(1)
    out = []
    waited = 0
    while len(out) < count:
        ready = not (stall and rng.random() < stall)
        ctx.set(stream.ready, ready)
        await ctx.delay(1e-9)                     # let valid settle before sampling
        if ready and ctx.get(stream.valid):
            p = stream.payload
            out.append({name: ctx.get(getattr(p, name)) for name, _ in p.shape()}
                       if isinstance(p, data.View) else ctx.get(p))
            waited = 0
        waited += 1
        if waited > SINK_STUCK_CYCLES:
            raise SimTimeout(f"stream sink: no transfer for {SINK_STUCK_CYCLES} cycles after "
                             f"{len(out)} of {count} (a transfer lost or a stream stuck)")
        await ctx.tick()
    ctx.set(stream.ready, 0)
    return out


def _set_payload(ctx, payload, item):
    if isinstance(item, dict):
        for k, v in item.items():
            ctx.set(getattr(payload, k), v)
    else:
        ctx.set(payload, item)
