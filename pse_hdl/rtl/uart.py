"""A UART: 8 data bits, no parity, one stop bit (8N1), LSB first, line idle high.

Both directions count ``divisor`` clock cycles a bit (``round(clock / baud)``, at least 4, see
:func:`divisor`). The receiver synchronises its pin through two flip-flops, starts a byte on a
low level after idle, and decides every bit (start, data, stop) by the majority of three samples
taken around the middle of the bit, so a glitch shorter than a sample period is ignored and a
start "bit" that is high again at its middle is no byte. A stop bit sampled low is a framing
error: the byte is passed on marked ``error``, and the receiver waits for the line to go high
before it looks for the next start bit (a break does not become a stream of bytes). It decides
the stop bit at its middle, so back-to-back bytes from a sender up to half a bit per byte faster
are received.

Errors travel with the bytes (``error`` in the payload), so whoever consumes them knows which
byte, and so which frame, a problem belongs to, however many bytes a FIFO holds in between.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..errors import ConfigError

__all__ = ["UartRx", "UartTx", "divisor", "rx_layout"]

# A received byte; ``error``: its stop bit was low, or a byte before it was lost (overrun).
rx_layout = data.StructLayout({"data": 8, "error": 1})


def divisor(clock_hz, baud):
    """Clock cycles a bit for ``baud`` at ``clock_hz``; a :class:`ConfigError` if the rate
    cannot be made within 2 % or with fewer than 4 cycles a bit."""
    div = round(clock_hz / baud)
    if div < 4:
        raise ConfigError(f"uart_baud must be at most a quarter of the board clock "
                          f"({clock_hz / 4:.0f} at {clock_hz / 1e6:g} MHz), not {baud!r}")
    err = abs(clock_hz / div - baud) / baud
    if err > 0.02:
        raise ConfigError(f"uart_baud {baud!r} is {err:.1%} off at a {clock_hz / 1e6:g} MHz "
                          f"clock ({clock_hz / div:.0f} baud with {div} cycles a bit); choose a "
                          f"rate within 2 %, for example {clock_hz / div:.0f}")
    return div


def _check_divisor(div):
    if not isinstance(div, int) or div < 4:
        raise ConfigError(f"divisor must be an integer of at least 4 cycles a bit, not {div!r}")


class UartRx(wiring.Component):
    """The receiver.

    Latency: a byte is on ``o`` two cycles (the synchroniser) after the middle of its stop bit.
    ``o`` holds a byte until it is taken; if the next byte completes first, it replaces the held
    one and is marked ``error`` (an overrun: a byte was lost).

    Members
    -------
    rx : In(1)                            the pin (asynchronous)
    o : Out(stream.Signature(rx_layout))  received bytes, each with its ``error`` flag
    """

    def __init__(self, divisor):
        _check_divisor(divisor)
        self._div = divisor
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(rx_layout))})

    def elaborate(self, platform):
        m = Module()
        div = self._div
        mid = div // 2
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(div))          # cycles into the current bit
        votes = Signal(2)                   # the samples at mid - 1 and mid
        bit = Signal()                      # the majority, valid at mid + 1
        decide = Signal()
        shreg = Signal(8)
        count = Signal(range(8))
        m.d.comb += [decide.eq(timer == mid + 1),
                     bit.eq((votes[0] & votes[1]) | (votes[0] & line) | (votes[1] & line))]
        with m.If((timer == mid - 1) | (timer == mid)):
            m.d.sync += votes.eq(Cat(votes[1], line))
        m.d.sync += timer.eq(timer + 1)
        with m.If(timer == div - 1):
            m.d.sync += timer.eq(0)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += timer.eq(0)
                with m.If(~line):
                    m.d.sync += timer.eq(1)
                    m.next = "START"
            with m.State("START"):
                with m.If(decide):
                    m.next = "IDLE"
                    with m.If(~bit):
                        m.d.sync += count.eq(0)
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(decide):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], bit)), count.eq(count + 1)]
                    with m.If(count == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(decide):
                    m.d.sync += [self.o.valid.eq(1), self.o.payload.data.eq(shreg),
                                 self.o.payload.error.eq(~bit | self.o.valid & ~self.o.ready)]
                    m.next = "IDLE"
                    with m.If(~bit):
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """The transmitter: takes a byte from ``i`` when idle and sends it in ``10 * divisor``
    cycles; ``i.ready`` is high only while idle, so back-to-back bytes go out with no gap.

    Members
    -------
    i : In(stream.Signature(8))    bytes to send
    tx : Out(1)                    the pin (idle high)
    """

    def __init__(self, divisor):
        _check_divisor(divisor)
        self._div = divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        div = self._div
        shreg = Signal(10, init=1)          # stop, data, start: shifted out LSB first
        left = Signal(range(11))            # bits still to send
        timer = Signal(range(div))
        m.d.comb += [self.tx.eq(shreg[0]), self.i.ready.eq(left == 0)]
        with m.If(left == 0):
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq(Cat(0, self.i.payload, 1)), left.eq(10), timer.eq(0)]
        with m.Elif(timer == div - 1):
            m.d.sync += [timer.eq(0), left.eq(left - 1), shreg.eq(Cat(shreg[1:], 1))]
        with m.Else():
            m.d.sync += timer.eq(timer + 1)
        return m
