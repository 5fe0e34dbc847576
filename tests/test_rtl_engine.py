"""Tier 1: the whole engine in Amaranth's simulator, driven by the host driver and firmware, against
the golden model: random networks through load, allocation, recalibration, re-zoning, swap and
inference with random idle and backpressure on the bus; the register map's access rules; reset in
the middle of every command."""

import random

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from pse_hdl.config import PSEConfig
from pse_hdl.host.amaranth_bus import AmaranthBus
from pse_hdl.host.driver import Driver, EngineError
from pse_hdl.host.firmware import Firmware
from pse_hdl.regmap import ERRORS, Op
from pse_hdl.rtl.engine import Engine
from sim.engine_ref import check_run, random_case, run_firmware

CFG = PSEConfig(max_rows=16, max_cols=16, zone_depth=512, master_depth=1024, max_layers=3,
                one_port_below=100,
                period=2, warmup=2, hist_bins=64)


def simulate(cfg, body):
    """Run ``body(ctx, dut, rst)`` against a fresh engine; ``rst`` is its reset signal."""
    dut = Engine(cfg)
    top = Module()
    top.domains.sync = cd = ClockDomain()
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-8)

    async def tb(ctx):
        await body(ctx, dut, cd.rst)
    sim.add_testbench(tb)
    sim.run()


EDGES = [None, "one row", "one column", "all pruned", "all top", None]


@pytest.mark.parametrize("seed", range(len(EDGES)))
def test_random_networks_match_the_model(seed):
    rng = np.random.default_rng(seed)
    edge = EDGES[seed]
    n = len(CFG.precisions)
    shares = {"all pruned": (1.0,) + (0.0,) * n,
              "all top": (0.0,) * n + (1.0,)}.get(edge)
    cfg = CFG.replace(hysteresis=[0, 1 << 10][seed % 2], hysteresis_shift=[1, 0][seed % 2],
                      reversible=seed != 2, swap_delay=seed % 3)
    guard = {1: "switch", 5: "median"}.get(seed)
    case = random_case(cfg, rng, shares=shares, edge=edge, samples=6 if guard else 5,
                       uniform="random" if seed >= 4 else None, guard=guard)
    out = {}

    async def body(ctx, dut, rst):
        prng = random.Random(seed)
        bus = AmaranthBus(ctx, dut.bus, prng, idle=0.3 * (seed % 2), stall=0.3 * (seed % 3 > 0))
        out["run"] = await run_firmware(case, bus)

    simulate(cfg, body)
    check_run(case, *out["run"])


def test_register_map_access_rules():
    cfg = CFG

    async def body(ctx, dut, rst):
        bus = AmaranthBus(ctx, dut.bus, random.Random(1), idle=0.2, stall=0.2)
        drv = Driver(bus, cfg)
        rm = drv.map
        await drv.identify()
        rng = random.Random(5)
        # Every read-write register holds what was written, masked to its fields.
        rw = [r for r in rm.registers if all(f.access == "rw" for f in r.fields)]
        values = {}
        for r in rw:
            v = rng.getrandbits(32)
            await bus.write(r.addr, v)
            values[r.addr] = sum(((v >> f.offset) & ((1 << f.width) - 1)) << f.offset
                                 for f in r.fields)
        for r in rw:
            assert await bus.read(r.addr) == values[r.addr], r.name
        assert await drv.errors() == []
        # Read-only registers and reserved addresses refuse writes and keep their value.
        for name in ("ID", "CONFIG_HASH", "PARAMS", "SAMPLES"):
            before = await drv.read(name)
            await bus.write(rm.addr(name), ~before & 0xFFFF_FFFF)
            assert await drv.read(name) == before
            assert await drv.errors() == ["bus"]
            assert await drv.read("ERROR_ADDR") == rm.addr(name)
            await drv.clear_errors()
        for addr in (10, 15, rm.layer_base + 7, rm.windows["MASTER"].base - 1):
            assert await bus.read(addr) == 0
            assert await drv.errors() == ["bus"], addr
            await drv.clear_errors()
        # Write-only and read-only windows.
        await bus.read(rm.windows["INPUT"].base)
        await bus.write(rm.windows["RESULT"].base, 5)
        assert await drv.errors() == ["bus"]
        await drv.clear_errors()
        # Every window that can be written reads back.
        for name, count in (("MASTER", 7), ("CODES", 5), ("BIAS", 6), ("RIC", 6)):
            w = rm.windows[name]
            vals = [rng.randrange(-(1 << (w.width - 1)), 1 << (w.width - 1)) if w.signed
                    else rng.getrandbits(w.width) for _ in range(count)]
            start = rng.randrange(w.depth - count)
            await drv.write_window(name, vals, start)
            assert await drv.read_window(name, count, start) == vals, name
        assert await drv.errors() == []
        # Unknown commands and bad arguments are refused and change nothing.
        for op, arg in ((9, 0), (15, 0), (Op.HISTOGRAM, 3), (Op.INFER, 0), (Op.SWAP, 0)):
            with pytest.raises(EngineError):
                await drv.command(op, arg)
        await drv.write("N_LAYERS", 0)
        with pytest.raises(EngineError, match="command"):
            await drv.command(Op.ALLOCATE)
        st = await drv.status()
        assert st["busy"] == 0 and st["active_layers"] == 0
        await drv.clear_errors()
        # Status error bits are write-1-to-clear; writing 0 keeps them.
        await bus.read(11)
        await drv.write("STATUS", 0)
        assert await drv.errors() == ["bus"]
        await drv.clear_errors(["bus"])
        assert await drv.errors() == []

    simulate(cfg, body)


