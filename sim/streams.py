"""Typed testbench parts for valid/ready streams: driver, monitor, payload codec, scoreboard.

Drivers and monitors are stepped together by one coroutine (:func:`run_streams`) that wakes on
the clock edge, sets every port's outputs, then samples every handshake in the read-only phase of
the same cycle, so a transfer is counted exactly when the design sees ``valid & ready`` at a
rising edge. Idle and backpressure are random with fixed seeds.

Every handshake is checked for X (4-state simulators): a ``valid`` or ``ready`` that is not 0 or
1, or a payload with an X or Z bit while it is transferred, fails the test (:class:`XValue`)
with the stream, the signal and the time. Every wait is bounded: a stream that makes no
progress for ``STUCK_CYCLES`` cycles (a ready or a valid stuck low, or X, which never reads as 1)
fails the test with :class:`Stuck`, naming the stream, the transfer it waited for and the
simulation time, instead of hanging the run.
"""


from amaranth.hdl import Shape
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

__all__ = ["Codec", "StreamDriver", "StreamMonitor", "Scoreboard", "run_streams", "stall_pattern",
           "Stuck", "STUCK_CYCLES", "Watchdog", "XValue", "check_known"]

# The longest a testbench waits for one transfer or one condition: far above any legal stall
# (a re-zoning of the largest tested network), far below a hang worth waiting for.
STUCK_CYCLES = 200_000


class Stuck(AssertionError):
    """A handshake or a condition that did not happen within ``STUCK_CYCLES`` cycles."""


class XValue(AssertionError):
    """A handshake signal, or a payload being transferred, with an X or Z bit."""


def check_known(handle, what):
    """The value of ``handle`` as an unsigned int; :class:`XValue` if any bit is X or Z (only
    4-state simulators can show one). Read from the value's bit string: building cocotb's
    per-bit ``Logic`` objects cost a third of a block testbench's time."""
    bits = str(handle.value)
    if bits.strip("01"):
        raise XValue(f"{what} is {bits} (X or Z) at {get_sim_time('ns'):.0f} ns")
    return int(bits, 2)


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
    pattern (``cycle -> bool``). A port is stepped by :func:`run_streams`: ``drive`` after the
    clock edge, ``sample`` in the read-only phase, ``idle`` once it is done."""

    def __init__(self, dut, prefix, clk, stall=lambda c: False):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.prefix, self.clk, self.stall = prefix, clk, stall


class StreamDriver(_StreamPort):
    """Drives ``<prefix>__valid``/``__payload`` from a list of packed payloads."""

    def load(self, items, limit=STUCK_CYCLES):
        """Queue ``items`` for :func:`run_streams`; returns the driver."""
        self.items, self.sent, self.active, self.driven = items, 0, False, None
        self.dog = Watchdog(f"stream {self.prefix} (driver)", limit)
        return self

    def done(self):
        return self.sent == len(self.items)

    def drive(self, cycle):
        self.active = not self.stall(cycle)
        if self.active != self.driven:            # a write costs as much as a read: only changes
            self.valid.value = self.driven = int(self.active)
        if self.active:
            self.payload.value = self.items[self.sent]

    def sample(self):
        if check_known(self.ready, f"{self.prefix}.ready") == 1 and self.active:
            self.sent += 1
            self.dog.progress()
        else:
            self.dog.tick(f"transfer {self.sent} of {len(self.items)} not taken "
                          f"(ready {self.ready.value})")

    def idle(self):
        self.valid.value = 0

    async def send(self, items, limit=STUCK_CYCLES):
        await run_streams(self.load(items, limit))


class StreamMonitor(_StreamPort):
    """Drives ``<prefix>__ready`` with a stall pattern and collects transfers in ``items``."""

    def __init__(self, dut, prefix, clk, stall=lambda c: False):
        super().__init__(dut, prefix, clk, stall)
        self.items = []

    def expect(self, count, limit=STUCK_CYCLES):
        """Wait for ``count`` more transfers under :func:`run_streams`; returns the monitor."""
        self.count, self.taking, self.driven = len(self.items) + count, False, None
        self.dog = Watchdog(f"stream {self.prefix} (monitor)", limit)
        return self

    def done(self):
        return len(self.items) >= self.count

    def drive(self, cycle):
        self.taking = not self.stall(cycle)
        if self.taking != self.driven:
            self.ready.value = self.driven = int(self.taking)

    def sample(self):
        if check_known(self.valid, f"{self.prefix}.valid") == 1 and self.taking:
            self.items.append(check_known(self.payload, f"{self.prefix}.payload"))
            self.dog.progress()
        else:
            self.dog.tick(f"{len(self.items)} of {self.count} transfers received "
                          f"(valid {self.valid.value})")

    def idle(self):
        self.ready.value = 0

    async def collect(self, count, limit=STUCK_CYCLES):
        await run_streams(self.expect(count, limit))


async def run_streams(*ports):
    """Step loaded drivers and monitors (one clock) together until each is done, with two
    triggers a cycle for all of them (a coroutine per port costs two each); a port that is done
    drops its ``valid`` or ``ready`` at the next edge and is left alone. Returns the clock edges
    it waited for, the last one (after every port's last transfer) included."""
    live, cycle = list(ports), 0
    while live:
        await RisingEdge(live[0].clk)
        cycle += 1
        for p in [p for p in live if p.done()]:
            p.idle()
            live.remove(p)
        if not live:
            break
        for p in live:
            p.drive(cycle)
        await ReadOnly()
        for p in live:
            p.sample()
    return cycle


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
