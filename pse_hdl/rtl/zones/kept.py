"""A fetch walker's token source for a masked layer: its kept input columns, as tokens.

A masked layer (``input_masks``, docs/SPEC.md section 6) stores no codes: every row has the
same surviving columns, whose indices, in order, the re-zoner wrote to the kept-column table
(``kept`` of them). This source reads that table and hands the walker the tokenizer's tokens
(``tokenizer``): the pruned codes before the next kept column and the layer's class. After a
row's last kept column it wraps to the first, its run taking the rest of the row with it, as a
per-weight layer's tokens cross rows. A run longer than the tokenizer's longest (``max_run``)
is split into tokens of pruned codes alone; a layer that keeps no column gives only those.

The table is one copy for all walkers (``layouts.kept_geometry``): its physical word holds
``read_ratio`` (= ``fetch_ports``) entries, and its read port is this walker's one cycle in
``fetch_ports`` (``grant``), as the metadata's is. A read brings the entries of one word from
the next one to read up to the word's end or the list's last; it lands, ``SHARED_READ_LATENCY``
cycles later, in one of ``_slots`` word slots, from which the entries are taken one a cycle;
each entry's run (the pruned columns before it) is computed as it lands in one of three
registers, from which the tokens are formed. The list's first word, once read, is
kept and taken again at every row without a turn, so a row of ``kept`` columns needs
``ceil(kept / fetch_ports) - 1`` turns, which come in fewer cycles than its ``kept`` entries
take. Every enable on this path depends on registers only.

Latency: a walk's first token a few cycles later than from a table port of its own (the turn,
the read's output register, the slot: three in ``tests/test_rtl_zones.py``, at most
``fetch_ports + 2``); about eight after ``start``. Throughput: one token per cycle (an entry a
cycle), plus a token per ``max_run`` pruned columns in a row. The tokens are offered to the
walker's head register (``next_*``, ``pull``), which loads them.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from .layouts import SHARED_READ_LATENCY, kept_geometry, log2, read_ratio
from .tokenizer import max_run

__all__ = ["KeptTable", "KeptTokens", "kept_addr_width", "kept_port"]

_QUEUE = 4
_ENTRIES = 3         # runs of columns taken ahead of the tokens


def kept_addr_width(cfg):
    """Entry address bits of the kept-column table (two banks, ``kept_geometry``)."""
    stride, _ = kept_geometry(cfg)
    return max(1, log2(2 * cfg.max_layers * stride))


def kept_port(cfg):
    """The kept-column table's shared read port: physical words of ``read_ratio`` entries."""
    _, depth = kept_geometry(cfg)
    return memory.ReadPort.Signature(addr_width=max(1, log2(depth)),
                                     shape=read_ratio(cfg) * cfg.col_bits)


def _slots(cfg):
    """Word slots a walker keeps: enough that its turns keep it fed (a read's entries can be
    taken ``SHARED_READ_LATENCY + 1`` cycles after its turn, a slot is emptied an entry a
    cycle, and the list's last word may hold one: two slots left a bubble a row)."""
    return 3 if read_ratio(cfg) >= 4 else 4


