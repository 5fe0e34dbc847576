"""The engine on a serial line: UART, bridge and engine, as a board runs them.

:class:`SerialLink` is the UART receiver and transmitter around the bridge
(:mod:`pse_hdl.rtl.bridge`): pins on one side, the engine's bus as master on the other.
:class:`SerialEngine` puts the engine behind it; the board tops (:mod:`pse_hdl.synth.boards`)
and the Verilated serial model (:mod:`pse_hdl.host.serial_sim`) build exactly this component.
"""

from amaranth.hdl import Module
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ..host.link import WAIT_POLLS
from .bridge import Bridge
from .bus import BusSignature
from .uart import UartRx, UartTx

__all__ = ["SerialLink", "SerialEngine"]


# Bytes the link holds while the bridge is busy: a frame that follows line noise at once
# arrives while the bridge answers the noise (an error reply: a few byte times).
RX_FIFO_DEPTH = 32


class SerialLink(wiring.Component):
    """UART and bridge: ``divisor`` clock cycles a bit (:func:`pse_hdl.rtl.uart.divisor`).

    Received bytes pass a :data:`RX_FIFO_DEPTH`-byte FIFO, so the bytes that come while the
    bridge is busy with a short reply are kept; a host that sends more while it waits for a
    reply loses bytes (an overrun: that frame is answered ``LINE``).

    Members
    -------
    rx : In(1)              the UART input pin (asynchronous)
    tx : Out(1)             the UART output pin
    bus : Out(BusSignature) the engine's bus, as master
    busy : Out(1)           a frame is being executed or answered
    error : Out(1)          the last frame was answered with an error status
    """

    def __init__(self, cfg, addr_bits, divisor, wait_polls=WAIT_POLLS):
        self._cfg, self._addr_bits, self._div, self._polls = cfg, addr_bits, divisor, wait_polls
        self._rx, self._tx = UartRx(divisor), UartTx(divisor)   # the divisor is checked here
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1),
                          "bus": Out(BusSignature(addr_bits)), "busy": Out(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx, m.submodules.uart_tx = rx, tx = self._rx, self._tx
        m.submodules.bridge = br = Bridge(self._cfg, self._addr_bits, self._polls)
        m.submodules.rx_fifo = q = fifo.SyncFIFOBuffered(width=9, depth=RX_FIFO_DEPTH)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx),
                     q.w_data.eq(rx.o.payload), q.w_en.eq(rx.o.valid), rx.o.ready.eq(q.w_rdy),
                     br.i.payload.eq(q.r_data), br.i.valid.eq(q.r_rdy), q.r_en.eq(br.i.ready),
                     self.busy.eq(br.busy), self.error.eq(br.error)]
        wiring.connect(m, br.o, tx.i)
        wiring.connect(m, br.bus, wiring.flipped(self.bus))
        return m


class SerialEngine(wiring.Component):
    """The engine behind a :class:`SerialLink`.

    Members
    -------
    rx, tx : the UART pins
    busy, error : the engine's (a command or job runs; an error bit of ``STATUS`` is set)
    link_busy, link_error : the link's
    """

    def __init__(self, cfg, divisor):
        from .engine import Engine
        self._engine = Engine(cfg)
        self._link = SerialLink(cfg, self._engine.regmap.addr_bits, divisor)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1),
                          "error": Out(1), "link_busy": Out(1), "link_error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link, m.submodules.engine = link, eng = self._link, self._engine
        wiring.connect(m, link.bus, eng.bus)
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx), self.busy.eq(eng.busy),
                     self.error.eq(eng.error), self.link_busy.eq(link.busy),
                     self.link_error.eq(link.error)]
        return m
