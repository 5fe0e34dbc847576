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

Fetch unit. Port p has its own walker, starting at split descriptor p (port 0 at the layer's
start) and stopping at split p+1, so the ports carry equal shares of the surviving weights. A
walker keeps a 3-word window of the metadata bit string, refilled one word per cycle from its own
read port. Every cycle it counts the run of pruned codes at the window's start (up to
``Z = (W - longest code) / pruned-code length`` codes: 29 for unary codes in 32-bit words) and
decodes the code after the run, so a surviving weight costs one cycle and a run of up to Z
pruned codes costs nothing more; the run may cross into the next row. The zone read address of
every class is the class's next element, so it is ready before the decode; the next stage picks
the element of the decoded class out of the read word. A weight's ``last`` bit is known only when
the walker finds the next event (another weight, a row end, the end of its share), so the
output stage holds one transfer back. Throughput: one surviving weight per cycle per port,
plus a cycle for an all-pruned row or a pruned run longer than Z. Latency from ``FETCH`` to the
first transfer: about six cycles. Backpressure on ``o[p]`` stalls walker p only.

Host access: ``host_wr`` (stream) writes masters and plans, only while no re-zoning runs;
``host_rd`` (stream) reads any memory of either bank while nothing else uses its port (no fetch,
no re-zoning); the data appears on ``rd_data`` one cycle later with ``rd_valid``.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import layouts

__all__ = ["ZonedMemory", "Op", "Target", "plan_layout", "table_layout", "split_layout",
           "row_desc_layout", "at_most"]


class Op(enum.Enum, shape=2):
    REZONE = 0
    SWAP = 1
    FETCH = 2


class Target(enum.Enum, shape=3):
    """What ``host_wr``/``host_rd`` address. Zone k (class k+1) is ``ZONE + k``; the zone
    targets come last."""
    MASTER = 0
    PLAN = 1
    META = 2
    DESC = 3
    SPLIT = 4
    TABLE = 5
    ZONE = 6


def at_most(value, bound):
    """``value <= bound`` for a constant bound; constant true (no comparator, and no lint
    warning for a comparison that cannot fail) when the value's width cannot exceed it."""
    if (1 << len(value)) - 1 <= bound:
        return Const(1)
    return value <= bound


def _count(n):
    """Unsigned shape holding 0..n."""
    return unsigned(max(1, n.bit_length()))


def plan_layout(cfg):
    n = len(cfg.precisions)
    return data.StructLayout({"rows": unsigned(cfg.row_bits + 1),
                              "cols": unsigned(cfg.col_bits + 1),
                              "master_base": unsigned(cfg.master_addr_bits),
                              "cost": unsigned(cfg.layer_cost_bits),
                              "shift": data.ArrayLayout(unsigned(cfg.shift_bits), n)})


def table_layout(cfg):
    n = len(cfg.precisions)
    return data.StructLayout({"cols": unsigned(cfg.col_bits + 1), "total": unsigned(cfg.pos_bits),
                              "zone_base": data.ArrayLayout(unsigned(cfg.zone_addr_bits), n),
                              "shift": data.ArrayLayout(unsigned(cfg.shift_bits), n),
                              "meta_base": unsigned(cfg.meta_index_bits),
                              "desc_base": _count(cfg.desc_depth - 1)})


def row_desc_layout(cfg):
    n = len(cfg.precisions)
    return data.StructLayout({"index": data.ArrayLayout(unsigned(cfg.zone_index_bits), n),
                              "meta": unsigned(cfg.meta_index_bits)})


def split_layout(cfg):
    n = len(cfg.precisions)
    return data.StructLayout({"row": unsigned(cfg.row_bits + 1), "col": unsigned(cfg.col_bits),
                              "pos": unsigned(cfg.pos_bits), "cont": 1,
                              "index": data.ArrayLayout(unsigned(cfg.zone_index_bits), n),
                              "meta": unsigned(cfg.meta_index_bits)})


