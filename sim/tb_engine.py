"""cocotb testbench of the engine's Verilog against the golden model, through the host driver and
firmware (the same code every backend runs): random networks through load, allocation,
recalibration, re-zoning, swap and inference with random idle and backpressure on the bus, the
edge maps (all pruned, all top precision, one-row and one-column layers), and reset in the middle
of INFER, ALLOCATE and REZONE."""

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from pse_hdl.host.cocotb_bus import CocotbBus
from pse_hdl.host.driver import Driver
from pse_hdl.host.firmware import Firmware
from pse_hdl.model.engine import Engine as ModelEngine
from pse_hdl.regmap import Op, RegisterMap
from sim.common import SEEDS
from sim.engine_ref import check_run, random_case, run_firmware
from sim.runner import config_from_env

CFG = config_from_env()
ADDR_BITS = RegisterMap(CFG).addr_bits
N = len(CFG.precisions)
EDGES = [None, "all pruned", "one row", "all top", "one column"]


async def start(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.bus__req__valid.value = 0
    dut.bus__rsp__ready.value = 0
    await reset(dut)


async def reset(dut):
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


def compare(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    bad = np.argwhere(got != want)
    assert not bad.size, f"{what}: {len(bad)} differ, first at {tuple(bad[0])}: " \
                         f"{got[tuple(bad[0])]} != {want[tuple(bad[0])]}"


@cocotb.test(timeout_time=2, timeout_unit="sec")
async def random_networks(dut):
    """SEEDS random networks, every logit, code and footprint compared."""
    await start(dut)
    checked = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        edge = EDGES[seed % len(EDGES)]
        shares = {"all pruned": (1.0,) + (0.0,) * N, "all top": (0.0,) * N + (1.0,)}.get(edge)
        case = random_case(CFG, rng, shares=shares, edge=edge, samples=6,
                           uniform="random" if seed % 2 else None,
                           guard=[None, None, "switch", None, "median"][seed % 5])
        prng = random.Random(seed)
        bus = CocotbBus(dut, ADDR_BITS, prng, idle=[0, 0.3, 0.7][seed % 3],
                        stall=[0.3, 0, 0.7][seed % 3])
        logits, stats, allocs = await run_firmware(case, bus)
        check_run(case, logits, stats, allocs)
        checked += logits.size
    dut._log.info("%d networks, %d logits compared, 0 mismatches", SEEDS, checked)


@cocotb.test(timeout_time=2, timeout_unit="sec")
async def reset_in_the_middle(dut):
    """Reset at random points of INFER, ALLOCATE and REZONE: the layout, the masters and the
    layer table survive; the next samples are right."""
    await start(dut)
    for k, op in enumerate([Op.INFER, Op.ALLOCATE, Op.REZONE] * 2):
        rng = np.random.default_rng(100 + k)
        case = random_case(CFG, rng, samples=3)
        bus = CocotbBus(dut, ADDR_BITS, random.Random(k))
        drv = Driver(bus, CFG)
        fw = Firmware(drv, case.qnet, case.thresholds, case.policy)
        await fw.load()
        await drv.write_window("INPUT", case.x[0])
        await drv.write("CTRL", drv.map.reg("CTRL").pack(op=op))
        await ClockCycles(dut.clk, int(rng.integers(2, 200)))
        await RisingEdge(dut.clk)
        await reset(dut)
        st = await drv.status()
        assert st["busy"] == 0 and st["active_layers"] == len(case.qnet.layers), st
        engine = ModelEngine(case.qnet, CFG, thresholds=case.thresholds)
        logits = [await fw.infer(x) for x in case.x]
        compare(logits, engine.infer(case.x)[-1], f"{Op.NAMES[op]} reset {k}")
    dut._log.info("reset during INFER, ALLOCATE and REZONE: the next samples are right")
