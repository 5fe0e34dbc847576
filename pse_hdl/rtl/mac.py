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
digit is in, the exact product ``v x`` is shifted by the zone scale and added to the accumulator
with saturation (``acc_bits``, sticky overflow), starting from the row's bias: the golden
model's rule (:mod:`pse_hdl.model.layer`), in column order, one weight at a time. When the row's
last transfer has been added, ReLU (per layer) and the requantization
``sat(rshift_round(acc, out_shift))`` give the output. Pipeline: fetch (the activation and bias
reads), digits, multiplier inputs, partial products, scale, accumulate; a lane stalls as a whole
only when its output FIFO is full. The requantization (ReLU, rounding, shift, saturation: three
stages) is shared by all lanes after the merge, since at most one row finishes per cycle there.

**Scheduling.** Each lane has its own input stream carrying whole rows; the feeder (the fetch
unit) gives each row to the lane that frees first by the rows' costs, the golden model's
:func:`~pse_hdl.model.layer.schedule_rows`. Lanes share nothing but the output, which a
round-robin arbiter merges into a registered output (rows come out in completion order, each
tagged with its row).

**Operands.** The activation vector is written once per sample through ``x`` into a buffer that
every lane reads; it is replicated per lane (a small block RAM each) so all lanes read every
cycle. Biases are written through ``bias`` into a per-lane copy the same way.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..model.fixed import signed_range
from . import layouts
from .ric import HostWritePort

__all__ = ["MacLane", "MacArray"]


def _lane_ports(cfg):
    return {
        "i": In(stream.Signature(layouts.transfer_layout(cfg))),
        "o": Out(stream.Signature(_row_sum(cfg))),
        "x_wr": In(HostWritePort(cfg.col_bits, cfg.act_bits)),
        "b_wr": In(HostWritePort(cfg.row_bits, cfg.acc_bits)),
    }


def _row_sum(cfg):
    """A lane's finished row: the saturated accumulator and its overflow flag."""
    return data.StructLayout({"row": unsigned(cfg.row_bits), "acc": signed(cfg.acc_bits),
                              "overflow": 1})


