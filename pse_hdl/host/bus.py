"""The bus protocol every transport of the engine's register map implements.

All methods are coroutines (``async def``). A transport whose accesses complete at once (the
golden model, the Verilated model, a serial port) still defines them as coroutines that never
suspend, and :func:`run` drives a firmware coroutine on it without an event loop.
"""

__all__ = ["Bus", "BusTimeout", "run"]


class BusTimeout(RuntimeError):
    """A wait for a register value did not end: the engine is stuck (a bug, not a user
    mistake)."""


class Bus:
    """Base class of the transports: implement :meth:`read` and :meth:`write`; the block
    accesses and :meth:`wait` have generic versions a transport may replace with faster ones."""

    async def read(self, addr):
        raise NotImplementedError

    async def write(self, addr, value):
        raise NotImplementedError

    async def write_block(self, addr, values):
        """Write ``values`` to consecutive addresses from ``addr``."""
        for i, v in enumerate(values):
            await self.write(addr + i, int(v))

    async def read_block(self, addr, count):
        """Read ``count`` consecutive words from ``addr``."""
        return [await self.read(addr + i) for i in range(count)]

    async def read_blocks(self, blocks):
        """Several reads at once: ``blocks`` is a list of ``(addr, count)``; returns a list of
        word lists. A transport with round trips (a serial port) makes it one."""
        return [await self.read_block(addr, count) for addr, count in blocks]

    async def wait(self, addr, mask, value, limit=1 << 26):
        """Read ``addr`` until ``word & mask == value``; returns the word. Raises
        :class:`BusTimeout` after ``limit`` reads."""
        for _ in range(limit):
            word = await self.read(addr)
            if word & mask == value:
                return word
        raise BusTimeout(f"register 0x{addr:x} did not reach {value:#x} under mask {mask:#x} "
                         f"after {limit} reads")


def run(coro):
    """Drive a coroutine whose awaits never suspend (a synchronous transport); return its
    value."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the coroutine suspended: its transport is not synchronous (use the "
                       "simulator's own scheduler)")
