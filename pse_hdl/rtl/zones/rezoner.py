"""The zoned memory's re-zoning engine: builds a layout in the shadow bank from the code stream
(see ``zones`` for the command and the layout it writes)."""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import layouts
from .layouts import (Target, banked, count_shape, geometry, log2, plan_layout,
                           row_desc_layout, split_layout, table_layout)

__all__ = ["Rezoner"]


def _rshift_round(m, value, shift, width):
    """``rshift_round(value, shift)`` (round half up) for a variable shift."""
    half = Signal(signed(width + 1))
    m.d.comb += half.eq((Const(1, width + 1) << shift) >> 1)
    rounded = Signal(signed(width + 1))
    m.d.comb += rounded.eq((value + half) >> shift)
    return rounded


class Rezoner(wiring.Component):
    """The re-zoning engine (see the module docs). Four stages per weight: accept the code and
    read the master; register it; quantize; pack and write. One weight per cycle, plus a few
    cycles per layer for its plan and table entry, one to flush its partial zone words, and one
    per split descriptor that falls on the same weight as another or beyond the last surviving
    weight."""

    def __init__(self, cfg):
        self.cfg = cfg
        n, P, W = len(cfg.precisions), cfg.fetch_ports, cfg.zone_word_bits
        geo = geometry(cfg)
        super().__init__({
            "start": In(1), "n_layers": In(count_shape(cfg.max_layers)), "bank": In(1),
            "busy": Out(1), "done": Out(1),
            "error": Out(data.StructLayout({"cost": 1, "zone": 1, "meta": 1})),
            "codes": In(stream.Signature(layouts.code_out(cfg))),
            "z_en": Out(1).array(n), "z_addr": Out(range(2 * max(cfg.zone_depths))).array(n),
            "z_data": Out(W).array(n),
            "meta_en": Out(1), "meta_addr": Out(range(2 * cfg.meta_depth)), "meta_data": Out(W),
            "desc_en": Out(1), "desc_addr": Out(range(max(2, 2 * cfg.desc_depth))),
            "desc_data": Out(row_desc_layout(cfg)),
            "split_en": Out(1), "split_addr": Out(range(2 * geo[Target.SPLIT])),
            "split_data": Out(split_layout(cfg)),
            "table_en": Out(1), "table_addr": Out(range(2 * cfg.max_layers)),
            "table_data": Out(table_layout(cfg)),
            "plan_addr": Out(range(max(2, cfg.max_layers))), "plan_data": In(plan_layout(cfg)),
            "master_addr": Out(cfg.master_addr_bits), "master_ren": Out(1),
            "master_data": In(signed(cfg.weight_bits)),
            "master_wen": Out(1), "master_waddr": Out(cfg.master_addr_bits),
            "zone_words": Out(data.ArrayLayout(count_shape(max(cfg.zone_depths)), n)),
            "meta_bits": Out(count_shape(cfg.meta_depth * W)),
            "row_descs": Out(count_shape(cfg.desc_depth)),
            "split_descs": Out(count_shape(cfg.max_layers * P)),
            "layers": Out(count_shape(cfg.max_layers))})

    def elaborate(self, platform):
        cfg = self.cfg
        n, P, W = len(cfg.precisions), cfg.fetch_ports, cfg.zone_word_bits
        per = [cfg.per_word(b) for b in cfg.precisions]
        geo = geometry(cfg)
        m = Module()

        n_layers = Signal.like(self.n_layers)
        layer = Signal(count_shape(cfg.max_layers))
        pl = Signal(plan_layout(cfg))          # the current layer's plan
        total = Signal(cfg.pos_bits)           # rows * cols
        # Running positions in the shadow bank.
        zptr = Array(Signal(count_shape(max(cfg.zone_depths)), name=f"zptr{k}")
                     for k in range(n))
        zbase = Array(Signal(count_shape(max(cfg.zone_depths)), name=f"zbase{k}")
                      for k in range(n))
        mword = Signal(count_shape(cfg.meta_depth))
        mfill = Signal(range(W))
        macc = Signal(W)
        dptr = Signal(count_shape(cfg.desc_depth))
        # Per-layer counters.
        lidx = Array(Signal(cfg.zone_index_bits + 1, name=f"lidx{k}") for k in range(n))
        lmeta = Signal(cfg.meta_index_bits + 1)
        pcost = Signal(cfg.layer_cost_bits)    # MAC cost of the survivors before stage C's
        row_has = Signal()                     # stage C's row had a survivor before it
        q = Signal(range(P + 1))
        nq_acc = Signal(cfg.layer_cost_bits + log2(P) + 1)   # q * cost
        zacc = Array(Signal(W, name=f"zacc{k}") for k in range(n))
        splits_written = Signal.like(self.split_descs)
        m.d.comb += [self.zone_words[k].eq(zptr[k]) for k in range(n)]
        m.d.comb += [self.meta_bits.eq(mword * W + mfill), self.row_descs.eq(dptr),
                     self.split_descs.eq(splits_written), self.layers.eq(layer)]

        # Pipeline: A accepts a code and reads its master, B registers the master out of the
        # block RAM, Q quantizes, C packs.
        issued = Signal(cfg.pos_bits)
        a_row, a_col = Signal(cfg.row_bits + 1), Signal(cfg.col_bits + 1)
        b_valid, b_code = Signal(), Signal(cfg.code_bits)
        b_pos, b_row, b_col = Signal(cfg.pos_bits), Signal.like(a_row), Signal.like(a_col)
        q_valid, q_code = Signal(), Signal(cfg.code_bits)
        q_pos, q_row, q_col = Signal(cfg.pos_bits), Signal.like(a_row), Signal.like(a_col)
        q_master = Signal(signed(cfg.weight_bits))
        c_valid, c_code = Signal(), Signal(cfg.code_bits)
        c_pos, c_row, c_col = Signal(cfg.pos_bits), Signal.like(a_row), Signal.like(a_col)
        c_value = Signal(cfg.weight_bits)
        run = Signal()

        m.d.comb += [self.codes.ready.eq(run & (issued < total)),
                     self.master_addr.eq(pl.master_base + issued), self.master_ren.eq(1)]
        a_fire = self.codes.valid & self.codes.ready
        m.d.sync += [b_valid.eq(a_fire), b_code.eq(self.codes.payload.code),
                     b_pos.eq(issued), b_row.eq(a_row), b_col.eq(a_col)]
        with m.If(a_fire):
            m.d.sync += issued.eq(issued + 1)
            with m.If(a_col == pl.cols - 1):
                m.d.sync += [a_col.eq(0), a_row.eq(a_row + 1)]
            with m.Else():
                m.d.sync += a_col.eq(a_col + 1)

        m.d.sync += [q_valid.eq(b_valid), q_code.eq(b_code), q_pos.eq(b_pos),
                     q_row.eq(b_row), q_col.eq(b_col), q_master.eq(self.master_data)]
        # One rounding shift by the weight's class scale, then that class's clamp.
        scale = Array([Const(0, cfg.shift_bits)] + [pl.shift[k] for k in range(n)])[q_code]
        rounded = _rshift_round(m, q_master, scale, cfg.weight_bits)
        m.d.sync += [c_valid.eq(q_valid), c_code.eq(q_code), c_pos.eq(q_pos),
                     c_row.eq(q_row), c_col.eq(q_col)]
        with m.Switch(q_code):
            for k, b in enumerate(cfg.precisions):
                with m.Case(k + 1):
                    lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
                    m.d.sync += c_value.eq(Mux(rounded < lo, lo, Mux(rounded > hi, hi, rounded)))

        # Stage C.
        survivor = c_code != 0
        cost = Signal(range(cfg.mac_cost(max(cfg.precisions)) + 1))
        with m.Switch(c_code):
            for k, b in enumerate(cfg.precisions):
                with m.Case(k + 1):
                    m.d.comb += cost.eq(cfg.mac_cost(b))
        has = Signal()
        m.d.comb += has.eq(row_has & (c_col != 0))
        snap = Signal(split_layout(cfg))
        m.d.comb += [snap.row.eq(c_row), snap.col.eq(c_col), snap.pos.eq(c_pos),
                     snap.cont.eq(has), snap.meta.eq(lmeta)]
        m.d.comb += [snap.index[k].eq(lidx[k]) for k in range(n)]
        def split_addr(qq):
            return banked(self.bank, layer * P + qq, geo[Target.SPLIT])

        with m.If(c_valid):
            # Row descriptor at every desc_stride-th row start (state before this weight), if
            # the configuration keeps them.
            if cfg.desc_stride:
                first = (c_col == 0) & (c_row[:log2(cfg.desc_stride)] == 0) \
                    if cfg.desc_stride > 1 else c_col == 0
                with m.If(first):
                    daddr = dptr + (c_row >> log2(cfg.desc_stride))
                    with m.If(daddr < cfg.desc_depth):
                        m.d.comb += [self.desc_en.eq(1),
                                     self.desc_addr.eq(banked(self.bank, daddr,
                                                              cfg.desc_depth)),
                                     self.desc_data.meta.eq(lmeta)]
                        m.d.comb += [self.desc_data.index[k].eq(lidx[k]) for k in range(n)]
            # Split descriptor q at the first survivor whose cost prefix reaches
            # ceil(q C / P) (model.layer.lane_split): at most one per survivor, which is the
            # rule's "at least one weight after the previous lane's start".
            with m.If(survivor & (q < P) & ((pcost << log2(P)) >= nq_acc)):
                m.d.comb += [self.split_en.eq(1), self.split_addr.eq(split_addr(q)),
                             self.split_data.eq(snap)]
                m.d.sync += [q.eq(q + 1), nq_acc.eq(nq_acc + pl.cost),
                             splits_written.eq(splits_written + 1)]
            # Pack the value into its zone's word.
            with m.Switch(c_code):
                for k, b in enumerate(cfg.precisions):
                    with m.Case(k + 1):
                        e = lidx[k][:log2(per[k])] if per[k] > 1 else Const(0, 1)
                        word = Signal(W, name=f"word{k}")
                        m.d.comb += word.eq(zacc[k] | (c_value[:b] << (e * b)))
                        waddr = zbase[k] + (lidx[k] >> log2(per[k]))
                        with m.If(e == per[k] - 1):
                            with m.If(waddr < cfg.zone_depths[k]):
                                m.d.comb += [self.z_en[k].eq(1), self.z_data[k].eq(word),
                                             self.z_addr[k].eq(banked(self.bank, waddr,
                                                                       cfg.zone_depths[k]))]
                            with m.Else():
                                m.d.sync += self.error.zone.eq(1)
                            m.d.sync += zacc[k].eq(0)
                        with m.Else():
                            m.d.sync += zacc[k].eq(word)
                        m.d.sync += lidx[k].eq(lidx[k] + 1)
            # Append the code to the metadata bit string.
            code_word, code_len = self._code_bits(m, c_code)
            wide = Signal(W + self.cfg.max_code_length)
            m.d.comb += wide.eq(macc | (code_word << mfill))
            total_fill = mfill + code_len
            with m.If(total_fill >= W):
                with m.If(mword < cfg.meta_depth):
                    m.d.comb += [self.meta_en.eq(1), self.meta_data.eq(wide[:W]),
                                 self.meta_addr.eq(banked(self.bank, mword, cfg.meta_depth))]
                with m.Else():
                    m.d.sync += self.error.meta.eq(1)
                m.d.sync += [macc.eq(wide[W:]), mword.eq(mword + 1), mfill.eq(total_fill - W)]
            with m.Else():
                m.d.sync += [macc.eq(wide), mfill.eq(total_fill)]
            m.d.sync += [lmeta.eq(lmeta + code_len), pcost.eq(pcost + cost),
                         row_has.eq(has | survivor)]
            if not cfg.reversible:
                m.d.comb += [self.master_wen.eq(~survivor),
                             self.master_waddr.eq(pl.master_base + c_pos)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [n_layers.eq(self.n_layers), layer.eq(0), mword.eq(0),
                                 mfill.eq(0), macc.eq(0), dptr.eq(0), splits_written.eq(0),
                                 self.error.eq(0)]
                    m.d.sync += [zptr[k].eq(0) for k in range(n)]
                    m.next = "PLAN"
            with m.State("PLAN"):
                m.d.comb += self.busy.eq(1)
                with m.If(layer == n_layers):
                    m.next = "FINAL"
                with m.Else():
                    m.d.comb += self.plan_addr.eq(layer)
                    m.next = "SETUP"
            with m.State("SETUP"):
                # The plan is on the read port; the product rows * cols takes a cycle.
                m.d.comb += [self.busy.eq(1), self.plan_addr.eq(layer)]
                m.d.sync += [pl.eq(self.plan_data), total.eq(self.plan_data.rows
                                                             * self.plan_data.cols)]
                m.next = "TABLE"
            with m.State("TABLE"):
                m.d.comb += [self.busy.eq(1), self.table_en.eq(1),
                             self.table_addr.eq(banked(self.bank, layer, cfg.max_layers)),
                             self.table_data.cols.eq(pl.cols), self.table_data.total.eq(total),
                             self.table_data.meta_base.eq(mword * W + mfill),
                             self.table_data.desc_base.eq(dptr)]
                m.d.comb += [self.table_data.zone_base[k].eq(zptr[k]) for k in range(n)]
                m.d.comb += [self.table_data.shift[k].eq(pl.shift[k]) for k in range(n)]
                m.d.sync += [zbase[k].eq(zptr[k]) for k in range(n)]
                m.d.sync += [lidx[k].eq(0) for k in range(n)]
                m.d.sync += [zacc[k].eq(0) for k in range(n)]
                m.d.sync += [lmeta.eq(0), pcost.eq(0), row_has.eq(0), q.eq(1), nq_acc.eq(pl.cost),
                             issued.eq(0),
                             a_row.eq(0), a_col.eq(0)]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), run.eq(1)]
                with m.If((issued == total) & ~b_valid & ~q_valid & ~c_valid):
                    m.next = "FLUSH"
            with m.State("FLUSH"):
                m.d.comb += self.busy.eq(1)
                for k in range(n):
                    words = (lidx[k] + per[k] - 1) >> log2(per[k])
                    waddr = zbase[k] + (lidx[k] >> log2(per[k]))
                    with m.If(lidx[k][:log2(per[k])] != 0 if per[k] > 1 else Const(0)):
                        with m.If(waddr < cfg.zone_depths[k]):
                            m.d.comb += [self.z_en[k].eq(1), self.z_data[k].eq(zacc[k]),
                                         self.z_addr[k].eq(banked(self.bank, waddr,
                                                                   cfg.zone_depths[k]))]
                        with m.Else():
                            m.d.sync += self.error.zone.eq(1)
                    m.d.sync += zptr[k].eq(zbase[k] + words)
                    with m.If(zbase[k] + words > cfg.zone_depths[k]):
                        m.d.sync += self.error.zone.eq(1)
                with m.If(pcost != pl.cost):
                    m.d.sync += self.error.cost.eq(1)
                if cfg.desc_stride:
                    m.d.sync += dptr.eq(dptr + ((pl.rows + cfg.desc_stride - 1)
                                                >> log2(cfg.desc_stride)))
                m.next = "ENDSPLITS"
            with m.State("ENDSPLITS"):
                # Splits beyond the last survivor point at the layer's end.
                m.d.comb += self.busy.eq(1)
                with m.If(q < P):
                    end = Signal(split_layout(cfg))
                    m.d.comb += [end.row.eq(pl.rows), end.col.eq(0), end.pos.eq(total),
                                 end.cont.eq(0), end.meta.eq(lmeta)]
                    m.d.comb += [end.index[k].eq(lidx[k]) for k in range(n)]
                    m.d.comb += [self.split_en.eq(1), self.split_addr.eq(split_addr(q)),
                                 self.split_data.eq(end)]
                    m.d.sync += [q.eq(q + 1), splits_written.eq(splits_written + 1)]
                with m.Else():
                    m.d.sync += layer.eq(layer + 1)
                    m.next = "PLAN"
            with m.State("FINAL"):
                m.d.comb += self.busy.eq(1)
                with m.If(mfill != 0):
                    with m.If(mword < cfg.meta_depth):
                        m.d.comb += [self.meta_en.eq(1), self.meta_data.eq(macc),
                                     self.meta_addr.eq(banked(self.bank, mword, cfg.meta_depth))]
                    with m.Else():
                        m.d.sync += self.error.meta.eq(1)
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        return m

    def _code_bits(self, m, code):
        """The metadata bits of ``code`` (LSB first) and their number."""
        cfg = self.cfg
        n = len(cfg.precisions)
        bits = Signal(cfg.max_code_length, name="code_word")
        length = Signal(range(cfg.max_code_length + 1), name="code_len")
        with m.Switch(code):
            for c in range(n + 1):
                with m.Case(c):
                    if cfg.meta_encoding == "fixed":
                        m.d.comb += [bits.eq(c), length.eq(cfg.code_bits)]
                    else:
                        m.d.comb += [bits.eq((1 << c) - 1), length.eq(cfg.code_length(c))]
        return bits, length
