"""The layer walker: a layer's master weights and previous codes, streamed in row-major order.

It feeds every pass of the engine over the weights: the allocation and histogram passes (into
the control chain) and the re-zoning (its codes into the zoned memory).
"""

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
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
    Both memories are read in the same cycle (synchronous ports, held while the output stalls);
    one weight per cycle, two cycles of latency; ``busy`` until the last weight is taken.

    With ``input_masks``, ``start`` also samples ``masked`` and ``col_base`` (the layer's first
    entry of the column magnitudes): a masked layer's weights carry their column's magnitude
    (``colnorm``, read beside the master) in place of the master, so its importance is the
    column's (docs/SPEC.md section 4).
    """

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
        base, total, cols = Signal.like(self.base), Signal.like(self.total), Signal.like(self.cols)
        idx, row, col = Signal(cfg.pos_bits), Signal(cfg.row_bits + 1), Signal(cfg.col_bits + 1)
        addr = Signal(cfg.master_addr_bits + 1)
        r_valid, r_row, r_col, r_last = Signal(), Signal.like(row), Signal.like(col), Signal()
        r_sel = Signal(range(cpw))
        adv = ~self.o.valid | self.o.ready
        issue = Signal()
        m.d.comb += [addr.eq(base + idx), issue.eq(idx < total),
                     self.master.en.eq(adv & issue), self.master.addr.eq(addr),
                     self.codes.en.eq(adv), self.codes.addr.eq(addr >> log2(cpw)),
                     self.busy.eq(issue | r_valid | self.o.valid)]
        codes = Array(self.codes.data[k * cfg.code_bits:(k + 1) * cfg.code_bits]
                      for k in range(cpw))
        master = self.master.data
        if cfg.input_masks:
            masked, col_base = Signal(), Signal.like(self.col_base)
            m.d.comb += [self.colnorm.en.eq(adv), self.colnorm.addr.eq(col_base + col)]
            master = Mux(masked, self.colnorm.data.as_signed(), master)
            with m.If(self.start):
                m.d.sync += [masked.eq(self.masked), col_base.eq(self.col_base)]
        with m.If(self.start):
            m.d.sync += [base.eq(self.base), total.eq(self.total), cols.eq(self.cols),
                         idx.eq(0), row.eq(0), col.eq(0), r_valid.eq(0), self.o.valid.eq(0)]
        with m.Elif(adv):
            m.d.sync += [r_valid.eq(issue), r_row.eq(row), r_col.eq(col),
                         r_last.eq(col == cols - 1), r_sel.eq(addr[:log2(cpw)] if cpw > 1 else 0)]
            with m.If(issue):
                m.d.sync += idx.eq(idx + 1)
                with m.If(col == cols - 1):
                    m.d.sync += [col.eq(0), row.eq(row + 1)]
                with m.Else():
                    m.d.sync += col.eq(col + 1)
            o = self.o.payload
            m.d.sync += [self.o.valid.eq(r_valid), o.master.eq(master),
                         o.prev.eq(codes[r_sel]), o.row.eq(r_row), o.column.eq(r_col),
                         o.last.eq(r_last)]
        return m
