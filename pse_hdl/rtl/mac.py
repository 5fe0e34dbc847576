"""Variable-precision MAC array: a weight costs cycles in proportion to its bits; pruned, none.

**Why digit-serial.** A lane consumes ``mac_digit_bits`` (4) bits of a weight per cycle: a 16-bit
weight takes 4 cycles, 8-bit 2, 4-bit and 2-bit 1, and a pruned weight never reaches the lane.
Fusing narrow multipliers in the manner of Bit Fusion reaches the same cycle ratio but needs a
wide multiplier per lane and a crossbar to gather several narrow weights (from different
columns) per cycle; digit-serial needs one 5x8-bit multiplier per lane, a handful of LUTs
(four shifted copies of the activation, added), so lanes are cheap and many, need no DSP block,
and the cycle cost follows precision exactly.

**A lane.** Digits are taken most significant first (Horner: ``P = 16 P + d x``, with ``d x``
registered before it is folded in, so the loop carries one adder and no shifter); the top digit
is signed, the others unsigned, which is exact for every two's-complement value. When the last
digit is in, the exact product ``v x`` is shifted by the zone scale and added to an exact partial
sum (``act_bits + weight_bits + col_bits`` bits: no row can leave it). At the end of the lane's
part of a row the partial sum leaves on ``o``. Pipeline: fetch (the activation read), digits,
multiplier inputs, partial products, scale, accumulate; a lane stalls as a whole only when its
output is not taken.

**Scheduling.** Each lane has its own input stream; the feeder cuts a layer's surviving weights
into contiguous chunks of equal cost (the golden model's
:func:`~pse_hdl.model.transfer.lane_streams`), so a row may be split between neighbouring lanes.
Because the sums are exact (the golden model saturates once, at the end of a row), the parts of a
split row are simply added: lane k's first part waits in lane k-1's carry register and is added to
lane k-1's last part. Whole rows go through small FIFOs and a tree of registered round-robin
nodes to the shared finishing pipeline: bias (one memory, read by row), addition and saturation
to ``acc_bits`` with the overflow flag, ReLU, ``sat(rshift_round(acc, out_shift))``. Rows come
out in completion order, each tagged with its row.

**Operands.** Activations are written through ``x`` (value, column and buffer half) into a
buffer that every lane reads; it is replicated per lane (a small block RAM each) so all lanes
read every cycle. The buffer has two halves: a layer reads the half ``half`` selects while its
finished rows, written back through ``x`` as the next layer's operands, go to the other, so
layers follow each other without a copy. Biases are written through ``bias`` into the finishing
pipeline's memory, which holds every layer's (layer l's rows at ``l * max_rows``; ``layer``
selects them).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..model.fixed import signed_range
from . import layouts
from .ric import HostReadPort, HostWritePort

__all__ = ["MacLane", "MacArray"]


def _lane_ports(cfg):
    return {
        "i": In(stream.Signature(layouts.transfer_layout(cfg))),
        "o": Out(stream.Signature(_lane_sum(cfg))),
        "x_wr": In(HostWritePort(cfg.col_bits + 1, cfg.act_bits)),
        "half": In(1),                          # the operand buffer's half this layer reads
        "head": In(layouts.schedule(cfg)),       # this lane's first row continues from k-1
        "tail": In(layouts.schedule(cfg)),       # lane k+1's first row continues from here
        "digit": Out(1),                        # a weight digit is multiplied this cycle
    }


def psum_bits(cfg):
    """Width of an exact partial sum of a row: ``max_cols`` products of ``act_bits +
    weight_bits`` bits (a scaled weight fits ``weight_bits``) need ``col_bits`` more."""
    return cfg.act_bits + cfg.weight_bits + cfg.col_bits


def _row_sum(cfg):
    """A lane's finished part of a row: the exact sum of its products."""
    return data.StructLayout({"row": unsigned(cfg.row_bits), "psum": signed(psum_bits(cfg))})


def _lane_sum(cfg):
    """A lane's result with where it goes: ``head`` (its first part of a row begun on the
    previous lane: into that lane's carry) and ``tail`` (its last part of a row that goes on in
    the next lane: waits for that lane's carry). Both are registered with the result, off the
    handshake's path."""
    return data.StructLayout({"row": unsigned(cfg.row_bits), "psum": signed(psum_bits(cfg)),
                              "head": 1, "tail": 1})


