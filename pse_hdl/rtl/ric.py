"""Rolling Importance Calculator (RIC): EMA state in block RAM, importance on demand.

Factored form (default). One EMA register per input channel, ``A_j = EMA(|x_j|)``, in a memory
of ``max_cols`` words. The ``x`` stream carries a sample's activations in column order (``last``
ends the sample); each one updates its ``A_j`` with the golden model's rule
``A += rshift_round(ema_num * ((|x| << F) - A), K)``. During an allocation pass the ``w`` stream
carries master weights with their column; the RIC emits ``|w| * A_column`` on ``o``, ready for
the PA, with the weight's position and previous code passed along.

Literal form (``importance_form = "literal"``). The specification's per-weight EMA of ``|w x|``:
a memory of ``max_rows * max_cols`` states addressed by (row, column). The ``x`` stream then
carries every product of a sample (activation, master weight, position), as the MAC sees them,
and the allocation pass reads the state of each weight. It costs a per-weight memory instead of a
per-input one: that is the area the factored form saves.

The update path is two stages: the state is read (a synchronous port, transparent to the write
port so back-to-back updates of one address see each other), then the new value is written.
The host loads states (the profiled baseline) through ``host``; a host write enters the same
pipeline ahead of the stream, so neither is lost. ``x`` is ready whenever no host write is
offered. The allocation pass is two stages (read, multiply) with backpressure on ``o`` stalling
the pipeline; it must not overlap an update sample (the firmware runs it between samples).
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import layouts

__all__ = ["RollingImportance", "HostWritePort"]


class HostWritePort(wiring.Signature):
    def __init__(self, addr_bits, data_bits):
        super().__init__({"en": Out(1), "addr": Out(unsigned(addr_bits)),
                          "data": Out(unsigned(data_bits))})


def _abs(m, value, width):
    """``|value|`` of a signed value as an unsigned of ``width`` bits (|-2^(w-1)| fits)."""
    out = Signal(unsigned(width))
    m.d.comb += out.eq(Mux(value < 0, -value, value))
    return out


class RollingImportance(wiring.Component):
    """Rolling Importance Calculator.

    Parameters
    ----------
    cfg : PSEConfig
        ``importance_form`` selects the factored or the literal form.

    Members
    -------
    x : In(stream) of :func:`layouts.activation` (factored) or :func:`layouts.product` (literal)
    w : In(stream) of :func:`layouts.master_in`, the allocation pass
    o : Out(stream) of :func:`layouts.importance_in`
    host : In(HostWritePort), loads EMA states (column address; literal: ``row * max_cols + col``)
    samples : Out(32), samples seen (``last`` transfers on ``x``)
    """

    def __init__(self, cfg):
        self._cfg = cfg
        self._literal = cfg.importance_form == "literal"
        if self._literal:
            depth, state_bits, xin = cfg.max_rows * cfg.max_cols, cfg.importance_bits, \
                layouts.product(cfg)
        else:
            depth, state_bits, xin = cfg.max_cols, cfg.ema_bits, layouts.activation(cfg)
        self._depth, self._state_bits = depth, state_bits
        super().__init__({
            "x": In(stream.Signature(xin)),
            "w": In(stream.Signature(layouts.master_in(cfg))),
            "o": Out(stream.Signature(layouts.importance_in(cfg))),
            "host": In(HostWritePort((depth - 1).bit_length() or 1, state_bits)),
            "samples": Out(32),
        })

    @property
    def state_bits(self):
        return self._state_bits

    @property
    def depth(self):
        """Words of EMA state (``max_cols``, or ``max_rows * max_cols`` for the literal form)."""
        return self._depth

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        F, K = cfg.ema_frac_bits, cfg.ema_rate_bits
        sb = self._state_bits
        abits = (self._depth - 1).bit_length() or 1

        m.submodules.mem = mem = memory.Memory(shape=unsigned(sb), depth=self._depth, init=[])
        wp = mem.write_port()
        rd_u = mem.read_port(transparent_for=(wp,))
        rd_w = mem.read_port(transparent_for=(wp,))

        def address(row, column):
            return (row * cfg.max_cols + column) if self._literal else column

        # -- update path: stage 0 accepts a host write or an activation; stage 1 writes. -----
        col = Signal(range(cfg.max_cols))
        s1_valid = Signal()
        s1_host = Signal()
        s1_addr = Signal(unsigned(abits))
        s1_data = Signal(unsigned(sb))            # host data, or the EMA target |.| << F
        m.d.comb += self.x.ready.eq(~self.host.en)
        m.d.sync += s1_valid.eq(0)
        with m.If(self.host.en):
            m.d.comb += rd_u.addr.eq(self.host.addr)
            m.d.sync += [s1_valid.eq(1), s1_host.eq(1), s1_addr.eq(self.host.addr),
                         s1_data.eq(self.host.data)]
        with m.Elif(self.x.valid):
            x = self.x.payload
            if self._literal:
                addr = address(x.row, x.column)
                target = _abs(m, x.value, cfg.act_bits) * _abs(m, x.master, cfg.weight_bits)
            else:
                addr = col
                target = _abs(m, x.value, cfg.act_bits)
            m.d.comb += rd_u.addr.eq(addr)
            m.d.sync += [s1_valid.eq(1), s1_host.eq(0), s1_addr.eq(addr),
                         s1_data.eq(target << F)]
            m.d.sync += col.eq(Mux(x.last | (col == cfg.max_cols - 1), 0, col + 1))
            with m.If(x.last):
                m.d.sync += self.samples.eq(self.samples + 1)

        old = rd_u.data
        diff = Signal(signed(sb + 1))
        step = Signal(signed(sb + 1 + K))
        new = Signal(unsigned(sb))
        m.d.comb += [
            diff.eq(s1_data - old),
            step.eq(diff * cfg.ema_num),
            new.eq(old + ((step + (1 << (K - 1))) >> K)),
            wp.addr.eq(s1_addr),
            wp.data.eq(Mux(s1_host, s1_data, new)),
            wp.en.eq(s1_valid),
        ]

        # -- allocation pass: read the state, then |w| * A (or the literal state). ----------
        advance = ~self.o.valid | self.o.ready
        w = self.w.payload
        p1 = Signal(layouts.master_in(cfg))
        p1_valid = Signal()
        m.d.comb += [self.w.ready.eq(advance), rd_w.en.eq(advance),
                     rd_w.addr.eq(address(w.row, w.column))]
        with m.If(advance):
            m.d.sync += [p1.eq(w), p1_valid.eq(self.w.valid), self.o.valid.eq(p1_valid)]
            imp = rd_w.data if self._literal else \
                _abs(m, p1.master, cfg.weight_bits) * rd_w.data
            o = self.o.payload
            m.d.sync += [o.importance.eq(imp), o.prev.eq(p1.prev), o.row.eq(p1.row),
                         o.column.eq(p1.column), o.last.eq(p1.last)]
        return m
