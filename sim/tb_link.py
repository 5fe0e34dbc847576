"""cocotb testbench of the serial link (UART + bridge) at its pins: a UART model drives ``rx``
and decodes ``tx``; a bus model answers the bridge with random ready and response delays. The
reply bytes and the bus's state are the reference model's (``pse_hdl.host.link.BridgeModel``).

The line: bytes back to back at full rate or with random idle bits between them, a few with a
low stop bit (a framing error the bridge must report as a line error), frames with flipped
bits, lost bytes, garbage, too long or malformed, retried frames. A host waits for each reply
before it sends on (the protocol), and sends a lone ``END`` first when its last frame may not
have ended (what :class:`SerialBus` does before a retry).
"""

import os
import random

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge, Timer

from pse_hdl.host.link import END, BridgeModel, WAIT_POLLS
from pse_hdl.regmap import RegisterMap
from sim.common import start
from sim.link_frames import LinkBus, random_traffic
from sim.runner import config_from_env

CFG = config_from_env()
ADDR_BITS = RegisterMap(CFG).addr_bits
DIV = 16                                   # the link block's cycles a bit (pse_hdl.rtl._link)
# Fewer frames in Icarus (4-state, slower): enough for every kind of frame.
FRAMES = 40 if os.environ.get("PSE_SIM", "verilator") == "verilator" else 25


async def known(dut, errors):
    """A 4-state simulator's view: the pin and the bus handshakes are never X or Z."""
    while True:
        await ClockCycles(dut.clk, DIV)
        await ReadOnly()
        for name in ("tx", "bus__req__valid", "bus__rsp__ready", "busy", "error"):
            if not getattr(dut, name).value.is_resolvable:
                errors.append(f"{name} is {getattr(dut, name).value}")


async def send_byte(dut, byte, stop=1):
    for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [stop]:
        dut.rx.value = bit
        await ClockCycles(dut.clk, DIV)
    dut.rx.value = 1
    if not stop:                           # the receiver waits for the line to rise
        await ClockCycles(dut.clk, DIV)


async def receive(dut, out, errors):
    """Decode ``tx``: sample each bit at its middle; a low stop bit is the RTL's error."""
    while True:
        await FallingEdge(dut.tx)
        await ClockCycles(dut.clk, DIV // 2)
        if int(dut.tx.value):
            errors.append("a start bit shorter than half a bit")
            continue
        byte = 0
        for k in range(8):
            await ClockCycles(dut.clk, DIV)
            byte |= int(dut.tx.value) << k
        await ClockCycles(dut.clk, DIV)
        if not int(dut.tx.value):
            errors.append(f"byte {len(out)} ({byte:#04x}) has a low stop bit")
        out.append(byte)


async def bus_slave(dut, bus, rng, stall):
    valid, ready = dut.bus__req__valid, dut.bus__req__ready
    rsp_valid, rsp_ready = dut.bus__rsp__valid, dut.bus__rsp__ready
    ready.value, rsp_valid.value = 0, 0
    while True:
        if not int(valid.value):
            await RisingEdge(valid)
        take = rng.random() >= stall
        ready.value = int(take)
        await ReadOnly()
        offered, payload = int(valid.value), dut.bus__req__payload.value
        await RisingEdge(dut.clk)
        await Timer(1, "ns")
        ready.value = 0
        if not (take and offered):
            continue
        head = payload[ADDR_BITS:0]                  # write flag and address (LSB first)
        assert head.is_resolvable, f"a bus request's address or write flag is {head}"
        addr, write = int(head) & ((1 << ADDR_BITS) - 1), int(head) >> ADDR_BITS
        if write:                                    # a read's data is don't-care
            assert payload.is_resolvable, f"a bus write's payload is {payload}"
            bus.write(addr, int(payload) >> (ADDR_BITS + 1))
            continue
        value = bus.read(addr)
        while rng.random() < stall:
            await ClockCycles(dut.clk, 1)
        dut.bus__rsp__payload.value, rsp_valid.value = value, 1
        while True:
            await ReadOnly()
            taken = int(rsp_ready.value)
            await RisingEdge(dut.clk)
            await Timer(1, "ns")
            if taken:
                rsp_valid.value = 0
                break


@cocotb.test(timeout_time=400, timeout_unit="ms")
async def frames_on_the_line(dut):
    dut.rx.value = 1
    await start(dut)
    for seed, gaps, stall in [(0, 0.0, 0.0), (1, 0.3, 0.4)]:
        rng = random.Random(seed)
        gen_bus = LinkBus(ADDR_BITS, seed)
        gen = BridgeModel(gen_bus.read, gen_bus.write, CFG.bridge_frame_bytes, ADDR_BITS,
                          WAIT_POLLS)
        chunks, _ = random_traffic(rng, gen, gen_bus, FRAMES, timeouts=False)
        bus, ref_bus = LinkBus(ADDR_BITS, seed), LinkBus(ADDR_BITS, seed)
        model = BridgeModel(ref_bus.read, ref_bus.write, CFG.bridge_frame_bytes, ADDR_BITS,
                            WAIT_POLLS)
        got, errors = [], []
        rx_task = cocotb.start_soon(receive(dut, got, errors))
        x_task = cocotb.start_soon(known(dut, errors))
        slave = cocotb.start_soon(bus_slave(dut, bus, random.Random(seed + 1), stall))
        want = bytearray()
        for data, bad in chunks:
            # a lone END first, answered before the frame follows (the reply to a frame the
            # last chunk left open would otherwise overlap this one's bytes)
            parts = [(0, 1), (1, len(data))] if data[:1] == bytes([END]) else [(0, len(data))]
            for lo, hi in parts:
                want += model.feed(data[lo:hi], {k - lo for k in bad if lo <= k < hi})
                for k in range(lo, hi):
                    await send_byte(dut, data[k], stop=0 if k in bad else 1)
                    while gaps and rng.random() < gaps:
                        await ClockCycles(dut.clk, DIV * rng.randint(1, 3))
                for _ in range(2000):               # until the expected reply is in
                    if len(got) >= len(want):
                        break
                    await ClockCycles(dut.clk, 10 * DIV)
                assert bytes(got) == bytes(want), \
                    f"seed {seed}: reply bytes differ from the model's (first at " \
                    f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)})"
        await ClockCycles(dut.clk, 40 * DIV)
        assert bytes(got) == bytes(want) and not errors, errors
        assert bus.mem == ref_bus.mem and (bus.reads, bus.writes) == \
            (ref_bus.reads, ref_bus.writes)
        for task in (rx_task, x_task, slave):
            task.cancel()
