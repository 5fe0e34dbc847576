"""A fetch port's walker: one layer share of the active layout, one surviving weight per cycle.

Port p walks from its split descriptor (port 0 from the layer's start) to the next port's (the
last port to the layer's end), so the ports carry equal MAC cost. Its tokenizer (``tokenizer``)
decodes the metadata a word at a time and hands out tokens: a run of pruned codes and the
surviving code after it (a run may span up to two metadata words, ``Z = (2W - 1) / pruned-code
length`` codes: 63 unary codes in 32-bit words), so a surviving weight costs one cycle and a
stretch of a word without one costs a cycle; the run may cross into the next row.
The metadata words and every zone's weights come in order from a ``WordPrefetch`` each, over read
ports the walkers share (see ``prefetch``); a zone's prefetcher picks its current weight out of
the prefetched word and pushes it into an ``ElementQueue``, whose head the walker takes: only
registers lie between the walker's decision and the prefetcher by the zone's block RAMs. A weight's
``last`` bit is known only when the walker finds the next event (another weight, a row end, the
end of its share), so the output stage holds one transfer back.

Throughput: one surviving weight per cycle, plus a cycle for an all-pruned row or a metadata
word without a surviving code. Latency from ``go`` to the first transfer: about
``fetch_ports + 6`` cycles (the first turn on the shared read ports). Backpressure on ``o``
stalls this walker only: a transfer made while ``o`` is stalled waits in the output stage's
second register, and from the next cycle until it has left every register holds, the
prefetchers keep the words they hold (the stage's ``en``, a register, is all the walker sees
of ``o.ready``).

Stages, a register apart: the tokenizer (``tokenizer``) turns the metadata into tokens (pruned
run, code); the bookkeeping stage (here) turns tokens into events (weight, row marker, end) with
rows, columns and the end of the share, and takes each weight from its zone's queue; the
output stage (``output``) turns events into transfers.
"""

from types import SimpleNamespace

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import layouts
from .layouts import SHARED_READ_LATENCY, log2, read_ratio, split_layout, table_layout
from .output import DONE, MARK, WEIGHT, TransferOutput
from .prefetch import ElementQueue, WordPrefetch
from .kept import KeptTokens, kept_addr_width, kept_port
from .tokenizer import Tokenizer, max_run

__all__ = ["FetchWalker"]


