"""A fetch walker's tokenizer: the metadata bit string of a walk, as tokens (pruned run, code).

The walker keeps a window of the metadata bit string (bit 0 = the next code), refilled one word
per cycle from its metadata prefetcher. Every cycle the tokenizer finds the run of pruned codes
at the window's start (up to ``Z = (fetch_look * W - longest code) / pruned-code length``
codes: 61 or 29 for unary codes in 32-bit words) and the code that ends it, and shifts the window past both: the
token (run, code), or (Z, 0) when the window holds no surviving code. Every slot's code is
decoded in parallel and carried through a balanced priority encoder, so the loop is the search
for the first surviving code (log2 Z levels) and one shift of the window by the token's length;
the word entering the window is shifted to the fill level ``count`` beside the search. This loop
is still the zoned memory's critical path. Tokens wait in a two-entry queue, so the tokenizer
steps on the queue's registered level alone and the consumer's decisions are a register away.

A uniform layer (``uniform`` k > 0 at ``start``) has no metadata: the tokenizer reads none and
gives the token (0, k) every cycle the queue has room, outside the decode loop.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .layouts import log2, read_ratio
from .prefetch import WordPrefetch

__all__ = ["Tokenizer", "max_run"]


def max_run(cfg):
    """Z: the most pruned codes one token skips (``fetch_look`` metadata words a step)."""
    return (cfg.fetch_look * cfg.zone_word_bits - cfg.max_code_length) // cfg.code_length(0)


def _first_set(m, bits, payloads, name):
    """``(any, payload of the lowest set bit)`` of ``bits`` by halves: log2(width) levels of
    2:1 muxes, where a priority chain would cost one level per bit. The payload of every bit
    (its index, its decoded code, ...) travels down the same tree, so it is ready when the
    search is. Every level is a signal, so no expression is repeated."""
    n = len(bits)
    if n == 1:
        return bits[0], payloads[0]
    half = 1 << ((n - 1).bit_length() - 1)
    lo_any, lo_pay = _first_set(m, bits[:half], payloads[:half], name + "l")
    hi_any, hi_pay = _first_set(m, bits[half:], payloads[half:], name + "h")
    any_, pay = Signal(name=f"{name}_any"), Signal(len(lo_pay), name=f"{name}_pay")
    m.d.comb += [any_.eq(lo_any | hi_any), pay.eq(Mux(lo_any, lo_pay, hi_pay))]
    return any_, pay


class Tokenizer(wiring.Component):
    """Metadata window and token queue of one walker (see the module docs).

    Latency: the first token about five cycles after the metadata prefetcher's first word.
    Throughput: one token per cycle while the queue has room.

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
    pop : In(1)               The head token is used.
    trim, trim_to : In        The head token's run is partly used: ``trim_to`` codes are left.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        R, W, Z = read_ratio(cfg), cfg.zone_word_bits, max_run(cfg)
        addr_width = log2(2 * cfg.meta_depth // R)
        super().__init__({
            "start": In(1), "first": In(addr_width + 1 + log2(R)), "drop": In(range(W)),
            "uniform": In(cfg.code_bits),
            "run": In(1), "grant": In(1),
            "meta": In(memory.ReadPort.Signature(addr_width=addr_width, shape=R * W)),
            "valid": Out(1), "skip": Out(range(Z + 1)), "code": Out(cfg.code_bits),
            "pop": In(1), "trim": In(1), "trim_to": In(range(Z + 1))})

    def elaborate(self, platform):
        cfg = self.cfg
        n, W, R = len(cfg.precisions), cfg.zone_word_bits, read_ratio(cfg)
        len0, maxlen = cfg.code_length(0), cfg.max_code_length
        look = cfg.fetch_look * W              # window bits one step examines
        Z = max_run(cfg)
        m = Module()

        pf = WordPrefetch(len(self.meta.addr), R * W, log2(R))
        m.submodules.prefetch = pf
        wiring.connect(m, pf.port, wiring.flipped(self.meta))
        m.d.comb += [pf.start.eq(self.start), pf.first.eq(self.first), pf.run.eq(self.run),
                     pf.grant.eq(self.grant)]

        # The window is kept a word fuller than a step needs, so a step that takes a long run
        # (up to ``look`` bits) does not starve the next one.
        buf = Signal(look + 3 * W)
        count = Signal(range(look + 3 * W + 1))
        inflight, aligned = Signal(), Signal()
        meta_word = Signal(W)                  # the word taken from the prefetcher
        drop = Signal(range(W))

        # -- one token a cycle from the registered window ----------------------------------
        # Every slot of the window is decoded at once, as if the run ended there (its code,
        # and where the token would end); the search for the first surviving code carries
        # them, so the loop is the search and one shift. A code that follows a run of r < Z
        # slots lies within the first ``look`` bits, which a step always has (count >= look),
        # so the decode reads the registered window only, never the word entering it.
        code_w, end_w = cfg.code_bits, (look + 1).bit_length()
        slots = []
        for t in range(Z):
            field = buf[t * len0:t * len0 + maxlen]
            if cfg.meta_encoding == "fixed":
                k, k_len = field[:cfg.code_bits], cfg.code_bits
            else:
                k = sum(field[:j + 1].all().as_unsigned() for j in range(n))
                k_len = k + (k < n)
            slot = Signal(code_w + end_w + log2(Z), name=f"slot{t}")
            end_t = t * len0 + k_len           # a constant for fixed-length codes
            m.d.comb += slot.eq(Cat(Const(t, log2(Z)), k[:code_w],
                                    Const(end_t, end_w) if isinstance(end_t, int) else end_t))
            slots.append(slot)
        alive = Cat(buf[t * len0:(t + 1) * len0].any() for t in range(Z))
        vis, found = _first_set(m, alive, slots, "slot")
        r = Signal(range(Z + 1))
        k_dec = Signal(code_w)
        end = Signal(range(look + 1))          # window bits the token takes
        m.d.comb += [r.eq(Mux(vis, found[:log2(Z)], Z)),
                     k_dec.eq(Mux(vis, found[log2(Z):log2(Z) + code_w], 0)),
                     end.eq(Mux(vis, found[log2(Z) + code_w:], Z * len0))]
        # A metadata word is registered out of the prefetcher (aligned to the walk's first code
        # if it is the first word), then enters the window at ``count``, beside the decode.
        stage_valid, stage_word = Signal(), Signal(W)
        stage_bits = Signal(range(W + 1))
        ext = Signal(look + 3 * W)
        m.d.comb += ext.eq(buf | Mux(stage_valid, stage_word << count, 0))

        # -- the two-entry queue (head, then tail) -------------------------------------------
        # ``tstep``: a decoded token enters; ``qstep``: a token enters (decoded, or uniform).
        level = Signal(range(3))
        tail_skip, tail_code = Signal(range(Z + 1)), Signal(cfg.code_bits)
        uniform = Signal(cfg.code_bits)
        tstep, qstep = Signal(), Signal()
        r_q, k_q = Signal.like(r), Signal.like(k_dec)
        m.d.comb += [tstep.eq(self.run & (count >= look) & (level < 2)),
                     qstep.eq(Mux(uniform != 0, self.run & (level < 2), tstep)),
                     r_q.eq(Mux(uniform != 0, 0, r)), k_q.eq(Mux(uniform != 0, uniform, k_dec)),
                     self.valid.eq(level != 0)]
        with m.If(self.start):
            m.d.sync += [level.eq(0), count.eq(0), buf.eq(0), inflight.eq(0),
                         stage_valid.eq(0), drop.eq(self.drop), aligned.eq(0),
                         uniform.eq(self.uniform)]
        with m.Else():
            with m.If(self.trim):
                m.d.sync += self.skip.eq(self.trim_to)
            with m.If(self.pop & qstep):       # level 1: the new token becomes the head
                m.d.sync += [self.skip.eq(r_q), self.code.eq(k_q)]
            with m.Elif(self.pop):
                m.d.sync += [level.eq(level - 1), self.skip.eq(tail_skip),
                             self.code.eq(tail_code)]
            with m.Elif(qstep):
                m.d.sync += level.eq(level + 1)
                with m.If(level == 0):
                    m.d.sync += [self.skip.eq(r_q), self.code.eq(k_q)]
                with m.Else():
                    m.d.sync += [tail_skip.eq(r_q), tail_code.eq(k_q)]
            # One metadata word per cycle while there is room; the first word enters shifted by
            # the offset of the walk's first code in it.
            issue = Signal()
            m.d.comb += issue.eq(self.run & pf.ok & (uniform == 0)
                                 & (count + Mux(inflight, W, 0) + Mux(stage_valid, W, 0)
                                    <= look + 2 * W))
            m.d.comb += pf.advance.eq(issue)
            words = pf.word
            m.d.sync += meta_word.eq(Array(words[j * W:(j + 1) * W] for j in range(R))[pf.sel]
                                     if R > 1 else words)
            m.d.sync += [stage_valid.eq(inflight),
                         stage_word.eq(Mux(aligned, meta_word, meta_word >> drop)),
                         stage_bits.eq(Mux(aligned, W, W - drop))]
            added = Mux(stage_valid, stage_bits, 0)
            with m.If(tstep):
                m.d.sync += [buf.eq(ext >> end), count.eq(count + added - end)]
            with m.Else():
                m.d.sync += [buf.eq(ext), count.eq(count + added)]
            m.d.sync += inflight.eq(issue)
            with m.If(inflight):
                m.d.sync += aligned.eq(1)
        return m