class KeptTable(wiring.Component):
    """The kept-column table: one copy, ``fetch_ports`` entries a physical word
    (``layouts.kept_geometry``), written an entry at a time and read a physical word a cycle.

    Members
    -------
    wr_en, wr_addr, wr_data : In   Write entry ``wr_addr`` (banked, as the re-zoner counts).
    rd : Out(ReadPort)             ``addr`` (a physical word; read every cycle, ``en`` unused);
                                   ``data`` ``SHARED_READ_LATENCY`` cycles later, registered by
                                   the block RAM as the metadata's is.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({"wr_en": In(1), "wr_addr": In(kept_addr_width(cfg)),
                          "wr_data": In(cfg.col_bits), "rd": Out(kept_port(cfg))})

    def elaborate(self, platform):
        cb, r = self.cfg.col_bits, log2(read_ratio(self.cfg))
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=len(self.rd.data),
                                               depth=kept_geometry(self.cfg)[1], init=[])
        wr, rd = mem.write_port(granularity=cb), mem.read_port()
        lane = 1 << (self.wr_addr[:r] if r else 0)
        m.d.comb += [wr.addr.eq(self.wr_addr[r:]), wr.data.eq(self.wr_data.replicate(len(wr.en))),
                     wr.en.eq(Mux(self.wr_en, lane, 0)), rd.en.eq(1), rd.addr.eq(self.rd.addr)]
        out = rd.data
        for i in range(SHARED_READ_LATENCY - 1):
            out_q = Signal.like(rd.data, name=f"out{i}", reset_less=True)
            m.d.sync += out_q.eq(out)
            out = out_q
        m.d.comb += self.rd.data.eq(out)
        return m


class KeptTokens(wiring.Component):
    """Tokens of a masked layer's walk from the kept-column table (see the module docs).

    Members
    -------
    start : In(1)             Begin a walk at kept column ``rank`` (its index in the table), at
                              column ``col`` of a row, in the layer whose table entries start
                              at ``base`` (a whole physical word); the layer keeps ``kept`` of
                              its ``cols`` columns, of class ``uniform``. All hold until the
                              next ``start``.
    base, rank, col, kept, cols, uniform : In
    run : In(1)               Make tokens while high.
    grant : In(1)             This walker's turn on the table's read port.
    table : In(ReadPort)      The table's shared read port (``kept_port``): ``en`` when this
                              walker reads, ``addr``; ``data`` ``SHARED_READ_LATENCY`` later.
    next_valid, next_skip, next_code : Out   The next token (the tokenizer's, ``head=False``):
                              the walker's head register loads it.
    pull : In(1)              The head loads it.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        Z, C = max_run(cfg), cfg.col_bits + 1
        super().__init__({
            "start": In(1), "base": In(kept_addr_width(cfg)), "rank": In(C), "col": In(C),
            "kept": In(C), "cols": In(C), "uniform": In(cfg.code_bits), "run": In(1),
            "grant": In(1), "table": In(kept_port(cfg)),
            "next_valid": Out(1), "next_skip": Out(range(Z + 1)),
            "next_code": Out(cfg.code_bits), "pull": In(1)})

    def elaborate(self, platform):
        Z, C = max_run(self.cfg), self.cfg.col_bits + 1
        m = Module()
        token = data.StructLayout({"skip": range(Z + 1), "code": self.next_code.shape()})
        queue = ResetInserter(self.start)(fifo.SyncFIFOBuffered(width=token.size, depth=_QUEUE))
        m.submodules.queue = queue
        pushed = Signal(token)
        m.d.comb += queue.w_data.eq(pushed)

        # -- the walk through the table ---------------------------------------------------------
        # The column taken from a slot lands, with whether the walk wrapped past the row's end,
        # and its run (the pruned columns before it, from the column after the one landed
        # before it, ``at``) is computed as it lands: the queue of three registers (``ent``,
        # ``n`` of them full) holds runs, and whether each is longer than a token's, so the
        # tokens are formed from registers by a multiplexer (a block RAM's output has a 5.8 ns
        # clock-to-out on the ECP5; the table read into its own enable through the run's
        # compare was the masked walk's critical path, 18.3 ns, then the output into the
        # token queue, 15.8, then the run's subtractions and compare into the token queue,
        # 12.5). A column is taken while the full entries and the one landing leave room.
        got = self._words(m)
        at = Signal(C + 1)                     # the column after the last landed, in its row
        cols_at = Signal(C + 1)                # ``cols - at``, kept as a register
        landing = Signal()
        entry = data.StructLayout({"col": self.cfg.col_bits, "wrap": 1})
        landed = Signal(entry)
        runs = data.StructLayout({"run": C + 2, "long": 1})
        ent = [Signal(runs, name=f"ent{i}") for i in range(_ENTRIES)]
        n = Signal(range(_ENTRIES + 1))
        chunking = Signal()
        rest, rest_long = Signal(C + 2), Signal()      # what a split run has left; > Z
        pend = Signal()
        m.d.comb += pend.eq(n != 0)
        new_run = Signal(C + 2)
        m.d.comb += new_run.eq(Mux(landed.wrap, cols_at + landed.col, landed.col - at))
        run_len, long = Signal(C + 2), Signal()
        m.d.comb += [run_len.eq(Mux(chunking, rest, ent[0].run)),
                     long.eq(Mux(chunking, rest_long, ent[0].long))]
        consumed = Signal()
        active = self.run & ~self.start
        with m.If(active & (self.kept == 0)):
            # Nothing kept: runs of pruned codes to the end of the walk.
            m.d.comb += [pushed.skip.eq(Z), queue.w_en.eq(1)]
        with m.Elif(active & pend & queue.w_rdy):
            m.d.comb += queue.w_en.eq(1)
            with m.If(long):
                m.d.comb += pushed.skip.eq(Z)
                m.d.sync += [chunking.eq(1), rest.eq(run_len - Z), rest_long.eq(run_len > 2 * Z)]
            with m.Else():
                m.d.comb += [pushed.skip.eq(run_len), pushed.code.eq(self.uniform),
                             consumed.eq(1)]
                m.d.sync += chunking.eq(0)
        m.d.comb += got.take.eq(active & (self.kept != 0) & (n + landing < _ENTRIES)
                                & got.ready)
        m.d.sync += [landing.eq(got.take), landed.eq(got.entry)]
        with m.If(landing):
            m.d.sync += [at.eq(landed.col + 1), cols_at.eq(self.cols - landed.col - 1)]
        # The queue: the head leaves when consumed, the landing run takes the first free entry
        # after that.
        after = Signal(range(_ENTRIES + 1))
        m.d.comb += after.eq(n - consumed)
        for i in range(_ENTRIES):
            behind = ent[i + 1] if i + 1 < _ENTRIES else ent[i]
            with m.If(landing & (after == i)):
                m.d.sync += [ent[i].run.eq(new_run), ent[i].long.eq(new_run > Z)]
            with m.Elif(consumed):
                m.d.sync += ent[i].eq(behind)
        m.d.sync += n.eq(after + landing)
        with m.If(self.start):
            m.d.sync += [at.eq(self.col), cols_at.eq(self.cols - self.col), n.eq(0),
                         landing.eq(0), chunking.eq(0)]

        # -- the next token: the queue's output register, which the walker's head loads ---------
        out = token(queue.r_data)
        m.d.comb += [queue.r_en.eq(self.pull), self.next_valid.eq(queue.r_rdy),
                     self.next_skip.eq(out.skip), self.next_code.eq(out.code)]
        return m

    def _words(self, m):
        """The table's words, read a turn at a time into the word slots, and their entries
        handed out one a cycle, in the walk's order: returns ``got`` with ``ready`` (a slot
        holds the next entry: a register), ``entry`` (its column, and whether the walk wrapped
        there) and ``take`` (driven by the caller: the entry is taken)."""
        cfg = self.cfg
        R, S, L = read_ratio(cfg), _slots(cfg), SHARED_READ_LATENCY
        r, C = log2(R), cfg.col_bits + 1
        entry = data.StructLayout({"col": cfg.col_bits, "wrap": 1})
        got = data.StructLayout({"ready": 1, "take": 1, "entry": entry})
        got = Signal(got)
        # Per slot: the word, the lane of its next entry (``lo``), of its last (``hi``), and
        # whether its first entry wraps the walk to the row's first kept column.
        words = Array(Signal(self.table.data.shape(), name=f"slot{i}") for i in range(S))
        lo = Array(Signal(max(1, r), name=f"slot{i}_lo") for i in range(S))
        hi = Array(Signal(max(1, r), name=f"slot{i}_hi") for i in range(S))
        wraps = Array(Signal(name=f"slot{i}_wrap") for i in range(S))
        wp, rp = Signal(range(S)), Signal(range(S))      # the slot read next, taken from
        asked = Signal(range(S + 1))           # slots read, on their way or holding entries
        loaded = Signal(range(S + 1))          # slots holding entries
        p = Signal(C)                          # the next entry to read
        read_any = Signal()
        # The list's first word, kept once read: every row reads it again, and from here it
        # needs no turn (a row of ``kept`` columns then takes ``ceil(kept / R) - 1`` turns,
        # fewer than ``kept / R``, so the turns keep up with an entry a cycle).
        first, has_first = Signal.like(words[0], name="first_word"), Signal()

        lane = lo[rp]
        emptied = got.take & (lane == hi[rp])
        word = words[rp]
        m.d.comb += [got.ready.eq(loaded != 0),
                     got.entry.col.eq(Array(word[i * cfg.col_bits:(i + 1) * cfg.col_bits]
                                            for i in range(R))[lane] if r else word),
                     got.entry.wrap.eq(wraps[rp])]
        with m.If(got.take):
            m.d.sync += [lo[rp].eq(lane + 1), wraps[rp].eq(0)]
            with m.If(emptied):
                m.d.sync += rp.eq(Mux(rp == S - 1, 0, rp + 1))

        # A read, at this walker's turn, of the word holding entry ``p``: its entries up to the
        # word's end or the list's, after which the walk wraps to entry 0.
        read, local = Signal(), Signal()       # a read; of the first word, from ``first``
        ends, word0 = Signal(), Signal()       # the list ends in this word; it is the first
        m.d.comb += [word0.eq(p[r:] == 0), local.eq(has_first & word0),
                     read.eq(self.run & ~self.start & (self.kept != 0) & (self.grant | local)
                             & ((asked < S) | emptied)),
                     ends.eq((self.kept - 1)[r:] == p[r:]),
                     self.table.en.eq(read & ~local), self.table.addr.eq((self.base + p)[r:])]
        with m.If(read):
            m.d.sync += [lo[wp].eq(p[:r] if r else 0),
                         hi[wp].eq(Mux(ends, (self.kept - 1)[:r], R - 1) if r else 0),
                         wraps[wp].eq(read_any & (p == 0)), read_any.eq(1),
                         wp.eq(Mux(wp == S - 1, 0, wp + 1)),
                         p.eq(Mux(ends, 0, Cat(Const(0, r), p[r:] + 1) if r else p + 1))]
        # The read, its slot and where it reads travel down SHARED_READ_LATENCY registers to
        # the slot (a local read as long, so that the slots fill in order).
        flight, slot, is_local, is_first = read, wp, local, word0
        for i in range(L):
            f, s_ = Signal(name=f"reading{i}"), Signal.like(wp, name=f"reading{i}_slot")
            l_, w_ = Signal(name=f"reading{i}_local"), Signal(name=f"reading{i}_first")
            m.d.sync += [f.eq(flight), s_.eq(slot), l_.eq(is_local), w_.eq(is_first)]
            with m.If(self.start):
                m.d.sync += f.eq(0)
            flight, slot, is_local, is_first = f, s_, l_, w_
        with m.If(flight):
            m.d.sync += words[slot].eq(Mux(is_local, first, self.table.data))
            with m.If(~is_local & is_first):
                m.d.sync += [first.eq(self.table.data), has_first.eq(1)]
        m.d.sync += [loaded.eq(loaded + flight - emptied), asked.eq(asked + read - emptied)]
        with m.If(self.start):
            m.d.sync += [p.eq(self.rank), read_any.eq(0), wp.eq(0), rp.eq(0), loaded.eq(0),
                         asked.eq(0), has_first.eq(0)]
        return got
