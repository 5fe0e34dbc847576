"""A fetch walker's output stage: events (weight, row marker, end) into tagged transfers.

A weight's ``last`` bit is known only at the walker's next event (the next weight, a row end,
the end of its share), so the stage holds one transfer back (``pend``) and sends it when the
next event says how it ends. A weight's value is picked out of its zone's prefetched word (the
event carries the element's index in it) when the stage takes the event.
"""

from amaranth.hdl import Array, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import layouts
from .layouts import log2, read_ratio

__all__ = ["TransferOutput", "event_layout", "WEIGHT", "MARK", "DONE"]

# Event kinds. MARK with ``resolve`` ends the held transfer's row instead of sending a marker.
WEIGHT, MARK, DONE = 1, 2, 3


def event_layout(cfg):
    """An event: its kind, row and column, a weight's code, and where its value is (the zone
    prefetcher's slot and the element in that word)."""
    per = max(cfg.per_word(b) for b in cfg.precisions)
    return data.StructLayout({"kind": 2, "row": unsigned(cfg.row_bits + 1),
                              "col": unsigned(cfg.col_bits), "code": cfg.code_bits,
                              "slot": 1, "sel": range(per * read_ratio(cfg))})


class TransferOutput(wiring.Component):
    """Output stage (see the module docs). Latency: a weight is sent one event after it is
    taken. ``en`` is high when the stage takes an event (its output is empty or being taken):
    the walker advances only then.

    Members
    -------
    ev, ev_valid, resolve : In   The walker's event register.
    words : In x n               Per class, the prefetched zone word the event's slot names.
    shift : In(array)            Per class, the layer's zone scale.
    en : Out(1)                  The stage takes ``ev`` this cycle.
    o : Out(stream)              Tagged transfers.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        n, R = len(cfg.precisions), read_ratio(cfg)
        super().__init__({
            "ev": In(event_layout(cfg)), "ev_valid": In(1), "resolve": In(1),
            "words": In(R * cfg.zone_word_bits).array(n),
            "shift": In(data.ArrayLayout(unsigned(cfg.shift_bits), n)),
            "en": Out(1), "o": Out(stream.Signature(layouts.transfer_layout(cfg)))})

    def elaborate(self, platform):
        cfg, ev = self.cfg, self.ev
        n, R = len(cfg.precisions), read_ratio(cfg)
        m = Module()
        en = self.en
        m.d.comb += en.eq(~self.o.valid | self.o.ready)

        pend = Signal(layouts.transfer_layout(cfg))
        pend_valid = Signal()
        value = Signal(signed(cfg.weight_bits))
        with m.Switch(ev.code):
            for k, b in enumerate(cfg.precisions):
                with m.Case(k + 1):
                    count = R * cfg.per_word(b)
                    word = self.words[k]
                    elems = Array(word[e * b:(e + 1) * b].as_signed() for e in range(count))
                    m.d.comb += value.eq(elems[ev.sel[:log2(count)]] if count > 1 else elems[0])
        shift = Array([Const(0, cfg.shift_bits)] + [self.shift[k] for k in range(n)])
        new = Signal(layouts.transfer_layout(cfg))
        m.d.comb += [new.value.eq(value), new.code.eq(ev.code), new.shift.eq(shift[ev.code]),
                     new.column.eq(ev.col), new.row.eq(ev.row)]
        with m.If(en):
            m.d.sync += self.o.valid.eq(0)
            with m.If(self.ev_valid):
                with m.Switch(ev.kind):
                    with m.Case(WEIGHT):
                        m.d.sync += [pend.eq(new), pend_valid.eq(1)]
                        with m.If(pend_valid):
                            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(pend),
                                         self.o.payload.last.eq(pend.row != ev.row)]
                    with m.Case(MARK):
                        with m.If(self.resolve):
                            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(pend),
                                         self.o.payload.last.eq(1), pend_valid.eq(0)]
                        with m.Else():
                            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(0),
                                         self.o.payload.row.eq(ev.row),
                                         self.o.payload.last.eq(1)]
                    with m.Case(DONE):
                        m.d.sync += pend_valid.eq(0)
                        with m.If(pend_valid):
                            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(pend),
                                         self.o.payload.last.eq(1)]
        return m