def test_accesses_while_busy_are_refused():
    """A job (ALLOCATE) runs in the background: what it uses is refused, inference goes on
    (and is right); a foreground command refuses everything but register reads."""
    cfg = CFG
    rng = np.random.default_rng(11)
    case = random_case(cfg, rng, shapes=[(12, 10), (6, 12)], samples=2)

    async def body(ctx, dut, rst):
        bus = AmaranthBus(ctx, dut.bus)
        drv = Driver(bus, cfg)
        fw = Firmware(drv, case.qnet, case.thresholds, case.policy)
        await fw.load()
        rm = drv.map
        ctrl = rm.reg("CTRL")
        await drv.command(Op.SNAPSHOT)
        await bus.write(rm.addr("CTRL"), ctrl.pack(op=Op.ALLOCATE))
        st = await drv.status()
        assert st["job"] and not st["busy"]
        assert await bus.read(rm.windows["MASTER"].base) == 0        # refused: the job's
        await bus.write(rm.windows["CODES"].base, 123)
        await bus.write(rm.addr("ROWS", 0), 3)
        for op in (Op.REZONE, Op.SWAP, Op.SNAPSHOT):
            await bus.write(rm.addr("CTRL"), ctrl.pack(op=op))
        assert await drv.errors() == ["busy"]
        await drv.clear_errors()
        # Inference goes on beside the job.
        logits = await fw.infer(case.x[0])
        assert (await drv.status())["job"], "the job should still run"
        engine = ModelEngine(case.qnet, cfg, thresholds=case.thresholds)
        np.testing.assert_array_equal(logits, engine.infer(case.x[:1])[-1][0])
        await drv.wait_job()
        assert await drv.read("ROWS", 0) == 12
        assert (await drv.read_window("MASTER", 1))[0] == int(case.qnet.layers[0].master[0, 0])
        assert await drv.read("ALLOCATIONS") == 2                    # load's and this one
        # While a foreground command runs, windows are refused.
        await drv.write_window("INPUT", case.x[1])
        await bus.write(rm.addr("CTRL"), ctrl.pack(op=Op.INFER))
        await bus.write(rm.windows["BIAS"].base, 5)
        assert await drv.errors() == ["busy"]
        await drv.clear_errors()                  # a STATUS write is taken while INFER runs
        assert await drv.errors() == [] and (await drv.status())["busy"]
        await bus.wait(rm.addr("STATUS"), 1, 0)
        assert (await drv.read_window("BIAS", 1))[0] == int(case.qnet.layers[0].bias[0])

    from pse_hdl.model.engine import Engine as ModelEngine
    simulate(cfg, body)


@pytest.mark.parametrize("when", ["infer", "allocate", "rezone"])
def test_reset_in_the_middle_keeps_the_layout(when):
    """Reset during a command: the active layout, the masters and the network's registers
    survive, and the next sample (and the next allocation) are right."""
    cfg = CFG
    rng = np.random.default_rng(21)
    case = random_case(cfg, rng, shapes=[(14, 9), (7, 14)], samples=3)
    out = {}

    async def body(ctx, dut, rst):
        bus = AmaranthBus(ctx, dut.bus)
        drv = Driver(bus, cfg)
        fw = Firmware(drv, case.qnet, case.thresholds, case.policy)
        await fw.load()
        op = {"infer": Op.INFER, "allocate": Op.ALLOCATE, "rezone": Op.REZONE}[when]
        await drv.write_window("INPUT", case.x[0])
        await drv.write("CTRL", drv.map.reg("CTRL").pack(op=op))
        await ctx.tick().repeat(int(rng.integers(3, 40)))
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        st = await drv.status()
        assert st["busy"] == 0 and st["active_layers"] == 2
        out["logits"] = [await fw.infer(x) for x in case.x[:2]]
        await fw.allocate()
        out["codes"] = [c.copy() for c in fw.codes]

    simulate(cfg, body)
    # The model: the aborted INFER observed some activations in the RIC, so compare what the
    # reset cannot have touched: the logits of the layout loaded first.
    from pse_hdl.model.engine import Engine as ModelEngine
    engine = ModelEngine(case.qnet, cfg, thresholds=case.thresholds)
    np.testing.assert_array_equal(np.array(out["logits"]), engine.infer(case.x[:2])[-1])
    if when == "infer":
        assert all(c.shape == q.shape for c, q in zip(out["codes"], case.qnet.layers))
        return
    # The interrupted pass touched no EMA state: the next allocation is the model's. (The
    # sample written before the aborted command was observed at its layer 0, as a write of
    # the INPUT window always is.)
    engine.rics[0].update(case.x[0])
    for x in case.x[:2]:
        engine.observe([a[0] for a in engine.infer(x[None, :])[:-1]])
    engine.snapshot()
    engine.allocate()
    for got, want in zip(out["codes"], engine.codes):
        np.testing.assert_array_equal(got, want)


def test_error_bits_are_named():
    assert [name for name, _ in ERRORS][:3] == ["bus", "busy", "command"]
