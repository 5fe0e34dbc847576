"""Sparsification Manager (SM): prunes the weights coded 0 and counts them.

A one-stage register slice on the code stream that counts pruned weights. In destructive mode
(``reversible = False``, the specification's literal ``w.value = 0``) every pruned weight also
issues a clear of its master copy on the ``clear`` stream; the slice holds an item until both its
outputs have been taken, so a clear is never lost and never issued twice. In reversible mode
(default) ``clear`` is absent and the master copy is kept, so the weight can come back.

Latency one cycle; full throughput when nothing stalls.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from . import layouts

__all__ = ["SparsificationManager"]


class SparsificationManager(wiring.Component):
    """Members: ``i``, ``o`` (:func:`layouts.code_out`); ``clear`` (destructive mode only:
    ``{row, column}`` of a master to zero); ``pruned`` (Out(32), pruned weights seen)."""

    def __init__(self, cfg):
        self._cfg = cfg
        members = {
            "i": In(stream.Signature(layouts.code_out(cfg))),
            "o": Out(stream.Signature(layouts.code_out(cfg))),
            "pruned": Out(32),
        }
        if not cfg.reversible:
            members["clear"] = Out(stream.Signature(layouts.clear(cfg)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        destructive = not self._cfg.reversible
        o_pend = self.o.valid
        c_pend = self.clear.valid if destructive else Signal()
        c_ready = self.clear.ready if destructive else Signal(init=1)
        free = (~o_pend | self.o.ready) & (~c_pend | c_ready)
        m.d.comb += self.i.ready.eq(free)
        is_pruned = self.i.payload.code == 0
        with m.If(free):
            m.d.sync += [o_pend.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
            if destructive:
                m.d.sync += [c_pend.eq(self.i.valid & is_pruned),
                             self.clear.payload.row.eq(self.i.payload.row),
                             self.clear.payload.column.eq(self.i.payload.column)]
            with m.If(self.i.valid & is_pruned):
                m.d.sync += self.pruned.eq(self.pruned + 1)
        with m.Else():
            with m.If(self.o.ready):
                m.d.sync += o_pend.eq(0)
            if destructive:
                with m.If(c_ready):
                    m.d.sync += c_pend.eq(0)
        return m
