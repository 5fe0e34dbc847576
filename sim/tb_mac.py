"""cocotb testbench of the variable-precision MAC array against the golden model.

``random_layers``: random shapes, precision mixes and sparsity (``PSE_SEEDS`` seeds, plus all-pruned,
all-top-precision and accumulator-saturating layers), each lane's stream with random idle cycles
and the output with random backpressure; every row's value, accumulator and overflow flag
compared. ``measure_cycles``: the layers of an ``.npz`` file (``PSE_IN``) run without
stalls; the cycles from the first transfer to the last result are written as JSON to
``PSE_OUT`` (used by ``bench/mac.py``).
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from pse_hdl.model.layer import layer_forward, requantize
from pse_hdl.model.quant import dequantize
from pse_hdl.model.transfer import lane_schedule, lane_streams
from pse_hdl.rtl import layouts
from sim.common import PATTERNS, SEEDS, reset, start
from sim.runner import config_from_env
from sim.streams import (Codec, Scoreboard, StreamDriver, StreamMonitor, run_streams,
                         stall_pattern)

CFG = config_from_env()
L = CFG.lanes
N = len(CFG.precisions)
BITS = np.array((0,) + tuple(CFG.precisions))
SCHED_BITS = layouts.schedule(CFG).size
INPUTS = [f"i__{k}__valid" for k in range(L)] + ["o__ready", "x__valid", "bias__en"]


async def load(dut, x, bias, relu, out_shift, half, layer):
    """Operands into buffer half ``half`` (the other half gets other values, which must not
    leak in) and biases at layer ``layer``'s rows."""
    await RisingEdge(dut.clk)
    dut.relu.value, dut.out_shift.value = int(relu), int(out_shift)
    dut.half.value, dut.layer.value = half, layer
    cx = Codec(layouts.act_write(CFG))
    for h in (1 - half, half):
        for j, v in enumerate(x if h == half else -x - 1):
            dut.x__valid.value = 1
            dut.x__payload.value = cx.pack({"value": int(v), "column": j, "half": h})
            await RisingEdge(dut.clk)
    dut.x__valid.value = 0
    for i, b in enumerate(bias):
        dut.bias__en.value, dut.bias__addr.value = 1, layer * CFG.max_rows + i
        dut.bias__data.value = int(b) & ((1 << CFG.acc_bits) - 1)
        await RisingEdge(dut.clk)
    dut.bias__en.value = 0


async def run_layer(dut, codes, values, shifts, bias, x, relu, out_shift, pattern, rng):
    """Returns (results sorted by row, cycles from the first offered transfer to the last
    result)."""
    await load(dut, x, bias, relu, out_shift, rng.randrange(2), rng.randrange(CFG.max_layers))
    streams = lane_streams(codes, values, shifts, CFG)
    cs = Codec(layouts.schedule(CFG))
    dut.sched.value = sum(cs.pack({"row": row, "cont": cont}) << (k * SCHED_BITS)
                          for k, (row, cont) in enumerate(lane_schedule(streams)))
    ct, cr = Codec(layouts.transfer_layout(CFG)), Codec(layouts.mac_result(CFG))
    drivers = [StreamDriver(dut, f"i__{k}", dut.clk,
                            stall_pattern(pattern[0], random.Random(rng.random())))
               for k in range(L)]
    mon = StreamMonitor(dut, "o", dut.clk, stall_pattern(pattern[1], random.Random(rng.random())))
    cycles = await run_streams(*(drivers[k].load([ct.pack({n: int(r[n]) for n in r.dtype.names})
                                                    for r in streams[k]]) for k in range(L)),
                               mon.expect(codes.shape[0]))
    got = sorted((cr.unpack(v) for v in mon.items), key=lambda g: g["row"])
    return got, cycles


def expected(codes, values, shifts, bias, x, relu, out_shift):
    shift_of = np.array((0,) + tuple(shifts))[codes]
    w = np.where(codes > 0, dequantize(values, shift_of), 0)
    acc, ovf = layer_forward(w, bias, x[None, :], CFG)
    y = requantize(acc, out_shift, relu, CFG)
    return [{"row": i, "value": int(y[0, i]), "acc": int(acc[0, i]),
             "overflow": int(ovf[0, i])} for i in range(codes.shape[0])]


def random_layer(seed):
    rng = np.random.default_rng(seed)
    kind = ["mixed", "mixed", "sparse90", "all-pruned", "all-top", "saturate"][seed % 6]
    rows = int(rng.integers(1, min(CFG.max_rows, 96) + 1))
    cols = int(rng.integers(1, min(CFG.max_cols, 96) + 1))
    codes = rng.integers(1, N + 1, (rows, cols))
    codes[rng.random((rows, cols)) < {"sparse90": 0.9}.get(kind, rng.random())] = 0
    if kind == "all-pruned":
        codes[:] = 0
    if kind in ("all-top", "saturate"):
        codes[:] = N
    bits = BITS[codes]
    values = np.where(bits > 0, rng.integers(-32768, 32768, (rows, cols))
                      >> (16 - np.maximum(bits, 1)), 0)
    shifts = tuple(int(rng.integers(0, 16 - b + 1)) for b in CFG.precisions)
    x = rng.integers(-128, 128, cols)
    bias = rng.integers(-(1 << (CFG.acc_bits - 2)), 1 << (CFG.acc_bits - 2), rows)
    if kind == "saturate":
        values = np.where(bits > 0, (1 << (bits - 1)) - 1, 0) * rng.choice([-1, 1], (rows, 1))
        x = np.full(cols, 127)
    return codes, values, shifts, bias, x, bool(seed % 2), int(rng.integers(0, 24))


@cocotb.test(timeout_time=15, timeout_unit="ms")
async def random_layers(dut):
    await start(dut, INPUTS)
    board = Scoreboard(dut._log)
    for seed in range(SEEDS + 2):
        await reset(dut)
        layer = random_layer(seed)
        got, _ = await run_layer(dut, *layer, PATTERNS[seed % len(PATTERNS)],
                                 random.Random(seed))
        board.compare(got, expected(*layer), f"seed {seed} {layer[0].shape}")
    board.check()


@cocotb.test(skip="PSE_IN" not in os.environ, timeout_time=5000, timeout_unit="ms")
async def measure_cycles(dut):
    """bench/mac.py's measurement (its input named by ``PSE_IN``); skipped in the test run."""
    path = os.environ["PSE_IN"]
    await start(dut, INPUTS)
    board = Scoreboard(dut._log)
    out = []
    with np.load(path) as z:
        for n in range(int(z["count"])):
            layer = (z[f"codes{n}"], z[f"values{n}"], tuple(int(s) for s in z[f"shifts{n}"]),
                     z[f"bias{n}"], z[f"x{n}"], bool(z[f"relu{n}"]), int(z[f"out_shift{n}"]))
            await reset(dut)
            got, cycles = await run_layer(dut, *layer, ("none", "none"), random.Random(n))
            board.compare(got, expected(*layer), f"layer {n}")
            out.append(cycles)
    with open(os.environ["PSE_OUT"], "w") as f:
        json.dump(out, f)
    board.check()
