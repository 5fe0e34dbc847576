"""The zoned memory's fetch unit, one walker per port.

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
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import layouts
from .zone_layouts import Target, banked, geometry, log2, split_layout

__all__ = ["FetchWalker"]

# Metadata words a walker step examines: 2 lets one step skip up to 61 pruned unary codes
# (32-bit words), so long pruned runs on sparse maps cost no extra cycle.
LOOK = 2


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




class FetchWalker(wiring.Component):
    """One fetch port's walker (see the module docs): start at split descriptor ``p``, stop at
    ``p + 1``; one surviving weight per cycle. ``en`` is low while the output is stalled; every
    register and read port of the walker holds then."""

    def __init__(self, cfg, p, tab, tab_now, layer, bank, go_layer, go_bank):
        self.cfg, self.p, self.tab, self.tab_now = cfg, p, tab, tab_now
        self.layer, self.bank, self.go_layer, self.go_bank = layer, bank, go_layer, go_bank
        n, W = len(cfg.precisions), cfg.zone_word_bits
        geo = geometry(cfg)
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
        geo = geometry(cfg)
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
            m.d.comb += self.zone_addr[k].eq(banked(self.bank, tab.zone_base[k]
                                                     + (idx[k] >> log2(per[k])),
                                                     cfg.zone_depth))
        m.d.comb += self.meta_addr.eq(banked(self.bank, mword, cfg.meta_depth))

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
                            m.d.sync += ev.sel.eq(idx[k][:log2(per[k])])
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
                    m.d.comb += self.split_addr.eq(banked(self.go_bank, self.go_layer * P + p,
                                                           geo[Target.SPLIT]))
                    m.next = "START"
            with m.State("START"):
                # Split p and the table entry are on the read ports: read the first metadata
                # word, ask for split p + 1.
                m.d.comb += self.split_addr.eq(banked(self.bank, self.layer * P + p + 1,
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
                m.d.comb += self.meta_addr.eq(banked(self.bank, first_bit >> log2(W),
                                                      cfg.meta_depth))
                m.d.sync += [mword.eq((first_bit >> log2(W)) + 1),
                             drop.eq(first_bit[:log2(W)]), aligned.eq(0),
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
                    m.d.comb += value.eq(elems[ev.sel[:log2(per[k])]] if per[k] > 1
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