def _geometry(cfg):
    """Per-bank depth of every banked memory, by target."""
    n = len(cfg.precisions)
    depth = {Target.META: cfg.meta_depth, Target.DESC: cfg.desc_depth,
             Target.SPLIT: cfg.max_layers * cfg.fetch_ports, Target.TABLE: cfg.max_layers}
    for k in range(n):
        depth[Target.ZONE.value + k] = cfg.zone_depth
    return depth


def host_addr_bits(cfg):
    depths = list(_geometry(cfg).values()) + [cfg.master_depth, cfg.max_layers]
    return max(1, (max(depths) - 1).bit_length())


def host_data_bits(cfg):
    return max(cfg.zone_word_bits, cfg.weight_bits, plan_layout(cfg).size,
               table_layout(cfg).size, split_layout(cfg).size, row_desc_layout(cfg).size)


def _banked(bank, addr, depth):
    """Index of ``addr`` in bank ``bank`` of a memory holding two banks of ``depth``."""
    return Mux(bank, addr + depth, addr)


def _log2(x):
    return (x - 1).bit_length()


# Metadata words a walker step examines: 2 lets one step skip up to 61 pruned unary codes
# (32-bit words), so long pruned runs on sparse maps cost no extra cycle.
LOOK = 2


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
        arg = max(_count(cfg.max_layers).width, 1)
        status = data.StructLayout({
            "active": 1, "active_layers": _count(cfg.max_layers), "shadow_ready": 1,
            "rezoning": 1, "fetching": 1,
            "error": data.StructLayout({"cost": 1, "zone": 1, "meta": 1, "layer": 1}),
            "zone_words": data.ArrayLayout(_count(cfg.zone_depth), n),
            "meta_bits": _count(cfg.meta_depth * cfg.zone_word_bits),
            "row_descs": _count(cfg.desc_depth), "split_descs": _count(cfg.max_layers * ports),
            "layers": _count(cfg.max_layers)})
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
        geo = _geometry(cfg)

        # -- memories --------------------------------------------------------------------
        zones = [memory.Memory(shape=W, depth=2 * cfg.zone_depth, init=[]) for _ in range(n)]
        meta = memory.Memory(shape=W, depth=2 * cfg.meta_depth, init=[])
        desc = memory.Memory(shape=row_desc_layout(cfg), depth=2 * cfg.desc_depth, init=[])
        split = memory.Memory(shape=split_layout(cfg), depth=2 * geo[Target.SPLIT], init=[])
        table = memory.Memory(shape=table_layout(cfg), depth=2 * cfg.max_layers, init=[])
        plan = memory.Memory(shape=plan_layout(cfg), depth=cfg.max_layers, init=[])
        master = memory.Memory(shape=signed(cfg.weight_bits), depth=cfg.master_depth, init=[])
        for k, z in enumerate(zones):
            m.submodules[f"zone{k}"] = z
        m.submodules.meta, m.submodules.desc, m.submodules.split = meta, desc, split
        m.submodules.table, m.submodules.plan, m.submodules.master = table, plan, master

        z_wr = [z.write_port() for z in zones]
        meta_wr, desc_wr, split_wr = meta.write_port(), desc.write_port(), split.write_port()
        table_wr, plan_wr, master_wr = table.write_port(), plan.write_port(), master.write_port()
        z_rd = [[z.read_port() for _ in range(P)] for z in zones]
        meta_rd = [meta.read_port() for _ in range(P)]
        split_rd = [split.read_port() for _ in range(P)]
        desc_rd, table_rd = desc.read_port(), table.read_port()
        plan_rd, master_rd = plan.read_port(), master.read_port()

        # -- bank state: survives reset ------------------------------------------------------
        active = Signal(reset_less=True)
        active_valid = Signal(reset_less=True)
        active_layers = Signal(_count(cfg.max_layers), reset_less=True)
        shadow_ready = Signal()
        shadow_layers = Signal(_count(cfg.max_layers))
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
        rz = _Rezoner(cfg)
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
        m.d.comb += [meta_wr.en.eq(rz.meta_en), meta_wr.addr.eq(rz.meta_addr),
                     meta_wr.data.eq(rz.meta_data),
                     desc_wr.en.eq(rz.desc_en), desc_wr.addr.eq(rz.desc_addr),
                     desc_wr.data.eq(rz.desc_data),
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
                                         _banked(active, arg, cfg.max_layers),
                                         _banked(hr.bank, hr.addr, cfg.max_layers)))
        walkers = []
        for p in range(P):
            w = _Walker(cfg, p, tab, table_rd.data, layer, bank, go_layer, go_bank)
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
                    m.d.comb += [meta_rd[0].addr.eq(_banked(hr.bank, hr.addr, geo[Target.META])),
                                 split_rd[0].addr.eq(_banked(hr.bank, hr.addr,
                                                             geo[Target.SPLIT]))]
                    for k in range(n):
                        m.d.comb += z_rd[k][0].addr.eq(_banked(hr.bank, hr.addr, cfg.zone_depth))
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
        m.d.comb += [fetch_busy.eq(load | Cat(w.busy for w in walkers).any()),
                     desc_rd.addr.eq(_banked(hr.bank, hr.addr, cfg.desc_depth))]

        # -- host read data ------------------------------------------------------------------
        with m.Switch(rd_target):
            with m.Case(Target.MASTER):
                m.d.comb += self.rd_data.eq(master_rd.data.as_unsigned())
            with m.Case(Target.PLAN):
                m.d.comb += self.rd_data.eq(plan_rd.data.as_value())
            with m.Case(Target.META):
                m.d.comb += self.rd_data.eq(meta_rd[0].data)
            with m.Case(Target.DESC):
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


