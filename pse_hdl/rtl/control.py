"""The PSE control chain: RIC -> PA -> SM -> histogram, as one component.

The allocation pass streams master weights (row-major, with their previous codes) into ``w``;
the chain emits each weight's new code on ``o`` at one weight per cycle, while the histogram
counts the pass. Activations stream into ``x`` between passes to update the importance
estimates. All host ports of the blocks are brought out unchanged.
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from . import layouts
from .histogram import HistogramPort, ImportanceHistogram
from .pa import PrecisionAllocator, ThresholdPort
from .ric import HostReadPort, HostWritePort, RollingImportance, SnapshotPort
from .sm import SparsificationManager

__all__ = ["ControlChain"]


class ControlChain(wiring.Component):
    """Members: ``x``, ``w`` (RIC inputs), ``o`` (codes, :func:`layouts.code_out`); ``ric_host``,
    ``ric_host_rd`` (RIC state write and read), ``x_layer``, ``w_layer`` and ``snap`` (factored
    RIC: the layers whose states the streams use; the snapshot the pass reads), ``csr`` (thresholds), ``hist_host`` (histogram port), ``clear`` (destructive
    mode); counters ``samples``, ``pruned``, ``class_count``; ``error`` (refused threshold
    commit); ``busy`` (RIC updates in flight)."""

    def __init__(self, cfg):
        self._cfg = cfg
        self.ric = RollingImportance(cfg)
        self.pa = PrecisionAllocator(cfg)
        self.sm = SparsificationManager(cfg)
        self.hist = ImportanceHistogram(cfg)
        members = {
            "x": In(stream.Signature(layouts.product(cfg) if cfg.importance_form == "literal"
                                     else layouts.observation(cfg))),
            "w": In(stream.Signature(layouts.master_in(cfg))),
            "o": Out(stream.Signature(layouts.code_out(cfg))),
            "ric_host": In(HostWritePort((self.ric.depth - 1).bit_length() or 1,
                                         self.ric.state_bits)),
            "ric_host_rd": In(HostReadPort((self.ric.depth - 1).bit_length() or 1,
                                           self.ric.state_bits)),
            "csr": In(ThresholdPort(cfg)),
            "hist_host": Out(HistogramPort(cfg.hist_bins)).flip(),
            "samples": Out(32), "pruned": Out(32),
            "class_count": Out(self.hist.signature.members["class_count"].shape),
            "error": Out(1), "busy": Out(1),
        }
        if cfg.importance_form != "literal":
            members["x_layer"] = In(range(cfg.max_layers))
            members["w_layer"] = In(range(cfg.max_layers))
            members["snap"] = In(SnapshotPort((self.ric.depth - 1).bit_length() or 1,
                                              cfg.col_bits + 1))
        if not cfg.reversible:
            members["clear"] = Out(stream.Signature(layouts.clear(cfg)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.ric, m.submodules.pa = self.ric, self.pa
        m.submodules.sm, m.submodules.hist = self.sm, self.hist
        wiring.connect(m, wiring.flipped(self.x), self.ric.x)
        wiring.connect(m, wiring.flipped(self.w), self.ric.w)
        wiring.connect(m, wiring.flipped(self.ric_host), self.ric.host)
        wiring.connect(m, wiring.flipped(self.ric_host_rd), self.ric.host_rd)
        if self._cfg.importance_form != "literal":
            m.d.comb += [self.ric.x_layer.eq(self.x_layer), self.ric.w_layer.eq(self.w_layer)]
            wiring.connect(m, wiring.flipped(self.snap), self.ric.snap)
        wiring.connect(m, wiring.flipped(self.csr), self.pa.csr)
        wiring.connect(m, wiring.flipped(self.hist_host), self.hist.host)
        wiring.connect(m, self.ric.o, self.pa.i)
        wiring.connect(m, self.pa.o, self.sm.i)
        wiring.connect(m, self.sm.o, self.hist.i)
        wiring.connect(m, self.hist.o, wiring.flipped(self.o))
        if not self._cfg.reversible:
            wiring.connect(m, self.sm.clear, wiring.flipped(self.clear))
        m.d.comb += [self.samples.eq(self.ric.samples), self.pruned.eq(self.sm.pruned),
                     self.class_count.eq(self.hist.class_count), self.error.eq(self.pa.error),
                     self.busy.eq(self.ric.busy)]
        return m
