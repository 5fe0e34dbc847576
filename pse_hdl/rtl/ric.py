"""Rolling Importance Calculator (RIC): EMA state in block RAM, importance on demand.

Factored form (default). One EMA register per input channel, ``A_j = EMA(|x_j|)``, in a memory
of ``max_layers * max_cols`` words: layer l's inputs at ``l * max_cols`` (``cfg.ric_depth``);
``x_layer`` and ``w_layer`` select the layer of each stream (they may run at the same time). The ``x`` stream carries activations with
their column, in any order (``last`` ends a sample and is counted in ``samples``); each one
updates its ``A_j`` with the golden model's rule ``A += rshift_round(ema_num * ((|x| << F) - A),
K)``. During an allocation pass the ``w`` stream carries master weights with their column; the
RIC emits ``|w| * A_column`` on ``o``, ready for the PA, with the weight's position and previous
code passed along. ``host_rd`` reads a state back (data one cycle after the address).

The factored form's allocation pass reads a **snapshot** of the states, not the live ones: a
``snap`` strobe moves ``count`` snapshot entries from ``base`` on (one per cycle) toward the live
states, ``snap += rshift_round(live - snap, snapshot_shift)`` (shift 0: a copy), in a second
memory. So an allocation decided from the states at one moment can run while inference keeps
updating them, and it sees an average of the EMA over about ``2**snapshot_shift`` snapshots.
With ``importance_floor`` a third memory holds the states last loaded by the host (the profiled
baseline), read beside the other two, and the snapshot never falls below it: ``snap =
max(blend, floor)``. A host write loads every memory. The snapshot must not overlap updates or
a pass (the engine starts it between samples and jobs, with ``busy`` low).

Literal form (``importance_form = "literal"``). The specification's per-weight EMA of ``|w x|``:
a memory of ``max_rows * max_cols`` states addressed by (row, column). The ``x`` stream then
carries every product of a sample (activation, master weight, position), as the MAC sees them,
and the allocation pass reads the state of each weight. It costs a per-weight memory instead of a
per-input one: that is the area the factored form saves.

The update path is five stages (accept and read; state registered; difference; times the rate,
by shifts and adds; add and write), one activation per cycle. The read port is transparent to
the write port, and an activation whose state is still being updated in the stages before the
write waits, so updates of one state in quick succession (a layer of at most four columns) are
exact. The host loads states (the profiled baseline) through ``host``; a host write enters the
same pipeline ahead of the stream, so neither is lost. ``x`` is ready whenever no host write is
offered and no hazard holds it. The allocation
pass is three stages (read; register the state and ``|w|``; multiply, a registered product)
with backpressure on ``o`` stalling the pipeline; it must not overlap an update sample (the
firmware runs it between samples).
"""

from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import layouts

__all__ = ["RollingImportance", "HostWritePort", "HostReadPort", "SnapshotPort"]


class HostWritePort(wiring.Signature):
    """A write into a block's memory: ``data`` to ``addr`` in every cycle ``en`` is high."""

    def __init__(self, addr_bits, data_bits):
        super().__init__({"en": Out(1), "addr": Out(unsigned(addr_bits)),
                          "data": Out(unsigned(data_bits))})


class SnapshotPort(wiring.Signature):
    """Copy ``count`` EMA states from ``base`` into the snapshot the allocation pass reads:
    ``start`` (a strobe) begins, ``busy`` is high until the last one is written."""

    def __init__(self, addr_bits, count_bits):
        super().__init__({"start": Out(1), "base": Out(unsigned(addr_bits)),
                          "count": Out(unsigned(count_bits)), "busy": In(1)})


class HostReadPort(wiring.Signature):
    """A read of a block's memory: ``data`` is the word at the ``addr`` of the cycle before."""

    def __init__(self, addr_bits, data_bits):
        super().__init__({"addr": Out(unsigned(addr_bits)), "data": In(unsigned(data_bits))})


def _csd(k):
    """Canonical signed digits of a positive constant: ``[(sign, shift), ...]``."""
    digits, shift = [], 0
    while k:
        if k & 1:
            d = 2 - (k & 3)            # +1 or -1
            digits.append((d, shift))
            k -= d
        k >>= 1
        shift += 1
    return digits