def _first_set(m, bits, name):
    """``(any, index of the lowest set bit)`` of ``bits`` by halves: log2(width) levels of
    2:1 muxes, where a priority chain would cost one level per bit. Every level is a signal, so
    no expression is repeated."""
    n = len(bits)
    if n == 1:
        return bits[0], Const(0, 1)
    half = 1 << ((n - 1).bit_length() - 1)
    lo_any, lo_idx = _first_set(m, bits[:half], name + "l")
    hi_any, hi_idx = _first_set(m, bits[half:], name + "h")
    any_, idx = Signal(name=f"{name}_any"), Signal(range(n), name=f"{name}_idx")
    m.d.comb += [any_.eq(lo_any | hi_any), idx.eq(Mux(lo_any, lo_idx, half + hi_idx))]
    return any_, idx


def _rshift_round(m, value, shift, width):
    """``rshift_round(value, shift)`` (round half up) for a variable shift."""
    half = Signal(signed(width + 1))
    m.d.comb += half.eq((Const(1, width + 1) << shift) >> 1)
    rounded = Signal(signed(width + 1))
    m.d.comb += rounded.eq((value + half) >> shift)
    return rounded


class _Rezoner(wiring.Component):
    """The re-zoning engine (see the module docs). Four stages per weight: accept the code and
    read the master; register it; quantize; pack and write. One weight per cycle, plus a few
    cycles per layer for its plan and table entry, one to flush its partial zone words, and one
    per split descriptor that falls on the same weight as another or beyond the last surviving
    weight."""

    def __init__(self, cfg):
        self.cfg = cfg
        n, P, W = len(cfg.precisions), cfg.fetch_ports, cfg.zone_word_bits
        geo = _geometry(cfg)
        super().__init__({
            "start": In(1), "n_layers": In(_count(cfg.max_layers)), "bank": In(1),
            "busy": Out(1), "done": Out(1),
            "error": Out(data.StructLayout({"cost": 1, "zone": 1, "meta": 1})),
            "codes": In(stream.Signature(layouts.code_out(cfg))),
            "z_en": Out(1).array(n), "z_addr": Out(range(2 * cfg.zone_depth)).array(n),
            "z_data": Out(W).array(n),
            "meta_en": Out(1), "meta_addr": Out(range(2 * cfg.meta_depth)), "meta_data": Out(W),
            "desc_en": Out(1), "desc_addr": Out(range(2 * cfg.desc_depth)),
            "desc_data": Out(row_desc_layout(cfg)),
            "split_en": Out(1), "split_addr": Out(range(2 * geo[Target.SPLIT])),
            "split_data": Out(split_layout(cfg)),
            "table_en": Out(1), "table_addr": Out(range(2 * cfg.max_layers)),
            "table_data": Out(table_layout(cfg)),
            "plan_addr": Out(range(max(2, cfg.max_layers))), "plan_data": In(plan_layout(cfg)),
            "master_addr": Out(cfg.master_addr_bits), "master_ren": Out(1),
            "master_data": In(signed(cfg.weight_bits)),
            "master_wen": Out(1), "master_waddr": Out(cfg.master_addr_bits),
            "zone_words": Out(data.ArrayLayout(_count(cfg.zone_depth), n)),
            "meta_bits": Out(_count(cfg.meta_depth * W)),
            "row_descs": Out(_count(cfg.desc_depth)),
            "split_descs": Out(_count(cfg.max_layers * P)),
            "layers": Out(_count(cfg.max_layers))})

    def elaborate(self, platform):
        cfg = self.cfg
        n, P, W = len(cfg.precisions), cfg.fetch_ports, cfg.zone_word_bits
        per = [cfg.per_word(b) for b in cfg.precisions]
        geo = _geometry(cfg)
        m = Module()

        n_layers = Signal.like(self.n_layers)
        layer = Signal(_count(cfg.max_layers))
        pl = Signal(plan_layout(cfg))          # the current layer's plan
        total = Signal(cfg.pos_bits)           # rows * cols
        # Running positions in the shadow bank.
        zptr = Array(Signal(_count(cfg.zone_depth), name=f"zptr{k}") for k in range(n))
        zbase = Array(Signal(_count(cfg.zone_depth), name=f"zbase{k}") for k in range(n))
        mword = Signal(_count(cfg.meta_depth))
        mfill = Signal(range(W))
        macc = Signal(W)
        dptr = Signal(_count(cfg.desc_depth))
        # Per-layer counters.
        lidx = Array(Signal(cfg.zone_index_bits + 1, name=f"lidx{k}") for k in range(n))
        lmeta = Signal(cfg.meta_index_bits + 1)
        pcost = Signal(cfg.layer_cost_bits)    # MAC cost of the survivors before stage C's
        row_has = Signal()                     # stage C's row had a survivor before it
        q = Signal(range(P + 1))
        nq_acc = Signal(cfg.layer_cost_bits + _log2(P) + 1)   # q * cost
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
            return _banked(self.bank, layer * P + qq, geo[Target.SPLIT])

        with m.If(c_valid):
            # Row descriptor at every desc_stride-th row start (state before this weight).
            with m.If((c_col == 0) & (c_row[:_log2(cfg.desc_stride)] == 0
                                      if cfg.desc_stride > 1 else c_col == 0)):
                daddr = dptr + (c_row >> _log2(cfg.desc_stride))
                with m.If(daddr < cfg.desc_depth):
                    m.d.comb += [self.desc_en.eq(1),
                                 self.desc_addr.eq(_banked(self.bank, daddr, cfg.desc_depth)),
                                 self.desc_data.meta.eq(lmeta)]
                    m.d.comb += [self.desc_data.index[k].eq(lidx[k]) for k in range(n)]
            # Split descriptor q at the first survivor whose cost prefix reaches
            # ceil(q C / P) (model.layer.lane_split): at most one per survivor, which is the
            # rule's "at least one weight after the previous lane's start".
            with m.If(survivor & (q < P) & ((pcost << _log2(P)) >= nq_acc)):
                m.d.comb += [self.split_en.eq(1), self.split_addr.eq(split_addr(q)),
                             self.split_data.eq(snap)]
                m.d.sync += [q.eq(q + 1), nq_acc.eq(nq_acc + pl.cost),
                             splits_written.eq(splits_written + 1)]
            # Pack the value into its zone's word.
            with m.Switch(c_code):
                for k, b in enumerate(cfg.precisions):
                    with m.Case(k + 1):
                        e = lidx[k][:_log2(per[k])] if per[k] > 1 else Const(0, 1)
                        word = Signal(W, name=f"word{k}")
                        m.d.comb += word.eq(zacc[k] | (c_value[:b] << (e * b)))
                        waddr = zbase[k] + (lidx[k] >> _log2(per[k]))
                        with m.If(e == per[k] - 1):
                            with m.If(waddr < cfg.zone_depth):
                                m.d.comb += [self.z_en[k].eq(1), self.z_data[k].eq(word),
                                             self.z_addr[k].eq(_banked(self.bank, waddr,
                                                                       cfg.zone_depth))]
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
                                 self.meta_addr.eq(_banked(self.bank, mword, cfg.meta_depth))]
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
                             self.table_addr.eq(_banked(self.bank, layer, cfg.max_layers)),
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
                    words = (lidx[k] + per[k] - 1) >> _log2(per[k])
                    waddr = zbase[k] + (lidx[k] >> _log2(per[k]))
                    with m.If(lidx[k][:_log2(per[k])] != 0 if per[k] > 1 else Const(0)):
                        with m.If(waddr < cfg.zone_depth):
                            m.d.comb += [self.z_en[k].eq(1), self.z_data[k].eq(zacc[k]),
                                         self.z_addr[k].eq(_banked(self.bank, waddr,
                                                                   cfg.zone_depth))]
                        with m.Else():
                            m.d.sync += self.error.zone.eq(1)
                    m.d.sync += zptr[k].eq(zbase[k] + words)
                    with m.If(zbase[k] + words > cfg.zone_depth):
                        m.d.sync += self.error.zone.eq(1)
                with m.If(pcost != pl.cost):
                    m.d.sync += self.error.cost.eq(1)
                m.d.sync += dptr.eq(dptr + ((pl.rows + cfg.desc_stride - 1)
                                            >> _log2(cfg.desc_stride)))
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
                                     self.meta_addr.eq(_banked(self.bank, mword, cfg.meta_depth))]
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


