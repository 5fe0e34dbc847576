"""cocotb testbench of the zoned memory against the golden model.

Every test loads masters and plans through ``host_wr``, re-zones from a ``codes`` stream with
random idle cycles, reads every written word of the shadow bank back through ``host_rd`` and
compares it with the model's packing, swaps, then fetches every layer with random backpressure on
each port and compares every transfer with ``model.transfer.port_streams``.

- ``random_networks``: random shapes (ragged, one row, one column), sparsities and precision
  mixes, ``PSE_SEEDS`` seeds.
- ``edge_maps``: all pruned, all top precision, one row, one column, the maximum layer size,
  each over the seeds.
- ``reset_during_rezoning``: reset at a random point of a re-zoning; the next inference must be
  bit-exact with the old layout and the master store must read back unchanged; the re-zoning
  done again must then swap in.
- ``measure``: the layers of ``PSE_IN`` (npz) without stalls; cycles of the re-zoning
  and of every layer's fetch, and the footprint counters, as JSON in ``PSE_OUT``.
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from pse_hdl.rtl.zones import Op, Target, ZonedMemory
from sim.common import PATTERNS, SEEDS
from sim.runner import config_from_env
from sim.streams import Watchdog, check_known, stall_pattern
from sim.zones_ref import Network, pack, random_network, unpack

CFG = config_from_env()
P = CFG.fetch_ports
N = len(CFG.precisions)
SIG = ZonedMemory(CFG).signature.members
LAYOUT = {name: SIG[name].signature.members["payload"].shape
          for name in ("cmd", "codes", "host_wr", "host_rd")}
STATUS = SIG["status"].shape
INPUTS = ["cmd__valid", "codes__valid", "host_wr__valid", "host_rd__valid"] + \
    [f"o__{p}__ready" for p in range(P)]


async def start(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for name in INPUTS:
        getattr(dut, name).value = 0
    await reset(dut)


async def reset(dut):
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


def status(dut):
    return unpack(STATUS, check_known(dut.status, "status"))


async def handshake(dut, prefix, payload, idle=None):
    """Offer one transfer on an input stream until it is taken (``idle`` -> bool: gap)."""
    valid, ready = getattr(dut, f"{prefix}__valid"), getattr(dut, f"{prefix}__ready")
    dog = Watchdog(f"stream {prefix}")
    while True:
        await RisingEdge(dut.clk)
        dog.tick(f"ready {ready.value}")
        if idle is not None and idle():
            valid.value = 0
            continue
        valid.value = 1
        getattr(dut, f"{prefix}__payload").value = payload
        await ReadOnly()
        if check_known(ready, f"{prefix}.ready") == 1:
            break
    await RisingEdge(dut.clk)
    valid.value = 0


async def stream_in(dut, prefix, payloads, idle=lambda: False, stop=None):
    """Send payloads back to back (with idle gaps); stop early after ``stop`` transfers."""
    valid, ready = getattr(dut, f"{prefix}__valid"), getattr(dut, f"{prefix}__ready")
    data = getattr(dut, f"{prefix}__payload")
    i = 0
    dog = Watchdog(f"stream {prefix}")
    while i < len(payloads) and (stop is None or i < stop):
        await RisingEdge(dut.clk)
        dog.tick(f"transfer {i} of {len(payloads)} not taken (ready {ready.value})")
        if idle():
            valid.value = 0
            continue
        valid.value, data.value = 1, payloads[i]
        await ReadOnly()
        if check_known(ready, f"{prefix}.ready") == 1:
            i += 1
            dog.progress()
    await RisingEdge(dut.clk)
    valid.value = 0


async def command(dut, op, arg=0):
    await handshake(dut, "cmd", pack(LAYOUT["cmd"], {"op": op.value, "arg": arg}))


async def load(dut, net):
    lay = LAYOUT["host_wr"]
    words = [pack(lay, {"target": Target.MASTER.value, "addr": a, "data": v})
             for a, v in net.master_writes()]
    words += [pack(lay, {"target": Target.PLAN.value, "addr": l, "data": w})
              for l, w in enumerate(net.plan_words())]
    await stream_in(dut, "host_wr", words)


async def wait_idle(dut, flag):
    dog = Watchdog(f"status.{flag}")
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if not status(dut)[flag]:
            return
        dog.tick("still set")


async def rezone(dut, net, idle, stop=None):
    """Re-zone ``net``; returns the cycles from the command to the end."""
    await command(dut, Op.REZONE, len(net.images))
    t0 = cocotb.utils.get_sim_time("ns")
    codes = [pack(LAYOUT["codes"], {"code": c}) for c in net.code_stream()]
    await stream_in(dut, "codes", codes, idle, stop)
    if stop is not None:
        return None
    await wait_idle(dut, "rezoning")
    return int((cocotb.utils.get_sim_time("ns") - t0) // 10)


async def host_read(dut, items, bank):
    """Read ``[(target, addr)]`` back-to-back; returns the words."""
    lay, out = LAYOUT["host_rd"], []
    for target, addr in items:
        await handshake(dut, "host_rd", pack(lay, {"target": target, "bank": bank,
                                                   "addr": addr}))
        await ReadOnly()
        assert dut.rd_valid.value == 1
        out.append(int(dut.rd_data.value))
    return out


async def check_shadow(dut, net, log):
    st = status(dut)
    assert not any(v for k, v in st.items() if isinstance(k, tuple) and k[0] == "error"), st
    assert st["shadow_ready"] == 1
    counts = net.footprint_counts()
    assert [st[("zone_words", k)] for k in range(N)] == counts["zone_words"]
    for key in ("meta_bits", "row_descs", "split_descs", "layers"):
        assert st[key] == counts[key], (key, st[key], counts[key])
    want = net.expected()
    got = await host_read(dut, list(want), 1 - st["active"])
    bad = [(k, hex(g), hex(w)) for (k, w), g in zip(want.items(), got) if g != w]
    assert not bad, f"{len(bad)} of {len(want)} words differ, first {bad[:3]}"
    log.info("read back %d words of the shadow bank: all equal the model", len(want))


async def fetch(dut, net, l, stall):
    """Fetch layer ``l`` with per-port backpressure; returns (received, cycles from the
    command's acceptance to the last transfer, both counted)."""
    await command(dut, Op.FETCH, l)
    got, last = [[] for _ in range(P)], 0
    ports = [(getattr(dut, f"o__{p}__valid"), getattr(dut, f"o__{p}__ready"),
              getattr(dut, f"o__{p}__payload")) for p in range(P)]
    quiet, cycle = 0, 0
    dog = Watchdog(f"fetch of layer {l}")
    while quiet < 3:
        await RisingEdge(dut.clk)
        cycle += 1
        dog.tick(f"{[len(g) for g in got]} transfers per port so far, status.fetching set")
        ready = [not stall[p](cycle) for p in range(P)]
        for (_, r, _), rd in zip(ports, ready):
            r.value = int(rd)
        await ReadOnly()
        for p, (v, _, d) in enumerate(ports):
            if check_known(v, f"o[{p}].valid") == 1 and ready[p]:
                got[p].append(check_known(d, f"o[{p}].payload"))
                last = cycle
                dog.progress()
        quiet = 0 if status(dut)["fetching"] else quiet + 1
    await RisingEdge(dut.clk)
    for _, r, _ in ports:
        r.value = 0
    return got, last + 1


def compare(got, want, what):
    for p, (g, w) in enumerate(zip(got, want)):
        first = next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
        assert g == w, (f"{what}, port {p}: {len(g)} transfers, want {len(w)}; first "
                        f"difference at {first}")


async def full_cycle(dut, net, rng, pattern, log):
    idle_rng, stall_rng = random.Random(rng.random()), random.Random(rng.random())
    idle = stall_pattern(pattern[0], idle_rng)
    counter = {"c": 0}

    def gap():
        counter["c"] += 1
        return idle(counter["c"])
    await load(dut, net)
    await rezone(dut, net, gap)
    await check_shadow(dut, net, log)
    await command(dut, Op.SWAP)
    checked = 0
    for l in range(len(net.images)):
        stall = [stall_pattern(pattern[1], random.Random(stall_rng.random())) for _ in range(P)]
        got, _ = await fetch(dut, net, l, stall)
        want = net.port_words(l)
        compare(got, want, f"layer {l}")
        checked += sum(map(len, want))
        sched = unpack(SIG["sched"].shape, int(dut.sched.value))
        mask = (1 << CFG.row_bits) - 1
        assert [(sched[(p, "row")], sched[(p, "cont")]) for p in range(P)] == \
            [(row & mask, cont) for row, cont in net.port_schedule(l)], f"layer {l} schedule"
    return checked


def shapes_for(rng, edge=None):
    big = (CFG.max_rows, CFG.max_cols)
    if edge == "one row":
        return [(1, int(rng.integers(1, CFG.max_cols + 1)))]
    if edge == "one column":
        return [(int(rng.integers(1, CFG.max_rows + 1)), 1)]
    if edge == "maximum":
        return [big]
    layers = int(rng.integers(1, min(3, CFG.max_layers) + 1))
    return [(int(rng.integers(1, 24)), int(rng.integers(1, 40))) for _ in range(layers)]


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def random_networks(dut):
    await start(dut)
    total = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        shapes = shapes_for(rng)
        # Every third seed: some layers uniform at the lowest precision (no metadata).
        uniform = [int(rng.random() < 0.5) for _ in shapes] if seed % 3 == 2 else None
        net = random_network(CFG, rng, shapes, uniform=uniform)
        total += await full_cycle(dut, net, random.Random(seed), PATTERNS[seed % len(PATTERNS)],
                                  dut._log)
    dut._log.info("random networks: %d transfers compared over %d seeds, 0 mismatches",
                  total, SEEDS)


@cocotb.test(timeout_time=25, timeout_unit="ms")
async def edge_maps(dut):
    await start(dut)
    for edge in ("all pruned", "all top precision", "one row", "one column", "maximum"):
        total = 0
        for seed in range(SEEDS):
            rng = np.random.default_rng(1000 + seed)
            shapes = shapes_for(rng, edge)
            if edge == "all pruned":
                net = random_network(CFG, rng, shapes, sparsity=1.0)
            elif edge == "all top precision":
                net = random_network(CFG, rng, shapes, sparsity=0.0, mix=[0] * (N - 1) + [1])
            else:
                net = random_network(CFG, rng, shapes)
            total += await full_cycle(dut, net, random.Random(seed),
                                      PATTERNS[seed % len(PATTERNS)], dut._log)
        dut._log.info("%s: %d transfers compared over %d seeds", edge, total, SEEDS)


async def read_masters(dut, net):
    items = [(Target.MASTER.value, a) for a, _ in net.master_writes()]
    return await host_read(dut, items, 0)


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def reset_during_rezoning(dut):
    await start(dut)
    for seed in range(SEEDS):
        rng = np.random.default_rng(2000 + seed)
        prng = random.Random(seed)
        shapes = shapes_for(rng)
        old = random_network(CFG, rng, shapes)
        new = random_network(CFG, rng, shapes)
        new = Network(CFG, old.masters, new.codes, new.shifts)
        await full_cycle(dut, old, prng, ("none", "none"), dut._log)
        active = status(dut)["active"]
        masters = await read_masters(dut, old)
        stop = prng.randrange(len(new.code_stream()) + 1)
        await load(dut, new)
        await rezone(dut, new, lambda: prng.random() < 0.3, stop=stop)
        await ClockCycles(dut.clk, prng.randrange(5))
        await reset(dut)
        st = status(dut)
        assert st["active"] == active and st["shadow_ready"] == 0, st
        for l in range(len(shapes)):
            got, _ = await fetch(dut, old, l, [stall_pattern("random", random.Random(p))
                                               for p in range(P)])
            compare(got, old.port_words(l), f"old layout after reset, layer {l}")
        if CFG.reversible:
            assert await read_masters(dut, old) == masters, "master store changed"
        await rezone(dut, new, lambda: False)
        await check_shadow(dut, new, dut._log)
        await command(dut, Op.SWAP)
        for l in range(len(shapes)):
            got, _ = await fetch(dut, new, l, [stall_pattern("none", None)] * P)
            compare(got, new.port_words(l), f"new layout, layer {l}")
        dut._log.info("seed %d: reset after %d codes, old layout intact", seed, stop)


@cocotb.test(skip="PSE_IN" not in os.environ, timeout_time=5000, timeout_unit="ms")
async def measure(dut):
    await start(dut)
    data = np.load(os.environ["PSE_IN"])
    count = int(data["count"])
    net = Network(CFG, [data[f"master{i}"] for i in range(count)],
                  [data[f"codes{i}"] for i in range(count)],
                  [list(data[f"shifts{i}"]) for i in range(count)])
    await load(dut, net)
    rezone_cycles = await rezone(dut, net, lambda: False)
    await check_shadow(dut, net, dut._log)
    st = status(dut)
    await command(dut, Op.SWAP)
    fetch_cycles = []
    for l in range(count):
        got, cycles = await fetch(dut, net, l, [stall_pattern("none", None)] * P)
        compare(got, net.port_words(l), f"layer {l}")
        fetch_cycles.append(cycles)
    out = {"rezone_cycles": rezone_cycles, "fetch_cycles": fetch_cycles,
           "zone_words": [st[("zone_words", k)] for k in range(N)],
           "meta_bits": st["meta_bits"], "row_descs": st["row_descs"],
           "split_descs": st["split_descs"], "layers": st["layers"]}
    with open(os.environ["PSE_OUT"], "w") as f:
        json.dump(out, f)
