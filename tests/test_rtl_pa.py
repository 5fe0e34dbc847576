"""Tier 1: the Precision Allocator in Amaranth's simulator against the golden model."""

import random

import numpy as np
import pytest

from pse_hdl.config import ConfigError, PSEConfig, preset
from pse_hdl.model.pa import allocate
from pse_hdl.regmap import RegisterMap
from pse_hdl.rtl.pa import PrecisionAllocator
from tests.simutil import run_sim, stream_sink, stream_source

CONFIGS = {"p4-8-16": PSEConfig(), "p2-4-8-16": preset("wide"),
           "p8-16": PSEConfig(precisions=(8, 16), thresholds=(100, 5000))}


async def write(ctx, dut, thresholds, band, uniform=0):
    for k, v in enumerate(list(thresholds) + [band, uniform]):
        ctx.set(dut.csr.wr_en, 1)
        ctx.set(dut.csr.wr_addr, k)
        ctx.set(dut.csr.wr_data, v)
        await ctx.tick()
    ctx.set(dut.csr.wr_en, 0)
    ctx.set(dut.csr.commit, 1)
    await ctx.tick()
    ctx.set(dut.csr.commit, 0)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("layer", ["coded", "uniform", "masked"])
def test_pa_matches_model_under_stalls(name, seed, layer):
    """A uniform layer codes every weight its class (each seed another class); a masked one
    (``input_masks``: the class register's top bit) every weight the thresholds keep."""
    cfg = CONFIGS[name]
    masked = layer == "masked"
    if masked:
        cfg = cfg.replace(input_masks=True)
    n = len(cfg.precisions)
    uniform = 0 if layer == "coded" else 1 + seed % n
    rng = random.Random(seed)
    dut = PrecisionAllocator(cfg)
    thresholds = sorted(rng.randrange(1 << 20) for _ in range(n))
    if seed == 1:                                  # two equal thresholds: an empty class
        thresholds[1] = thresholds[0]
    if seed == 2:                                  # all equal
        thresholds = [thresholds[0]] * n
    band = [0, 300, 1 << 16][seed]
    count = 600
    imps = [min(max(rng.choice(thresholds) + rng.randint(-400, 400), 0), (1 << 32) - 1)
            if rng.random() < 0.6 else rng.randrange(1 << 32) for _ in range(count)]
    prev = [rng.randrange(n + 1) for _ in range(count)]
    items = [{"importance": i, "prev": p, "row": k % cfg.max_rows, "column": k % 7,
              "last": k % 3 == 0} for k, (i, p) in enumerate(zip(imps, prev))]
    want = allocate(np.array(imps), thresholds, np.array(prev), band, uniform, masked)
    if masked:
        assert 0 < np.count_nonzero(want) < count
    got = []

    async def source(ctx):
        await write(ctx, dut, thresholds, band, uniform | masked << cfg.code_bits)
        assert ctx.get(dut.error) == 0
        assert ctx.get(dut.uniform) == uniform
        if masked:
            assert ctx.get(dut.masked) == 1
        await stream_source(ctx, dut.i, items, random.Random(seed), idle=0.3)

    async def sink(ctx):
        got.extend(await stream_sink(ctx, dut.o, count, random.Random(seed + 9), stall=0.4))

    run_sim(dut, source, sink)
    assert [g["code"] for g in got] == want.tolist()
    assert [g["importance"] for g in got] == imps
    assert [(g["row"], g["column"], g["last"]) for g in got] == \
        [(it["row"], it["column"], int(it["last"])) for it in items]


def test_pa_rejects_unordered_commit():
    cfg = PSEConfig()
    dut = PrecisionAllocator(cfg)

    async def tb(ctx):
        await write(ctx, dut, [5, 3, 9], 0)
        assert ctx.get(dut.error) == 1
        assert list(ctx.get(dut.thresholds)) == list(cfg.thresholds)
        await write(ctx, dut, [3, 5, 9], 0)
        assert ctx.get(dut.error) == 0
        assert list(ctx.get(dut.thresholds)) == [3, 5, 9]

    run_sim(dut, tb)


def test_pa_full_throughput():
    """No stalls: one result per cycle; a weight accepted at edge k is on the output after
    edge k+2 (three register stages)."""
    cfg = PSEConfig()
    dut = PrecisionAllocator(cfg)
    cycles = []

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for k in range(50):
            ctx.set(dut.i.payload.importance, k << 12)
            await ctx.tick()
            if ctx.get(dut.o.valid):
                cycles.append(k)

    run_sim(dut, tb)
    assert cycles == list(range(2, 50))


def test_hysteresis_in_config_needs_the_comparators():
    with pytest.raises(ConfigError, match="hysteresis = 10 needs hysteresis_logic = true"):
        PSEConfig(hysteresis=10, hysteresis_logic=False)
    with pytest.raises(ConfigError, match="BAND register needs"):
        RegisterMap(PSEConfig(hysteresis_logic=False))
