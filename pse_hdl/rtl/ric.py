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

The update path is four stages (accept and read, state registered, difference times the rate,
add and write),
one activation per cycle. The read port is transparent to the write port, and an activation
whose state is still being updated in the two middle stages waits, so updates of one state in
quick succession (a one- or two-column layer) are exact. The host loads states (the profiled
baseline) through ``host``; a host write enters the same pipeline ahead of the stream, so neither
is lost. ``x`` is ready whenever no host write is offered and no hazard holds it. The allocation
pass is three stages (read; register the state and ``|w|``; multiply, a registered DSP product)
with backpressure on ``o`` stalling the pipeline; it must not overlap an update sample (the
firmware runs it between samples).
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
    busy : Out(1), updates still in the pipeline (start an allocation pass when it is low)
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
            "busy": Out(1),
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

        # -- update path --------------------------------------------------------------------
        # accept: a host write, or an activation whose state is read (synchronous port);
        # u1: the state arrives;  u2: it is registered;
        # u3: (target - state) times the rate, plus half an LSB;  then shifted, added, written.
        # An activation whose address is still in u1 or u2 waits a cycle (a read issued now
        # sees the write in u3 through the port's transparency, not the ones behind it), so
        # back-to-back updates of one state are exact at the cost of a bubble.
        col = Signal(range(cfg.max_cols))
        u1_valid, u1_host = Signal(), Signal()
        u1_addr, u1_data = Signal(unsigned(abits)), Signal(unsigned(sb))
        u2_valid, u2_host = Signal(), Signal()
        u2_addr, u2_diff = Signal(unsigned(abits)), Signal(signed(sb + 1))
        u2_data, u2_old = Signal(unsigned(sb)), Signal(unsigned(sb))
        u3_valid, u3_host = Signal(), Signal()
        u3_addr, u3_step = Signal(unsigned(abits)), Signal(signed(sb + 1 + K))
        u3_data, u3_old = Signal(unsigned(sb)), Signal(unsigned(sb))

        x = self.x.payload
        x_addr = address(x.row, x.column) if self._literal else col
        hazard = (u1_valid & (u1_addr == x_addr)) | (u2_valid & (u2_addr == x_addr))
        m.d.comb += self.x.ready.eq(~self.host.en & ~hazard)
        m.d.sync += u1_valid.eq(0)
        with m.If(self.host.en):
            m.d.sync += [u1_valid.eq(1), u1_host.eq(1), u1_addr.eq(self.host.addr),
                         u1_data.eq(self.host.data)]
        with m.Elif(self.x.valid & ~hazard):
            if self._literal:
                target = _abs(m, x.value, cfg.act_bits) * _abs(m, x.master, cfg.weight_bits)
            else:
                target = _abs(m, x.value, cfg.act_bits)
            m.d.comb += rd_u.addr.eq(x_addr)
            m.d.sync += [u1_valid.eq(1), u1_host.eq(0), u1_addr.eq(x_addr),
                         u1_data.eq(target << F)]
            m.d.sync += col.eq(Mux(x.last | (col == cfg.max_cols - 1), 0, col + 1))
            with m.If(x.last):
                m.d.sync += self.samples.eq(self.samples + 1)

        # The memory's output only feeds a register (block RAM clock-to-out is slow).
        m.d.sync += [u2_valid.eq(u1_valid), u2_host.eq(u1_host), u2_addr.eq(u1_addr),
                     u2_data.eq(u1_data), u2_old.eq(rd_u.data)]
        m.d.comb += u2_diff.eq(u2_data - u2_old)
        m.d.sync += [u3_valid.eq(u2_valid), u3_host.eq(u2_host), u3_addr.eq(u2_addr),
                     u3_data.eq(u2_data), u3_old.eq(u2_old),
                     u3_step.eq(u2_diff * cfg.ema_num + (1 << (K - 1)))]
        new = Signal(unsigned(sb))
        m.d.comb += [
            self.busy.eq(u1_valid | u2_valid | u3_valid),
            new.eq(u3_old + (u3_step >> K)),
            wp.addr.eq(u3_addr),
            wp.data.eq(Mux(u3_host, u3_data, new)),
            wp.en.eq(u3_valid),
        ]

        # -- allocation pass: read the state; register it with |w|; multiply (3 stages). ----
        advance = ~self.o.valid | self.o.ready
        w = self.w.payload
        p1, p2 = Signal(layouts.master_in(cfg)), Signal(layouts.master_in(cfg))
        p1_valid, p2_valid = Signal(), Signal()
        p2_abs, p2_state = Signal(unsigned(cfg.weight_bits)), Signal(unsigned(sb))
        m.d.comb += [self.w.ready.eq(advance), rd_w.en.eq(advance),
                     rd_w.addr.eq(address(w.row, w.column))]
        with m.If(advance):
            m.d.sync += [p1.eq(w), p1_valid.eq(self.w.valid),
                         p2.eq(p1), p2_valid.eq(p1_valid), p2_state.eq(rd_w.data),
                         p2_abs.eq(_abs(m, p1.master, cfg.weight_bits)),
                         self.o.valid.eq(p2_valid)]
            o = self.o.payload
            m.d.sync += [o.importance.eq(p2_state if self._literal else p2_abs * p2_state),
                         o.prev.eq(p2.prev), o.row.eq(p2.row), o.column.eq(p2.column),
                         o.last.eq(p2.last)]
        return m
