"""Typed testbench parts for valid/ready streams: driver, monitor, payload codec, scoreboard.

Each part runs one coroutine that wakes on the clock edge, sets its outputs, then samples the
handshake in the read-only phase of the same cycle, so a transfer is counted exactly when the
design sees ``valid & ready`` at a rising edge. Idle and backpressure are random with fixed seeds.

Every handshake is checked for X (4-state simulators): a ``valid`` or ``ready`` that is not 0 or
1, or a payload with an X or Z bit while it is transferred, fails the test (:class:`XValue`)
with the stream, the signal and the time. Every wait is bounded: a stream that makes no progress for ``STUCK_CYCLES`` cycles (a ready or a
valid stuck low, or X, which never reads as 1) fails the test with :class:`Stuck`, naming the
stream, the transfer it waited for and the simulation time, instead of hanging the run.
"""


from amaranth.hdl import Shape
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

__all__ = ["Codec", "StreamDriver", "StreamMonitor", "Scoreboard", "stall_pattern", "Stuck",
           "STUCK_CYCLES", "Watchdog", "XValue", "check_known"]

# The longest a testbench waits for one transfer or one condition: far above any legal stall
# (a re-zoning of the largest tested network), far below a hang worth waiting for.
STUCK_CYCLES = 200_000


class Stuck(AssertionError):
    """A handshake or a condition that did not happen within ``STUCK_CYCLES`` cycles."""


class XValue(AssertionError):
    """A handshake signal, or a payload being transferred, with an X or Z bit."""


def check_known(handle, what):
    """The value of ``handle``; :class:`XValue` if any bit is X or Z (only 4-state simulators
    can show one)."""
    value = handle.value
    if not value.is_resolvable:
        raise XValue(f"{what} is {value} (X or Z) at {get_sim_time('ns'):.0f} ns")
    return value


class Watchdog:
    """Counts cycles without progress on ``what``; :meth:`tick` raises :class:`Stuck` past the
    limit, :meth:`progress` restarts the count."""

    def __init__(self, what, limit=STUCK_CYCLES):
        self.what, self.limit, self.idle = what, limit, 0

    def progress(self):
        self.idle = 0

    def tick(self, detail=""):
        self.idle += 1
        if self.idle > self.limit:
            raise Stuck(f"{self.what}: no progress for {self.limit} cycles"
                        f"{', ' + detail if detail else ''} (at {get_sim_time('ns'):.0f} ns)")


class Codec:
    """Packs and unpacks a ``data.StructLayout`` payload to and from the flat port integer."""

    def __init__(self, layout):
        self.fields = [(name, f.offset, f.width, Shape.cast(f.shape).signed)
                       for name, f in layout]

    def pack(self, values):
        word = 0
        for name, off, width, _ in self.fields:
            word |= (int(values.get(name, 0)) & ((1 << width) - 1)) << off
        return word

    def unpack(self, word):
        out = {}
        for name, off, width, signed in self.fields:
            v = (word >> off) & ((1 << width) - 1)
            out[name] = v - (1 << width) if signed and v >> (width - 1) else v
        return out


def stall_pattern(kind, rng):
    """A function ``cycle -> bool`` (True = stall this cycle) for one of the standard patterns:
    ``none``, ``random`` (probability 0.3), ``heavy`` (0.7), ``burst`` (always stall for a long
    stretch, then release)."""
    if kind == "none":
        return lambda c: False
    if kind == "random":
        return lambda c: rng.random() < 0.3
    if kind == "heavy":
        return lambda c: rng.random() < 0.7
    if kind == "burst":
        return lambda c: (c % 400) < 200
    raise ValueError(f"unknown stall pattern {kind!r}")


class _StreamPort:
    """The ``<prefix>__valid/ready/payload`` handles of one stream, a clock and a stall
    pattern (``cycle -> bool``)."""

    def __init__(self, dut, prefix, clk, stall=lambda c: False):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.prefix, self.clk, self.stall = prefix, clk, stall


class StreamDriver(_StreamPort):
    """Drives ``<prefix>__valid``/``__payload`` from a list of packed payloads."""

    async def send(self, items, limit=STUCK_CYCLES):
        i, cycle = 0, 0
        dog = Watchdog(f"stream {self.prefix} (driver)", limit)
        while i < len(items):
            await RisingEdge(self.clk)
            cycle += 1
            active = not self.stall(cycle)
            self.valid.value = int(active)
            if active:
                self.payload.value = items[i]
            await ReadOnly()
            if check_known(self.ready, f"{self.prefix}.ready") == 1 and active:
                i += 1
                dog.progress()
            else:
                dog.tick(f"transfer {i} of {len(items)} not taken (ready {self.ready.value})")
        await RisingEdge(self.clk)
        self.valid.value = 0


class StreamMonitor(_StreamPort):
    """Drives ``<prefix>__ready`` with a stall pattern and collects transfers."""

    def __init__(self, dut, prefix, clk, stall=lambda c: False):
        super().__init__(dut, prefix, clk, stall)
        self.items = []

    async def collect(self, count, limit=STUCK_CYCLES):
        cycle = 0
        dog = Watchdog(f"stream {self.prefix} (monitor)", limit)
        while len(self.items) < count:
            await RisingEdge(self.clk)
            cycle += 1
            ready = not self.stall(cycle)
            self.ready.value = int(ready)
            await ReadOnly()
            if check_known(self.valid, f"{self.prefix}.valid") == 1 and ready:
                self.items.append(int(check_known(self.payload, f"{self.prefix}.payload")))
                dog.progress()
            else:
                dog.tick(f"{len(self.items)} of {count} transfers received "
                         f"(valid {self.valid.value})")
        await RisingEdge(self.clk)
        self.ready.value = 0


class Scoreboard:
    """In-order checker: every observed transaction against the model's, field by field."""

    def __init__(self, log):
        self.log, self.checked, self.errors = log, 0, []

    def compare(self, got, want, context=""):
        for n, (g, w) in enumerate(zip(got, want)):
            self.checked += 1
            if g != w:
                self.errors.append(f"{context} #{n}: got {g}, want {w}")
        if len(got) != len(want):
            self.errors.append(f"{context}: {len(got)} transactions, want {len(want)}")

    def check(self):
        for e in self.errors[:10]:
            self.log.error(e)
        assert not self.errors, f"{len(self.errors)} mismatches of {self.checked} compared"
        self.log.info("scoreboard: %d transactions compared, 0 mismatches", self.checked)
