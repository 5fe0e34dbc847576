"""Tier 1: the element queue between a zone's prefetcher and its fetch walker. Every element
offered comes out once, in order, whatever the offer and pop patterns; a restart in the middle
drops what was queued; and with elements always on offer and the head always taken, one element
a cycle flows although the prefetcher hears of a pop a cycle late."""

import random

import pytest
from amaranth.hdl import signed

from pse_hdl.rtl.zones.prefetch import ElementQueue, WordPrefetch
from tests.simutil import run_sim


def _run(offer, take, streams, seed):
    """Offer ``streams`` (lists of values, a restart before each) with probability ``offer`` a
    cycle, pop with probability ``take``; returns the values popped after each restart and the
    cycles each stream took. Past a stream's end the prefetcher goes on offering (the zone's
    next elements, another walk's), so the queue holds elements nobody takes at the restart."""
    q = ElementQueue(signed(16))
    rng = random.Random(seed)
    got, cycles = [], []

    async def bench(ctx):
        for values in streams:
            ctx.set(q.start, 1)
            await ctx.tick()
            ctx.set(q.start, 0)
            out, i, n = [], 0, 0
            while len(out) < len(values):
                n += 1
                assert n < 50 * (len(values) + 10), "the queue is stuck"
                # The prefetcher's side: its current element, while it has one.
                ok = rng.random() < offer
                ctx.set(q.ok, ok)
                ctx.set(q.value, values[i] if i < len(values) else 12345 + i)
                # The walker's side: it takes the head only while the queue holds one.
                valid = ctx.get(q.valid)
                pop = valid and rng.random() < take
                ctx.set(q.pop, pop)
                if pop:
                    out.append(ctx.get(q.head))
                if ctx.get(q.advance):
                    assert ok
                    i += 1
                await ctx.tick()
            ctx.set(q.pop, 0)
            ctx.set(q.ok, 0)
            # Pushed but not taken: at most the queue's depth, dropped at the restart.
            assert i - len(out) <= ElementQueue.DEPTH
            got.append(out)
            cycles.append(n)

    run_sim(q, bench)
    return got, cycles


@pytest.mark.parametrize("offer, take, seed", [(1.0, 1.0, 0), (0.5, 0.9, 1), (0.9, 0.3, 2),
                                               (0.2, 0.2, 3), (0.7, 0.7, 4)])
def test_every_element_comes_out_once_in_order(offer, take, seed):
    rng = random.Random(100 + seed)
    streams = [[rng.randrange(-32768, 32768) for _ in range(rng.randrange(1, 200))]
               for _ in range(6)]
    got, _ = _run(offer, take, streams, seed)
    assert got == streams


def test_a_restart_drops_what_was_queued():
    """The walker stops taking with elements queued (the prefetcher ran ahead) and a new walk
    starts: the new walk's first element is its own, not the old one's."""
    streams = [[1, 2, 3, 4, 5, 6, 7, 8], [-1], [100, 200, 300]]
    got, _ = _run(1.0, 0.4, streams, seed=7)
    assert got == streams


def test_one_element_a_cycle_once_it_flows():
    """Elements always offered and always taken: after the first (``LATENCY`` cycles: pushed,
    sent, then at the head), one a cycle, though the prefetcher gets each credit back two
    cycles after the pop."""
    values = list(range(300))
    got, cycles = _run(1.0, 1.0, [values], seed=0)
    assert got == [values]
    assert cycles == [len(values) + ElementQueue.LATENCY]


def test_the_two_sides_meet_only_at_registers():
    """What the prefetcher sees (``advance``) does not follow the walker's ``pop`` within a
    cycle, and what the walker sees (``valid``, ``head``) does not follow the prefetcher's
    offer: each side's decisions reach the other a register later (the reason for the queue)."""
    q = ElementQueue(signed(16))
    rng = random.Random(3)

    async def bench(ctx):
        for _ in range(400):
            ok, pop = rng.random() < 0.7, rng.random() < 0.5
            ctx.set(q.ok, ok)
            ctx.set(q.value, rng.randrange(-100, 100))
            seen = []
            for p in (0, 1):
                ctx.set(q.pop, p)
                seen.append(ctx.get(q.advance))
            assert seen[0] == seen[1]
            walker = []
            for o in (0, 1):
                ctx.set(q.ok, o)
                ctx.set(q.value, rng.randrange(-100, 100))
                walker.append((ctx.get(q.valid), ctx.get(q.head)))
            assert walker[0] == walker[1]
            ctx.set(q.ok, ok)
            ctx.set(q.pop, pop and ctx.get(q.valid))
            await ctx.tick()

    run_sim(q, bench)


@pytest.mark.parametrize("latency", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("E", [8, 1])
def test_the_word_prefetcher_gives_every_element_in_order(latency, seed, E):
    """A ``WordPrefetch`` over a read port whose data comes one or two cycles after the read
    (a zone's port is two: its block RAMs' outputs are registered), the port granted at
    random and the elements taken at random: from any first element, every element in order,
    and a restart drops what was prefetched; the registered ``element`` is always the one
    ``word`` and ``sel`` point at."""
    B = 4                                      # bits per element; E elements per word
    words = [random.Random(seed * 1000 + a).getrandbits(E * B) for a in range(64)]
    pf = WordPrefetch(6, E * B, E.bit_length() - 1, latency, element=True)
    rng = random.Random(seed)

    def element(i):
        return (words[i // E] >> (B * (i % E))) & ((1 << B) - 1)

    async def bench(ctx):
        for first in (rng.randrange(0, 200), rng.randrange(0, 8), rng.randrange(200, 300)):
            ctx.set(pf.first, first)
            ctx.set(pf.start, 1)
            await ctx.tick()
            ctx.set(pf.start, 0)
            ctx.set(pf.run, 1)
            flight = [None] * latency          # the data of the reads in flight, oldest first
            want = list(range(first, min(first + rng.randrange(20, 150), E * len(words))))
            got = []
            for _ in range(5000):
                if len(got) == len(want):
                    break
                ctx.set(pf.port.data, flight[0] if flight[0] is not None
                        else rng.getrandbits(E * B))
                ctx.set(pf.grant, rng.random() < 0.5)
                take = ctx.get(pf.ok) and rng.random() < 0.7
                ctx.set(pf.advance, take)
                if ctx.get(pf.ok):
                    word, sel = ctx.get(pf.word), ctx.get(pf.sel) if E > 1 else 0
                    assert ctx.get(pf.element) == (word >> (B * sel)) & ((1 << B) - 1)
                if take:
                    got.append(ctx.get(pf.element))
                read = ctx.get(pf.port.en)
                flight = flight[1:] + [words[ctx.get(pf.port.addr)] if read else None]
                await ctx.tick()
            ctx.set(pf.advance, 0)
            ctx.set(pf.run, 0)
            assert got == [element(i) for i in want]

    run_sim(pf, bench)
