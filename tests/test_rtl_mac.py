"""Tier 1: the MAC lane and array in Amaranth's simulator against the golden model."""

import random

import numpy as np
import pytest

from pse_hdl.config import PSEConfig, preset
from pse_hdl.model.layer import layer_forward, requantize
from pse_hdl.model.quant import dequantize
from pse_hdl.model.transfer import lane_schedule, lane_streams
from pse_hdl.rtl.mac import MacArray
from tests.simutil import run_sim, stream_sink, stream_source

CFG = PSEConfig(max_rows=64, max_cols=256, one_port_below=0)    # small layers on every lane


def record(r):
    return {k: int(r[k]) for k in r.dtype.names}


async def load_operands(ctx, dut, cfg, x, bias, half, layer):
    """The activations into buffer half ``half`` and the biases of layer ``layer``; the other
    half gets different values, which must not leak into the result."""
    for h in (1 - half, half):
        for j, v in enumerate(x if h == half else -x - 1):
            ctx.set(dut.x.valid, 1)
            ctx.set(dut.x.payload.value, int(v))
            ctx.set(dut.x.payload.column, j)
            ctx.set(dut.x.payload.half, h)
            await ctx.tick()
    ctx.set(dut.x.valid, 0)
    for i, b in enumerate(bias):
        ctx.set(dut.bias.en, 1)
        ctx.set(dut.bias.addr, layer * cfg.max_rows + i)
        ctx.set(dut.bias.data, int(b))
        await ctx.tick()
    ctx.set(dut.bias.en, 0)


def run_layer(cfg, lanes, codes, values, shifts, bias, x, relu, out_shift, seed=0,
              idle=0.2, stall=0.3):
    cfg = cfg.replace(lanes=lanes)
    dut = MacArray(cfg)
    streams = lane_streams(codes, values, shifts, cfg)
    half, layer = seed % 2, seed % cfg.max_layers
    got = []
    rows = codes.shape[0]

    async def control(ctx):
        ctx.set(dut.relu, relu)
        ctx.set(dut.out_shift, out_shift)
        ctx.set(dut.half, half)
        ctx.set(dut.layer, layer)
        for k, (row, cont) in enumerate(lane_schedule(streams)):
            ctx.set(dut.sched[k].row, row)
            ctx.set(dut.sched[k].cont, cont)
        await load_operands(ctx, dut, cfg, x, bias, half, layer)

    def source(k):
        async def tb(ctx):
            await ctx.tick().repeat(2 * len(x) + len(bias) + 2)
            await stream_source(ctx, dut.i[k], [record(r) for r in streams[k]],
                                random.Random(seed * 100 + k), idle=idle)
        return tb

    async def sink(ctx):
        got.extend(await stream_sink(ctx, dut.o, rows, random.Random(seed + 7), stall=stall))

    run_sim(dut, control, *[source(k) for k in range(lanes)], sink)
    return sorted(got, key=lambda g: g["row"])


def expected(cfg, codes, values, shifts, bias, x, relu, out_shift):
    shift_of = np.array((0,) + tuple(shifts))[codes]
    w = np.where(codes > 0, dequantize(values, shift_of), 0)
    acc, ovf = layer_forward(w, bias, x[None, :], cfg)
    y = requantize(acc, out_shift, relu, cfg)
    return [{"row": i, "value": int(y[0, i]), "acc": int(acc[0, i]), "overflow": int(ovf[0, i])}
            for i in range(codes.shape[0])]


def test_one_lane_exhaustive_4bit_weights_by_8bit_activations():
    """Every 4-bit weight times every 8-bit activation, with zone shifts, one weight per row."""
    cfg = CFG
    x = np.arange(-128, 128)
    for v0 in (-8, 0):                       # two halves of the weights, 64 rows each
        codes = np.zeros((64, 256), np.int64)
        values = np.zeros((64, 256), np.int64)
        rng = np.random.default_rng(v0 + 8)
        for i in range(64):
            codes[i, :] = 1                  # every column of the row: 256 weights per row
            values[i, :] = v0 + (i % 8)
        shifts = (int(rng.integers(0, 13)), 0, 0)
        bias = rng.integers(-1000, 1000, 64)
        got = run_layer(cfg, 1, codes, values, shifts, bias, x, relu=False, out_shift=6,
                        idle=0.0, stall=0.0)
        assert got == expected(cfg, codes, values, shifts, bias, x, False, 6)


