"""Importance histogram: log2-spaced bins and per-class counts of an allocation pass.

Sits on the code stream as a tap (``i`` passes to ``o`` combinationally) and counts every
transfer: its importance into bin ``min(key, hist_bins - 1)`` of the golden model's pseudo-log2
(:mod:`pse_hdl.model.histogram`: leading-one position n and the next S bits), and its code into
``class_count``. The firmware reads the bins through ``host`` and turns them into thresholds.

The bin counters are a memory (block RAM) updated read-modify-write in a three-stage pipeline
(leading one; mantissa and bin, read; increment, write); the read port is transparent to the
write port, so consecutive weights in one bin count correctly at one weight per cycle.

``clear`` (a one-cycle strobe) zeroes bins and class counts: the tap stops accepting, lets the two
weights in flight land, then writes one bin per cycle; ``busy`` is high meanwhile.
"""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import layouts

__all__ = ["ImportanceHistogram"]

COUNT_BITS = 32


class HistogramPort(wiring.Signature):
    def __init__(self, bins):
        super().__init__({"rd_addr": Out(range(bins)), "rd_data": In(COUNT_BITS),
                          "clear": Out(1), "busy": In(1)})


class ImportanceHistogram(wiring.Component):
    """Members: ``i``/``o`` (:func:`layouts.code_out`, pass-through); ``host`` (read a bin one
    cycle after presenting ``rd_addr``; ``clear``; ``busy``); ``class_count`` (weights per code,
    index 0 = pruned)."""

    def __init__(self, cfg):
        self._cfg = cfg
        n = len(cfg.precisions) + 1
        super().__init__({
            "i": In(stream.Signature(layouts.code_out(cfg))),
            "o": Out(stream.Signature(layouts.code_out(cfg))),
            "host": Out(HistogramPort(cfg.hist_bins)).flip(),
            "class_count": Out(data.ArrayLayout(COUNT_BITS, n)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        S, bins, ib = cfg.hist_sub_bits, cfg.hist_bins, cfg.importance_bits
        n_classes = len(cfg.precisions) + 1

        m.submodules.mem = mem = memory.Memory(shape=unsigned(COUNT_BITS), depth=bins, init=[])
        wp = mem.write_port()
        rd = mem.read_port(transparent_for=(wp,))
        rd_host = mem.read_port()
        m.d.comb += [rd_host.addr.eq(self.host.rd_addr), self.host.rd_data.eq(rd_host.data)]

        busy = self.host.busy
        clr_addr = Signal(range(bins))
        drain = Signal(2)
        m.d.comb += [self.o.valid.eq(self.i.valid & ~busy), self.o.payload.eq(self.i.payload),
                     self.i.ready.eq(self.o.ready & ~busy)]
        take = self.i.valid & self.i.ready

        # Stage A: leading-one position of the importance.
        a_valid, a_value, a_lead = Signal(), Signal(unsigned(ib)), Signal(range(ib))
        lead = Signal(range(ib))
        for k in range(ib):
            with m.If(self.i.payload.importance[k]):
                m.d.comb += lead.eq(k)
        m.d.sync += [a_valid.eq(take), a_value.eq(self.i.payload.importance), a_lead.eq(lead)]
        with m.If(take):
            for k in range(n_classes):
                with m.If(self.i.payload.code == k):
                    m.d.sync += self.class_count[k].eq(self.class_count[k] + 1)

        # Stage B: mantissa, key, bin; read the bin's count.
        mant = Signal(S)
        key = Signal(range(ib * (1 << S) + 2))
        b_valid, b_bin = Signal(), Signal(range(bins))
        m.d.comb += mant.eq((a_value << S) >> a_lead)
        with m.If(a_value == 0):
            m.d.comb += key.eq(0)
        with m.Else():
            m.d.comb += key.eq((a_lead << S) + mant + 1)
        bin_ = Signal(range(bins))
        m.d.comb += bin_.eq(key)
        with m.If(key > bins - 1):
            m.d.comb += bin_.eq(bins - 1)
        m.d.comb += rd.addr.eq(bin_)
        m.d.sync += [b_valid.eq(a_valid), b_bin.eq(bin_)]

        # Stage C: increment and write back (or clear).
        with m.If(busy & (drain == 0)):
            m.d.comb += [wp.addr.eq(clr_addr), wp.data.eq(0), wp.en.eq(1)]
        with m.Else():
            m.d.comb += [wp.addr.eq(b_bin), wp.data.eq(rd.data + 1), wp.en.eq(b_valid)]

        with m.If(self.host.clear & ~busy):
            m.d.sync += [busy.eq(1), drain.eq(2), clr_addr.eq(0)]
            for k in range(n_classes):
                m.d.sync += self.class_count[k].eq(0)
        with m.Elif(busy):
            with m.If(drain != 0):
                m.d.sync += drain.eq(drain - 1)
            with m.Else():
                m.d.sync += clr_addr.eq(clr_addr + 1)
                with m.If(clr_addr == bins - 1):
                    m.d.sync += busy.eq(0)
        return m
