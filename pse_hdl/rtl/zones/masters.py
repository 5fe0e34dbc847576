"""The master store: every master weight, in banks whose reads are registered before the
multiplexer across them."""

from amaranth.hdl import Array, Module, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .layouts import log2

__all__ = ["MasterStore", "READ_LATENCY"]

READ_LATENCY = 3   # cycles from a request at the zoned memory's master port to its data


class MasterStore(wiring.Component):
    """``master_depth`` signed weights in banks of ``master_bank`` words (0: one bank).

    One address (``addr``) for reads and writes, as a single-port RAM (the UP5K's SPRAM): ``ren``
    reads, ``wen`` writes ``wdata`` (never both). A read's ``data`` comes two cycles after its
    request and holds until the next read: the bank's block RAM, then the bank's output register,
    so the multiplexer across the banks starts at registers (on the ECP5 a DP16KD's output
    comes 5.6 ns after the clock, and 19 of them span the die). ``clear``/``clear_addr``: a
    second write port that writes 0 (the destructive re-zoning's clears; only if
    ``clears``)."""

    def __init__(self, cfg, clears=False):
        self.cfg, self.clears = cfg, clears
        aw = cfg.master_addr_bits
        super().__init__({
            "addr": In(aw), "ren": In(1), "wen": In(1), "wdata": In(signed(cfg.weight_bits)),
            "data": Out(signed(cfg.weight_bits)),
            **({"clear": In(1), "clear_addr": In(aw)} if clears else {})})

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        depth = cfg.master_depth
        size = min(cfg.master_bank or depth, depth)
        nb = -(-depth // size)
        low = log2(size) if nb > 1 else len(self.addr)

        def bank_of(addr):
            return addr[low:] if nb > 1 else 0

        outs = []
        for b in range(nb):
            mem = memory.Memory(shape=signed(cfg.weight_bits), depth=min(size, depth - b * size),
                                init=[])
            m.submodules[f"master{b}"] = mem    # "master" in its name: the UP5K flow maps it to SPRAM
            rd, wr = mem.read_port(), mem.write_port()
            here = bank_of(self.addr) == b
            m.d.comb += [rd.addr.eq(self.addr[:low]), rd.en.eq(self.ren & here),
                         wr.addr.eq(self.addr[:low]), wr.en.eq(self.wen & here),
                         wr.data.eq(self.wdata)]
            if self.clears:
                with m.If(self.clear & (bank_of(self.clear_addr) == b)):
                    m.d.comb += [wr.addr.eq(self.clear_addr[:low]), wr.en.eq(1),
                                 wr.data.eq(0)]
            out = Signal(signed(cfg.weight_bits), name=f"master{b}_out")
            m.d.sync += out.eq(rd.data)
            outs.append(out)
        if nb == 1:
            m.d.comb += self.data.eq(outs[0])
            return m
        sel, sel_q = Signal(range(nb)), Signal(range(nb))     # the bank read: at its RAM, register
        with m.If(self.ren):
            m.d.sync += sel.eq(bank_of(self.addr))
        m.d.sync += sel_q.eq(sel)
        m.d.comb += self.data.eq(Array(outs)[sel_q])
        return m