@pytest.mark.parametrize("lanes", [1, 2, 4])
@pytest.mark.parametrize("seed", range(3))
def test_random_layers_match_the_model(lanes, seed):
    rng = np.random.default_rng(seed)
    cfg = [CFG, preset("wide").replace(max_rows=64, max_cols=256, one_port_below=0),
           CFG.replace(acc_bits=24)][seed]
    n = len(cfg.precisions)
    rows, cols = int(rng.integers(1, 20)), int(rng.integers(1, 40))
    codes = rng.integers(0, n + 1, (rows, cols)) * (rng.random((rows, cols)) > 0.4)
    codes[0, :] = 0                                      # an all-pruned row
    bits = np.array((0,) + tuple(cfg.precisions))[codes]
    raw = rng.integers(-32768, 32768, (rows, cols))
    values = np.where(bits > 0, raw >> (16 - np.maximum(bits, 1)), 0)     # b-bit values
    shifts = tuple(int(rng.integers(0, 16 - b + 1)) for b in cfg.precisions)
    bias = rng.integers(-(1 << 20), 1 << 20, rows)
    x = rng.integers(-128, 128, cols)
    if seed == 2:                          # drive the 24-bit accumulator to its rails
        values = np.where(bits > 0, (1 << (bits - 1)) - 1, 0)
        x = np.full(cols, 127)
    relu, out_shift = bool(seed % 2), int(rng.integers(0, 20))
    got = run_layer(cfg, lanes, codes, values, shifts, bias, x, relu, out_shift, seed)
    want = expected(cfg, codes, values, shifts, bias, x, relu, out_shift)
    assert got == want
    if seed == 2:
        assert any(w["overflow"] for w in want)



@pytest.mark.parametrize("shape, density", [((1, 64), 0.8), ((2, 40), 0.5), ((3, 5), 0.3),
                                            ((10, 64), 0.3)])
@pytest.mark.parametrize("lanes", [4, 16])
def test_rows_split_over_several_lanes(shape, density, lanes):
    """One row over 4 or 16 lanes, fewer weights than lanes, short rows: the carry chain."""
    rng = np.random.default_rng(lanes + shape[1])
    cfg = preset("wide").replace(max_rows=64, max_cols=256, one_port_below=0)
    n = len(cfg.precisions)
    codes = rng.integers(1, n + 1, shape) * (rng.random(shape) < density)
    bits = np.array((0,) + tuple(cfg.precisions))[codes]
    values = np.where(bits > 0, rng.integers(-32768, 32768, shape) >> (16 - np.maximum(bits, 1)),
                      0)
    shifts = tuple(int(rng.integers(0, 16 - b + 1)) for b in cfg.precisions)
    bias, x = rng.integers(-1000, 1000, shape[0]), rng.integers(-128, 128, shape[1])
    streams = lane_streams(codes, values, shifts, cfg.replace(lanes=lanes))
    assert sum(cont for _, cont in lane_schedule(streams)) > 0 or shape == (3, 5)
    got = run_layer(cfg, lanes, codes, values, shifts, bias, x, True, 8, seed=lanes)
    assert got == expected(cfg, codes, values, shifts, bias, x, True, 8)


def _hand_requantize(acc, shift, relu, act_bits=8):
    """The finishing rule written out once more by hand: ReLU, round half up, saturate."""
    a = max(acc, 0) if relu else acc
    y = (a + ((1 << shift) >> 1)) >> shift
    return min(max(y, -(1 << (act_bits - 1))), (1 << (act_bits - 1)) - 1)


@pytest.mark.parametrize("relu, out_shift, accs", [
    (True, 0, [-1, 0, 1, -2, 127, 128, -129]),           # ReLU at -1 with no shift
    (False, 1, [3, -3, 1, -1, 5, -5, 254, 255, 256, -256, -257, -258]),   # exact ties
    (False, 2, [2, -2, 6, -6, 10, -10, 509, 510, -514]),  # ties of a wider shift
    (False, 0, [127, 128, -128, -129, 0, -1]),           # saturation exactly at each bound
    (True, 3, [-4, -5, 4, 12, 20, 1019, 1020, 1021]),     # ReLU then ties then the top rail
])
def test_finishing_corners_relu_ties_and_rails(relu, out_shift, accs):
    """Directed rows whose accumulator is exactly a ReLU edge, a rounding tie or a saturation
    bound: the RTL, the golden model and the rule written out by hand all agree."""
    rows = len(accs)
    codes = np.zeros((rows, 4), np.int64)
    codes[:, 0] = 1                                   # one 4-bit weight of value 0 per row
    values = np.zeros((rows, 4), np.int64)
    bias, x = np.array(accs), np.array([5, -3, 7, 1])
    got = run_layer(CFG, 2, codes, values, (0, 0, 0), bias, x, relu, out_shift, seed=1)
    want = expected(CFG, codes, values, (0, 0, 0), bias, x, relu, out_shift)
    assert got == want
    assert [g["value"] for g in got] == [_hand_requantize(a, out_shift, relu) for a in accs]
