"""Transport: the engine's bus in a cocotb testbench (the Verilog in Verilator), with random idle
cycles between requests and random backpressure on the responses. Every wait is bounded: a stuck
handshake fails with the stream and the cycle instead of hanging the test, and a handshake or a
response that carries X or Z (4-state simulators) fails at once."""

import random

from cocotb.triggers import ReadOnly, RisingEdge

from .bus import Bus, BusTimeout

__all__ = ["CocotbBus"]


def _known(handle, what, cycle):
    """``handle``'s value as an unsigned int, read from its bit string (cheaper than cocotb's
    per-bit objects); :class:`BusTimeout` if a bit is X or Z."""
    bits = str(handle.value)
    if bits.strip("01"):
        raise BusTimeout(f"{what} is {bits} (X or Z) at cycle {cycle}")
    return int(bits, 2)


class CocotbBus(Bus):
    """``dut`` is the engine's top level (``bus__req__*``, ``bus__rsp__*``); ``idle`` and
    ``stall`` are probabilities of an idle cycle before a request and of a cycle without
    ``rsp.ready``; ``limit`` bounds every wait, in cycles."""

    def __init__(self, dut, addr_bits, rng=None, idle=0.0, stall=0.0, limit=100_000):
        self.dut, self.clk, self.addr_bits = dut, dut.clk, addr_bits
        self.rng, self.idle, self.stall, self.limit = rng or random.Random(0), idle, stall, limit
        self.cycle = 0

    async def _edge(self):
        await RisingEdge(self.clk)
        self.cycle += 1

    async def _request(self, addr, write, data):
        dut = self.dut
        await self._edge()
        while self.idle and self.rng.random() < self.idle:
            await self._edge()
        dut.bus__req__payload.value = (addr | int(write) << self.addr_bits
                                       | (int(data) & 0xFFFF_FFFF) << (self.addr_bits + 1))
        dut.bus__req__valid.value = 1
        for _ in range(self.limit):
            await ReadOnly()
            taken = _known(dut.bus__req__ready, "bus.req.ready", self.cycle) == 1
            await self._edge()
            if taken:
                dut.bus__req__valid.value = 0
                return
        raise BusTimeout(f"bus.req: request to 0x{addr:x} not taken for {self.limit} cycles "
                         f"(cycle {self.cycle})")

    async def write(self, addr, value):
        await self._request(addr, True, value)

    async def read(self, addr):
        await self._request(addr, False, 0)
        dut = self.dut
        for _ in range(self.limit):
            ready = not (self.stall and self.rng.random() < self.stall)
            dut.bus__rsp__ready.value = int(ready)
            await ReadOnly()
            if _known(dut.bus__rsp__valid, "bus.rsp.valid", self.cycle) == 1 and ready:
                data = _known(dut.bus__rsp__payload, "bus.rsp.payload", self.cycle)
                await self._edge()
                dut.bus__rsp__ready.value = 0
                return data
            await self._edge()
        raise BusTimeout(f"bus.rsp: no response to the read of 0x{addr:x} for {self.limit} "
                         f"cycles (cycle {self.cycle})")
