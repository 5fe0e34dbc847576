"""A fetch port's walker: one layer share of the active layout, one surviving weight per cycle.

Port p walks from its split descriptor (port 0 from the layer's start) to the next port's (the
last port to the layer's end), so the ports carry equal MAC cost. It keeps a window of the
metadata bit string, refilled one word per cycle. Every cycle it counts the run of pruned codes at
the window's start (up to ``Z = (LOOK * W - longest code) / pruned-code length`` codes: 61 for
unary codes in 32-bit words) and decodes the code after the run, so a surviving weight costs one
cycle and a run of up to Z pruned codes costs nothing more; the run may cross into the next row.
The metadata words and every zone's weights come in order from a ``WordPrefetch`` each, over read
ports the walkers share (see ``prefetch``); the output stage picks the weight out of its zone's
prefetched word. A weight's ``last`` bit is known only when the walker finds the next event
(another weight, a row end, the end of its share), so the output stage holds one transfer back.

Throughput: one surviving weight per cycle, plus a cycle for an all-pruned row or a pruned run
longer than Z. Latency from ``go`` to the first transfer: about ``fetch_ports + 6`` cycles (the
first turn on the shared read ports). Backpressure on ``o`` stalls this walker only: while
``o`` is stalled every register holds, the prefetchers keep the words they hold.

Stages: the tokenizer turns the window into tokens (pruned run, code); the bookkeeping stage
turns tokens into events (weight, row marker, end) with rows, columns and the end of the share;
the output stage turns events into transfers.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import layouts
from .layouts import log2, read_ratio, split_layout, table_layout
from .prefetch import WordPrefetch

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
    """One fetch port's walker (see the module docs).

    Parameters
    ----------
    cfg : PSEConfig

    Members
    -------
    go : In(1)                Start a walk; ``tab``, ``bank``, ``first`` and ``end`` hold
                              from then until ``busy`` falls.
    tab : In(table layout)    The layer's table entry.
    bank : In(1)              The active bank.
    first : In(split layout)  Where the share starts (all zero for port 0).
    end : In(pos)             Flat index where the share ends.
    busy : Out(1)             A walk is in progress or its last transfer not yet taken.
    o : Out(stream)           Tagged transfers (``layouts.transfer_layout``).
    sched : Out(schedule)     The share's first row and whether it continues the previous
                              port's (from ``first``, held until the next ``go``).
    grant : In(1)             This walker's turn on the shared read ports.
    meta : In(ReadPort)       Metadata read port (physical words).
    zone : In(ReadPort) x n   Zone read ports (physical words), one per class.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        n, W, R = len(cfg.precisions), cfg.zone_word_bits, read_ratio(cfg)
        super().__init__({
            "go": In(1), "tab": In(table_layout(cfg)), "bank": In(1),
            "first": In(split_layout(cfg)), "end": In(cfg.pos_bits),
            "busy": Out(1),
            "o": Out(stream.Signature(layouts.transfer_layout(cfg))),
            "sched": Out(layouts.schedule(cfg)),
            "grant": In(1),
            "meta": In(memory.ReadPort.Signature(
                addr_width=log2(2 * cfg.meta_depth // R), shape=R * W)),
            **{f"zone{k}": In(memory.ReadPort.Signature(
                addr_width=log2(2 * d // R), shape=R * W)) for k, d in enumerate(cfg.zone_depths)}})
        self.zone = [getattr(self, f"zone{k}") for k in range(n)]

    def elaborate(self, platform):
        cfg, tab, first = self.cfg, self.tab, self.first
        n, W, R = len(cfg.precisions), cfg.zone_word_bits, read_ratio(cfg)
        per = [cfg.per_word(b) for b in cfg.precisions]
        len0, maxlen = cfg.code_length(0), cfg.max_code_length
        look = LOOK * W                        # window bits one step examines
        Z = (look - maxlen) // len0
        m = Module()

        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        start = Signal()

        # -- prefetchers: the metadata words and every zone's weights, in order --------------
        meta_pf = WordPrefetch(len(self.meta.addr), R * W, log2(R))
        zone_pf = [WordPrefetch(len(self.zone[k].addr), R * W, log2(R * per[k]))
                   for k in range(n)]
        m.submodules.meta_pf = meta_pf
        wiring.connect(m, meta_pf.port, wiring.flipped(self.meta))
        first_bit = Signal(cfg.meta_index_bits + 1)
        m.d.comb += first_bit.eq(tab.meta_base + first.meta)
        m.d.comb += [meta_pf.start.eq(start), meta_pf.grant.eq(self.grant),
                     meta_pf.first.eq(Mux(self.bank, cfg.meta_depth, 0)
                                      + (first_bit >> log2(W)))]
        for k, pf in enumerate(zone_pf):
            m.submodules[f"zone{k}_pf"] = pf
            wiring.connect(m, pf.port, wiring.flipped(self.zone[k]))
            base = Mux(self.bank, cfg.zone_depths[k], 0) + tab.zone_base[k]
            m.d.comb += [pf.start.eq(start), pf.grant.eq(self.grant),
                         pf.first.eq((base << log2(per[k])) + first.index[k])]

        row, col = Signal(cfg.row_bits + 1), Signal(cfg.col_bits + 1)
        left = Signal(cfg.pos_bits)
        row_has = Signal()                     # the walk has sent a weight of this row
        unres = Signal()                       # a sent weight still waits for its last bit
        # Metadata window, bit 0 = the next code. It is kept a word fuller than a step needs, so a
        # step that takes a long run (up to ``look`` bits) does not starve the next one.
        buf = Signal(look + 3 * W)
        count = Signal(range(look + 3 * W + 1))
        inflight, aligned = Signal(), Signal()
        meta_word = Signal(W)                  # the word taken from the metadata prefetcher
        drop = Signal(range(W))

        # Events towards the output stage. MARK with ``resolve`` is the R event: the held
        # transfer ends its row, no marker.
        WEIGHT, MARK, DONE = 1, 2, 3
        ev = Signal(data.StructLayout({"kind": 2, "row": unsigned(cfg.row_bits + 1),
                                       "col": unsigned(cfg.col_bits), "code": cfg.code_bits,
                                       "slot": 1, "sel": range(max(per) * R)}))
        ev_valid, resolve = Signal(), Signal()
        # The output stage reads a taken weight's slot until it moves the weight on.
        for k, pf in enumerate(zone_pf):
            m.d.comb += [pf.hold.eq(ev_valid & ~en & (ev.kind == WEIGHT) & (ev.code == k + 1)),
                         pf.hold_slot.eq(ev.slot)]

        # -- tokenizer: from the registered window, one token per cycle ------------------
        # A token is (pruned codes to skip, the code after them): the run at the window's start
        # (a balanced priority encoder over Z slots) and the surviving code that ends it, or
        # (Z, 0) when the window holds no surviving code. Only the bit position loops here;
        # rows and the end of the share are the bookkeeping stage's, one register later.
        alive = Cat(buf[t * len0:(t + 1) * len0].any() for t in range(Z))
        vis, first_alive = _first_set(m, alive, "slot")
        r = Signal(range(Z + 1))
        m.d.comb += r.eq(Mux(vis, first_alive, Z))
        # A metadata word is registered out of the prefetcher (aligned to the walk's first code
        # if it is the first word), then enters the window at ``count``, beside the decode.
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
        # A surviving head token waits for its zone's word.
        have = Array([Const(1)] + [pf.ok for pf in zone_pf])[tok_code]
        rdiff = Signal(range(Z + 1))
        m.d.comb += rdiff.eq(sk - rowrem)

        def emit(kind, erow, ecol=0, code=0):
            m.d.sync += [ev_valid.eq(1), ev.kind.eq(kind), ev.row.eq(erow), ev.col.eq(ecol),
                         ev.code.eq(code)]

        def weight(erow, ecol):
            emit(WEIGHT, erow, ecol, tok_code)
            with m.Switch(tok_code):
                for k, pf in enumerate(zone_pf):
                    with m.Case(k + 1):
                        m.d.comb += pf.advance.eq(1)
                        m.d.sync += [ev.slot.eq(pf.slot), ev.sel.eq(pf.sel)]
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
                    m.next = "START"
            with m.State("START"):
                m.d.comb += start.eq(1)
                m.d.sync += [row.eq(first.row), col.eq(first.col),
                             rowrem.eq(tab.cols - first.col), left.eq(self.end - first.pos),
                             self.sched.row.eq(first.row), self.sched.cont.eq(first.cont),
                             drop.eq(first_bit[:log2(W)]), aligned.eq(0),
                             row_has.eq(0), unres.eq(0)]
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(en & (left == 0)):
                    emit(DONE, row)
                    m.next = "DRAIN"
                with m.Elif(en & (level != 0) & have):
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
        for pf in [meta_pf] + zone_pf:
            m.d.comb += pf.run.eq(running)

        # -- token register and window ----------------------------------------------------
        with m.If(start):
            m.d.sync += [level.eq(0), count.eq(0), buf.eq(0), inflight.eq(0),
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
            issue = Signal()
            m.d.comb += issue.eq(running & meta_pf.ok
                                 & (count + Mux(inflight, W, 0) + Mux(stage_valid, W, 0)
                                    <= look + 2 * W))
            m.d.comb += meta_pf.advance.eq(issue)
            words = meta_pf.slots[meta_pf.slot]
            m.d.sync += meta_word.eq(Array(words[j * W:(j + 1) * W] for j in range(R))
                                     [meta_pf.sel] if R > 1 else words)
            m.d.sync += [stage_valid.eq(inflight),
                         stage_word.eq(Mux(aligned, meta_word, meta_word >> drop)),
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

        # -- output stage: pick the element, hold one transfer until its last bit is known --
        pend = Signal(layouts.transfer_layout(cfg))
        pend_valid = Signal()
        value = Signal(signed(cfg.weight_bits))
        with m.Switch(ev.code):
            for k, b in enumerate(cfg.precisions):
                with m.Case(k + 1):
                    word = zone_pf[k].slots[ev.slot]
                    elems = Array(word[e * b:(e + 1) * b].as_signed() for e in range(R * per[k]))
                    m.d.comb += value.eq(elems[ev.sel[:log2(R * per[k])]] if R * per[k] > 1
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
