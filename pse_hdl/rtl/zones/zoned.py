"""The zoned memory: memories, commands and host access (see the package docs)."""

from amaranth.hdl import Array, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import layouts
from .banks import BankControl
from .fetch import FetchUnit
from .kept import KeptTable
from .layouts import (SHARED_READ_LATENCY, Op, Target, banked, count_shape, geometry, host_addr_bits,
                      host_data_bits, log2, meta_bits_shape, physical, plan_layout, read_ratio,
                      row_desc_layout, split_layout, table_layout)
from .masters import READ_LATENCY, MasterStore
from .rezoner import Rezoner
from .sliced import SlicedMemory

__all__ = ["ZonedMemory"]


def _registered(m, value, name):
    """``value`` a cycle later, from a register (no reset: read only when valid)."""
    value = Value.cast(value)
    q = Signal(len(value), name=name, reset_less=True)
    m.d.sync += q.eq(value)
    return q


class ZonedMemory(wiring.Component):
    """Zoned weight memory with its fetch unit and re-zoning engine (see the package docs).

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
                              (``PLAN``, addr = layer); not while re-zoning, and a master
                              not while a host read is offered (the master store has one
                              port). A master write takes the port from ``master_walk``: the
                              engine refuses master-store access while a job walks it.
    host_rd : In(stream)      ``{target, bank, addr}``; ``rd_data``/``rd_valid`` one cycle later.
                              Accepted while no fetch or re-zoning runs (a cycle after a
                              fetch ends) and none is offered on ``cmd``; a master read is
                              accepted three cycles after it is offered (the store's address,
                              its bank's output and the word chosen among the banks are
                              registered: ``masters``), any other one cycle after (its block
                              RAM's output is registered).
    master_walk               A read port of the master store (``en``, ``addr``) for the
                              engine's allocation pass, with ``READ_LATENCY`` (3) cycles of
                              latency: ``data`` is the word of the ``en`` three cycles earlier,
                              held until the next read. Usable while no re-zoning runs and no
                              host access is offered.
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
            "zone_words": data.ArrayLayout(count_shape(max(cfg.zone_depths)), n),
            "meta_bits": meta_bits_shape(cfg),
            "row_descs": count_shape(cfg.desc_depth),
            "split_descs": count_shape(cfg.max_layers * ports),
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

    def _memories(self, m):
        """The memories, as submodules of ``m``: ``{name: Memory}`` (``zone`` a list, ``desc``
        None without row descriptors)."""
        cfg, R, W = self.cfg, read_ratio(self.cfg), self.cfg.zone_word_bits
        mems = {
            # Zones and metadata: one copy, R logical words wide (see ``layouts``), written a
            # logical word at a time, stored as slices that are whole block RAMs (``sliced``);
            # reads registered by their block RAMs (``SHARED_READ_LATENCY``).
            "zone": [SlicedMemory(R * W, 2 * d // R, W, registered=SHARED_READ_LATENCY == 2)
                     for d in cfg.zone_depths],
            "meta": SlicedMemory(R * W, 2 * cfg.meta_depth // R, W,
                                 registered=SHARED_READ_LATENCY == 2),
            # Row descriptors only where the configuration keeps them (desc_stride > 0): the
            # walkers never read them, the host may.
            "desc": (memory.Memory(shape=row_desc_layout(cfg), depth=2 * cfg.desc_depth, init=[])
                     if cfg.desc_depth > 0 else None),
            # A layer's split descriptors in one word, so the fetch unit reads them in one cycle.
            "split": memory.Memory(shape=R * split_layout(cfg).size, depth=2 * cfg.max_layers,
                                   init=[]),
            "table": memory.Memory(shape=table_layout(cfg), depth=2 * cfg.max_layers, init=[]),
            "plan": memory.Memory(shape=plan_layout(cfg), depth=cfg.max_layers, init=[]),
            "master": MasterStore(cfg, clears=not cfg.reversible),
            # Masked layers' kept columns (``input_masks``): one copy, read in turns
            # (``layouts.kept_geometry``).
            "kept": KeptTable(cfg) if cfg.input_masks else None}
        for name, mem in mems.items():
            for k, one in enumerate(mem if isinstance(mem, list) else [mem]):
                if one is not None:
                    m.submodules[f"{name}{k}" if isinstance(mem, list) else name] = one
        return mems

    def elaborate(self, platform):
        cfg, n, W, R = self.cfg, self.classes, self.cfg.zone_word_bits, read_ratio(self.cfg)
        m = Module()
        geo = geometry(cfg)

        mems = self._memories(m)
        zones, meta, split, desc = mems["zone"], mems["meta"], mems["split"], mems["desc"]
        rows_desc, S = desc is not None, split_layout(cfg).size
        z_wr, meta_wr = [z.wr for z in zones], meta.wr
        split_wr, table_wr = split.write_port(granularity=S), mems["table"].write_port()
        desc_wr = desc.write_port() if rows_desc else None
        plan_wr, master = mems["plan"].write_port(), mems["master"]
        z_rd, meta_rd = [z.rd for z in zones], meta.rd
        split_rd, table_rd = split.read_port(), mems["table"].read_port()
        desc_rd = desc.read_port() if rows_desc else None
        plan_rd = mems["plan"].read_port()

        # -- commands and bank state -----------------------------------------------------------
        banks = BankControl(cfg)
        m.submodules.banks = banks
        wiring.connect(m, wiring.flipped(self.cmd), banks.cmd)
        rz_busy, fetch_busy = Signal(), Signal()
        rz_start, fetch_start, arg = banks.rz_start, banks.fetch_start, banks.arg
        active = banks.active
        m.d.comb += [banks.rz_busy.eq(rz_busy), banks.fetch_busy.eq(fetch_busy),
                     self.status.active.eq(active),
                     self.status.active_layers.eq(banks.active_layers),
                     self.status.shadow_ready.eq(banks.shadow_ready),
                     self.status.rezoning.eq(rz_busy), self.status.fetching.eq(fetch_busy),
                     self.status.error.layer.eq(banks.layer_error)]

        # -- host writes and reads ------------------------------------------------------------
        hw = self.host_wr.payload
        m.d.comb += self.host_wr.ready.eq(~rz_busy & ~((hw.target == Target.MASTER)
                                                        & self.host_rd.valid))
        host_w = self.host_wr.valid & self.host_wr.ready
        host_master_w = host_w & (hw.target == Target.MASTER)
        m.d.comb += [plan_wr.en.eq(host_w & (hw.target == Target.PLAN)),
                     plan_wr.addr.eq(hw.addr), plan_wr.data.eq(hw.data)]

        hr = self.host_rd.payload
        master_r, reading, host_r, fetched = self._host_read_grant(m, rz_busy, fetch_busy,
                                                                   fetch_start)
        rd_target = Signal.like(hr.target)
        rd_lane = Signal(max(1, log2(R)))
        m.d.sync += self.rd_valid.eq(host_r)
        with m.If(host_r):
            m.d.sync += rd_target.eq(hr.target)

        # -- re-zoning engine -----------------------------------------------------------------
        rz = Rezoner(cfg)
        m.submodules.rezoner = rz
        m.d.comb += [rz.start.eq(rz_start), rz.n_layers.eq(arg), rz.bank.eq(~active),
                     rz_busy.eq(rz.busy), banks.rz_done.eq(rz.done),
                     banks.rz_failed.eq(rz.failed)]
        wiring.connect(m, wiring.flipped(self.codes), rz.codes)
        m.d.comb += [self.status.error.cost.eq(rz.error.cost),
                     self.status.error.zone.eq(rz.error.zone),
                     self.status.error.meta.eq(rz.error.meta),
                     self.status.zone_words.eq(rz.zone_words),
                     self.status.meta_bits.eq(rz.meta_bits),
                     self.status.row_descs.eq(rz.row_descs),
                     self.status.split_descs.eq(rz.split_descs), self.status.layers.eq(rz.layers)]

        self._rezoner_writes(m, rz, z_wr, meta_wr, split_wr, desc_wr)
        m.d.comb += [table_wr.en.eq(rz.table_en), table_wr.addr.eq(rz.table_addr),
                     table_wr.data.eq(rz.table_data),
                     plan_rd.addr.eq(rz.plan_addr), rz.plan_data.eq(plan_rd.data),
                     rz.master_data.eq(master.data)]
        self._master_port(m, master, rz, host_master_w, master_r)
        m.d.comb += self.master_walk.data.eq(master.data)

        # -- fetch unit: owns the table, split, metadata and zone read ports but for host reads
        fu = FetchUnit(cfg)
        m.submodules.fetch = fu
        m.d.comb += [fu.start.eq(fetch_start), fu.layer.eq(arg), fu.bank.eq(active),
                     fetch_busy.eq(fu.busy)]
        for p in range(self.ports):
            wiring.connect(m, fu.o[p], wiring.flipped(self.o[p]))
        if cfg.input_masks:
            kt = mems["kept"]
            m.d.comb += [kt.wr_en.eq(rz.kept_en), kt.wr_addr.eq(rz.kept_addr),
                         kt.wr_data.eq(rz.kept_data)]
            wiring.connect(m, kt.rd, fu.kept)
        m.d.comb += self.sched.eq(fu.sched)
        self._shared_reads(m, reading, fetched, [
            (table_rd, fu.table, banked(hr.bank, hr.addr, cfg.max_layers), False),
            (split_rd, fu.split, physical(cfg, banked(hr.bank, hr.addr, geo[Target.SPLIT]))[0],
             False),
            (meta_rd, fu.meta, physical(cfg, banked(hr.bank, hr.addr, cfg.meta_depth))[0], True),
            *[(z_rd[k], fu.zone[k], physical(cfg, banked(hr.bank, hr.addr, d))[0], True)
              for k, d in enumerate(cfg.zone_depths)]])
        with m.If(host_r):
            # Every depth is a multiple of R: the lane is the address's low bits.
            m.d.sync += rd_lane.eq(physical(cfg, hr.addr)[1])
        if rows_desc:
            m.d.comb += desc_rd.addr.eq(banked(hr.bank, hr.addr, cfg.desc_depth))

        sources = {Target.MASTER: master.data.as_unsigned(),
                   Target.PLAN: plan_rd.data.as_value(), Target.META: (meta_rd.data, W),
                   Target.DESC: desc_rd.data.as_value() if rows_desc else None,
                   Target.SPLIT: (split_rd.data, S), Target.TABLE: table_rd.data.as_value()}
        sources.update({Target.ZONE.value + k: (z_rd[k].data, W) for k in range(n)})
        self._read_data(m, rd_target, rd_lane, sources)
        with m.If(~rz_busy):
            m.d.comb += plan_rd.addr.eq(hr.addr)
        return m

    def _host_read_grant(self, m, rz_busy, fetch_busy, fetch_start):
        """When ``host_rd`` is accepted; returns ``(master_r, reading, host_r, fetched)``: a
        master read offered that may take the master store's port, a read offered that may
        address the other memories' read ports, a read accepted, and the register that holds
        host reads while the fetch unit runs (set from its start to a cycle after its end)."""
        hr = self.host_rd.payload
        # Host reads wait for the fetch unit through a register (busy one cycle longer than the
        # fetch, never shorter) and for an offered FETCH or REZONE (whose first cycle uses the
        # table and plan ports), not for its acceptance: the walkers' busy flags then stay off
        # the path from a host read to the master port's arbitration.
        # (A FETCH or REZONE is offered while it cannot start only when the unit it needs is
        # busy, which holds host reads anyway.)
        fetched = Signal()
        m.d.sync += fetched.eq(fetch_busy | fetch_start)
        offered = self.cmd.valid & ((self.cmd.payload.op == Op.FETCH)
                                    | (self.cmd.payload.op == Op.REZONE))
        # A read is accepted once its data waits in a register: a master read in its fourth
        # cycle (the first registered its address in front of the master store,
        # ``_master_port``, the second read the bank into its register, the third the
        # multiplexer across the banks into the host's, ``_read_data``), any other in its
        # second (the first read the block RAM, whose output is registered); the data leaves
        # the cycle after acceptance.
        reading, held = Signal(), Signal(range(READ_LATENCY + 1))
        master = hr.target == Target.MASTER
        m.d.comb += reading.eq(self.host_rd.valid & ~rz_busy & ~fetched & ~offered)
        armed = Mux(master, held == READ_LATENCY, held == 1)
        m.d.comb += self.host_rd.ready.eq(reading & armed)
        host_r = self.host_rd.valid & self.host_rd.ready
        m.d.sync += held.eq(Mux(reading & ~armed, held + 1, 0))
        return reading & master, reading, host_r, fetched

    @staticmethod
    def _shared_reads(m, reading, fetched, ports):
        """The read ports the fetch unit owns, as ``(port, the fetch unit's, the host read's
        address, walkers only)``. Host reads never come during a fetch; logical words of zones
        and metadata are lanes of the physical words. The table and split ports take the
        host's address while a read is offered; the metadata and zone ports, which only the
        walkers read, whenever the fetch unit is not running (``fetched``, a register: the
        walkers' first read comes cycles after the start), so the choice in front of their
        block RAMs, and of the read-before-write logic yosys adds there, is a register's."""
        for rd, user, host_addr, walkers_only in ports:
            m.d.comb += [rd.en.eq(user.en), user.data.eq(rd.data)]
            with m.If(~fetched if walkers_only else reading):
                m.d.comb += rd.addr.eq(host_addr)
            with m.Else():
                m.d.comb += rd.addr.eq(user.addr)

    def _read_data(self, m, target, lane, sources):
        """``rd_data`` from the read port of the memory the host read addressed: a value, or
        ``(physical word, logical width)`` for the memories whose words hold R logical ones.
        Every block RAM's output is registered before the multiplexer across them (a read is
        accepted the cycle after its ports were addressed, ``_host_read_grant``); the master
        store's output, the multiplexer across its banks' registers, is registered too (a master
        read is accepted ``READ_LATENCY`` cycles after it is offered), so no path runs from a
        bank through both multiplexers."""
        R = read_ratio(self.cfg)
        words = {}
        for t, src in sources.items():
            if src is None:
                continue
            word, width = src if isinstance(src, tuple) else (src, None)
            key = t.value if isinstance(t, Target) else t
            zone = key - Target.ZONE.value
            shared = zone >= 0 or key == Target.META.value     # registered by their block RAMs
            if not (shared and SHARED_READ_LATENCY == 2):
                word = _registered(m, word, f"host_zone{zone}" if zone >= 0
                                   else f"host_{Target(key).name.lower()}")
            if width is not None and R > 1:
                word = Array(word[j * width:(j + 1) * width] for j in range(R))[lane]
            words[t] = word
        with m.Switch(target):
            for t, word in words.items():
                with m.Case(t):
                    m.d.comb += self.rd_data.eq(word)

    def _rezoner_writes(self, m, rz, z_wr, meta_wr, split_wr, desc_wr):
        """The re-zoning engine's writes: logical words of zones, metadata and split
        descriptors into their lanes of the physical words. A split descriptor's write is
        registered first (it lands a cycle later, before the re-zoning is done): whether a
        weight starts a port's share is a compare of cost sums, and the descriptors are
        distributed RAM that nextpnr places away from the re-zoner."""
        R = read_ratio(self.cfg)

        def write_logical(port, en, addr, word):
            """Write logical word ``addr`` (banked) into its lane of a physical word."""
            phys, lane = physical(self.cfg, addr)
            m.d.comb += [port.addr.eq(phys), port.data.eq(word.replicate(R)),
                         port.en.eq(en.replicate(R) & (Const(1, R) << lane) if R > 1 else en)]

        for k in range(self.classes):
            write_logical(z_wr[k], rz.z_en[k], rz.z_addr[k], rz.z_data[k])
        write_logical(meta_wr, rz.meta_en, rz.meta_addr, rz.meta_data)
        if desc_wr is not None:
            m.d.comb += [desc_wr.en.eq(rz.desc_en), desc_wr.addr.eq(rz.desc_addr),
                         desc_wr.data.eq(rz.desc_data)]
        split_en = Signal()                    # reset: never a write out of reset
        m.d.sync += split_en.eq(rz.split_en)
        write_logical(split_wr, split_en,
                      _registered(m, rz.split_addr, "split_addr"),
                      _registered(m, rz.split_data, "split_data"))

    def _master_port(self, m, master, rz, host_master_w, master_r):
        """The master store's one address, shared by the re-zoning engine, host writes, host
        reads (``master_r``: offered) and the engine's allocation walk (``master_walk``), in
        that priority. The winner's request is registered in front of the store: its block
        RAMs span the die, and the route to them starts at a register, not at the arbitration
        (reads take ``READ_LATENCY`` cycles, a write lands a cycle after it is accepted)."""
        # The master store has one address for its reads and writes (but for the destructive
        # re-zoning's clears), so yosys can map it to a single-port RAM (the UP5K's SPRAM): a
        # host write waits for a host read, and takes the port from the allocation walk (which
        # the engine never runs while the host may write masters).
        cfg, hw = self.cfg, self.host_wr.payload
        addr, ren = Signal(cfg.master_addr_bits), Signal()
        wen, wdata = Signal(), Signal(signed(cfg.weight_bits))
        with m.If(rz.busy):
            m.d.comb += [addr.eq(rz.master_addr), ren.eq(rz.master_ren)]
        with m.Elif(host_master_w):
            m.d.comb += [addr.eq(hw.addr), wen.eq(1), wdata.eq(hw.data)]
        with m.Elif(master_r):
            m.d.comb += [addr.eq(self.host_rd.payload.addr), ren.eq(1)]
        with m.Else():
            m.d.comb += [addr.eq(self.master_walk.addr), ren.eq(self.master_walk.en)]
        addr_q, ren_q = Signal.like(addr), Signal()
        wen_q, wdata_q = Signal(), Signal.like(wdata)
        m.d.sync += [addr_q.eq(addr), ren_q.eq(ren), wen_q.eq(wen), wdata_q.eq(wdata)]
        # (``ren`` and ``wen`` are never both set; the read enable says so where yosys sees it,
        # for the single-port mapping of the UP5K's SPRAM, whose output holds during a write.)
        m.d.comb += [master.addr.eq(addr_q), master.ren.eq(ren_q & ~wen_q),
                     master.wen.eq(wen_q), master.wdata.eq(wdata_q)]
        if not cfg.reversible:     # the destructive re-zoning's clears: an address of their own
            m.d.sync += [master.clear.eq(rz.busy & rz.master_wen),
                         master.clear_addr.eq(rz.master_waddr)]
