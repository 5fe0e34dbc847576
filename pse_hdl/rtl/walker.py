"""The layer walker: a layer's master weights and previous codes, streamed in row-major order.

It feeds every pass of the engine over the weights: the allocation and histogram passes (into
the control chain) and the re-zoning (its codes into the zoned memory).
"""

from amaranth.hdl import Array, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from . import layouts
from .layouts import log2

__all__ = ["LayerWalker", "colnorm_addr_bits"]


def colnorm_addr_bits(cfg):
    """Address bits of the column magnitudes (``input_masks``): as the RIC's states, layer l's
    inputs at ``l * max_cols``."""
    return max(1, (cfg.ric_depth - 1).bit_length())



class LayerWalker(wiring.Component):
    """Streams one layer's weights, row-major: ``{master, prev, row, column, last}`` from the
    master store and the code buffer (``prev`` is the weight's code there).

    ``start`` (a strobe) samples ``base`` (first master), ``total`` (rows x cols) and ``cols``.
    The master store's port has three cycles of latency (its address is registered in front
    of the block RAMs, and each bank's output after it: ``ZonedMemory.master_walk``); the
    walker registers its code-buffer (and column-magnitude) requests twice, so all its reads
    answer three cycles after they are issued, without stalls, into a five-entry queue whose
    free entries (counted from registers, a cycle late) decide the next read: one weight per
    cycle under no backpressure, no ready on any memory's address or enable. Five cycles from
    ``start`` to the first weight; ``busy`` until the last weight is taken.

    With ``input_masks``, ``start`` also samples ``masked`` and ``col_base`` (the layer's first
    entry of the column magnitudes): a masked layer's weights carry their column's magnitude
    (``colnorm``, read beside the master) in place of the master, so its importance is the
    column's (docs/SPEC.md section 4).
    """

    DEPTH = 5      # three reads in flight, one weight out, one for the credit counted a cycle late

    def __init__(self, cfg, codes_per_word):
        self._cfg, self._cpw = cfg, codes_per_word
        code_words = -(-cfg.master_depth // codes_per_word)
        super().__init__({
            "start": In(1), "base": In(cfg.master_addr_bits), "total": In(cfg.pos_bits),
            "cols": In(cfg.col_bits + 1), "busy": Out(1),
            "master": In(memory.ReadPort.Signature(addr_width=cfg.master_addr_bits,
                                                   shape=signed(cfg.weight_bits))),
            "codes": In(memory.ReadPort.Signature(addr_width=max(1, log2(code_words)),
                                                  shape=codes_per_word * cfg.code_bits)),
            "o": Out(stream.Signature(layouts.master_in(cfg))),
            **({"masked": In(1), "col_base": In(colnorm_addr_bits(cfg)),
                "colnorm": In(memory.ReadPort.Signature(addr_width=colnorm_addr_bits(cfg),
                                                        shape=cfg.weight_bits))}
               if cfg.input_masks else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, cpw = self._cfg, self._cpw
        lay = layouts.master_in(cfg)
        m.submodules.queue = queue = ResetInserter(self.start)(
            SyncFIFO(width=lay.size, depth=self.DEPTH))
        base, total, cols = Signal.like(self.base), Signal.like(self.total), Signal.like(self.cols)
        idx, row, col = Signal(cfg.pos_bits), Signal(cfg.row_bits + 1), Signal(cfg.col_bits + 1)
        addr = Signal(cfg.master_addr_bits + 1)
        # Stage 1: the reads issued (the code buffer's and column magnitudes' requests
        # registered here and again in stage 2); stage 3: the words arrive and enter the queue.
        s1, s2, s3 = Signal(lay), Signal(lay), Signal(lay)
        s1_valid, s2_valid, s3_valid = Signal(), Signal(), Signal()
        s1_sel, s2_sel, s3_sel = (Signal(range(cpw)) for _ in range(3))   # the code's slot
        issue = Signal()
        req_en, req_addr = Signal(), Signal(cfg.master_addr_bits + 1)   # stage 1's request
        m.d.comb += [addr.eq(base + idx),
                     issue.eq((idx < total) & (s1_valid + s2_valid + s3_valid + queue.level
                                               < self.DEPTH)),
                     self.master.en.eq(issue), self.master.addr.eq(addr),
                     self.busy.eq((idx < total) | s1_valid | s2_valid | s3_valid
                                  | queue.r_rdy)]
        m.d.sync += [req_en.eq(issue), req_addr.eq(addr),
                     self.codes.en.eq(req_en), self.codes.addr.eq(req_addr >> log2(cpw)),
                     s1_valid.eq(issue), s1.row.eq(row), s1.column.eq(col),
                     s1.last.eq(col == cols - 1),
                     s1_sel.eq(addr[:log2(cpw)] if cpw > 1 else 0),
                     s2_valid.eq(s1_valid), s2.eq(s1), s2_sel.eq(s1_sel),
                     s3_valid.eq(s2_valid), s3.eq(s2), s3_sel.eq(s2_sel)]
        codes = Array(self.codes.data[k * cfg.code_bits:(k + 1) * cfg.code_bits]
                      for k in range(cpw))
        master = self.master.data
        if cfg.input_masks:
            masked, col_base = Signal(), Signal.like(self.col_base)
            col_req = Signal.like(self.colnorm.addr)
            m.d.sync += [col_req.eq(col_base + col), self.colnorm.en.eq(req_en),
                         self.colnorm.addr.eq(col_req)]
            master = Mux(masked, self.colnorm.data.as_signed(), master)
            with m.If(self.start):
                m.d.sync += [masked.eq(self.masked), col_base.eq(self.col_base)]
        word = Signal(lay)
        m.d.comb += [word.eq(s3), word.master.eq(master), word.prev.eq(codes[s3_sel]),
                     queue.w_en.eq(s3_valid), queue.w_data.eq(word),
                     self.o.valid.eq(queue.r_rdy), self.o.payload.eq(queue.r_data),
                     queue.r_en.eq(self.o.ready)]
        with m.If(self.start):
            m.d.sync += [base.eq(self.base), total.eq(self.total), cols.eq(self.cols),
                         idx.eq(0), row.eq(0), col.eq(0), s1_valid.eq(0), s2_valid.eq(0),
                         s3_valid.eq(0)]
        with m.Elif(issue):
            m.d.sync += idx.eq(idx + 1)
            with m.If(col == cols - 1):
                m.d.sync += [col.eq(0), row.eq(row + 1)]
            with m.Else():
                m.d.sync += col.eq(col + 1)
        return m