def _const_mul(value, k):
    """``value * k`` as shifts and adds (at most a few adders for the EMA rate constants), so
    synthesis does not spend a slow DSP block on a constant."""
    terms = [(value << s) if d > 0 else -(value << s) for d, s in _csd(k)]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _abs(m, value, width):
    """``|value|`` of a signed value as an unsigned of ``width`` bits (|-2^(w-1)| fits)."""
    out = Signal(unsigned(width))
    m.d.comb += out.eq(Mux(value < 0, -value, value))
    return out


class RollingImportance(wiring.Component):
    """Rolling Importance Calculator.

    Parameters
    ----------
    cfg : PSEConfig
        ``importance_form`` selects the factored or the literal form.

    Members
    -------
    x : In(stream) of :func:`layouts.observation` (factored) or :func:`layouts.product` (literal)
    w : In(stream) of :func:`layouts.master_in`, the allocation pass
    o : Out(stream) of :func:`layouts.importance_in`
    host : In(HostWritePort), loads EMA states (``layer * max_cols + column``; literal:
        ``row * max_cols + column``)
    host_rd : In(HostReadPort), reads a state (same addresses) while ``w`` is idle
    x_layer, w_layer : In(range(max_layers)), factored form only: the layer of ``x``'s and of
        ``w``'s states
    snap : In(SnapshotPort), factored form only: copy states into the snapshot the pass reads
    samples : Out(32), samples seen (``last`` transfers on ``x``)
    busy : Out(1), updates still in the pipeline (start an allocation pass when it is low)
    """

    def __init__(self, cfg):
        self._cfg = cfg
        self._literal = cfg.importance_form == "literal"
        if self._literal:
            depth, state_bits, xin = cfg.max_rows * cfg.max_cols, cfg.importance_bits, \
                layouts.product(cfg)
        else:
            depth, state_bits, xin = cfg.ric_depth, cfg.ema_bits, layouts.observation(cfg)
        self._depth, self._state_bits = depth, state_bits
        abits = (depth - 1).bit_length() or 1
        members = {
            "x": In(stream.Signature(xin)),
            "w": In(stream.Signature(layouts.master_in(cfg))),
            "o": Out(stream.Signature(layouts.importance_in(cfg))),
            "host": In(HostWritePort(abits, state_bits)),
            "host_rd": In(HostReadPort(abits, state_bits)),
            "samples": Out(32),
            "busy": Out(1),
        }
        if not self._literal:
            members["x_layer"] = In(range(cfg.max_layers))
            members["w_layer"] = In(range(cfg.max_layers))
            members["snap"] = In(SnapshotPort(abits, cfg.col_bits + 1))
        super().__init__(members)

    @property
    def state_bits(self):
        return self._state_bits

    @property
    def depth(self):
        """Words of EMA state (``max_cols``, or ``max_rows * max_cols`` for the literal form)."""
        return self._depth

    def elaborate(self, platform):
        m = Module()
        mem = self._memories(m)
        u4 = self._update(m, mem)
        if not self._literal:
            self._snapshot(m, mem, u4)
        self._pass(m, mem)
        return m

    def _address(self, row, column, layer=None):
        """A state's address: the literal form's per weight, the factored form's per input of
        every layer (layer l's inputs at ``l * max_cols``)."""
        if self._literal:
            return row * self._cfg.max_cols + column
        return layer * self._cfg.max_cols + column

    def _memories(self, m):
        """The live states (a port for updates, one for host reads and snapshot copies) and,
        in the factored form, the snapshot and the floor, and the snapshot copy's counters."""
        cfg = self._cfg
        sb = self._state_bits
        abits = (self._depth - 1).bit_length() or 1
        mem = SimpleNamespace(abits=abits)
        m.submodules.mem = live = memory.Memory(shape=unsigned(sb), depth=self._depth, init=[])
        # (The ports are named after the variables they are assigned to: one each.)
        wp = live.write_port()
        rd_u = live.read_port(transparent_for=(wp,))
        rd_c = live.read_port(transparent_for=(wp,))        # host reads; snapshot copies
        mem.__dict__.update(wp=wp, rd_u=rd_u, rd_c=rd_c)
        if self._literal:
            mem.rd_w = rd_c                                 # the pass reads the live states
            return mem
        # The factored form's pass reads a snapshot: an allocation can then run while
        # inference goes on updating the live states.
        m.submodules.snapshot = smem = memory.Memory(shape=unsigned(sb), depth=self._depth,
                                                     init=[])
        ws, rd_w = smem.write_port(), smem.read_port()
        mem.__dict__.update(ws=ws, rd_w=rd_w)
        if cfg.importance_floor:
            m.submodules.floor = fmem = memory.Memory(shape=unsigned(sb),
                                                      depth=self._depth, init=[])
            wf, rd_f = fmem.write_port(), fmem.read_port()
            mem.__dict__.update(wf=wf, rd_f=rd_f)
        c_addr, c_left = Signal(abits), Signal.like(self.snap.count)
        c_valid, c_waddr = Signal(), Signal(abits)
        # The three memories' outputs are registered before the blend (a block RAM's
        # output and an add, a compare and a long route do not share a cycle): the entry
        # read at c_waddr is written back from d_waddr a cycle later.
        d_valid, d_waddr = Signal(), Signal(abits)
        d_live, d_snap, d_floor = Signal(unsigned(sb)), Signal(unsigned(sb)), \
            Signal(unsigned(sb))
        m.d.comb += self.snap.busy.eq((c_left != 0) | c_valid | d_valid)
        m.d.sync += [c_valid.eq(0), d_valid.eq(c_valid), d_waddr.eq(c_waddr)]
        with m.If(self.snap.start):
            m.d.sync += [c_addr.eq(self.snap.base), c_left.eq(self.snap.count)]
        with m.Elif(c_left != 0):
            m.d.sync += [c_addr.eq(c_addr + 1), c_left.eq(c_left - 1), c_valid.eq(1),
                         c_waddr.eq(c_addr)]
        mem.__dict__.update(c_addr=c_addr, d_valid=d_valid, d_waddr=d_waddr, d_live=d_live,
                            d_snap=d_snap, d_floor=d_floor)
        return mem

    def _update(self, m, mem):
        """The update path; returns its last stage (``u4``), which writes the state.

        accept: a host write, or an activation whose state is read (synchronous port);
        u1: the state arrives;  u2: it is registered (block RAM output feeds only a register);
        u3: target - state;  u4: times the rate (shift-and-add of the constant);
        then half an LSB is added, the sum shifted and added to the state, and written.
        An activation whose address is still in u1..u4 waits (a read issued now sees the
        write happening in this cycle through the port's transparency, not the ones behind
        it), so updates of one state in quick succession are exact at the cost of bubbles
        (only layers of at most four columns ever wait)."""
        cfg = self._cfg
        F, K = cfg.ema_frac_bits, cfg.ema_rate_bits
        sb, abits = self._state_bits, mem.abits
        stages = []
        for k in range(1, 5):
            stages.append({"valid": Signal(name=f"u{k}_valid"), "host": Signal(name=f"u{k}_host"),
                           "addr": Signal(unsigned(abits), name=f"u{k}_addr"),
                           "data": Signal(unsigned(sb), name=f"u{k}_data"),
                           "old": Signal(unsigned(sb), name=f"u{k}_old")})
        u1, u2, u3, u4 = stages
        u3_diff = Signal(signed(sb + 1))
        u4_prod = Signal(signed(sb + 1 + K))

        x = self.x.payload
        x_addr = self._address(x.row if self._literal else 0, x.column,
                               None if self._literal else self.x_layer)
        hazard = 0
        for st in stages:
            hazard = hazard | (st["valid"] & (st["addr"] == x_addr))
        m.d.comb += self.x.ready.eq(~self.host.en & ~hazard)
        m.d.sync += u1["valid"].eq(0)
        with m.If(self.host.en):
            m.d.sync += [u1["valid"].eq(1), u1["host"].eq(1), u1["addr"].eq(self.host.addr),
                         u1["data"].eq(self.host.data)]
        with m.Elif(self.x.valid & ~hazard):
            if self._literal:
                target = _abs(m, x.value, cfg.act_bits) * _abs(m, x.master, cfg.weight_bits)
            else:
                target = _abs(m, x.value, cfg.act_bits)
            m.d.comb += mem.rd_u.addr.eq(x_addr)
            m.d.sync += [u1["valid"].eq(1), u1["host"].eq(0), u1["addr"].eq(x_addr),
                         u1["data"].eq(target << F)]
            with m.If(x.last):
                m.d.sync += self.samples.eq(self.samples + 1)

        for a, b in ((u1, u2), (u2, u3), (u3, u4)):
            m.d.sync += [b[f].eq(a[f]) for f in ("valid", "host", "addr", "data")]
        m.d.sync += [u2["old"].eq(mem.rd_u.data), u3["old"].eq(u2["old"]),
                     u4["old"].eq(u3["old"]),
                     u3_diff.eq(u2["data"] - u2["old"]),
                     u4_prod.eq(_const_mul(u3_diff, cfg.ema_num))]
        new = Signal(unsigned(sb))
        m.d.comb += [
            self.busy.eq(u1["valid"] | u2["valid"] | u3["valid"] | u4["valid"]),
            new.eq(u4["old"] + ((u4_prod + (1 << (K - 1))) >> K)),
            mem.wp.addr.eq(u4["addr"]),
            mem.wp.data.eq(Mux(u4["host"], u4["data"], new)),
            mem.wp.en.eq(u4["valid"]),
        ]
        return u4

    def _snapshot(self, m, mem, u4):
        """SNAPSHOT: the live state (``rd_c``) and the old snapshot (``rd_w``, the pass's port:
        no pass runs meanwhile) arrive together, the snapshot moves ``2**-snapshot_shift`` of
        the way to the live state, not below the floor; a host write loads the snapshot (and
        the floor) too."""
        cfg = self._cfg
        sb, sh = self._state_bits, cfg.snapshot_shift
        m.d.sync += [mem.d_live.eq(mem.rd_c.data), mem.d_snap.eq(mem.rd_w.data)]
        step = Signal(signed(sb + 1))
        m.d.comb += step.eq(mem.d_live - mem.d_snap)
        blended = Signal(unsigned(sb))
        m.d.comb += blended.eq(mem.d_live if sh == 0
                               else mem.d_snap + ((step + (1 << (sh - 1))) >> sh))
        if cfg.importance_floor:
            # The floor is read with the other two (same address, same cycle); a host
            # write loads it with them.
            m.d.comb += [mem.rd_f.addr.eq(mem.c_addr),
                         mem.wf.en.eq(u4["valid"] & u4["host"]), mem.wf.addr.eq(u4["addr"]),
                         mem.wf.data.eq(u4["data"])]
            m.d.sync += mem.d_floor.eq(mem.rd_f.data)
            blended = Mux(blended < mem.d_floor, mem.d_floor, blended)
        m.d.comb += [mem.ws.en.eq(mem.d_valid | (u4["valid"] & u4["host"])),
                     mem.ws.addr.eq(Mux(mem.d_valid, mem.d_waddr, u4["addr"])),
                     mem.ws.data.eq(Mux(mem.d_valid, blended, u4["data"]))]

    def _pass(self, m, mem):
        """The allocation pass: read the state; register it with |w|; multiply (3 stages);
        and the host's reads (and the snapshot's copies) of the live states."""
        cfg = self._cfg
        sb = self._state_bits
        rd_w, rd_c = mem.rd_w, mem.rd_c
        advance = ~self.o.valid | self.o.ready
        w = self.w.payload
        p1, p2 = Signal(layouts.master_in(cfg)), Signal(layouts.master_in(cfg))
        p1_valid, p2_valid = Signal(), Signal()
        p2_abs, p2_state = Signal(unsigned(cfg.weight_bits)), Signal(unsigned(sb))
        w_addr = self._address(w.row, w.column, None if self._literal else self.w_layer)
        m.d.comb += [self.w.ready.eq(advance), rd_w.en.eq(advance), rd_w.addr.eq(w_addr)]
        if not self._literal:
            with m.If(self.snap.busy):
                m.d.comb += [rd_w.en.eq(1), rd_w.addr.eq(mem.c_addr)]
        # Host reads (and snapshot copies) of the live states.
        if self._literal:
            # The literal form's pass shares this port: host reads while no weight is offered.
            m.d.comb += rd_w.addr.eq(Mux(self.w.valid, w_addr, self.host_rd.addr))
        else:
            m.d.comb += rd_c.addr.eq(Mux(self.snap.busy, mem.c_addr, self.host_rd.addr))
        m.d.comb += self.host_rd.data.eq(rd_c.data)
        with m.If(advance):
            m.d.sync += [p1.eq(w), p1_valid.eq(self.w.valid),
                         p2.eq(p1), p2_valid.eq(p1_valid), p2_state.eq(rd_w.data),
                         p2_abs.eq(_abs(m, p1.master, cfg.weight_bits)),
                         self.o.valid.eq(p2_valid)]
            o = self.o.payload
            m.d.sync += [o.importance.eq(p2_state if self._literal else p2_abs * p2_state),
                         o.prev.eq(p2.prev), o.row.eq(p2.row), o.column.eq(p2.column),
                         o.last.eq(p2.last)]
