"""The fetch walker's metadata decoders (``tokenizer``): one metadata word decoded on its own.

Each takes the word as the tokenizer's decoder reads it (``issue``, the word out of a prefetch
slot, a register), decodes it with word-wide operations into registers, and lets the state
carried from the words before it enter last. Each returns the word's surviving code ends (``alive``), their classes as
``code_bits`` planes of W bits (plane j: bit j of the class of the code ending at each bit), the
state the word begins in (``s_in``) and the state it leaves (``s_out``), all in the decoder's
last stage (``first``: its word is the walk's first).
"""

from amaranth.hdl import Array, Cat, Const, Mux, Signal

__all__ = ["decode_unary", "decode_fixed"]


def _or(values):
    """The OR of ``values`` (0 if there are none)."""
    out = Const(0)
    for v in values:
        out = out | v
    return out


def decode_unary(m, cfg, issue, word, low, first, dlow, state):
    """Truncated unary: every 0 ends a code (its class: the ones before it, modulo n), and so
    does the n-th 1 of a run of ones counted from the run's start. Runs are told apart by
    their start modulo n: adding a run's start bit to the word carries through the run, so
    ``((starts & P) + bits) ^ bits`` marks the runs starting at positions in ``P``, n carry
    chains for all of them. Only the run at bit 0 continues the previous word's code (its
    ``s_in`` pending ones), so only it and the 0 that ends it depend on the carried state:
    the chains' results are registered as the word is issued, and the state chooses among them
    a cycle later."""
    n, W, cb = len(cfg.precisions), len(word), cfg.code_bits
    full = (1 << W) - 1
    P = [sum(1 << t for t in range(W) if t % n == r) for r in range(n)]   # t = r (mod n)

    def by_state(f):                       # the mask P[f(s_in)], chosen by the carried state
        return Array(Const(P[f(x) % n], W) for x in range(n))[s_in]

    b = Signal(W, name="ubits")
    m.d.comb += b.eq(word & ~low)
    s_in = Mux(first, 0, state)
    # Sums kept as nets: else ABC built half of b + 1 as a LUT ripple (13 ns in the zones).
    # What is read off a sum is ``b & ~sum`` (the ones the carry went through), never
    # ``(sum ^ b) & b``: yosys reads ``sum ^ b`` as the adder's carries, which the ECP5's
    # carry chain does not give out, and builds them again as a ripple across the word
    # (10.9 ns). Whether the word is all ones is b + 1's carry out.
    inc = Signal(W + 1, attrs={"keep": 1})
    first_run, first_zero, starts = Signal(W), Signal(W), Signal(W)
    m.d.comb += [inc.eq(b + 1), first_run.eq(b & ~inc[:W]), first_zero.eq(~b & inc[:W]),
                 starts.eq(b & ~(b << 1)[:W] & (full ^ 1))]
    runs = []
    for r in range(n):
        run, total = Signal(W, name=f"urun{r}"), Signal(W, name=f"usum{r}", attrs={"keep": 1})
        m.d.comb += [total.eq((starts & P[r]) + b), run.eq(b & ~total)]
        runs.append(run)
    # registered: what does not depend on the carried state
    fr, fz, ones_rest = Signal(W), Signal(W), Signal(W)
    zero_rest = [None] + [Signal(W, name=f"uzrest{k}") for k in range(1, n)]
    all_ones, last_one, top = Signal(), Signal(), Signal(len(state))
    with m.If(issue):
        m.d.sync += [fr.eq(first_run), fz.eq(first_zero),
                     ones_rest.eq(_or(runs[r] & P[(r - 1) % n] for r in range(n))),
                     all_ones.eq(inc[W]), last_one.eq(b[W - 1]),
                     top.eq(_or(Mux(runs[r][W - 1], (W - r) % n, 0) for r in range(n)))]
        m.d.sync += [zero_rest[k].eq(_or(((runs[r] << 1)[:W] & ~b) & P[(r + k) % n]
                                         for r in range(n))) for k in range(1, n)]
    ones_end = Signal(W)
    m.d.comb += ones_end.eq((fr & by_state(lambda x: -x - 1)) | ones_rest)
    zero_end = [None]                      # zero_end[k]: a 0 that ends a code of class k
    for k in range(1, n):
        z = Signal(W, name=f"uzero{k}")
        m.d.comb += z.eq((fz & by_state(lambda x, k=k: k - x)) | zero_rest[k])
        zero_end.append(z)
    alive, code = Signal(W), Signal(W * cb)
    m.d.comb += [alive.eq(_or([ones_end, *zero_end[1:]]) & ~dlow),
                 code.eq(Cat(_or([ones_end] * ((n >> j) & 1)
                                 + [zero_end[k] for k in range(1, n) if (k >> j) & 1])
                             for j in range(cb)))]
    s_out = Mux(all_ones, Array(Const((x + W) % n, len(state)) for x in range(n))[s_in],
                Mux(last_one, top, 0))
    return alive, code, s_in, s_out

def decode_fixed(m, cfg, issue, word, drop, first, dlow, state):
    """A code ends where the bits seen reach c; its bits may begin in the previous word
    (``hist``: its last c - 1 bits). The first word's codes begin at ``drop``. (No carry
    chain: the word is registered as issued, and decoded from there.)"""
    W, c = len(word), cfg.code_bits
    hist = Signal(max(1, c - 1))
    dec_ext = Signal(W + c - 1)
    with m.If(issue):
        m.d.sync += dec_ext.eq(Cat(hist[:c - 1], word))
        if c > 1:
            m.d.sync += hist.eq(word[W - c + 1:])
    first_state = Array(Const((-d) % c, len(state)) for d in range(W))[drop]
    s_in = Mux(first, first_state, state)
    ends = Signal(W)
    m.d.comb += ends.eq(Array(Const(sum(1 << t for t in range(W) if (x + t + 1) % c == 0), W)
                              for x in range(c))[s_in])
    planes = [dec_ext[j:j + W] & ends for j in range(c)]   # bit j of the code ending at t
    alive, code = Signal(W), Signal(W * c)
    m.d.comb += [alive.eq(_or(planes) & ~dlow), code.eq(Cat(planes))]
    return alive, code, s_in, Array(Const((x + W) % c, len(state)) for x in range(c))[s_in]