def saturate(x, n):
    """``x`` (not negative) in ``n`` bits, saturated at ``2**n - 1``."""
    return Mux(x[n:] != 0, (1 << n) - 1, x[:n])


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
    kept : In(ReadPort)       With ``input_masks``: the kept-column table's shared read port
                              (physical words, in turns as ``meta``), and ``kept_base`` the
                              layer's first entry in it (a masked layer's tokens come from
                              there, ``kept``).
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
                addr_width=log2(2 * d // R), shape=R * W)) for k, d in enumerate(cfg.zone_depths)},
            **({"kept": In(kept_port(cfg)),
                "kept_base": In(kept_addr_width(cfg))} if cfg.input_masks else {})})
        self.zone = [getattr(self, f"zone{k}") for k in range(n)]

    def elaborate(self, platform):
        cfg, tab, first = self.cfg, self.tab, self.first
        m = Module()
        # ``running``: in state RUN, kept as a register of its own (the tokenizer's, the
        # prefetchers' and the queues' enables all start from it).
        start, running = Signal(), Signal()
        tok, out, queues = self._stages(m, start, running)
        en = out.en
        ev, ev_valid, resolve = out.ev, out.ev_valid, out.resolve

        # -- bookkeeping: rows, columns, the end of the share ------------------------------------
        row = Signal(cfg.row_bits + 1)
        left = Signal(cfg.pos_bits)
        left_zero = Signal()                   # left == 0, kept as a register
        row_has = Signal()                     # the walk has sent a weight of this row
        unres = Signal()                       # a sent weight still waits for its last bit
        cols = tab.cols
        # What is left of the row less one (``cols - col - 1``, col the column of the head
        # token's run), kept as a register: whether a run reaches the row's end (``sk > rm1``)
        # or a weight ends it (``sk == rm1``) is one compare of the run with a register, no
        # adder before it. ``rpc1`` (``rm1 + cols``) answers the same for a run that ends the
        # row, within the next one. The column itself is no register: an event's is computed
        # from ``rm1`` (``cols - 1 - rm1 + sk``), off the decision's paths.
        rm1 = Signal(cfg.col_bits + 2)
        rpc1 = Signal(cfg.col_bits + 3)
        # The head token: the tokenizer's, or a masked layer's kept-column source's.
        ts = (self._masked_tokens(m, tok, start, running) if cfg.input_masks
              else (tok.valid, tok.skip, tok.code, tok.take, tok.trim, tok.trim_to))
        tok_valid, sk, code, tok_take, tok_trim, tok_trim_to = ts
        # The decision compares the run with ``rm1s``, ``rpc1s``: ``rm1``, ``rpc1`` saturated
        # to one bit more than a run has (equal answers, shorter chains).
        rm1s, rpc1s = Signal(len(sk) + 1), Signal(len(sk) + 1)
        bk = SimpleNamespace(row=row, left=left, left_zero=left_zero, row_has=row_has, rm1=rm1,
                             rpc1=rpc1, rm1s=rm1s, rpc1s=rpc1s)
        tvis = code != 0
        # A surviving head token waits for its zone's word.
        have = Array([Const(1)] + [q.valid for q in queues])[code]
        rdiff = Signal(range(max_run(cfg) + 1))    # the run less the row's rest
        m.d.comb += rdiff.eq(sk - rm1s - 1)
        twice = cols << 1
        # The run is shorter than what is left of the share: its few bits against the low bits
        # of ``left``, or ``left``'s high bits not all zero (a short chain and an OR beside it).
        n_sk = len(sk)
        within = Signal()
        m.d.comb += within.eq((left[n_sk:] != 0) | (sk < left[:n_sk]))
        # ``past``: the run reaches past the row's end, so it covers the rest of the row, which
        # is all in the share (a share ends at a surviving weight or at the layer's end, a
        # row's end); ``lands``: a weight after the row's end is taken.
        past, lands = Signal(), Signal()
        m.d.comb += [past.eq(sk > rm1s), lands.eq(row_has & tvis & (sk <= rpc1s) & within)]
        self._uses(m, queues, code, tok_take, tok_trim, tok_trim_to, rdiff,
                   running & en & ~left_zero & tok_valid & have, past, within, lands, unres,
                   row_has)

        def emit(kind):
            m.d.sync += [ev_valid.eq(1), ev.kind.eq(kind)]

        wgt = self._advance(m, bk, tok_take, tok_trim, sk, tvis, past, lands, within, cols)

        with m.If(en):
            m.d.sync += [ev_valid.eq(0), resolve.eq(0)]
            # The head token's weight, code and place whatever the walker decides (a marker
            # reads only its row, the end nothing): their enables wait for no decision. A weight
            # past the row's end (in a row with one) is in the next row, at column ``rdiff``.
            m.d.sync += [ev.value.eq(Array([queues[0].head] + [q.head for q in queues])[code]),
                         ev.code.eq(code), ev.row.eq(row + (past & row_has)),
                         ev.col.eq(Mux(past, rdiff, cols - 1 - rm1 + sk))]

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.go):
                    m.next = "START"
            with m.State("START"):
                m.d.comb += start.eq(1)
                rm1_0, rpc1_0 = cols - first.col - 1, twice - first.col - 1
                m.d.sync += [row.eq(first.row), rm1.eq(rm1_0), rpc1.eq(rpc1_0),
                             rm1s.eq(saturate(rm1_0, len(rm1s))),
                             rpc1s.eq(saturate(rpc1_0, len(rpc1s))),
                             left.eq(self.end - first.pos),
                             left_zero.eq(self.end == first.pos),
                             self.sched.row.eq(first.row), self.sched.cont.eq(first.cont),
                             row_has.eq(0), unres.eq(0), running.eq(1)]
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(en & left_zero):
                    emit(DONE)
                    m.d.sync += running.eq(0)
                    m.next = "DRAIN"
                with m.Elif(en & tok_valid & have):
                    # The events (the bookkeeping above follows ``take``).
                    with m.If(past & ~row_has):
                        # The pruned run covers the rest of a row without a weight: its marker,
                        # after the last bit of the weight that waits for it, if any.
                        emit(MARK)
                        with m.If(unres):
                            m.d.sync += [resolve.eq(1), unres.eq(0)]
                    with m.Elif(wgt):
                        emit(WEIGHT)
                        m.d.sync += unres.eq(1)
                    with m.Elif(~past & ~within):
                        emit(DONE)
                        m.d.sync += running.eq(0)
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(en):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | self.o.valid)
        return m

    @staticmethod
    def _advance(m, bk, take, trim, sk, tvis, past, lands, within, cols):
        """The bookkeeping registers' (``bk``) next state, as flat expressions: they change
        whenever the head token is used (``take``, see ``_uses``), to values computed beside
        the decision, which picks one of two at the end. A weight is taken (returned, ``wgt``)
        within the row, or after its end if it ``lands`` there; the row ends (``ends``) where a
        run covers its rest (the token is trimmed, ``trim``) or a weight is its last
        (``ends_w``: the run equal to what is left of the row it lands in). What is left of the
        row after a step within it is the remainder (of this row, or of the next one past the
        end) less the run and the weight: ``rm1`` becomes ``a`` (``b`` past the end), ``rpc1``
        ``b`` (``c``)."""
        wgt, ends, ends_w = Signal(), Signal(), Signal()
        m.d.comb += [wgt.eq(tvis & Mux(past, lands, within)),
                     ends_w.eq(wgt & Mux(past, sk == bk.rpc1s, sk == bk.rm1s)),
                     ends.eq(trim | ends_w)]
        a, b, c = (Signal.like(bk.rpc1, name=n) for n in "abc")
        m.d.comb += [a.eq(bk.rm1 - sk - tvis), b.eq(bk.rpc1 - sk - tvis),
                     c.eq(bk.rpc1 + cols - sk - tvis)]
        n, twice = len(bk.rm1s), cols << 1
        with m.If(take):
            # The row: +1 past the end or at a weight that ends it, +2 with both.
            m.d.sync += [
                bk.row.eq(Mux(past & ends_w, bk.row + 2, Mux(past | ends_w, bk.row + 1, bk.row))),
                bk.rm1.eq(Mux(ends, cols - 1, Mux(past, b, a))),
                bk.rpc1.eq(Mux(ends, twice - 1, Mux(past, c, b))),
                bk.rm1s.eq(Mux(ends, saturate(cols - 1, n),
                               Mux(past, saturate(b, n), saturate(a, n)))),
                bk.rpc1s.eq(Mux(ends, saturate(twice - 1, n),
                                Mux(past, saturate(c, n), saturate(b, n)))),
                bk.row_has.eq(~ends & (tvis | bk.row_has)),
                bk.left.eq(Mux(trim, bk.left - bk.rm1 - 1, bk.left - sk - tvis)),
                bk.left_zero.eq(Mux(trim, bk.rm1 + 1 == bk.left, sk + tvis == bk.left))]
        return wgt

    @staticmethod
    def _uses(m, queues, code, take, trim, trim_to, rdiff, can, past, within, lands, unres,
              row_has):
        """How the decision uses the head token, as flat expressions of the compares, not the
        decision's branches (the token head and the queues' flags are its farthest
        destinations). It is used (``take``) whenever the walker ``can`` step, except at the
        end of the share (a run not ``within`` it, and not ``past``: reaching past the row's
        end first) and at a row marker that waits for a weight's ``last`` bit (``past`` with
        no weight in the row yet, ``unres``). It is trimmed, not popped, whenever its run is
        ``past`` and no weight ``lands`` after the row's end (a marker, or the next row
        started): ``trim`` needs none of ``take``'s conditions, the head's clock enable all of
        them; what is left of a trimmed run is ``rdiff``. A zone's queue is popped with its
        weight."""
        m.d.comb += [take.eq(can & Mux(past, row_has | ~unres, within)),
                     trim.eq(past & ~lands), trim_to.eq(rdiff)]
        m.d.comb += [q.pop.eq(take & ~trim & (code == k + 1)) for k, q in enumerate(queues)]

    def _stages(self, m, start, running):
        """The tokenizer, the output stage and every zone's elements (``_zone_elements``), as
        submodules of ``m``; returns ``(tokenizer, output stage, zone queues)``."""
        cfg, tab, first = self.cfg, self.tab, self.first
        W = cfg.zone_word_bits
        tok = Tokenizer(cfg, head=not cfg.input_masks)
        out = TransferOutput(cfg)
        m.submodules.tokenizer, m.submodules.output = tok, out
        wiring.connect(m, tok.meta, wiring.flipped(self.meta))
        wiring.connect(m, out.o, wiring.flipped(self.o))
        first_bit = Signal(cfg.meta_index_bits + 1)
        m.d.comb += [first_bit.eq(tab.meta_base + first.meta),
                     tok.start.eq(start), tok.run.eq(running), tok.grant.eq(self.grant),
                     tok.first.eq(Mux(self.bank, cfg.meta_depth, 0) + (first_bit >> log2(W))),
                     tok.drop.eq(first_bit[:log2(W)]), tok.uniform.eq(tab.uniform),
                     out.shift.eq(tab.shift)]
        return tok, out, self._zone_elements(m, start, running)

    def _zone_elements(self, m, start, running):
        """Every zone's elements of the walk, in order: a ``WordPrefetch`` by the zone's block
        RAMs, its current element picked out of the prefetched word there, and an
        ``ElementQueue`` by the walker, from which it takes it (only registers between the two).
        Returns the queues."""
        cfg, tab, first = self.cfg, self.tab, self.first
        W, R = cfg.zone_word_bits, read_ratio(cfg)
        queues = []
        for k, b in enumerate(cfg.precisions):
            per = cfg.per_word(b)
            pf = WordPrefetch(len(self.zone[k].addr), R * W, log2(R * per), SHARED_READ_LATENCY)
            q = ElementQueue(signed(cfg.weight_bits))
            m.submodules[f"zone{k}_prefetch"], m.submodules[f"zone{k}_queue"] = pf, q
            wiring.connect(m, pf.port, wiring.flipped(self.zone[k]))
            base = Mux(self.bank, cfg.zone_depths[k], 0) + tab.zone_base[k]
            elems = [pf.word[e * b:(e + 1) * b].as_signed() for e in range(R * per)]
            m.d.comb += [pf.start.eq(start), pf.run.eq(running), pf.grant.eq(self.grant),
                         pf.first.eq((base << log2(per)) + first.index[k]),
                         q.start.eq(start), q.ok.eq(pf.ok), pf.advance.eq(q.advance),
                         q.value.eq(Array(elems)[pf.sel] if len(elems) > 1 else elems[0])]
            queues.append(q)
        return queues

    def _masked_tokens(self, m, tok, start, running):
        """The head token of a walk (``input_masks``): a masked layer's from its kept-column
        table (``kept.KeptTokens``), any other layer's from the tokenizer. The head is a
        register here, loaded from the layer's source (the choice before the register, so
        the decision's paths start at it as without masks). Returns the head's ``(valid,
        skip, code)`` and the ``(take, trim, trim_to)`` the walker drives."""
        tab, first = self.tab, self.first
        kt = KeptTokens(self.cfg)
        m.submodules.kept_tokens = kt
        wiring.connect(m, kt.table, wiring.flipped(self.kept))
        m.d.comb += [kt.start.eq(start), kt.run.eq(running), kt.base.eq(self.kept_base),
                     kt.grant.eq(self.grant),
                     kt.rank.eq(first.meta), kt.col.eq(first.col), kt.kept.eq(tab.meta_base),
                     kt.cols.eq(tab.cols), kt.uniform.eq(tab.uniform)]
        masked = tab.masked
        take, trim = Signal(), Signal()
        valid, skip, code = Signal(), Signal.like(tok.next_skip), Signal.like(tok.next_code)
        trim_to = Signal.like(skip)
        pull = Signal()                        # the head loads the next token
        m.d.comb += [pull.eq(~valid | (take & ~trim)),
                     tok.take.eq(take & ~masked), tok.trim.eq(trim),
                     tok.pull.eq(pull & ~masked), kt.pull.eq(pull & masked)]
        with m.If(start):
            m.d.sync += valid.eq(0)
        with m.Elif(pull):
            m.d.sync += [valid.eq(Mux(masked, kt.next_valid, tok.next_valid)),
                         skip.eq(Mux(masked, kt.next_skip, tok.next_skip)),
                         code.eq(Mux(masked, kt.next_code, tok.next_code))]
        with m.Elif(take):
            m.d.sync += skip.eq(trim_to)
        return valid, skip, code, take, trim, trim_to
