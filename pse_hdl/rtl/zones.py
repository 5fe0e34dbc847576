"""Zoned weight memory: precision zones, master store, re-zoning engine, fetch unit.

The golden model (``pse_hdl.model.zones`` and ``model.transfer.port_streams``) is the contract:
what this block writes into its memories is bit for bit what ``pack_layer``/``place_layers``
compute, and what its fetch ports send is ``port_streams``.

Memories (``lib.memory.Memory``, synchronous reads, so they map to block RAM). Everything a
layout consists of exists twice, in bank 0 and bank 1; one is *active* (read by the fetch unit),
the other is the *shadow* the re-zoning engine builds:

- one zone per precision class (``zone_depth`` words of ``zone_word_bits`` per bank),
- the metadata bit string (``meta_depth`` words per bank; the layers' strings follow each
  other),
- row descriptors (every ``desc_stride`` rows), split descriptors (``fetch_ports - 1`` per layer),
- the layer table (per layer: columns, weights, zone base words and scales, metadata and
  descriptor bases).

Not banked: the master store (int16 masters) and the plan (per layer: shape, master base,
surviving-weight count and zone scales of the next layout), both written by the host.

Commands arrive on ``cmd``, a stream, and are accepted only when they can run, so none is lost:

- ``REZONE n`` (1 <= n <= ``max_layers``, else the ``layer`` error bit): build a layout of
  layers 0..n-1 in the shadow bank from the ``codes`` stream (one
  code per weight, row-major, layer after layer). A layer is: read its plan, write its table
  entry, then one weight per cycle: read the master, quantize it with its class's scale
  (``sat_b(rshift_round(m, s))``), append it to its zone's word, append its code to the
  metadata, write a row descriptor at every ``desc_stride``-th row start and a split descriptor
  at surviving weight ``floor(p N / P)``; then flush the partial zone words. ``N`` comes from the
  plan (the histogram's per-class counts give it); a mismatch, or a zone, metadata or descriptor
  memory that overflows, sets an error bit and the layout cannot be swapped in. In destructive
  mode (``reversible = False``) the master of every pruned weight is cleared as it passes.
- ``SWAP``: accepted when the shadow holds a complete, error-free layout and no fetch runs: the
  banks exchange roles in one cycle. The bank select and the active layout's layer count are
  reset-less registers and the memories are not reset, so a reset during a re-zoning leaves the
  active layout and the master store as they were: the shadow is simply marked incomplete.
- ``FETCH l``: stream layer l of the active layout on the ``fetch_ports`` outputs ``o[p]``,
  also while a re-zoning builds the shadow bank (the two use different ports and banks).

The fetch unit (one walker per port) is in ``zone_fetch``, the re-zoning engine in
``zone_rezoner``; the layouts and memory geometry they share in ``zone_layouts``.

Host access: ``host_wr`` (stream) writes masters and plans, only while no re-zoning runs;
``host_rd`` (stream) reads any memory of either bank while nothing else uses its port (no fetch,
no re-zoning); the data appears on ``rd_data`` one cycle later with ``rd_valid``.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import layouts
from .zone_fetch import FetchWalker
from .zone_layouts import (Op, Target, at_most, banked, count_shape, geometry, host_addr_bits,
                           host_data_bits, plan_layout, row_desc_layout, split_layout,
                           table_layout)
from .zone_rezoner import Rezoner

__all__ = ["ZonedMemory", "Op", "Target", "plan_layout", "table_layout", "split_layout",
           "row_desc_layout", "at_most"]


class ZonedMemory(wiring.Component):
    """Zoned weight memory with its fetch unit and re-zoning engine (see the module docs).

    Parameters
    ----------
    cfg : PSEConfig

    Members
    -------
    cmd : In(stream)          ``{op: Op, arg}``: ``REZONE`` (arg = layers), ``SWAP``, ``FETCH``
                              (arg = layer).
    codes : In(stream)        New precision codes for ``REZONE``, ``layouts.code_out`` (only
                              ``code`` is used), row-major, layer after layer.
    o : Out(stream) x P       Tagged transfers (``layouts.transfer_layout``) of ``FETCH``.
    host_wr : In(stream)      ``{target, addr, data}``: a master (``MASTER``) or a plan
                              (``PLAN``, addr = layer).
    host_rd : In(stream)      ``{target, bank, addr}``; ``rd_data``/``rd_valid`` one cycle later.
    master_walk               A read port of the master store (``en``, ``addr``; ``data`` one
                              cycle later) for the engine's allocation pass, usable while no
                              re-zoning runs and no host read is accepted.
    sched                     Per port, ``layouts.schedule`` of the layer being fetched, from
                              its split descriptor (held until the next ``FETCH``).
    status                    Active bank, busy flags, error bits and the sizes the last
                              re-zoning used (zone words per class, metadata bits, row and split
                              descriptors, layers).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        n, ports = len(cfg.precisions), cfg.fetch_ports
        self.classes, self.ports = n, ports
        arg = max(count_shape(cfg.max_layers).width, 1)
        status = data.StructLayout({
            "active": 1, "active_layers": count_shape(cfg.max_layers), "shadow_ready": 1,
            "rezoning": 1, "fetching": 1,
            "error": data.StructLayout({"cost": 1, "zone": 1, "meta": 1, "layer": 1}),
            "zone_words": data.ArrayLayout(count_shape(cfg.zone_depth), n),
            "meta_bits": count_shape(cfg.meta_depth * cfg.zone_word_bits),
            "row_descs": count_shape(cfg.desc_depth), "split_descs": count_shape(cfg.max_layers * ports),
            "layers": count_shape(cfg.max_layers)})
        super().__init__({
            "cmd": In(stream.Signature(data.StructLayout({"op": Op, "arg": unsigned(arg)}))),
            "codes": In(stream.Signature(layouts.code_out(cfg))),
            "o": Out(stream.Signature(layouts.transfer_layout(cfg))).array(ports),
            "sched": Out(data.ArrayLayout(layouts.schedule(cfg), ports)),
            "host_wr": In(stream.Signature(data.StructLayout({
                "target": Target, "addr": unsigned(host_addr_bits(cfg)),
                "data": unsigned(host_data_bits(cfg))}))),
            "host_rd": In(stream.Signature(data.StructLayout({
                "target": unsigned(max(3, (Target.ZONE.value + n - 1).bit_length())),
                "bank": 1, "addr": unsigned(host_addr_bits(cfg))}))),
            "rd_data": Out(host_data_bits(cfg)), "rd_valid": Out(1),
            "master_walk": Out(memory.ReadPort.Signature(addr_width=cfg.master_addr_bits,
                                                         shape=signed(cfg.weight_bits))),
            "status": Out(status)})

    def elaborate(self, platform):
        cfg, n, P, W = self.cfg, self.classes, self.ports, self.cfg.zone_word_bits
        m = Module()
        geo = geometry(cfg)

        # -- memories --------------------------------------------------------------------
        zones = [memory.Memory(shape=W, depth=2 * cfg.zone_depth, init=[]) for _ in range(n)]
        meta = memory.Memory(shape=W, depth=2 * cfg.meta_depth, init=[])
        # Row descriptors only where the configuration keeps them (desc_stride > 0): the
        # walkers never read them, the host may.
        rows_desc = cfg.desc_depth > 0
        desc = (memory.Memory(shape=row_desc_layout(cfg), depth=2 * cfg.desc_depth, init=[])
                if rows_desc else None)
        split = memory.Memory(shape=split_layout(cfg), depth=2 * geo[Target.SPLIT], init=[])
        table = memory.Memory(shape=table_layout(cfg), depth=2 * cfg.max_layers, init=[])
        plan = memory.Memory(shape=plan_layout(cfg), depth=cfg.max_layers, init=[])
        master = memory.Memory(shape=signed(cfg.weight_bits), depth=cfg.master_depth, init=[])
        for k, z in enumerate(zones):
            m.submodules[f"zone{k}"] = z
        m.submodules.meta, m.submodules.split = meta, split
        if rows_desc:
            m.submodules.desc = desc
        m.submodules.table, m.submodules.plan, m.submodules.master = table, plan, master

        z_wr = [z.write_port() for z in zones]
        meta_wr, split_wr = meta.write_port(), split.write_port()
        desc_wr = desc.write_port() if rows_desc else None
        table_wr, plan_wr, master_wr = table.write_port(), plan.write_port(), master.write_port()
        z_rd = [[z.read_port() for _ in range(P)] for z in zones]
        meta_rd = [meta.read_port() for _ in range(P)]
        split_rd = [split.read_port() for _ in range(P)]
        desc_rd, table_rd = desc.read_port() if rows_desc else None, table.read_port()
        plan_rd, master_rd = plan.read_port(), master.read_port()

        # -- bank state: survives reset ------------------------------------------------------
        active = Signal(reset_less=True)
        active_valid = Signal(reset_less=True)
        active_layers = Signal(count_shape(cfg.max_layers), reset_less=True)
        shadow_ready = Signal()
        shadow_layers = Signal(count_shape(cfg.max_layers))
        shadow = ~active

        rz_busy = Signal()
        fetch_busy = Signal()
        m.d.comb += [self.status.active.eq(active), self.status.active_layers.eq(active_layers),
                     self.status.shadow_ready.eq(shadow_ready),
                     self.status.rezoning.eq(rz_busy), self.status.fetching.eq(fetch_busy)]

        # -- commands ------------------------------------------------------------------------
        op, arg = self.cmd.payload.op, self.cmd.payload.arg
        with m.Switch(op):
            with m.Case(Op.REZONE):
                m.d.comb += self.cmd.ready.eq(~rz_busy)
            with m.Case(Op.SWAP):
                m.d.comb += self.cmd.ready.eq(~rz_busy & ~fetch_busy & shadow_ready)
            with m.Case(Op.FETCH):
                # The active bank is read while the re-zoning engine writes the shadow one.
                m.d.comb += self.cmd.ready.eq(~fetch_busy)
        fire = self.cmd.valid & self.cmd.ready
        rz_ok = (arg >= 1) & at_most(arg, cfg.max_layers)
        rz_start = Signal()
        m.d.comb += rz_start.eq(fire & (op == Op.REZONE) & rz_ok)
        fetch_start = Signal()
        m.d.comb += fetch_start.eq(fire & (op == Op.FETCH) & active_valid
                                   & (arg < active_layers))
        layer_error = Signal()
        m.d.comb += self.status.error.layer.eq(layer_error)
        with m.If(rz_start):
            m.d.sync += layer_error.eq(0)
        with m.If((fire & (op == Op.FETCH) & ~(active_valid & (arg < active_layers)))
                  | (fire & (op == Op.REZONE) & ~rz_ok)):
            m.d.sync += layer_error.eq(1)
        with m.If(fire & (op == Op.SWAP)):
            m.d.sync += [active.eq(~active), active_valid.eq(1),
                         active_layers.eq(shadow_layers), shadow_ready.eq(0)]

        # -- host writes and reads ------------------------------------------------------------
        hw = self.host_wr.payload
        m.d.comb += self.host_wr.ready.eq(~rz_busy)
        host_w = self.host_wr.valid & self.host_wr.ready
        host_master_w = host_w & (hw.target == Target.MASTER)
        m.d.comb += [plan_wr.en.eq(host_w & (hw.target == Target.PLAN)),
                     plan_wr.addr.eq(hw.addr), plan_wr.data.eq(hw.data)]

        hr = self.host_rd.payload
        m.d.comb += self.host_rd.ready.eq(~rz_busy & ~fetch_busy & ~rz_start & ~fetch_start)
        host_r = self.host_rd.valid & self.host_rd.ready
        rd_target = Signal.like(hr.target)
        m.d.sync += self.rd_valid.eq(host_r)
        with m.If(host_r):
            m.d.sync += rd_target.eq(hr.target)

        # -- re-zoning engine -----------------------------------------------------------------
        rz = Rezoner(cfg)
        m.submodules.rezoner = rz
        m.d.comb += [rz.start.eq(rz_start), rz.n_layers.eq(arg), rz.bank.eq(shadow),
                     rz_busy.eq(rz.busy)]
        wiring.connect(m, wiring.flipped(self.codes), rz.codes)
        with m.If(rz_start):
            m.d.sync += [shadow_ready.eq(0), shadow_layers.eq(arg)]
        with m.If(rz.done):
            m.d.sync += shadow_ready.eq(~rz.error.as_value().any())
        m.d.comb += [self.status.error.cost.eq(rz.error.cost),
                     self.status.error.zone.eq(rz.error.zone),
                     self.status.error.meta.eq(rz.error.meta),
                     self.status.zone_words.eq(rz.zone_words),
                     self.status.meta_bits.eq(rz.meta_bits),
                     self.status.row_descs.eq(rz.row_descs),
                     self.status.split_descs.eq(rz.split_descs), self.status.layers.eq(rz.layers)]
        for k in range(n):
            m.d.comb += [z_wr[k].en.eq(rz.z_en[k]), z_wr[k].addr.eq(rz.z_addr[k]),
                         z_wr[k].data.eq(rz.z_data[k])]
        if rows_desc:
            m.d.comb += [desc_wr.en.eq(rz.desc_en), desc_wr.addr.eq(rz.desc_addr),
                         desc_wr.data.eq(rz.desc_data)]
        m.d.comb += [meta_wr.en.eq(rz.meta_en), meta_wr.addr.eq(rz.meta_addr),
                     meta_wr.data.eq(rz.meta_data),
                     split_wr.en.eq(rz.split_en), split_wr.addr.eq(rz.split_addr),
                     split_wr.data.eq(rz.split_data),
                     table_wr.en.eq(rz.table_en), table_wr.addr.eq(rz.table_addr),
                     table_wr.data.eq(rz.table_data),
                     plan_rd.addr.eq(rz.plan_addr), rz.plan_data.eq(plan_rd.data),
                     rz.master_data.eq(master_rd.data)]
        with m.If(rz_busy):
            m.d.comb += [master_rd.addr.eq(rz.master_addr), master_rd.en.eq(rz.master_ren),
                         master_wr.en.eq(rz.master_wen), master_wr.addr.eq(rz.master_waddr),
                         master_wr.data.eq(0)]
        with m.Elif(host_r):
            m.d.comb += master_rd.addr.eq(hr.addr)
        with m.Else():
            m.d.comb += [master_rd.addr.eq(self.master_walk.addr),
                         master_rd.en.eq(self.master_walk.en)]
        with m.If(~rz_busy):
            m.d.comb += [master_wr.en.eq(host_master_w), master_wr.addr.eq(hw.addr),
                         master_wr.data.eq(hw.data)]
        m.d.comb += self.master_walk.data.eq(master_rd.data)

        # -- fetch unit -------------------------------------------------------------------------
        # Loader: the layer's table entry, read once for all walkers.
        tab = Signal(table_layout(cfg))
        layer = Signal(range(max(2, cfg.max_layers)))
        bank = Signal()
        load = Signal()
        m.d.sync += load.eq(fetch_start)
        with m.If(fetch_start):
            m.d.sync += [layer.eq(arg), bank.eq(active)]
        with m.If(load):
            m.d.sync += tab.eq(table_rd.data)
        go_layer = Mux(fetch_start, arg, layer)
        go_bank = Mux(fetch_start, active, bank)
        m.d.comb += table_rd.addr.eq(Mux(fetch_start,
                                         banked(active, arg, cfg.max_layers),
                                         banked(hr.bank, hr.addr, cfg.max_layers)))
        walkers = []
        for p in range(P):
            w = FetchWalker(cfg, p, tab, table_rd.data, layer, bank, go_layer, go_bank)
            m.submodules[f"walker{p}"] = w
            walkers.append(w)
            wiring.connect(m, w.o, wiring.flipped(self.o[p]))
            m.d.comb += self.sched[p].eq(w.sched)
            m.d.comb += [w.go.eq(fetch_start), w.meta_data.eq(meta_rd[p].data),
                         w.split_data.eq(split_rd[p].data)]
            for k in range(n):
                m.d.comb += w.zone_data[k].eq(z_rd[k][p].data)
            if p == 0:
                # Port 0's memories are shared with host reads (never at the same time).
                with m.If(host_r):
                    m.d.comb += [meta_rd[0].addr.eq(banked(hr.bank, hr.addr, geo[Target.META])),
                                 split_rd[0].addr.eq(banked(hr.bank, hr.addr,
                                                             geo[Target.SPLIT]))]
                    for k in range(n):
                        m.d.comb += z_rd[k][0].addr.eq(banked(hr.bank, hr.addr, cfg.zone_depth))
                with m.Else():
                    m.d.comb += [meta_rd[0].addr.eq(w.meta_addr), meta_rd[0].en.eq(w.meta_ren),
                                 split_rd[0].addr.eq(w.split_addr), split_rd[0].en.eq(w.en)]
                    for k in range(n):
                        m.d.comb += [z_rd[k][0].addr.eq(w.zone_addr[k]), z_rd[k][0].en.eq(w.en)]
            else:
                m.d.comb += [meta_rd[p].addr.eq(w.meta_addr), meta_rd[p].en.eq(w.meta_ren),
                             split_rd[p].addr.eq(w.split_addr), split_rd[p].en.eq(w.en)]
                for k in range(n):
                    m.d.comb += [z_rd[k][p].addr.eq(w.zone_addr[k]), z_rd[k][p].en.eq(w.en)]
        m.d.comb += fetch_busy.eq(load | Cat(w.busy for w in walkers).any())
        if rows_desc:
            m.d.comb += desc_rd.addr.eq(banked(hr.bank, hr.addr, cfg.desc_depth))

        # -- host read data ------------------------------------------------------------------
        with m.Switch(rd_target):
            with m.Case(Target.MASTER):
                m.d.comb += self.rd_data.eq(master_rd.data.as_unsigned())
            with m.Case(Target.PLAN):
                m.d.comb += self.rd_data.eq(plan_rd.data.as_value())
            with m.Case(Target.META):
                m.d.comb += self.rd_data.eq(meta_rd[0].data)
            with m.Case(Target.DESC):
                if rows_desc:
                    m.d.comb += self.rd_data.eq(desc_rd.data.as_value())
            with m.Case(Target.SPLIT):
                m.d.comb += self.rd_data.eq(split_rd[0].data.as_value())
            with m.Case(Target.TABLE):
                m.d.comb += self.rd_data.eq(table_rd.data.as_value())
            for k in range(n):
                with m.Case(Target.ZONE.value + k):
                    m.d.comb += self.rd_data.eq(z_rd[k][0].data)
        with m.If(~rz_busy):
            m.d.comb += plan_rd.addr.eq(hr.addr)
        return m
