"""Shared testbench steps: clock and reset, register writes, stimulus helpers."""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from .streams import Codec, StreamDriver, StreamMonitor, run_streams, stall_pattern

__all__ = ["SEEDS", "WEIGHTS", "PATTERNS", "start", "reset", "write_thresholds", "host_write",
           "pump", "read_histogram", "layer_shape", "snapshot"]

# Six seeds: every stall pattern below once (and every testbench's seed-cycled scenarios);
# ``PSE_SEEDS=10 PSE_WEIGHTS=10000`` is the long run.
SEEDS = int(os.environ.get("PSE_SEEDS", "6"))
WEIGHTS = int(os.environ.get("PSE_WEIGHTS", "5000"))
# (input idle, output backpressure) patterns, cycled over seeds: no stall, random, heavy on
# either side, and long always-stall stretches that are then released.
PATTERNS = [("none", "none"), ("random", "random"), ("heavy", "random"), ("random", "heavy"),
            ("none", "burst"), ("burst", "none")]


async def start(dut, idle_inputs=()):
    """Start the clock, drive every input low, hold reset for two cycles."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for name in idle_inputs:
        getattr(dut, name).value = 0
    await reset(dut)


async def reset(dut, cycles=2):
    await RisingEdge(dut.clk)
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0


async def write_thresholds(dut, thresholds, band, prefix="csr"):
    port = lambda n: getattr(dut, f"{prefix}__{n}")
    for k, value in enumerate(list(thresholds) + [band]):
        await RisingEdge(dut.clk)
        port("wr_en").value, port("wr_addr").value, port("wr_data").value = 1, k, int(value)
    await RisingEdge(dut.clk)
    port("wr_en").value, port("commit").value = 0, 1
    await RisingEdge(dut.clk)
    port("commit").value = 0
    await RisingEdge(dut.clk)


async def host_write(dut, prefix, values):
    """Write ``{addr: value}`` through an ``en/addr/data`` port."""
    for addr, value in values.items():
        await RisingEdge(dut.clk)
        getattr(dut, f"{prefix}__en").value = 1
        getattr(dut, f"{prefix}__addr").value = int(addr)
        getattr(dut, f"{prefix}__data").value = int(value)
    await RisingEdge(dut.clk)
    getattr(dut, f"{prefix}__en").value = 0


async def snapshot(dut, base, count, prefix="snap"):
    """Copy ``count`` EMA states from ``base`` into the snapshot the allocation pass reads."""
    await RisingEdge(dut.clk)
    getattr(dut, f"{prefix}__start").value = 1
    getattr(dut, f"{prefix}__base").value = base
    getattr(dut, f"{prefix}__count").value = count
    await RisingEdge(dut.clk)
    getattr(dut, f"{prefix}__start").value = 0
    for _ in range(count + 10):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if getattr(dut, f"{prefix}__busy").value == 0:
            await RisingEdge(dut.clk)
            return
    raise AssertionError(f"{prefix}: the snapshot of {count} states did not finish")


async def pump(dut, inp, out, in_layout, out_layout, items, pattern, rng, extra_outputs=()):
    """Send ``items`` (dicts) on stream ``inp``, collect as many on ``out`` (and the given
    counts on ``extra_outputs``: ``[(prefix, layout, count)]``) with the stall pattern."""
    cin, cout = Codec(in_layout), Codec(out_layout)
    drv = StreamDriver(dut, inp, dut.clk, stall_pattern(pattern[0], random.Random(rng.random())))
    mons = [(StreamMonitor(dut, out, dut.clk,
                           stall_pattern(pattern[1], random.Random(rng.random()))), cout,
             len(items))]
    for prefix, layout, count in extra_outputs:
        mons.append((StreamMonitor(dut, prefix, dut.clk,
                                   stall_pattern(pattern[1], random.Random(rng.random()))),
                     Codec(layout), count))
    await run_streams(drv.load([cin.pack(it) for it in items]),
                      *(mon.expect(n) for mon, _, n in mons))
    return [[codec.unpack(x) for x in mon.items] for mon, codec, _ in mons]


async def read_histogram(dut, bins, prefix):
    out = []
    for b in range(bins):
        await RisingEdge(dut.clk)
        getattr(dut, f"{prefix}__rd_addr").value = b
        await RisingEdge(dut.clk)
        await ReadOnly()
        out.append(int(getattr(dut, f"{prefix}__rd_data").value))
    return out


def layer_shape(cfg, weights, seed):
    """A layer of about ``weights`` weights that fits the configuration (a 1x1 layer on the
    seed that asks for the one-weight edge case)."""
    cols = min(cfg.max_cols, 1 << (4 + seed % 4))
    rows = max(1, min(cfg.max_rows, weights // cols))
    return rows, cols