class MacLane(wiring.Component):
    """One lane. ``i`` carries row parts (tagged transfers, ``last`` ends a part); ``o`` one
    exact partial sum per part."""

    def __init__(self, cfg):
        self._cfg = cfg
        super().__init__(_lane_ports(cfg))

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        wb, ab = cfg.weight_bits, cfg.act_bits
        D = cfg.mac_digit_bits
        prod_bits = wb + ab
        sb = psum_bits(cfg)

        # Two halves (ping-pong): a layer reads one while the rows it finishes are written into
        # the other, as the next layer's operands.
        m.submodules.xbuf = xbuf = memory.Memory(shape=signed(ab), depth=2 * cfg.max_cols,
                                                 init=[])
        xw, xr = xbuf.write_port(), xbuf.read_port()
        m.d.comb += [xw.en.eq(self.x_wr.en), xw.addr.eq(self.x_wr.addr),
                     xw.data.eq(self.x_wr.data)]

        # Digits per code: 0 for pruned (the row-end marker), ceil(b / D) otherwise.
        ndig_of = [0] + [-(-b // D) for b in cfg.precisions]
        adv = ~self.o.valid | self.o.ready

        # -- fetch: the transfer waits here while its activation is read. --------------------
        f_valid, f_first, open_row = Signal(), Signal(), Signal()
        f = Signal(layouts.transfer_layout(cfg))
        # -- digits --------------------------------------------------------------------------
        d_valid, d_first, d_last = Signal(), Signal(), Signal()
        d_left = Signal(range(max(ndig_of) + 1))
        d_val = Signal(unsigned(wb))                 # the value, top digit aligned to bit wb
        d_x = Signal(signed(ab))
        d_shift, d_row = Signal(range(wb)), Signal(unsigned(cfg.row_bits))
        d_sign_digit = Signal()                      # the next digit is the (signed) top one

        d_done = d_valid & (d_left <= 1)
        d_accept = ~d_valid | d_done
        f_accept = ~f_valid | d_accept
        take = self.i.valid & self.i.ready
        m.d.comb += [self.i.ready.eq(adv & f_accept),
                     xr.en.eq(take),
                     xr.addr.eq(self.half * cfg.max_cols + self.i.payload.column)]

        digit = Signal(signed(D + 1))
        top = d_val[wb - D:]
        m.d.comb += digit.eq(Mux(d_sign_digit, top.as_signed(), top))
        # E: the partial product of each digit is registered (a DSP or LUT multiplier), then
        # folded in: P = 16 P + d x, so the loop carries an adder only.
        g_valid, g_first_digit, g_last_digit = Signal(), Signal(), Signal()
        g_digit, g_x = Signal(signed(D + 1)), Signal(signed(ab))
        g_first, g_last = Signal(), Signal()
        g_shift, g_row = Signal(range(wb)), Signal(unsigned(cfg.row_bits))
        e_valid, e_first_digit, e_last_digit = Signal(), Signal(), Signal()
        e_pp = Signal(signed(D + 1 + ab))
        e_p = Signal(signed(prod_bits))
        e_first, e_last = Signal(), Signal()
        e_shift, e_row = Signal(range(wb)), Signal(unsigned(cfg.row_bits))
        p_next = Signal(signed(prod_bits))
        m.d.comb += p_next.eq(Mux(e_first_digit, e_pp, (e_p << D) + e_pp))

        a1_valid, a1_first, a1_last = Signal(), Signal(), Signal()
        a1_p, a1_shift = Signal(signed(prod_bits)), Signal(range(wb))
        a1_row = Signal(unsigned(cfg.row_bits))
        a2_valid, a2_first, a2_last = Signal(), Signal(), Signal()
        # A zone scale never exceeds weight_bits - b (docs/SPEC.md, section 5), so the scaled
        # weight fits weight_bits and the scaled product fits weight_bits + act_bits.
        a2_full = Signal(signed(prod_bits))
        a2_row = Signal(unsigned(cfg.row_bits))
        acc = Signal(signed(sb))

        with m.If(adv):
            # fetch
            with m.If(f_accept):
                m.d.sync += f_valid.eq(self.i.valid)
                with m.If(self.i.valid):
                    m.d.sync += [f.eq(self.i.payload), f_first.eq(~open_row),
                                 open_row.eq(~self.i.payload.last)]
            # digits
            with m.If(d_accept):
                m.d.sync += d_valid.eq(f_valid)
                with m.If(f_valid):
                    ndig = Signal(range(max(ndig_of) + 1))
                    with m.Switch(f.code):
                        for code, nd in enumerate(ndig_of):
                            with m.Case(code):
                                m.d.comb += ndig.eq(nd)
                    # Align the value's top digit with the top of the register.
                    aligned = Signal(unsigned(wb))
                    with m.Switch(f.code):
                        for code, nd in enumerate(ndig_of):
                            with m.Case(code):
                                m.d.comb += aligned.eq(f.value.as_unsigned() << (wb - D * nd)
                                                       if nd else 0)
                    m.d.sync += [d_left.eq(ndig), d_val.eq(aligned), d_sign_digit.eq(1),
                                 d_x.eq(xr.data),
                                 d_first.eq(f_first), d_last.eq(f.last), d_shift.eq(f.shift),
                                 d_row.eq(f.row)]
            with m.Elif(d_valid):
                m.d.sync += [d_left.eq(d_left - 1), d_val.eq(d_val << D), d_sign_digit.eq(0)]
            m.d.comb += self.digit.eq(d_valid & (d_left != 0))
            # the digit and its activation are registered at the multiplier's inputs, the
            # partial product at its output (a DSP block runs at full speed that way)
            m.d.sync += [g_valid.eq(d_valid), g_digit.eq(Mux(d_left == 0, 0, digit)),
                         g_x.eq(d_x), g_first_digit.eq(d_sign_digit), g_last_digit.eq(d_done),
                         g_first.eq(d_first), g_last.eq(d_last), g_shift.eq(d_shift),
                         g_row.eq(d_row)]
            m.d.sync += [e_valid.eq(g_valid), e_pp.eq(_digit_times(g_digit, g_x, D)),
                         e_first_digit.eq(g_first_digit), e_last_digit.eq(g_last_digit),
                         e_first.eq(g_first), e_last.eq(g_last), e_shift.eq(g_shift),
                         e_row.eq(g_row)]
            with m.If(e_valid):
                m.d.sync += e_p.eq(p_next)
            # scale
            m.d.sync += [a1_valid.eq(e_valid & e_last_digit), a1_p.eq(p_next),
                         a1_shift.eq(e_shift), a1_first.eq(e_first), a1_last.eq(e_last),
                         a1_row.eq(e_row)]
            m.d.sync += [a2_valid.eq(a1_valid), a2_full.eq(a1_p << a1_shift),
                         a2_first.eq(a1_first), a2_last.eq(a1_last), a2_row.eq(a1_row)]
            # accumulate exactly: the partial sum is wide enough for a whole row
            total = Signal(signed(sb))
            m.d.comb += total.eq(Mux(a2_first, 0, acc) + a2_full)
            with m.If(a2_valid):
                m.d.sync += acc.eq(total)
            m.d.sync += [self.o.valid.eq(a2_valid & a2_last), self.o.payload.row.eq(a2_row),
                         self.o.payload.psum.eq(total),
                         self.o.payload.head.eq(self.head.cont & (a2_row == self.head.row)),
                         self.o.payload.tail.eq(self.tail.cont & (a2_row == self.tail.row))]
        return m


class MacArray(wiring.Component):
    """``lanes`` lanes with their own input streams ``i[k]``, shared operand writes and layer
    registers, and one output stream ``o``.

    ``x`` writes an activation (``layouts.act_write``: value, column, half) into every lane's
    buffer, one per cycle, always ready; ``bias`` writes a bias (address ``layer * max_rows +
    row``) and ``bias_rd`` reads one back while no row is finishing; ``half``, ``layer``, ``out_shift``, ``relu`` and ``sched`` (per lane, from
    ``model.transfer.lane_schedule``, or the fetch ports' ``sched``) hold for the layer.
    ``digits[k]`` is high in every cycle lane k multiplies a weight digit: a layer keeps lane k
    busy for exactly the cost of its chunk (``model.layer.cycle_model``).

    A row split between lanes k-1 and k (``sched[k].cont``, row ``sched[k].row``) finishes in
    two parts: lane k's part (its first) waits in lane k-1's carry register, and lane k-1 adds it
    to its own part (its last) before the sum goes on; a row spread over more lanes is passed
    down the chain the same way. Whole rows then go through a round-robin merge to the shared
    finishing pipeline: bias read, add and saturation to ``acc_bits``, ReLU, rounding shift,
    saturation to ``act_bits``."""

    def __init__(self, cfg):
        self._cfg = cfg
        self._lanes = cfg.lanes
        self.lane = [MacLane(cfg) for _ in range(self._lanes)]
        super().__init__({
            "i": In(stream.Signature(layouts.transfer_layout(cfg))).array(self._lanes),
            "o": Out(stream.Signature(layouts.mac_result(cfg))),
            "x": In(stream.Signature(layouts.act_write(cfg))),
            "bias": In(HostWritePort((cfg.bias_depth - 1).bit_length() or 1, cfg.acc_bits)),
            "bias_rd": In(HostReadPort((cfg.bias_depth - 1).bit_length() or 1, cfg.acc_bits)),
            "half": In(1),
            "layer": In(range(cfg.max_layers)),
            "out_shift": In(range(cfg.acc_bits)),
            "relu": In(1),
            "sched": In(data.ArrayLayout(layouts.schedule(cfg), self._lanes)),
            "digits": Out(self._lanes),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        n = self._lanes
        m.d.comb += self.x.ready.eq(1)
        x = self.x.payload
        parts = []
        for k, lane in enumerate(self.lane):
            m.submodules[f"lane{k}"] = lane
            wiring.connect(m, wiring.flipped(self.i[k]), lane.i)
            m.d.comb += self.digits[k].eq(lane.digit)
            m.d.comb += [lane.x_wr.en.eq(self.x.valid),
                         lane.x_wr.addr.eq(x.half * cfg.max_cols + x.column),
                         lane.x_wr.data.eq(x.value), lane.half.eq(self.half)]
            if k > 0:
                m.d.comb += lane.head.eq(self.sched[k])
            if k < n - 1:
                m.d.comb += lane.tail.eq(self.sched[k + 1])
            parts.append(stream.Signature(_row_sum(cfg)).create(path=(f"whole{k}",)))
        self._combine(m, parts)
        merged = stream.Signature(_row_sum(cfg)).create(path=("merged",))
        if n == 1:
            m.d.comb += [merged.valid.eq(parts[0].valid), merged.payload.eq(parts[0].payload),
                         parts[0].ready.eq(merged.ready)]
        else:
            self._merge(m, parts, merged)
        self._finish(m, merged)
        return m

    def _combine(self, m, parts):
        """Carry registers between neighbouring lanes: ``parts[k]`` carries lane k's whole
        rows (a split row leaves from the lowest lane that holds a part of it)."""
        cfg, n = self._cfg, self._lanes
        carry = [Signal(signed(psum_bits(cfg)), name=f"carry{k}") for k in range(n)]
        carry_valid = [Signal(name=f"carry{k}_valid") for k in range(n)]
        for k, lane in enumerate(self.lane):
            row, psum = lane.o.payload.row, lane.o.payload.psum
            head, tail = lane.o.payload.head, lane.o.payload.tail
            total = Signal(signed(psum_bits(cfg)), name=f"total{k}")
            m.d.comb += total.eq(psum + Mux(tail, carry[k], 0))
            ready = ~tail | carry_valid[k]           # the next lane's part has arrived
            with m.If(head):
                m.d.comb += lane.o.ready.eq(ready)
                with m.If(lane.o.valid & ready):
                    m.d.sync += [carry[k - 1].eq(total), carry_valid[k - 1].eq(1)]
            with m.Else():
                m.d.comb += [parts[k].valid.eq(lane.o.valid & ready),
                             parts[k].payload.row.eq(row), parts[k].payload.psum.eq(total),
                             lane.o.ready.eq(parts[k].ready & ready)]
            with m.If(lane.o.valid & lane.o.ready & tail):
                m.d.sync += carry_valid[k].eq(0)

    def _merge(self, m, parts, merged):
        # Each lane's results wait in a small FIFO, so a lane stalls on its own FIFO's level
        # (a register), never on the arbiter.
        fifos = []
        for k, part in enumerate(parts):
            fifo = SyncFIFO(width=len(Value.cast(part.payload)), depth=2)
            m.submodules[f"fifo{k}"] = fifo
            m.d.comb += [fifo.w_data.eq(part.payload), fifo.w_en.eq(part.valid),
                         part.ready.eq(fifo.w_rdy)]
            fifos.append(fifo)
        # A tree of registered round-robin nodes, at most 4 inputs each, so no path crosses
        # more than four lanes' worth of logic (on a 16-lane array the lanes spread over the die).
        width = len(Value.cast(merged.payload))
        level = [(f.r_rdy, f.r_data, f.r_en) for f in fifos]
        depth = 0
        while len(level) > 4:
            nxt = []
            for g in range(0, len(level), 4):
                valid = Signal(name=f"node{depth}_{g // 4}_valid")
                payload = Signal(width, name=f"node{depth}_{g // 4}_payload")
                ready = Signal(name=f"node{depth}_{g // 4}_ready")
                _rr_node(m, level[g:g + 4], valid, payload, ready, f"node{depth}_{g // 4}")
                nxt.append((valid, payload, ready))
            level, depth = nxt, depth + 1
        _rr_node(m, level, merged.valid, Value.cast(merged.payload), merged.ready, "root")

    def _finish(self, m, merged):
        """Bias, saturation to ``acc_bits`` (overflow), ReLU, ``rshift_round`` by ``out_shift``
        and saturation to ``act_bits``, one row per cycle, shared by all lanes: seven stages with
        the output's backpressure."""
        cfg = self._cfg
        accb = cfg.acc_bits
        lo, hi = signed_range(accb)
        adv = ~self.o.valid | self.o.ready
        m.d.comb += merged.ready.eq(adv)
        m.submodules.bbuf = bbuf = memory.Memory(shape=signed(accb), depth=cfg.bias_depth,
                                                 init=[])
        bw, br = bbuf.write_port(), bbuf.read_port()
        m.d.comb += [bw.en.eq(self.bias.en), bw.addr.eq(self.bias.addr),
                     bw.data.eq(self.bias.data), br.en.eq(adv),
                     self.bias_rd.data.eq(br.data)]
        # The host reads a bias while no row is in the finishing stage.
        with m.If(merged.valid):
            m.d.comb += br.addr.eq(self.layer * cfg.max_rows + merged.payload.row)
        with m.Else():
            m.d.comb += br.addr.eq(self.bias_rd.addr)
        # Half an LSB of the output shift; out_shift holds for a layer, so it is registered
        # here, off the datapath.
        half = Signal(signed(accb + 1))
        m.d.sync += half.eq((Const(1, accb + 1) << self.out_shift) >> 1)
        b_valid, b_ = Signal(), Signal(_row_sum(cfg))
        # The bias is registered out of the block RAM, and the exact sum is registered before
        # its saturation: a block RAM's output and a 33-bit add and compare do not share a cycle.
        c_valid, c_row = Signal(), Signal(cfg.row_bits)
        c_psum, c_bias = Signal(signed(psum_bits(cfg))), Signal(signed(accb))
        d_valid, d_row = Signal(), Signal(cfg.row_bits)
        d_exact = Signal(signed(max(accb, psum_bits(cfg)) + 1))
        a_valid, a_row, a_acc, a_ovf = Signal(), Signal(cfg.row_bits), Signal(signed(accb)), \
            Signal()
        q_valid, q_sum = Signal(), Signal(signed(accb + 1))
        q_row, q_acc, q_ovf = Signal(cfg.row_bits), Signal(signed(accb)), Signal()
        s_valid, s_val = Signal(), Signal(signed(accb + 1))
        s_row, s_acc, s_ovf = Signal(cfg.row_bits), Signal(signed(accb)), Signal()
        alo, ahi = signed_range(cfg.act_bits)
        with m.If(adv):
            m.d.sync += [b_valid.eq(merged.valid), b_.eq(merged.payload),
                         c_valid.eq(b_valid), c_row.eq(b_.row), c_psum.eq(b_.psum),
                         c_bias.eq(br.data),
                         d_valid.eq(c_valid), d_row.eq(c_row), d_exact.eq(c_psum + c_bias),
                         a_valid.eq(d_valid), a_row.eq(d_row),
                         a_acc.eq(Mux(d_exact > hi, hi, Mux(d_exact < lo, lo, d_exact))),
                         a_ovf.eq((d_exact > hi) | (d_exact < lo)),
                         q_valid.eq(a_valid), q_row.eq(a_row), q_acc.eq(a_acc),
                         q_ovf.eq(a_ovf),
                         q_sum.eq(Mux(self.relu & (a_acc < 0), 0, a_acc) + half),
                         s_valid.eq(q_valid), s_row.eq(q_row), s_acc.eq(q_acc),
                         s_ovf.eq(q_ovf), s_val.eq(q_sum >> self.out_shift),
                         self.o.valid.eq(s_valid), self.o.payload.row.eq(s_row),
                         self.o.payload.acc.eq(s_acc), self.o.payload.overflow.eq(s_ovf),
                         self.o.payload.value.eq(Mux(s_val > ahi, ahi,
                                                     Mux(s_val < alo, alo, s_val)))]


def _digit_times(digit, x, D):
    """``digit * x`` for a (D+1)-bit two's-complement digit, as D+1 shifted copies of ``x``
    added (the top bit with negative weight): small LUT logic next to the lane, where a DSP
    block would cost a long route on a large array."""
    total = -Mux(digit[D], x << D, 0)
    for i in range(D):
        total = total + Mux(digit[i], x << i, 0)
    return total


def _rr_node(m, inputs, valid, payload, ready, name):
    """A registered round-robin merge of ``inputs`` (``[(valid, payload, take), ...]``, where
    ``take`` is driven here) into the register ``valid``/``payload``, with a skid register
    behind it: an input is taken whenever the skid register is empty, so ``take`` depends on
    registers and the inputs' valids only, never on ``ready`` (the backpressure of a 16-lane
    array's merge tree does not cross the die in one cycle), and the node still passes one
    transfer a cycle. `mask` marks the inputs after the last one served; the grant is the lowest
    requesting input in the mask, else the lowest one, isolated as a one-hot (``x & -x``); the
    payload is an AND-OR of the granted input's data."""
    n = len(inputs)
    req = Cat(*[v for v, _, _ in inputs])
    mask, sel, onehot = Signal(n, name=f"{name}_mask"), Signal(n, name=f"{name}_sel"), \
        Signal(n, name=f"{name}_grant")
    skid_valid, skid = Signal(name=f"{name}_skid_valid"), Signal.like(payload,
                                                                     name=f"{name}_skid")
    m.d.comb += [sel.eq(Mux((req & mask).any(), req & mask, req)),
                 onehot.eq(sel & (~sel + 1))]
    load = req.any() & ~skid_valid
    data_, next_mask = 0, 0
    for k, (_, data_k, take) in enumerate(inputs):
        m.d.comb += take.eq(load & onehot[k])
        data_ = data_ | Mux(onehot[k], data_k, 0)
        next_mask = next_mask | Mux(onehot[k], ((1 << n) - 1) & ~((2 << k) - 1), 0)
    with m.If(load):
        m.d.sync += mask.eq(next_mask)
    with m.If(~valid | ready):                 # the output register is free this cycle
        with m.If(skid_valid):
            m.d.sync += [valid.eq(1), payload.eq(skid), skid_valid.eq(0)]
        with m.Else():
            m.d.sync += valid.eq(load)
            with m.If(load):
                m.d.sync += payload.eq(data_)
    with m.Elif(load):                         # the output waits: the taken input waits behind it
        m.d.sync += [skid_valid.eq(1), skid.eq(data_)]