class MacLane(wiring.Component):
    """One lane. ``i`` carries whole rows (tagged transfers); ``o`` one accumulator per row."""

    def __init__(self, cfg):
        if cfg.mac_digit_bits != 4:
            from ..config import ConfigError
            self._MustUse__silence = True
            raise ConfigError(f"the MAC array is built for mac_digit_bits=4, not "
                              f"{cfg.mac_digit_bits!r}")
        self._cfg = cfg
        super().__init__(_lane_ports(cfg))

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        wb, ab, accb = cfg.weight_bits, cfg.act_bits, cfg.acc_bits
        D = cfg.mac_digit_bits
        prod_bits = wb + ab
        lo, hi = signed_range(accb)

        m.submodules.xbuf = xbuf = memory.Memory(shape=signed(ab), depth=cfg.max_cols, init=[])
        m.submodules.bbuf = bbuf = memory.Memory(shape=signed(accb), depth=cfg.max_rows, init=[])
        xw, bw = xbuf.write_port(), bbuf.write_port()
        xr, br = xbuf.read_port(), bbuf.read_port()
        m.d.comb += [xw.en.eq(self.x_wr.en), xw.addr.eq(self.x_wr.addr),
                     xw.data.eq(self.x_wr.data), bw.en.eq(self.b_wr.en),
                     bw.addr.eq(self.b_wr.addr), bw.data.eq(self.b_wr.data)]

        # Digits per code: 0 for pruned (the row-end marker), ceil(b / D) otherwise.
        ndig_of = [0] + [-(-b // D) for b in cfg.precisions]
        adv = ~self.o.valid | self.o.ready

        # -- fetch: the transfer waits here while its activation and bias are read. --------
        f_valid, f_first, open_row = Signal(), Signal(), Signal()
        f = Signal(layouts.transfer_layout(cfg))
        # -- digits --------------------------------------------------------------------------
        d_valid, d_first, d_last = Signal(), Signal(), Signal()
        d_left = Signal(range(max(ndig_of) + 1))
        d_val = Signal(unsigned(wb))                 # the value, top digit aligned to bit wb
        d_x, d_bias = Signal(signed(ab)), Signal(signed(accb))
        d_shift, d_row = Signal(range(wb)), Signal(unsigned(cfg.row_bits))
        d_sign_digit = Signal()                      # the next digit is the (signed) top one

        d_done = d_valid & (d_left <= 1)
        d_accept = ~d_valid | d_done
        f_accept = ~f_valid | d_accept
        take = self.i.valid & self.i.ready
        m.d.comb += [self.i.ready.eq(adv & f_accept),
                     xr.en.eq(take), xr.addr.eq(self.i.payload.column),
                     br.en.eq(take), br.addr.eq(self.i.payload.row)]

        digit = Signal(signed(D + 1))
        top = d_val[wb - D:]
        m.d.comb += digit.eq(Mux(d_sign_digit, top.as_signed(), top))
        # E: the partial product of each digit is registered (a DSP or LUT multiplier), then
        # folded in: P = 16 P + d x, so the loop carries an adder only.
        g_valid, g_first_digit, g_last_digit = Signal(), Signal(), Signal()
        g_digit, g_x = Signal(signed(D + 1)), Signal(signed(ab))
        g_first, g_last = Signal(), Signal()
        g_shift, g_row = Signal(range(wb)), Signal(unsigned(cfg.row_bits))
        g_bias = Signal(signed(accb))
        e_valid, e_first_digit, e_last_digit = Signal(), Signal(), Signal()
        e_pp = Signal(signed(D + 1 + ab))
        e_p = Signal(signed(prod_bits))
        e_first, e_last = Signal(), Signal()
        e_shift, e_row = Signal(range(wb)), Signal(unsigned(cfg.row_bits))
        e_bias = Signal(signed(accb))
        p_next = Signal(signed(prod_bits))
        m.d.comb += p_next.eq(Mux(e_first_digit, e_pp, (e_p << D) + e_pp))

        a1_valid, a1_first, a1_last = Signal(), Signal(), Signal()
        a1_p, a1_shift = Signal(signed(prod_bits)), Signal(range(wb))
        a1_bias, a1_row = Signal(signed(accb)), Signal(unsigned(cfg.row_bits))
        a2_valid, a2_first, a2_last = Signal(), Signal(), Signal()
        # A zone scale never exceeds weight_bits - b (docs/SPEC.md, section 5), so the scaled
        # weight fits weight_bits and the scaled product fits weight_bits + act_bits.
        a2_full = Signal(signed(prod_bits))
        a2_bias, a2_row = Signal(signed(accb)), Signal(unsigned(cfg.row_bits))
        acc, ovf = Signal(signed(accb)), Signal()

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
                                 d_x.eq(xr.data), d_bias.eq(br.data),
                                 d_first.eq(f_first), d_last.eq(f.last), d_shift.eq(f.shift),
                                 d_row.eq(f.row)]
            with m.Elif(d_valid):
                m.d.sync += [d_left.eq(d_left - 1), d_val.eq(d_val << D), d_sign_digit.eq(0)]
            # the digit and its activation are registered at the multiplier's inputs, the
            # partial product at its output (a DSP block runs at full speed that way)
            m.d.sync += [g_valid.eq(d_valid), g_digit.eq(Mux(d_left == 0, 0, digit)),
                         g_x.eq(d_x), g_first_digit.eq(d_sign_digit), g_last_digit.eq(d_done),
                         g_first.eq(d_first), g_last.eq(d_last), g_shift.eq(d_shift),
                         g_row.eq(d_row), g_bias.eq(d_bias)]
            m.d.sync += [e_valid.eq(g_valid), e_pp.eq(_digit_times(g_digit, g_x, D)),
                         e_first_digit.eq(g_first_digit), e_last_digit.eq(g_last_digit),
                         e_first.eq(g_first), e_last.eq(g_last), e_shift.eq(g_shift),
                         e_row.eq(g_row), e_bias.eq(g_bias)]
            with m.If(e_valid):
                m.d.sync += e_p.eq(p_next)
            # scale
            m.d.sync += [a1_valid.eq(e_valid & e_last_digit), a1_p.eq(p_next),
                         a1_shift.eq(e_shift), a1_first.eq(e_first), a1_last.eq(e_last),
                         a1_bias.eq(e_bias), a1_row.eq(e_row)]
            m.d.sync += [a2_valid.eq(a1_valid), a2_full.eq(a1_p << a1_shift),
                         a2_first.eq(a1_first), a2_last.eq(a1_last), a2_bias.eq(a1_bias),
                         a2_row.eq(a1_row)]
            # accumulate, with saturation after every weight: the sum leaves the accumulator's
            # range exactly when its bits from accb-1 up are not all equal.
            base = Mux(a2_first, a2_bias, acc)
            width = max(accb, prod_bits) + 1
            total = Signal(signed(width))
            m.d.comb += total.eq(base + a2_full)
            top = total[accb - 1:]
            over = ~((top == 0) | (top == (1 << (width - accb + 1)) - 1))
            sat = Signal(signed(accb))
            m.d.comb += sat.eq(Mux(over, Mux(total[-1], lo, hi), total[:accb]))
            new_ovf = Mux(a2_first, 0, ovf) | over
            with m.If(a2_valid):
                m.d.sync += [acc.eq(sat), ovf.eq(new_ovf)]
            m.d.sync += [self.o.valid.eq(a2_valid & a2_last), self.o.payload.row.eq(a2_row),
                         self.o.payload.acc.eq(sat), self.o.payload.overflow.eq(new_ovf)]
        return m


class MacArray(wiring.Component):
    """``lanes`` lanes with their own input streams ``i[k]``, shared operand writes and layer
    registers, and one output stream ``o`` merged round-robin.

    ``x`` writes the activation vector (column order, ``last`` ends it) into every lane's
    buffer; ``bias`` writes a row's bias; ``out_shift`` and ``relu`` hold for the layer."""

    def __init__(self, cfg, lanes=None):
        self._cfg = cfg
        self._lanes = lanes or cfg.lanes
        self.lane = [MacLane(cfg) for _ in range(self._lanes)]
        super().__init__({
            "i": In(stream.Signature(layouts.transfer_layout(cfg))).array(self._lanes),
            "o": Out(stream.Signature(layouts.mac_result(cfg))),
            "x": In(stream.Signature(layouts.activation(cfg))),
            "bias": In(HostWritePort(cfg.row_bits, cfg.acc_bits)),
            "out_shift": In(range(cfg.acc_bits)),
            "relu": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        col = Signal(range(cfg.max_cols))
        m.d.comb += self.x.ready.eq(1)
        with m.If(self.x.valid):
            m.d.sync += col.eq(Mux(self.x.payload.last | (col == cfg.max_cols - 1), 0,
                                   col + 1))
        for k, lane in enumerate(self.lane):
            m.submodules[f"lane{k}"] = lane
            wiring.connect(m, wiring.flipped(self.i[k]), lane.i)
            m.d.comb += [lane.x_wr.en.eq(self.x.valid), lane.x_wr.addr.eq(col),
                         lane.x_wr.data.eq(self.x.payload.value),
                         lane.b_wr.en.eq(self.bias.en), lane.b_wr.addr.eq(self.bias.addr),
                         lane.b_wr.data.eq(self.bias.data)]
        n = self._lanes
        merged = stream.Signature(_row_sum(cfg)).create(path=("merged",))
        if n == 1:
            lane = self.lane[0]
            m.d.comb += [merged.valid.eq(lane.o.valid), merged.payload.eq(lane.o.payload),
                         lane.o.ready.eq(merged.ready)]
        else:
            self._merge(m, merged)
        self._requantize(m, merged)
        return m
        return m
        # Round-robin merge: the lane after the last one served has priority.
        last = Signal(range(n))
        grant = Signal(range(n))
        any_valid = Signal()
        for off in reversed(range(1, n + 1)):
            k = Signal(range(n), name=f"cand{off}")
            m.d.comb += k.eq((last + off) % n)
            with m.If(Cat(*[l.o.valid for l in self.lane]).bit_select(k, 1)):
                m.d.comb += [grant.eq(k), any_valid.eq(1)]
        for k, lane in enumerate(self.lane):
            m.d.comb += lane.o.ready.eq(self.o.ready & any_valid & (grant == k))
            with m.If(grant == k):
                m.d.comb += self.o.payload.eq(lane.o.payload)
        m.d.comb += self.o.valid.eq(any_valid)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += last.eq(grant)
        return m


    def _merge(self, m, merged):
        # Each lane's results wait in a small FIFO, so a lane stalls on its own FIFO's level
        # (a register), never on the arbiter.
        fifos = []
        for k, lane in enumerate(self.lane):
            fifo = SyncFIFO(width=len(Value.cast(lane.o.payload)), depth=2)
            m.submodules[f"fifo{k}"] = fifo
            m.d.comb += [fifo.w_data.eq(lane.o.payload), fifo.w_en.eq(lane.o.valid),
                         lane.o.ready.eq(fifo.w_rdy)]
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

    def _requantize(self, m, merged):
        """ReLU, ``rshift_round`` by ``out_shift`` and saturation to ``act_bits``, one row per
        cycle, shared by all lanes: three stages with the output's backpressure."""
        cfg = self._cfg
        accb = cfg.acc_bits
        adv = ~self.o.valid | self.o.ready
        m.d.comb += merged.ready.eq(adv)
        # Half an LSB of the output shift; out_shift holds for a layer, so it is registered
        # here, off the datapath.
        half = Signal(signed(accb + 1))
        m.d.sync += half.eq((Const(1, accb + 1) << self.out_shift) >> 1)
        q_valid, q_sum, q = Signal(), Signal(signed(accb + 1)), Signal(_row_sum(cfg))
        s_valid, s_val, s_ = Signal(), Signal(signed(accb + 1)), Signal(_row_sum(cfg))
        alo, ahi = signed_range(cfg.act_bits)
        with m.If(adv):
            m.d.sync += [q_valid.eq(merged.valid), q.eq(merged.payload),
                         q_sum.eq(Mux(self.relu & (merged.payload.acc < 0), 0,
                                      merged.payload.acc) + half),
                         s_valid.eq(q_valid), s_.eq(q), s_val.eq(q_sum >> self.out_shift),
                         self.o.valid.eq(s_valid), self.o.payload.row.eq(s_.row),
                         self.o.payload.acc.eq(s_.acc), self.o.payload.overflow.eq(s_.overflow),
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
    ``take`` is driven here) into the register ``valid``/``payload``, which is loaded whenever it
    is free or ``ready`` takes it. `mask` marks the inputs after the last one served; the grant is
    the lowest requesting input in the mask, else the lowest one, isolated as a one-hot
    (``x & -x``); the payload is an AND-OR of the granted input's data."""
    n = len(inputs)
    req = Cat(*[v for v, _, _ in inputs])
    mask, sel, onehot = Signal(n, name=f"{name}_mask"), Signal(n, name=f"{name}_sel"), \
        Signal(n, name=f"{name}_grant")
    m.d.comb += [sel.eq(Mux((req & mask).any(), req & mask, req)),
                 onehot.eq(sel & (~sel + 1))]
    free = ~valid | ready
    load = req.any() & free
    with m.If(free):
        m.d.sync += valid.eq(req.any())
    data_, next_mask = 0, 0
    for k, (_, data_k, take) in enumerate(inputs):
        m.d.comb += take.eq(load & onehot[k])
        data_ = data_ | Mux(onehot[k], data_k, 0)
        next_mask = next_mask | Mux(onehot[k], ((1 << n) - 1) & ~((2 << k) - 1), 0)
    with m.If(load):
        m.d.sync += [payload.eq(data_), mask.eq(next_mask)]
