"""A fetch walker's token source for a masked layer: its kept input columns, as tokens.

A masked layer (``input_masks``, docs/SPEC.md section 6) stores no codes: every row has the
same surviving columns, whose indices, in order, the re-zoner wrote to the kept-column table
(``kept`` of them). This source reads that table and hands the walker the tokenizer's tokens
(``tokenizer``): the pruned codes before the next kept column and the layer's class. After a
row's last kept column it wraps to the first, its run taking the rest of the row with it, as a
per-weight layer's tokens cross rows. A run longer than the tokenizer's longest (``max_run``)
is split into tokens of pruned codes alone; a layer that keeps no column gives only those.

Latency: the first token three cycles after ``start`` (table read, queue, head). Throughput:
one token per cycle (a read a cycle while the skid register behind the table's port is empty:
the read enable depends on registers only), plus a token per ``max_run`` pruned columns in a
row.
"""

from amaranth.hdl import Module, Mux, ResetInserter, Signal
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from .tokenizer import max_run

__all__ = ["KeptTokens", "kept_addr_width"]

_QUEUE = 4


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

        # -- the walk through the table: a read a cycle, its column consumed the next ---------
        # Two entries: the read port's output (``dv``: it holds an unconsumed column, whose walk
        # wrapped past the row's end if ``dw``) and a skid register behind it (``sv``, ``sc``,
        # ``sw``), which takes the port's column when a read is issued before it was consumed.
        # The head is the skid's entry if it holds one, else the port's. A read is issued
        # whenever the skid is empty, so the read enable depends on registers only, not on the
        # column the port has just read (a table read into its own enable was the masked
        # walk's critical path: 18.3 ns on the ECP5-85F).
        p = Signal(C)                          # the next entry to read
        at = Signal(C + 1)                     # the column after the last token, in its row
        read_any, dv, dw, sv, sw = Signal(), Signal(), Signal(), Signal(), Signal()
        sc = Signal(self.cfg.col_bits)
        chunking = Signal()
        rest = Signal(C + 2)                   # what a split run has left
        c, wrap, pend = Signal(self.cfg.col_bits), Signal(), Signal()
        m.d.comb += [c.eq(Mux(sv, sc, self.table.data)), wrap.eq(Mux(sv, sw, dw)),
                     pend.eq(sv | dv)]
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
        m.d.comb += [issue.eq(active & (self.kept != 0) & ~sv),
                     self.table.en.eq(issue), self.table.addr.eq(self.base + p)]
        with m.If(issue):
            # The port's entry, unless consumed now, moves to the skid; the read refills the port.
            m.d.sync += [dv.eq(1), dw.eq(read_any & (p == 0)), read_any.eq(1),
                         p.eq(Mux(p + 1 == self.kept, 0, p + 1)),
                         sv.eq(dv & ~consumed), sc.eq(self.table.data), sw.eq(dw)]
        with m.Elif(consumed):                 # no read: the skid is full, its entry is the head
            m.d.sync += sv.eq(0)
        with m.If(self.start):
            m.d.sync += [p.eq(self.rank), at.eq(self.col), read_any.eq(0), dv.eq(0), sv.eq(0),
                         chunking.eq(0)]

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
