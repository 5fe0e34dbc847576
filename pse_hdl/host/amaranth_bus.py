"""Transport: the engine's bus in Amaranth's simulator (tier-1 tests), with optional random idle
cycles between requests and backpressure on the responses."""

import random

from .bus import Bus

__all__ = ["AmaranthBus"]


class AmaranthBus(Bus):
    """``bus`` is the engine's ``bus`` member; ``ctx`` the testbench context."""

    def __init__(self, ctx, bus, rng=None, idle=0.0, stall=0.0):
        self.ctx, self.req, self.rsp = ctx, bus.req, bus.rsp
        self.rng, self.idle, self.stall = rng or random.Random(0), idle, stall

    async def _request(self, addr, write, data):
        ctx = self.ctx
        while self.idle and self.rng.random() < self.idle:
            await ctx.tick()
        ctx.set(self.req.valid, 1)
        ctx.set(self.req.payload.addr, addr)
        ctx.set(self.req.payload.write, write)
        ctx.set(self.req.payload.data, data)
        await ctx.tick().until(self.req.ready)
        ctx.set(self.req.valid, 0)

    async def write(self, addr, value):
        await self._request(addr, 1, value)

    async def read(self, addr):
        await self._request(addr, 0, 0)
        ctx = self.ctx
        while True:
            ready = not (self.stall and self.rng.random() < self.stall)
            ctx.set(self.rsp.ready, ready)
            _, _, valid, data = await ctx.tick().sample(self.rsp.valid, self.rsp.payload.data)
            if ready and valid:
                ctx.set(self.rsp.ready, 0)
                return data
