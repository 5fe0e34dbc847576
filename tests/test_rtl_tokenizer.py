"""Tier 1: the fetch walker's tokenizer alone. Its tokens, expanded (each token's pruned run,
then its code), are exactly the codes written from the walk's first bit on, for every metadata
encoding, at every sparsity up to all pruned, from any bit of any word, with the shared read
port granted at random, the consumer popping and trimming at random, and a walk restarted in
the middle of another."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import memory, wiring

from pse_hdl.config import PSEConfig
from pse_hdl.rtl.zones.layouts import SHARED_READ_LATENCY, read_ratio
from pse_hdl.rtl.zones.tokenizer import Tokenizer, max_run
from tests.simutil import run_sim

BASE = dict(max_rows=32, max_cols=32, master_depth=16384, lanes=2)
CONFIGS = {
    "unary-n3": PSEConfig(**BASE),
    "unary-n2": PSEConfig(**BASE, precisions=(8, 16), thresholds=(1, 2)),
    "unary-n4": PSEConfig(**BASE, precisions=(2, 4, 8, 16), thresholds=(1, 2, 3, 4)),
    "unary-n1": PSEConfig(**BASE, precisions=(16,), thresholds=(1,)),
    "fixed-c2": PSEConfig(**BASE, meta_encoding="fixed"),
    "fixed-c3": PSEConfig(**BASE, precisions=(2, 4, 8, 16), thresholds=(1, 2, 3, 4),
                          meta_encoding="fixed"),
    "unary-w16-P1": PSEConfig(**BASE | {"lanes": 1}, zone_word_bits=16),
    "fixed-c3-w64": PSEConfig(**BASE, precisions=(2, 4, 8, 16), thresholds=(1, 2, 3, 4),
                              meta_encoding="fixed", zone_word_bits=64),
}


def encode(cfg, codes):
    """The metadata bits of ``codes`` (LSB first), as the re-zoner writes them."""
    n, bits = len(cfg.precisions), []
    for k in codes:
        if cfg.meta_encoding == "fixed":
            bits += [(k >> i) & 1 for i in range(cfg.code_bits)]
        else:
            bits += [1] * k + ([0] if k < n else [])
    return bits


def random_codes(cfg, rng, count, sparsity):
    n = len(cfg.precisions)
    return [0 if rng.random() < sparsity else rng.randint(1, n) for _ in range(count)]


class _Bench(wiring.Component):
    def __init__(self, cfg, words):
        self.tok = Tokenizer(cfg)
        self.words = words
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tok = tok = self.tok
        m.submodules.mem = mem = memory.Memory(shape=len(tok.meta.data),
                                               depth=1 << len(tok.meta.addr), init=self.words)
        rd = mem.read_port()
        m.d.comb += [rd.en.eq(tok.meta.en), rd.addr.eq(tok.meta.addr)]
        # As the zoned memory's port: the block RAM's output registered, if it is there.
        domain = m.d.sync if SHARED_READ_LATENCY == 2 else m.d.comb
        domain += tok.meta.data.eq(rd.data)
        return m


def walks(cfg, rng, sparsities):
    """(first word, drop, codes) of each walk, and the physical memory words holding them."""
    W, R = cfg.zone_word_bits, read_ratio(cfg)
    Z = max_run(cfg)
    out, bits = [], []
    for sp in sparsities:
        # Each walk starts at a random bit of a random word, after junk bits (a previous
        # layer's codes), and has runs longer than a token can take.
        bits += [rng.randint(0, 1) for _ in range(rng.randint(0, 3 * W))]
        start = len(bits)
        codes = random_codes(cfg, rng, rng.randint(1, 6 * W), sp)
        if rng.random() < 0.5:
            codes[rng.randint(0, len(codes) - 1):] = [0] * (Z + rng.randint(0, 2 * W))
        bits += encode(cfg, codes)
        out.append((start // W, start % W, codes))
    bits += [rng.randint(0, 1) for _ in range(8 * W * R)]   # read ahead of the walk's end
    logical = [sum(b << i for i, b in enumerate(bits[j:j + W])) for j in range(0, len(bits), W)]
    logical += [0] * (-len(logical) % R)
    physical = [sum(w << (W * i) for i, w in enumerate(logical[j:j + R]))
                for j in range(0, len(logical), R)]
    return out, physical


@pytest.mark.parametrize("name", CONFIGS)
def test_tokens_expand_to_the_codes(name):
    cfg = CONFIGS[name]
    rng = random.Random(name)
    Z = max_run(cfg)
    sparsities = [0.0, 1.0] + [rng.choice([0.3, 0.7, 0.9, 0.97]) for _ in range(40)]
    plan, words = walks(cfg, rng, sparsities)
    dut = _Bench(cfg, words)
    tok = dut.tok

    async def bench(ctx):
        for i, (first, drop, codes) in enumerate(plan):
            ctx.set(tok.start, 1)
            ctx.set(tok.first, first)
            ctx.set(tok.drop, drop)
            await ctx.tick()
            ctx.set(tok.start, 0)
            ctx.set(tok.run, 1)
            got = []
            # The last walk but one is cut short: the next start must forget it.
            want = len(codes) if i != len(plan) - 2 else len(codes) // 2
            cycles = 0
            while len(got) < want:
                ctx.set(tok.grant, rng.random() < 0.5)
                pop = trim = False
                if ctx.get(tok.valid):
                    skip, code = ctx.get(tok.skip), ctx.get(tok.code)
                    assert skip <= Z
                    if skip and rng.random() < 0.2:
                        # The consumer takes part of the run (a row ended inside it).
                        used = rng.randint(1, skip)
                        got += [0] * used
                        trim = True
                        ctx.set(tok.trim_to, skip - used)
                    elif rng.random() < 0.7:
                        got += [0] * skip + ([code] if code else [])
                        pop = True
                # ``trim`` is looked at only with ``take``: random without it.
                ctx.set(tok.take, pop or trim)
                ctx.set(tok.trim, trim or (not pop and rng.random() < 0.5))
                await ctx.tick()
                cycles += 1
                assert cycles < 50 * len(codes) + 200, "the tokenizer stopped"
            ctx.set(tok.take, 0)
            ctx.set(tok.trim, 0)
            ctx.set(tok.run, 0)
            # The expansion goes past the walk (junk after it): compare the walk's codes.
            assert got[:want] == codes[:want], f"walk {i} (sparsity {sparsities[i]})"
            await ctx.tick()

    run_sim(dut, bench)


def test_uniform_walk_reads_no_metadata():
    """A uniform layer's tokens are (0, class), one per take, and no metadata word is read."""
    cfg = CONFIGS["unary-n3"]
    _, words = walks(cfg, random.Random(1), [0.5])
    dut = _Bench(cfg, words)
    tok = dut.tok

    async def bench(ctx):
        ctx.set(tok.start, 1)
        ctx.set(tok.uniform, 2)
        await ctx.tick()
        ctx.set(tok.start, 0)
        ctx.set(tok.run, 1)
        ctx.set(tok.grant, 1)
        got = []
        for _ in range(40):
            assert not ctx.get(tok.meta.en)
            if ctx.get(tok.valid):
                got.append((ctx.get(tok.skip), ctx.get(tok.code)))
                ctx.set(tok.take, 1)
            else:
                ctx.set(tok.take, 0)
            await ctx.tick()
        assert len(got) > 30 and set(got) == {(0, 2)}

    run_sim(dut, bench)
