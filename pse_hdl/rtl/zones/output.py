"""A fetch walker's output stage: events (weight, row marker, end) into tagged transfers.

A weight's ``last`` bit is known only at the walker's next event (the next weight, a row end,
the end of its share), so the stage holds one transfer back (``pend``) and sends it when the
next event says how it ends. A weight's event carries its value, picked out of its zone's
prefetched word by the walker when it takes the weight (so the wide word select is a register
away from this stage's output).
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import layouts

__all__ = ["TransferOutput", "event_layout", "WEIGHT", "MARK", "DONE"]

# Event kinds. MARK with ``resolve`` ends the held transfer's row instead of sending a marker.
WEIGHT, MARK, DONE = 1, 2, 3


def event_layout(cfg):
    """An event: its kind, row and column, and a weight's code and value."""
    return data.StructLayout({"kind": 2, "row": unsigned(cfg.row_bits + 1),
                              "col": unsigned(cfg.col_bits), "code": cfg.code_bits,
                              "value": signed(cfg.weight_bits)})


class TransferOutput(wiring.Component):
    """Output stage (see the module docs). Latency: a weight is sent one event after it is
    taken. ``en`` is high when the stage takes an event: a register, so the walker's decision
    waits for no ``o.ready``. A transfer made while ``o`` is stalled waits in a second register
    (``skid``), and ``en`` stays low until it has moved to ``o``; without backpressure one
    event a cycle.

    Members
    -------
    ev, ev_valid, resolve : In   The walker's event register.
    shift : In(array)            Per class, the layer's zone scale.
    en : Out(1)                  The stage takes ``ev`` this cycle.
    o : Out(stream)              Tagged transfers.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        n = len(cfg.precisions)
        super().__init__({
            "ev": In(event_layout(cfg)), "ev_valid": In(1), "resolve": In(1),
            "shift": In(data.ArrayLayout(unsigned(cfg.shift_bits), n)),
            "en": Out(1), "o": Out(stream.Signature(layouts.transfer_layout(cfg)))})

    def elaborate(self, platform):
        cfg, ev = self.cfg, self.ev
        n = len(cfg.precisions)
        m = Module()
        en = self.en
        skid, skid_valid = Signal(layouts.transfer_layout(cfg)), Signal()
        m.d.comb += en.eq(~skid_valid)

        pend = Signal(layouts.transfer_layout(cfg))
        pend_valid = Signal()
        shift = Array([Const(0, cfg.shift_bits)] + [self.shift[k] for k in range(n)])
        new = Signal(layouts.transfer_layout(cfg))
        m.d.comb += [new.value.eq(ev.value), new.code.eq(ev.code), new.shift.eq(shift[ev.code]),
                     new.column.eq(ev.col), new.row.eq(ev.row)]
        made, made_valid = Signal(layouts.transfer_layout(cfg)), Signal()   # a transfer made
        with m.If(en & self.ev_valid):
            with m.Switch(ev.kind):
                with m.Case(WEIGHT):
                    m.d.sync += [pend.eq(new), pend_valid.eq(1)]
                    m.d.comb += [made_valid.eq(pend_valid), made.eq(pend),
                                 made.last.eq(pend.row != ev.row)]
                with m.Case(MARK):
                    with m.If(self.resolve):
                        m.d.comb += [made_valid.eq(1), made.eq(pend), made.last.eq(1)]
                        m.d.sync += pend_valid.eq(0)
                    with m.Else():
                        m.d.comb += [made_valid.eq(1), made.row.eq(ev.row), made.last.eq(1)]
                with m.Case(DONE):
                    m.d.sync += pend_valid.eq(0)
                    m.d.comb += [made_valid.eq(pend_valid), made.eq(pend), made.last.eq(1)]
        with m.If(~self.o.valid | self.o.ready):
            m.d.sync += [self.o.valid.eq(skid_valid | made_valid),
                         self.o.payload.eq(Mux(skid_valid, skid, made)), skid_valid.eq(0)]
        with m.Elif(made_valid):
            m.d.sync += [skid.eq(made), skid_valid.eq(1)]
        return m
