"""The zoned memory's re-zoning engine: builds a layout in the shadow bank from the code stream
(see ``zones`` for the command and the layout it writes). It sequences the layers (plan, table
entry, weights, flush, the split descriptors left over) and writes the descriptors; the
per-weight datapath is in ``packers``."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import layouts
from .kept import kept_addr_width
from .layouts import (Target, at_least, banked, count_shape, geometry, kept_entry, log2,
                      meta_bits_shape, plan_layout, row_desc_layout, split_layout, table_layout)
from .packers import MetaPacker, Quantizer, ZonePacker

__all__ = ["Rezoner"]


class Rezoner(wiring.Component):
    """The re-zoning engine (see the module docs). Eight stages per weight: accept the code and
    ask for the master; the master store registers the address and reads its bank (two
    cycles, ``masters``); register the master read; round, then clamp (``packers.Quantizer``);
    pack and write (zones and
    metadata: ``packers.ZonePacker`` and ``MetaPacker``; descriptors: here). One weight per
    cycle, plus a few cycles per layer for its plan and table entry, one to flush its partial
    zone words, and one per split descriptor that falls on the same weight as another or beyond
    the last surviving weight.

    A masked layer (``input_masks``) stores no codes: as its first row passes, the index of every
    kept column goes to the kept-column table (``kept_*``, the walkers' token source), and its
    count into the table entry's metadata base (it has no metadata), the entry written again
    after the layer; its split descriptors carry, in
    the metadata offset, the split column's rank among the kept ones. ``meta_bits`` counts the
    kept columns' indices (``col_bits`` each) with the metadata, as the footprint does.

    ``error`` is registered; ``failed`` is an error bit set or being set this cycle, so that it
    is right at ``done`` even when the last partial metadata word, written with ``done``, is
    the one that does not fit."""

    def __init__(self, cfg):
        self.cfg = cfg
        n, P, W = len(cfg.precisions), cfg.fetch_ports, cfg.zone_word_bits
        geo = geometry(cfg)
        super().__init__({
            "start": In(1), "n_layers": In(count_shape(cfg.max_layers)), "bank": In(1),
            "busy": Out(1), "done": Out(1), "failed": Out(1),
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
            "meta_bits": Out(meta_bits_shape(cfg)),
            "row_descs": Out(count_shape(cfg.desc_depth)),
            "split_descs": Out(count_shape(cfg.max_layers * P)),
            "layers": Out(count_shape(cfg.max_layers)),
            **({"kept_en": Out(1), "kept_addr": Out(kept_addr_width(cfg)),
                "kept_data": Out(cfg.col_bits)} if cfg.input_masks else {})})

    def elaborate(self, platform):
        cfg = self.cfg
        n, P = len(cfg.precisions), cfg.fetch_ports
        geo = geometry(cfg)
        m = Module()

        n_layers = Signal.like(self.n_layers)
        layer = Signal(count_shape(cfg.max_layers))
        pl = Signal(plan_layout(cfg))          # the current layer's plan
        total = Signal(cfg.pos_bits)           # rows * cols
        dptr = Signal(count_shape(cfg.desc_depth))
        pcost = Signal(cfg.layer_cost_bits)    # MAC cost of the survivors before this one
        row_has = Signal()                     # this weight's row had a survivor before it
        q = Signal(range(P + 1))               # the next split descriptor
        nq_acc = Signal(cfg.layer_cost_bits + log2(P) + 1)   # q * cost
        splits_written = Signal.like(self.split_descs)
        run, clear, restart, flush, final = (Signal(name=x) for x in
                                             ("run", "clear", "restart", "flush", "final"))
        qz, zp, mp = self._datapath(m, pl, total, run, clear, restart, flush, final)
        w, w_valid = qz.o, qz.o_valid
        m.d.comb += [self.row_descs.eq(dptr), self.split_descs.eq(splits_written),
                     self.layers.eq(layer)]

        # Descriptors: the state before this weight.
        survivor = w.code != 0
        cost = Signal(range(cfg.mac_cost(max(cfg.precisions)) + 1))
        with m.Switch(w.code):
            for k, b in enumerate(cfg.precisions):
                with m.Case(k + 1):
                    m.d.comb += cost.eq(cfg.mac_cost(b))
        has = Signal()
        m.d.comb += has.eq(row_has & (w.col != 0))
        here = Signal(split_layout(cfg))
        m.d.comb += [here.row.eq(w.row), here.col.eq(w.col), here.pos.eq(w.pos),
                     here.cont.eq(has), here.meta.eq(mp.layer_bits)]
        if cfg.input_masks:
            kept, kept_bits, entry = self._masked(m, pl, layer, w, w_valid, survivor, here)
            m.d.comb += self.meta_bits.eq(mp.bits + kept_bits)
        # Element widths differ between the counters and the descriptors: element by element.
        m.d.comb += [here.index[k].eq(zp.index[k]) for k in range(n)]
        split_addr = banked(self.bank, layer * P + q, geo[Target.SPLIT])
        # A layer under one_port_below is on port 0 alone: no split descriptor is stored (the
        # fetch unit starts the other ports at its end). Registered at TABLE, from ``total``
        # (its compare chain in front of the split descriptors' write was a 12 ns path).
        multi = Signal()
        # The descriptor and its address whether or not one is written (only the enable waits
        # for the cost compare; ENDSPLITS writes ``end`` instead).
        m.d.comb += [self.split_addr.eq(split_addr), self.split_data.eq(here)]
        with m.If(w_valid):
            if cfg.desc_stride:       # a row descriptor at every desc_stride-th row start
                self._row_descriptor(m, w, dptr, mp, zp)
            # Split descriptor q at the first survivor whose cost prefix reaches
            # ceil(q C / P) (model.layer.lane_split): at most one per survivor, which is the
            # rule's "at least one weight after the previous lane's start".
            with m.If(multi & survivor & (q < P) & ((pcost << log2(P)) >= nq_acc)):
                m.d.comb += self.split_en.eq(1)
                m.d.sync += [q.eq(q + 1), nq_acc.eq(nq_acc + pl.cost),
                             splits_written.eq(splits_written + 1)]
            m.d.sync += [pcost.eq(pcost + cost), row_has.eq(has | survivor)]
            if not cfg.reversible:
                m.d.comb += [self.master_wen.eq(~survivor),
                             self.master_waddr.eq(pl.master_base + w.pos)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += clear.eq(1)
                    m.d.sync += [n_layers.eq(self.n_layers), layer.eq(0), dptr.eq(0),
                                 splits_written.eq(0), self.error.eq(0)]
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
                m.d.sync += [pl.eq(self.plan_data),
                             total.eq(self.plan_data.rows * self.plan_data.cols)]
                m.next = "TABLE"
            with m.State("TABLE"):
                m.d.comb += [self.busy.eq(1), restart.eq(1)]
                self._table_entry(m, layer, pl, total, mp, dptr, zp)
                if cfg.input_masks:
                    m.d.sync += [entry.eq(self.table_data), kept.eq(0)]
                m.d.sync += [pcost.eq(0), row_has.eq(0), q.eq(1), nq_acc.eq(pl.cost),
                             multi.eq(at_least(total, cfg.one_port_below))]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), run.eq(1)]
                with m.If(qz.drained):
                    m.next = "FLUSH"
            with m.State("FLUSH"):
                m.d.comb += [self.busy.eq(1), flush.eq(1)]
                if cfg.input_masks:   # the entry again, with the kept columns counted
                    m.d.comb += [self.table_en.eq(pl.masked),
                                 self.table_addr.eq(banked(self.bank, layer, cfg.max_layers)),
                                 self.table_data.eq(entry), self.table_data.meta_base.eq(kept)]
                with m.If(pcost != pl.cost):
                    m.d.sync += self.error.cost.eq(1)
                if cfg.desc_stride:
                    m.d.sync += dptr.eq(dptr + ((pl.rows + cfg.desc_stride - 1)
                                                >> log2(cfg.desc_stride)))
                m.next = "ENDSPLITS"
            with m.State("ENDSPLITS"):
                # Splits beyond the last survivor point at the layer's end.
                m.d.comb += self.busy.eq(1)
                with m.If(multi & (q < P)):
                    end = Signal(split_layout(cfg))
                    m.d.comb += [end.row.eq(pl.rows), end.col.eq(0), end.pos.eq(total),
                                 end.cont.eq(0), end.meta.eq(mp.layer_bits)]
                    m.d.comb += [end.index[k].eq(zp.index[k]) for k in range(n)]
                    m.d.comb += [self.split_en.eq(1), self.split_data.eq(end)]
                    m.d.sync += [q.eq(q + 1), splits_written.eq(splits_written + 1)]
                with m.Else():
                    m.d.sync += layer.eq(layer + 1)
                    m.next = "PLAN"
            with m.State("FINAL"):
                m.d.comb += [self.busy.eq(1), final.eq(1), self.done.eq(1)]
                m.next = "IDLE"
        return m

    def _row_descriptor(self, m, w, dptr, mp, zp):
        """While weight ``w`` is written: a row descriptor if it starts a row that has one
        (every ``desc_stride``-th), where the descriptors hold it."""
        cfg = self.cfg
        first = (w.col == 0) & (w.row[:log2(cfg.desc_stride)] == 0) \
            if cfg.desc_stride > 1 else w.col == 0
        daddr = dptr + (w.row >> log2(cfg.desc_stride))
        with m.If(first & (daddr < cfg.desc_depth)):
            m.d.comb += [self.desc_en.eq(1), self.desc_data.meta.eq(mp.layer_bits),
                         self.desc_addr.eq(banked(self.bank, daddr, cfg.desc_depth))]
            m.d.comb += [self.desc_data.index[k].eq(zp.index[k])
                         for k in range(len(cfg.precisions))]

    def _table_entry(self, m, layer, pl, total, mp, dptr, zp):
        """The layer's table entry (plan, sizes, where its metadata, descriptors and zone
        words begin), written at ``layer`` of the shadow bank."""
        cfg = self.cfg
        m.d.comb += [self.table_en.eq(1),
                     self.table_addr.eq(banked(self.bank, layer, cfg.max_layers)),
                     self.table_data.rows.eq(pl.rows),
                     self.table_data.cols.eq(pl.cols), self.table_data.total.eq(total),
                     self.table_data.meta_base.eq(mp.bits),
                     self.table_data.desc_base.eq(dptr),
                     self.table_data.uniform.eq(pl.uniform)]
        for k in range(len(cfg.precisions)):
            m.d.comb += [self.table_data.zone_base[k].eq(zp.words[k]),
                         self.table_data.shift[k].eq(pl.shift[k])]
        if cfg.input_masks:
            m.d.comb += self.table_data.masked.eq(pl.masked)

    def _masked(self, m, pl, layer, w, w_valid, survivor, here):
        """A masked layer's kept-column table and split ranks (see the class docs). Returns the
        layer's kept-column count, the kept indices' bits of the re-zoning so far, and the
        register holding the layer's table entry."""
        cfg = self.cfg
        kept = Signal(cfg.col_bits + 1)            # kept columns of this layer's first row
        kept_bits = Signal.like(self.meta_bits)    # col_bits per kept column, every layer
        entry = Signal(table_layout(cfg))
        row_kept = Signal(cfg.col_bits + 1)        # kept columns before this one in its row
        rank = Signal(cfg.col_bits + 1)
        m.d.comb += rank.eq(Mux(w.col == 0, 0, row_kept))
        with m.If(pl.masked):
            m.d.comb += here.meta.eq(rank)
        with m.If(w_valid):
            m.d.sync += row_kept.eq(rank + survivor)
            with m.If(pl.masked & survivor & (w.row == 0)):
                m.d.comb += [self.kept_en.eq(1), self.kept_data.eq(w.col),
                             self.kept_addr.eq(kept_entry(cfg, self.bank, layer, kept))]
                m.d.sync += [kept.eq(kept + 1), kept_bits.eq(kept_bits + cfg.col_bits)]
        with m.If(self.start):
            m.d.sync += kept_bits.eq(0)
        return kept, kept_bits, entry

    def _datapath(self, m, pl, total, run, clear, restart, flush, final):
        """The quantizer feeding both packers, wired to the ports; the bank is the shadow one.
        Returns the three parts."""
        n = len(self.cfg.precisions)
        m.submodules.quantizer = qz = Quantizer(self.cfg)
        m.submodules.zones = zp = ZonePacker(self.cfg)
        m.submodules.meta = mp = MetaPacker(self.cfg)
        wiring.connect(m, wiring.flipped(self.codes), qz.codes)
        m.d.comb += [qz.enable.eq(run), qz.restart.eq(restart), qz.plan.eq(pl),
                     qz.total.eq(total), self.master_addr.eq(qz.master_addr),
                     self.master_ren.eq(qz.master_ren), qz.master_data.eq(self.master_data)]
        for part in (zp, mp):
            m.d.comb += [part.clear.eq(clear), part.restart.eq(restart), part.bank.eq(self.bank),
                         part.code.eq(qz.o.code)]
        # A uniform layer stores no codes.
        m.d.comb += [zp.valid.eq(qz.o_valid), mp.valid.eq(qz.o_valid & (pl.uniform == 0))]
        m.d.comb += [zp.value.eq(qz.o.value), zp.flush.eq(flush), mp.final.eq(final)]
        m.d.comb += [self.z_en[k].eq(zp.z_en[k]) for k in range(n)]
        m.d.comb += [self.z_addr[k].eq(zp.z_addr[k]) for k in range(n)]
        m.d.comb += [self.z_data[k].eq(zp.z_data[k]) for k in range(n)]
        m.d.comb += [self.meta_en.eq(mp.meta_en), self.meta_addr.eq(mp.meta_addr),
                     self.meta_data.eq(mp.meta_data),
                     self.zone_words.eq(zp.words)]
        if not self.cfg.input_masks:       # else with the kept columns' indices (``_masked``)
            m.d.comb += self.meta_bits.eq(mp.bits)
        with m.If(zp.overflow):
            m.d.sync += self.error.zone.eq(1)
        with m.If(mp.overflow):
            m.d.sync += self.error.meta.eq(1)
        m.d.comb += self.failed.eq(self.error.as_value().any() | zp.overflow | mp.overflow)
        return qz, zp, mp
