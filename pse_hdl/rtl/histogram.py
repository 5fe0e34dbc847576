"""Importance histogram: log2-spaced bins and per-class counts of an allocation pass.

Sits on the code stream as a tap (``i`` passes to ``o`` combinationally) and counts every
transfer: its importance into bin ``min(key, hist_bins - 1)`` of the golden model's pseudo-log2
(:mod:`pse_hdl.model.histogram`: leading-one position n and the next S bits), and its code into
``class_count``. The firmware reads the bins through ``host`` and turns them into thresholds.

The bin counters are a memory (block RAM) updated read-modify-write in a five-stage pipeline
(leading one; mantissa and key; clamp and read; capture the count; increment and write). The
read port is transparent to the write port and the one write that a capture can miss is
forwarded, so consecutive weights in one bin count correctly at one weight per cycle, and the
memory's output feeds only a register (it is slow on both FPGA families).

``clear`` (a one-cycle strobe) zeroes bins and class counts: once no weight is offered and stalled
on ``o`` (a stream never withdraws a transfer), the tap stops accepting, lets the weights in
flight land, then writes one bin per cycle; ``busy`` is high from the cycle after the strobe until
the last bin is zero.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import layouts

__all__ = ["ImportanceHistogram"]

COUNT_BITS = 32
DRAIN = 4            # weights in flight behind the tap (stages A, B1, B2, C1)


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

        # A clear waits until no transfer is offered and stalled (pending meanwhile), so the
        # pass-through never withdraws one; ``host.busy`` covers the wait.
        busy, pending = Signal(), Signal()
        m.d.comb += self.host.busy.eq(busy | pending)
        clr_addr = Signal(range(bins))
        drain = Signal(range(DRAIN + 1))
        m.d.comb += [self.o.valid.eq(self.i.valid & ~busy), self.o.payload.eq(self.i.payload),
                     self.i.ready.eq(self.o.ready & ~busy)]
        take = self.i.valid & self.i.ready

        # A: leading-one position of the importance.
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

        # B1: mantissa (the S bits after the leading one) and key.
        b1_valid, b1_key = Signal(), Signal(range(ib * (1 << S) + 2))
        mant = Signal(S)
        m.d.comb += mant.eq((a_value << S) >> a_lead)
        m.d.sync += [b1_valid.eq(a_valid),
                     b1_key.eq(Mux(a_value == 0, 0, (a_lead << S) + mant + 1))]

        # B2: clamp to the last bin; read the bin's count.
        b2_valid, b2_bin = Signal(), Signal(range(bins))
        bin_ = Signal(range(bins))
        m.d.comb += [bin_.eq(Mux(b1_key > bins - 1, bins - 1, b1_key)), rd.addr.eq(bin_)]
        m.d.sync += [b2_valid.eq(b1_valid), b2_bin.eq(bin_)]

        # C1: capture the count (the read port is transparent to the write in C2's cycle; the
        # count written by C2 in this very cycle is forwarded when it is the same bin).
        # C2: increment and write back.
        c1_valid, c1_bin, c1_count = Signal(), Signal(range(bins)), Signal(COUNT_BITS)
        wdata = Signal(COUNT_BITS)
        m.d.comb += wdata.eq(c1_count + 1)
        hit = c1_valid & (c1_bin == b2_bin)
        m.d.sync += [c1_valid.eq(b2_valid), c1_bin.eq(b2_bin),
                     c1_count.eq(Mux(hit, wdata, rd.data))]
        with m.If(busy & (drain == 0)):
            m.d.comb += [wp.addr.eq(clr_addr), wp.data.eq(0), wp.en.eq(1)]
        with m.Else():
            m.d.comb += [wp.addr.eq(c1_bin), wp.data.eq(wdata), wp.en.eq(c1_valid)]

        stalled = self.o.valid & ~self.o.ready
        with m.If((self.host.clear | pending) & ~busy & stalled):
            m.d.sync += pending.eq(1)
        with m.Elif((self.host.clear | pending) & ~busy):
            m.d.sync += [busy.eq(1), pending.eq(0), drain.eq(DRAIN), clr_addr.eq(0)]
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