class _Walker(wiring.Component):
    """One fetch port's walker (see the module docs): start at split descriptor ``p``, stop at
    ``p + 1``; one surviving weight per cycle. ``en`` is low while the output is stalled; every
    register and read port of the walker holds then."""

    def __init__(self, cfg, p, tab, tab_now, layer, bank, go_layer, go_bank):
        self.cfg, self.p, self.tab, self.tab_now = cfg, p, tab, tab_now
        self.layer, self.bank, self.go_layer, self.go_bank = layer, bank, go_layer, go_bank
        n, W = len(cfg.precisions), cfg.zone_word_bits
        geo = _geometry(cfg)
        super().__init__({
            "go": In(1), "busy": Out(1), "en": Out(1),
            "o": Out(stream.Signature(layouts.transfer_layout(cfg))),
            "sched": Out(layouts.schedule(cfg)),
            "meta_addr": Out(range(2 * cfg.meta_depth)), "meta_ren": Out(1), "meta_data": In(W),
            "split_addr": Out(range(2 * geo[Target.SPLIT])), "split_data": In(split_layout(cfg)),
            "zone_addr": Out(range(2 * cfg.zone_depth)).array(n), "zone_data": In(W).array(n)})

    def elaborate(self, platform):
        cfg, p, tab = self.cfg, self.p, self.tab
        n, W, P = len(cfg.precisions), cfg.zone_word_bits, cfg.fetch_ports
        per = [cfg.per_word(b) for b in cfg.precisions]
        geo = _geometry(cfg)
        len0, maxlen = cfg.code_length(0), cfg.max_code_length
        look = LOOK * W                        # window bits one step examines
        Z = (look - maxlen) // len0
        m = Module()

        en = self.en
        m.d.comb += en.eq(~self.o.valid | self.o.ready)

        row, col = Signal(cfg.row_bits + 1), Signal(cfg.col_bits + 1)
        left = Signal(cfg.pos_bits)
        idx = Array(Signal(cfg.zone_index_bits, name=f"idx{k}") for k in range(n))
        row_has = Signal()                     # the walk has sent a weight of this row
        unres = Signal()                       # a sent weight still waits for its last bit
        # Metadata window, bit 0 = the next code. It is kept a word fuller than a step needs, so a
        # step that takes a long run (up to ``look`` bits) does not starve the next one.
        buf = Signal(look + 3 * W)
        count = Signal(range(look + 3 * W + 1))
        mword = Signal(range(2 * cfg.meta_depth))
        inflight, aligned = Signal(), Signal()
        drop = Signal(range(W))
        start_pos = Signal(cfg.pos_bits)

        # Zone read addresses: every class's next element, known before the decode.
        for k in range(n):
            m.d.comb += self.zone_addr[k].eq(_banked(self.bank, tab.zone_base[k]
                                                     + (idx[k] >> _log2(per[k])),
                                                     cfg.zone_depth))
        m.d.comb += self.meta_addr.eq(_banked(self.bank, mword, cfg.meta_depth))

        # Events towards the output stage. MARK with ``resolve`` is the R event: the held
        # transfer ends its row, no marker.
        WEIGHT, MARK, DONE = 1, 2, 3
        ev = Signal(data.StructLayout({"kind": 2, "row": unsigned(cfg.row_bits + 1),
                                       "col": unsigned(cfg.col_bits), "code": cfg.code_bits,
                                       "sel": range(max(per))}))
        ev_valid, resolve = Signal(), Signal()

        # -- tokenizer: from the registered window, one token per cycle ------------------
        # A token is (pruned codes to skip, the code after them): the run at the window's start
        # (a balanced priority encoder over Z slots) and the surviving code that ends it, or
        # (Z, 0) when the window holds no surviving code. Only the bit position loops here;
        # rows and the end of the share are the bookkeeping stage's, one register later.
        alive = Cat(buf[t * len0:(t + 1) * len0].any() for t in range(Z))
        vis, first = _first_set(m, alive, "slot")
        r = Signal(range(Z + 1))
        m.d.comb += r.eq(Mux(vis, first, Z))
        # A metadata word is registered out of the block RAM (aligned to the walk's first code if
        # it is the first word), then enters the window at ``count``, beside the decode.
        stage_valid, stage_word = Signal(), Signal(W)
        stage_bits = Signal(range(W + 1))
        ext = Signal(look + 3 * W)
        m.d.comb += ext.eq(buf | Mux(stage_valid, stage_word << count, 0))
        run_shift = Signal(look + 3 * W)
        m.d.comb += run_shift.eq(ext >> (r * len0) if len0 > 1 else ext >> r)
        field = run_shift[:maxlen]
        k_dec = Signal(cfg.code_bits)
        k_len = Signal(range(maxlen + 1))
        if cfg.meta_encoding == "fixed":
            m.d.comb += [k_dec.eq(Mux(vis, field[:cfg.code_bits], 0)),
                         k_len.eq(Mux(vis, cfg.code_bits, 0))]
        else:
            m.d.comb += k_dec.eq(Mux(vis, sum(field[:j + 1].all().as_unsigned()
                                              for j in range(n)), 0))
            m.d.comb += k_len.eq(Mux(vis, k_dec + (k_dec < n), 0))

        # Tokens wait in a two-entry queue (head, then tail): the tokenizer steps on the queue's
        # registered level alone, so the window's enable does not wait for the bookkeeping.
        level = Signal(range(3))
        tok_skip, tail_skip = Signal(range(Z + 1)), Signal(range(Z + 1))
        tok_code, tail_code = Signal(cfg.code_bits), Signal(cfg.code_bits)
        pop = Signal()                         # the bookkeeping finishes the head this cycle
        tstep = Signal()
        running = Signal()
        m.d.comb += tstep.eq(running & (count >= look) & (level < 2))

        # -- bookkeeping: rows, columns, the end of the share --------------------------------
        cols = tab.cols
        rowrem = Signal(cfg.col_bits + 2)      # cols - col, kept as a register
        sk = tok_skip
        tvis = tok_code != 0
        rdiff = Signal(range(Z + 1))
        m.d.comb += rdiff.eq(sk - rowrem)

        def emit(kind, erow, ecol=0, code=0):
            m.d.sync += [ev_valid.eq(1), ev.kind.eq(kind), ev.row.eq(erow), ev.col.eq(ecol),
                         ev.code.eq(code)]

        def weight(erow, ecol):
            emit(WEIGHT, erow, ecol, tok_code)
            with m.Switch(tok_code):
                for k in range(n):
                    with m.Case(k + 1):
                        m.d.sync += idx[k].eq(idx[k] + 1)
                        if per[k] > 1:
                            m.d.sync += ev.sel.eq(idx[k][:_log2(per[k])])
            m.d.comb += pop.eq(1)
            m.d.sync += [left.eq(left - sk - 1), unres.eq(1)]
            with m.If(ecol + 1 == cols):
                m.d.sync += [row.eq(erow + 1), col.eq(0), rowrem.eq(cols), row_has.eq(0)]
            with m.Else():
                m.d.sync += [row.eq(erow), col.eq(ecol + 1), rowrem.eq(cols - ecol - 1),
                             row_has.eq(1)]

        def next_row():
            # The token's run covers the rest of the row: keep what is left of it.
            m.d.sync += [row.eq(row + 1), col.eq(0), rowrem.eq(cols), row_has.eq(0),
                         left.eq(left - rowrem), tok_skip.eq(sk - rowrem)]

        with m.If(en):
            m.d.sync += [ev_valid.eq(0), resolve.eq(0)]

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.comb += self.split_addr.eq(_banked(self.go_bank, self.go_layer * P + p,
                                                           geo[Target.SPLIT]))
                    m.next = "START"
            with m.State("START"):
                # Split p and the table entry are on the read ports: read the first metadata
                # word, ask for split p + 1.
                m.d.comb += self.split_addr.eq(_banked(self.bank, self.layer * P + p + 1,
                                                       geo[Target.SPLIT]))
                sd = self.split_data
                if p == 0:
                    m.d.sync += [row.eq(0), col.eq(0), start_pos.eq(0),
                                 rowrem.eq(self.tab_now.cols), self.sched.eq(0)]
                    m.d.sync += [idx[k].eq(0) for k in range(n)]
                    first_bit = self.tab_now.meta_base
                else:
                    m.d.sync += [row.eq(sd.row), col.eq(sd.col), start_pos.eq(sd.pos),
                                 rowrem.eq(self.tab_now.cols - sd.col),
                                 self.sched.row.eq(sd.row), self.sched.cont.eq(sd.cont)]
                    m.d.sync += [idx[k].eq(sd.index[k]) for k in range(n)]
                    first_bit = self.tab_now.meta_base + sd.meta
                m.d.comb += self.meta_addr.eq(_banked(self.bank, first_bit >> _log2(W),
                                                      cfg.meta_depth))
                m.d.sync += [mword.eq((first_bit >> _log2(W)) + 1),
                             drop.eq(first_bit[:_log2(W)]), aligned.eq(0),
                             row_has.eq(0), unres.eq(0)]
                m.next = "END"
            with m.State("END"):
                end = tab.total if p == P - 1 else self.split_data.pos
                m.d.sync += left.eq(end - start_pos)
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(en & (left == 0)):
                    emit(DONE, row)
                    m.next = "DRAIN"
                with m.Elif(en & (level != 0)):
                    with m.If((sk >= rowrem) & (rowrem <= left)):
                        # The pruned run covers the rest of the row.
                        with m.If(~row_has):
                            emit(MARK, row)
                            with m.If(unres):
                                m.d.sync += [resolve.eq(1), unres.eq(0)]
                            with m.Else():
                                next_row()
                        with m.Elif(tvis & (rdiff < cols) & (sk < left)):
                            weight(row + 1, rdiff)
                        with m.Else():
                            next_row()
                    with m.Elif(sk >= left):
                        emit(DONE, row)
                        m.next = "DRAIN"
                    with m.Elif(tvis):
                        weight(row, (col + sk)[:cfg.col_bits + 1])
                    with m.Else():
                        m.d.comb += pop.eq(1)
                        m.d.sync += [col.eq(col + sk), rowrem.eq(rowrem - sk),
                                     left.eq(left - sk)]
            with m.State("DRAIN"):
                with m.If(en):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | self.o.valid)
        m.d.comb += running.eq(fsm.ongoing("RUN"))

        # -- token register and window ----------------------------------------------------
        with m.If(fsm.ongoing("START")):
            m.d.sync += [level.eq(0), count.eq(0), buf.eq(0), inflight.eq(1),
                         stage_valid.eq(0)]
        with m.Else():
            with m.If(pop & tstep):            # level 1: the new token becomes the head
                m.d.sync += [tok_skip.eq(r), tok_code.eq(k_dec)]
            with m.Elif(pop):
                m.d.sync += [level.eq(level - 1), tok_skip.eq(tail_skip),
                             tok_code.eq(tail_code)]
            with m.Elif(tstep):
                m.d.sync += level.eq(level + 1)
                with m.If(level == 0):
                    m.d.sync += [tok_skip.eq(r), tok_code.eq(k_dec)]
                with m.Else():
                    m.d.sync += [tail_skip.eq(r), tail_code.eq(k_dec)]
            # One metadata word per cycle while there is room; the first word enters shifted by
            # the offset of the walk's first code in it.
            live = fsm.ongoing("RUN") | fsm.ongoing("END")
            issue = Signal()
            m.d.comb += issue.eq(live & (count + Mux(inflight, W, 0) + Mux(stage_valid, W, 0)
                                         <= look + 2 * W))
            m.d.sync += [stage_valid.eq(inflight),
                         stage_word.eq(Mux(aligned, self.meta_data, self.meta_data >> drop)),
                         stage_bits.eq(Mux(aligned, W, W - drop))]
            added = Mux(stage_valid, stage_bits, 0)
            with m.If(tstep):
                m.d.sync += [buf.eq(run_shift >> k_len),
                             count.eq(count + added - (r * len0 + k_len))]
            with m.Else():
                m.d.sync += [buf.eq(ext), count.eq(count + added)]
            m.d.sync += inflight.eq(issue)
            with m.If(inflight):
                m.d.sync += aligned.eq(1)
            with m.If(issue):
                m.d.sync += mword.eq(mword + 1)
        m.d.comb += self.meta_ren.eq(1)

        # -- output stage: pick the element, hold one transfer until its last bit is known --
        pend = Signal(layouts.transfer_layout(cfg))
        pend_valid = Signal()
        value = Signal(signed(cfg.weight_bits))
        with m.Switch(ev.code):
            for k, b in enumerate(cfg.precisions):
                with m.Case(k + 1):
                    elems = Array(self.zone_data[k][e * b:(e + 1) * b].as_signed()
                                  for e in range(per[k]))
                    m.d.comb += value.eq(elems[ev.sel[:_log2(per[k])]] if per[k] > 1
                                         else elems[0])
        shift = Array([Const(0, cfg.shift_bits)] + [tab.shift[k] for k in range(n)])
        new = Signal(layouts.transfer_layout(cfg))
        m.d.comb += [new.value.eq(value), new.code.eq(ev.code), new.shift.eq(shift[ev.code]),
                     new.column.eq(ev.col), new.row.eq(ev.row)]
        with m.If(en):
            m.d.sync += self.o.valid.eq(0)
            with m.If(ev_valid):
                with m.Switch(ev.kind):
                    with m.Case(WEIGHT):
                        m.d.sync += [pend.eq(new), pend_valid.eq(1)]
                        with m.If(pend_valid):
                            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(pend),
                                         self.o.payload.last.eq(pend.row != ev.row)]
                    with m.Case(MARK):
                        with m.If(resolve):
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
