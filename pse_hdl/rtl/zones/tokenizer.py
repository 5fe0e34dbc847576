"""A fetch walker's tokenizer: the metadata bit string of a walk, as tokens (pruned run, code).

A token is a run of pruned codes and the surviving code that ends it, or a run alone (code 0).
It is made in three parts, so that no bit-shifted window sits in a loop:

* **The decoder** (a pipeline). Every metadata word is decoded on its own as it is read: which
  of its bits ends a surviving code, and that code's class. Where a word's codes begin depends
  on the words before it only through a state of a few bits carried from word to word (unary
  codes: the ones of an unfinished code, modulo the number of classes; fixed-length codes: the
  bits of the code already seen), so the word, as it leaves its prefetch slot (a register), is
  decoded with a few word-wide operations (unary codes: one carry chain per class, see
  ``decode.decode_unary``) into registers, and the carried state enters a cycle later, last; it
  is the only feedback.
* **The scanner** (the loop). The two oldest decoded words are a window (``cur``, ``nxt``);
  ``rest`` holds cur's surviving ends not yet taken. A step takes the lowest bit of ``rest``
  (``rest - 1``, one W-bit carry chain, finds it and leaves the bits above it), or, when
  ``rest`` is empty, the lowest bit of ``nxt`` and the window moves by a word (nxt having no
  surviving end: the window moves without a hit). Which of the two is a register
  (``empty``), so the window's move waits for no carry chain; the loop is ``rest`` through
  its chain and back.
* **The token stage**, a cycle later: the hit's position and class are registered, and a
  cycle after that the token is formed from them, the pruned codes between the previous
  position and the hit's first bit and the hit's class (or, without a hit, ``cur``'s pruned
  codes from the position, if any), straight into the queue, whose head the walker's decisions
  use (``take``, ``trim``): the hit's encoding and the run's subtraction are a register apart
  from each other and from the walker's paths.

So a surviving weight costs one cycle, however long the run before it within two words, and a
word without a surviving code costs a cycle (``W / pruned-code length`` codes). Tokens wait in a
five-entry queue: a FIFO that the walker's ``take`` and ``trim`` alone change, and a count of
its free places by the scanner, which steps on registers of its own. The head is a register the
walker's pop (a ``take`` without ``trim``) reloads; the places behind it move a cycle later,
and the pop returns its place a cycle later, through registers.

Latency: the first token five cycles after the metadata prefetcher's first word is in its slot
(decoded, window, scan, hit, token); the read that brings it takes ``SHARED_READ_LATENCY`` (2)
cycles, the metadata block RAMs' outputs being registered by them. Throughput: one token per cycle
while the queue has room and the window is full; decoded words move one per cycle through
four entries (the window and two behind it).

A uniform layer (``uniform`` k > 0 at ``start``) has no metadata: the tokenizer reads none and
gives the token (0, k) every cycle the queue has room, outside the scanner.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .layouts import SHARED_READ_LATENCY, log2, read_ratio
from .decode import decode_fixed, decode_unary
from .prefetch import WordPrefetch

__all__ = ["Tokenizer", "max_run"]

_ENTRIES = 4                               # decoded words held: the window and two behind it
# Tokens held by the walker: the head (``skip``, ``code``) and four behind it. A place is
# reserved at the scanner's step, its token pushed two cycles later and popped a cycle after
# that at the earliest, and the pop gives the place back through a register: five cycles.
_QUEUE = 5


def _holds(occ, j):
    """Whether a thermometer ``occ`` (``occ[i]``: place i is taken) holds exactly ``j``."""
    if j == 0:
        return ~occ[0]
    return occ[j - 1] & ~occ[j] if j < len(occ) else occ[j - 1]


def _moved(occ, up, down):
    """``occ`` after one entry comes in (``up``) and one leaves (``down``): a shift, so the
    flags read off it (``occ[0]``: any held) wait for no adder."""
    return Mux(up & ~down, Cat(Const(1, 1), occ[:-1]), Mux(down & ~up, occ[1:], occ))


def _fifo_step(m, occ, push, pop, entries, new):
    """One cycle of a FIFO kept as registers: ``entries`` (place 0 the head; each a tuple of
    signals) and ``occ``, the thermometer of the places taken. ``pop`` moves every entry down a
    place, ``push`` writes ``new`` into the first place free after the move."""
    for i, entry in enumerate(entries):
        if i + 1 < len(entries):
            with m.If(pop & occ[i + 1]):
                m.d.sync += [a.eq(b) for a, b in zip(entry, entries[i + 1])]
        with m.If(push & Mux(pop, _holds(occ, i + 1), _holds(occ, i))):
            m.d.sync += [a.eq(v) for a, v in zip(entry, new)]
    m.d.sync += occ.eq(_moved(occ, push, pop))


def max_run(cfg):
    """Z: the most pruned codes one token skips (the codes of two metadata words)."""
    return (2 * cfg.zone_word_bits - 1) // cfg.code_length(0)


class Tokenizer(wiring.Component):
    """Metadata decoder, scanner and token queue of one walker (see the module docs).

    Members
    -------
    start : In(1)             Begin a walk at metadata word ``first`` (absolute, both banks),
                              its first ``drop`` bits skipped; of a uniform layer if ``uniform``
                              (its class) is not 0.
    first, drop, uniform : In
    run : In(1)               Tokenize while high.
    grant : In(1)             The walker's turn on the shared metadata read port.
    meta : In(ReadPort)       That port (physical words).
    valid : Out(1)            A token is at the head of the queue.
    skip, code : Out          The head token: pruned codes, then ``code`` (0: none).
    take : In(1)              The head token is used: popped, or, with ``trim``, its run
    trim, trim_to : In        only partly used (``trim_to`` codes are left, the token stays).
                              ``trim`` is looked at only with ``take``, so the walker's
                              decision reaches the head's clock enable alone.

    With ``head=False`` the head register is the walker's (a walker with two token sources,
    ``input_masks``, loads its head from either): ``valid``, ``skip``, ``code`` and
    ``trim_to`` are left out, and

    next_valid, next_skip, next_code : Out   The token the head would load: the one behind
                              the head, or the token being pushed.
    pull : In(1)              The head loads it (``~valid | (take & ~trim)`` of the head).
    """

    def __init__(self, cfg, head=True):
        self.cfg, self.head = cfg, head
        R, W, Z = read_ratio(cfg), cfg.zone_word_bits, max_run(cfg)
        addr_width = log2(2 * cfg.meta_depth // R)
        token = ({"valid": Out(1), "skip": Out(range(Z + 1)), "code": Out(cfg.code_bits),
                  "take": In(1), "trim": In(1), "trim_to": In(range(Z + 1))} if head else
                 {"next_valid": Out(1), "next_skip": Out(range(Z + 1)),
                  "next_code": Out(cfg.code_bits), "pull": In(1), "take": In(1),
                  "trim": In(1)})
        super().__init__({
            "start": In(1), "first": In(addr_width + 1 + log2(R)), "drop": In(range(W)),
            "uniform": In(cfg.code_bits),
            "run": In(1), "grant": In(1),
            "meta": In(memory.ReadPort.Signature(addr_width=addr_width, shape=R * W)),
            **token})
        # What the token's fields look like (the head's, or the next token's without it).
        self._skip, self._code = ((self.skip, self.code) if head
                                  else (self.next_skip, self.next_code))

    def _prefetch(self, m, coded):
        """The metadata words of the walk, in order (a ``WordPrefetch`` on the shared port),
        while the layer is ``coded`` (not uniform)."""
        R, W = read_ratio(self.cfg), self.cfg.zone_word_bits
        pf = WordPrefetch(len(self.meta.addr), R * W, log2(R), SHARED_READ_LATENCY, element=True)
        m.submodules.prefetch = pf
        wiring.connect(m, pf.port, wiring.flipped(self.meta))
        m.d.comb += [pf.start.eq(self.start), pf.first.eq(self.first),
                     pf.run.eq(self.run & coded), pf.grant.eq(self.grant)]
        return pf

    def _hit(self, m, st_hit, code0):
        """A step's hit (one bit of ``st_hit``, or none): its bit in the window (``at``: its bit
        within its word, then whether it is in nxt) and its class, read out of entry 0 (the
        word it is in)."""
        W, cb = self.cfg.zone_word_bits, self.cfg.code_bits
        h = Signal(W)
        m.d.comb += h.eq(st_hit[:W] | st_hit[W:])
        lo = Signal(log2(W))
        m.d.comb += lo.eq(Cat(Cat(h[t] for t in range(W) if (t >> b) & 1).any()
                              for b in range(log2(W))))
        k_st = Signal(cb)
        m.d.comb += k_st.eq(Cat((h & code0[j * W:(j + 1) * W]).any() for j in range(cb)))
        return Cat(lo, st_hit[W:].any()), k_st

    def _token_stage(self, m, step, found, hit, code0, lead0):
        """The token stage (see the module docs): a step's ``found`` and ``hit`` registered,
        the hit's position and class (read from ``code0``, entry 0's classes) registered a cycle
        later, then its token from ``p``. Returns ``(valid, found, p, run, class)``."""
        W = self.cfg.zone_word_bits
        cb = c = self.cfg.code_bits             # c: a fixed-length code's bits
        st_valid, st_found = Signal(), Signal()
        st_hit = Signal(2 * W)
        hit_at, hit_k = self._hit(m, st_hit, code0)
        ht_valid, ht_found = Signal(), Signal()
        ht_at, ht_k = Signal(len(hit_at)), Signal(cb)
        ht_lead = Signal(range(c))
        p = Signal(range(W + 1))
        r_tok, k_tok, p_next = self._token(m, ht_found, ht_at, ht_k, p, ht_lead)
        with m.If(self.start):
            m.d.sync += [st_valid.eq(0), ht_valid.eq(0), p.eq(self.drop)]
        with m.Else():
            m.d.sync += [st_valid.eq(step), st_found.eq(found), st_hit.eq(hit),
                         ht_valid.eq(st_valid), ht_found.eq(st_found),
                         ht_at.eq(hit_at), ht_k.eq(hit_k), ht_lead.eq(lead0)]
            with m.If(ht_valid):
                m.d.sync += p.eq(p_next)
        return ht_valid, ht_found, p, r_tok, k_tok

    def _token(self, m, st_found, at, k_st, p, lead0):
        """The token of a hit (registered: ``at``, its class ``k_st``; ``lead0`` the
        first code bit of its word): its run from ``p``; and where ``p`` moves."""
        cfg = self.cfg
        n, W, cb = len(cfg.precisions), cfg.zone_word_bits, cfg.code_bits
        c = cb                                 # a fixed-length code's bits
        zb = len(self._skip)
        if cfg.meta_encoding == "unary":
            run_hit = (at + 1 - Mux(k_st >= n, n, k_st + 1) - p)[:log2(2 * W)]
            rest = W - p                       # cur's codes from p: all pruned, one bit each
            p_after_rest = 0
        else:
            gap = (at + 1 - c - p)[:log2(2 * W)]
            run_hit = Array(Const(i // c, zb) for i in range(2 * W))[gap]
            # codes beginning in cur at or after p; the last may end in nxt
            rest = Array(Const(-(-(W - q) // c), zb) for q in range(W + 1))[p]
            p_after_rest = lead0
        r_tok, k_tok = Signal.like(self._skip), Signal(cb)
        m.d.comb += [r_tok.eq(Mux(st_found, run_hit, rest)), k_tok.eq(Mux(st_found, k_st, 0))]
        return r_tok, k_tok, Mux(st_found, at[:log2(W)] + 1, p_after_rest)

    def _queue(self, m, occ, taken, push, skip, code):
        """The token queue, the walker's side: ``push`` enters (``skip``, ``code``) behind the
        tokens held; the walker's ``take`` pops the head, or with ``trim`` shortens its run.
        The head is a register of its own (``skip``, ``code``, ``valid``), the walker's
        decisions' only destination here (``take`` its enable); the tokens behind it wait in
        ``_QUEUE - 1`` places (``occ``) that move by a place a cycle after the head took one
        of them (``taken``, a register), so the head takes the one behind the place in front
        when a move is pending. A token pushed while the head is free and no place holds one
        is written into both: the head, and a place (taken at once)."""
        tails = range(_QUEUE - 1)
        qskip = [Signal.like(self._skip, name=f"place{i}_skip") for i in tails]
        qcode = [Signal.like(self._code, name=f"place{i}_code") for i in tails]
        _fifo_step(m, occ, push, taken, list(zip(qskip, qcode)), (skip, code))
        behind = Mux(taken, occ[1], occ[0])            # a place holds a token after the move
        if not self.head:
            m.d.sync += taken.eq(self.pull & (behind | push))
            m.d.comb += [self.next_valid.eq(behind | push),
                         self.next_skip.eq(Mux(behind, Mux(taken, qskip[1], qskip[0]), skip)),
                         self.next_code.eq(Mux(behind, Mux(taken, qcode[1], qcode[0]), code))]
            return
        free = ~self.valid | (self.take & ~self.trim)  # the head takes a token this cycle
        m.d.sync += taken.eq(free & (behind | push))
        with m.If(~self.valid | self.take):
            with m.If(~self.valid | ~self.trim):
                m.d.sync += self.valid.eq(behind | push)
                with m.If(behind):
                    m.d.sync += [self.skip.eq(Mux(taken, qskip[1], qskip[0])),
                                 self.code.eq(Mux(taken, qcode[1], qcode[0]))]
                with m.Else():
                    m.d.sync += [self.skip.eq(skip), self.code.eq(code)]
            with m.Else():
                m.d.sync += self.skip.eq(self.trim_to)

    def elaborate(self, platform):
        cfg = self.cfg
        n, W = len(cfg.precisions), cfg.zone_word_bits
        cb = c = cfg.code_bits                 # c: a fixed-length code's bits
        unary = cfg.meta_encoding == "unary"
        m = Module()

        uniform = Signal(cfg.code_bits)
        coded = Signal(init=1)                 # uniform == 0, a register of its own
        pf = self._prefetch(m, coded)

        drop = Signal(range(W))
        first_word = Signal()                  # the next word read is the walk's first
        # The bits before the walk's first code, a register set at ``start`` (its compares,
        # carry chains, stay out of the decoder's path from the slot).
        below_drop = Signal(W)

        # -- the decoder: word (a register) -> decoded, the carried state last -> entry --------
        occ = Signal(_ENTRIES)                 # entry i holds a decoded word (a thermometer)
        pre_valid, pre_first = Signal(), Signal()      # its state-free part decoded
        issue = Signal()
        m.d.comb += issue.eq(self.run & pf.ok & coded
                             & ~Mux(pre_valid, occ[-2], occ[-1]))
        m.d.comb += pf.advance.eq(issue)
        word = pf.element                      # the current word, a register
        state = Signal(max(1, (max(n, c) - 1).bit_length()))
        low, dlow = Mux(first_word, below_drop, 0), Mux(pre_first, below_drop, 0)
        if unary:
            new_alive, new_code, s_in, s_out = decode_unary(m, cfg, issue, word, low, pre_first,
                                                            dlow, state)
        else:
            new_alive, new_code, s_in, s_out = decode_fixed(m, cfg, issue, word, drop, pre_first,
                                                            dlow, state)

        # -- the entries: [0] = cur, [1] = nxt, then two more --------------------------------
        # ``lead``: the first bit of a word that begins a code (fixed-length codes cross words;
        # unary codes that cross words survive, so a word reached past pruned codes starts at 0)
        alive = [Signal(W, name=f"alive{i}") for i in range(_ENTRIES)]
        code = [Signal(W * cb, name=f"code{i}") for i in range(_ENTRIES)]
        lead = [Signal(range(c), name=f"lead{i}") for i in range(_ENTRIES)]
        new_lead = Signal(range(c))
        if not unary:
            m.d.comb += new_lead.eq(Array(Const((c - x) % c, len(new_lead))
                                          for x in range(c))[s_in])
        cur_ok, nxt_ok = occ[0], occ[1]        # the window's words are there

        # -- the scanner (the loop) --------------------------------------------------------------
        # ``rest``: cur's surviving code ends not yet taken (``empty``: none). A step takes the
        # lowest bit of ``rest`` (``rest - 1``, one W-bit carry chain, clears it and sets the bits
        # below it); when ``rest`` is empty it takes the lowest bit of nxt instead and the window
        # moves by a word, or, nxt having none, moves without a hit. Which of the two depends on
        # ``empty`` alone, a register, so the window's move waits for no carry chain; the loop is
        # ``rest`` through its chain and back.
        rest, empty = Signal(W), Signal()
        rest_less, nxt_less = Signal(W + 1), Signal(W + 1)
        m.d.comb += [rest_less.eq(rest - 1), nxt_less.eq(alive[1] - 1)]
        rest_hit, nxt_hit = rest & ~rest_less[:W], alive[1] & ~nxt_less[:W]
        rest_after, nxt_after = rest & rest_less[:W], alive[1] & nxt_less[:W]
        found = Mux(empty, ~nxt_less[W], ~rest_less[W])     # no borrow: a bit was set
        shift = empty

        # -- the token stage: the step's hit a cycle later, its token a cycle after that -----
        # The hit (one bit of ``st_hit``): its position and class, read from entry 0 (the word
        # it is in: if the window moved at the step, nxt became entry 0), registered (``ht_*``);
        # then its run from ``p`` (cur's first bit not taken, following the tokens, one a step).
        step = Signal()
        ht_valid, ht_found, p, r_tok, k_tok = self._token_stage(
            m, step, found, Mux(shift, Cat(Const(0, W), nxt_hit), rest_hit), code[0], lead[0])

        # -- the token queue (place 0 the head, then four behind it) -----------------------
        # The walker's side is a FIFO (``tocc`` and the entries, see ``_queue``); the
        # scanner's side counts its free places (``credits``): a step reserves one (its token
        # is pushed two cycles later, or the place is given back if the step made none), a
        # uniform layer's token reserves one as it is pushed, and the walker's pops give them
        # back a cycle later (``popped``). The walker's decisions thus end in its own registers
        # and the head's; the scanner steps on registers of its own.
        tocc = Signal(_QUEUE - 1)              # place i behind the head holds a token
        credits = Signal(range(_QUEUE + 1), init=_QUEUE)
        taken, popped = Signal(), Signal()     # the head took a place's token; the walker's pop
        push, ht_push = Signal(), Signal()
        r_in, k_in = Signal.like(r_tok), Signal.like(k_tok)
        m.d.comb += [step.eq(self.run & coded & (credits != 0)
                             & cur_ok & (~empty | nxt_ok)),
                     ht_push.eq(ht_valid & (ht_found | (p != W))),
                     push.eq(Mux(~coded, self.run & (credits != 0), ht_push)),
                     r_in.eq(Mux(~coded, 0, r_tok)),
                     k_in.eq(Mux(~coded, uniform, k_tok))]

        land = pre_valid
        leave = step & shift
        with m.If(self.start):
            m.d.sync += [tocc.eq(0), credits.eq(_QUEUE), taken.eq(0), popped.eq(0),
                         *([self.valid.eq(0)] if self.head else []), occ.eq(0),
                         pre_valid.eq(0), first_word.eq(1),
                         drop.eq(self.drop), uniform.eq(self.uniform),
                         coded.eq(self.uniform == 0),
                         below_drop.eq(Cat((self.drop > t) for t in range(W - 1)))]
        with m.Else():
            self._queue(m, tocc, taken, push, r_in, k_in)
            reserve = Mux(~coded, push, step)
            m.d.sync += [popped.eq(self.take & ~self.trim),
                         credits.eq(credits - reserve + popped + (ht_valid & ~ht_push))]

            m.d.sync += pre_valid.eq(issue)
            with m.If(issue):
                m.d.sync += [first_word.eq(0), pre_first.eq(first_word)]
            with m.If(land):
                m.d.sync += state.eq(s_out)
            # Entries move down a place when the window moves; a decoded word lands in the
            # first free one.
            _fifo_step(m, occ, land, leave, list(zip(alive, code, lead)),
                       (new_alive, new_code, new_lead))
            with m.If(step):
                m.d.sync += [rest.eq(Mux(shift, nxt_after, rest_after)),
                             empty.eq(~Mux(shift, nxt_after, rest_after).any())]
            with m.If(land & ~occ[0]):   # the word lands as cur (no step: cur was empty)
                m.d.sync += [rest.eq(new_alive), empty.eq(~new_alive.any())]
        return m
