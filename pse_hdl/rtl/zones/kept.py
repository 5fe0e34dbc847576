"""A fetch walker's token source for a masked layer: its kept input columns, as tokens.

A masked layer (``input_masks``, docs/SPEC.md section 6) stores no codes: every row has the
same surviving columns, whose indices, in order, the re-zoner wrote to the kept-column table
(``kept`` of them). This source reads that table and hands the walker the tokenizer's tokens
(``tokenizer``): the pruned codes before the next kept column and the layer's class. After a
row's last kept column it wraps to the first, its run taking the rest of the row with it, as a
per-weight layer's tokens cross rows. A run longer than the tokenizer's longest (``max_run``)
is split into tokens of pruned codes alone; a layer that keeps no column gives only those.

Latency: the first token four cycles after ``start`` (table read, a register, the token
queue, head). Throughput: one token per cycle (a read a cycle while the three registers behind
the table's port have room: the read enable depends on registers only), plus a token per
``max_run`` pruned columns in a row.
"""

from amaranth.hdl import Module, Mux, ResetInserter, Signal
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from .tokenizer import max_run

__all__ = ["KeptTokens", "kept_addr_width"]

_QUEUE = 4
_ENTRIES = 3         # columns read ahead of the run's arithmetic


def kept_addr_width(cfg):
    """Address bits of the kept-column table: two banks of ``max_cols`` entries a layer."""
    return max(1, (2 * cfg.max_layers * cfg.max_cols - 1).bit_length())


class KeptTokens(wiring.Component):
    """Tokens of a masked layer's walk from its kept-column table (see the module docs).

    Members
    -------
    start : In(1)             Begin a walk at kept column ``rank`` (its index in the table), at
                              column ``col`` of a row, in the layer whose table entries start
                              at ``base``; the layer keeps ``kept`` of its ``cols`` columns, of
                              class ``uniform``. All hold until the next ``start``.
    base, rank, col, kept, cols, uniform : In
    run : In(1)               Make tokens while high.
    table : In(ReadPort)      The kept-column table (this walker's read port).
    valid, skip, code : Out   The head token, as the tokenizer's.
    take, trim, trim_to : In  As the tokenizer's.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        Z, C = max_run(cfg), cfg.col_bits + 1
        addr_width = kept_addr_width(cfg)
        super().__init__({
            "start": In(1), "base": In(addr_width), "rank": In(C), "col": In(C),
            "kept": In(C), "cols": In(C), "uniform": In(cfg.code_bits), "run": In(1),
            "table": In(memory.ReadPort.Signature(addr_width=addr_width, shape=cfg.col_bits)),
            "valid": Out(1), "skip": Out(range(Z + 1)), "code": Out(cfg.code_bits),
            "take": In(1), "trim": In(1), "trim_to": In(range(Z + 1))})

    def elaborate(self, platform):
        Z, C = max_run(self.cfg), self.cfg.col_bits + 1
        m = Module()
        token = data.StructLayout({"skip": range(Z + 1), "code": self.code.shape()})
        queue = ResetInserter(self.start)(fifo.SyncFIFOBuffered(width=token.size, depth=_QUEUE))
        m.submodules.queue = queue
        pushed = Signal(token)
        m.d.comb += queue.w_data.eq(pushed)

        # -- the walk through the table: a read a cycle, its column consumed two later --------
        # The column a read returns lands, with whether the walk wrapped past the row's end,
        # in a queue of three registers (``ent``, ``n`` of them full), whose head is consumed.
        # A read is issued while the full entries and the read in flight leave room for it, so
        # the read enable depends on registers only, and the run's arithmetic starts at a
        # register, not at the table's output (a block RAM's output has a 5.8 ns clock-to-out
        # on the ECP5; the table read into its own enable through the run's compare was the
        # masked walk's critical path, 18.3 ns, then the output into the token queue, 15.8).
        p = Signal(C)                          # the next entry to read
        at = Signal(C + 1)                     # the column after the last token, in its row
        read_any, landing, landing_wrap = Signal(), Signal(), Signal()
        entry = data.StructLayout({"col": self.cfg.col_bits, "wrap": 1})
        ent = [Signal(entry, name=f"ent{i}") for i in range(_ENTRIES)]
        n = Signal(range(_ENTRIES + 1))
        chunking = Signal()
        rest = Signal(C + 2)                   # what a split run has left
        c, wrap, pend = ent[0].col, ent[0].wrap, Signal()
        m.d.comb += pend.eq(n != 0)
        full = Signal(C + 2)
        m.d.comb += full.eq(Mux(wrap, self.cols - at + c, c - at))
        run_len = Signal(C + 2)
        m.d.comb += run_len.eq(Mux(chunking, rest, full))
        consumed, issue = Signal(), Signal()
        active = self.run & ~self.start
        with m.If(active & (self.kept == 0)):
            # Nothing kept: runs of pruned codes to the end of the walk.
            m.d.comb += [pushed.skip.eq(Z), queue.w_en.eq(1)]
        with m.Elif(active & pend & queue.w_rdy):
            m.d.comb += queue.w_en.eq(1)
            with m.If(run_len > Z):
                m.d.comb += pushed.skip.eq(Z)
                m.d.sync += [chunking.eq(1), rest.eq(run_len - Z)]
            with m.Else():
                m.d.comb += [pushed.skip.eq(run_len), pushed.code.eq(self.uniform),
                             consumed.eq(1)]
                m.d.sync += [chunking.eq(0), at.eq(c + 1)]
        m.d.comb += [issue.eq(active & (self.kept != 0) & (n + landing < _ENTRIES)),
                     self.table.en.eq(issue), self.table.addr.eq(self.base + p)]
        m.d.sync += landing.eq(issue)
        with m.If(issue):
            m.d.sync += [landing_wrap.eq(read_any & (p == 0)), read_any.eq(1),
                         p.eq(Mux(p + 1 == self.kept, 0, p + 1))]
        # The queue: the head leaves when consumed, the landing column takes the first free
        # entry after that.
        landed = Signal(entry)
        m.d.comb += [landed.col.eq(self.table.data), landed.wrap.eq(landing_wrap)]
        after = Signal(range(_ENTRIES + 1))
        m.d.comb += after.eq(n - consumed)
        for i in range(_ENTRIES):
            behind = ent[i + 1] if i + 1 < _ENTRIES else ent[i]
            with m.If(landing & (after == i)):
                m.d.sync += ent[i].eq(landed)
            with m.Elif(consumed):
                m.d.sync += ent[i].eq(behind)
        m.d.sync += n.eq(after + landing)
        with m.If(self.start):
            m.d.sync += [p.eq(self.rank), at.eq(self.col), read_any.eq(0), n.eq(0),
                         landing.eq(0), chunking.eq(0)]

        # -- the head token, which the walker may trim ------------------------------------------
        head = Signal(token)
        pop = self.take & ~self.trim
        load = queue.r_rdy & (~self.valid | pop)
        m.d.comb += [queue.r_en.eq(load), self.skip.eq(head.skip), self.code.eq(head.code)]
        with m.If(self.start):
            m.d.sync += self.valid.eq(0)
        with m.Elif(load):
            m.d.sync += [head.eq(queue.r_data), self.valid.eq(1)]
        with m.Elif(pop):
            m.d.sync += self.valid.eq(0)
        with m.Elif(self.take):
            m.d.sync += head.skip.eq(self.trim_to)
        return m
