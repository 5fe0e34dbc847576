"""A wide memory stored as narrow slices side by side, each as deep as the memory.

A zone's physical word is ``fetch_ports`` logical words wide (128 bits for four ports). Left to
itself, yosys maps a 1024-deep, 128-bit memory to the ECP5's DP16KD in their 512 x 36 mode, two
deep, and a 2:1 multiplexer follows every output bit; a block RAM's clock-to-output (5.8 ns) and
that multiplexer were the zoned memory's longest path into a walker's prefetch slot. Stored as
slices as narrow as the block RAM's mode for that depth (1024 x 18: 16-bit slices; 2048 x 9:
8-bit ones), every slice is whole block RAMs and nothing follows them: the same block RAM count,
no multiplexer. A memory no deeper than 512 words has a slice per logical word (the 512 x 36
mode holds one whole).

The slices share the address and read enable; a write enables the slices of the logical words
(``granularity``) it writes. Latency: a read's data the cycle after ``en``, as
``amaranth.lib.memory``'s synchronous read port, or with ``registered`` two cycles after, from a
register the block RAMs' outputs go to and nothing else (their 5.8 ns clock-to-output then
ends at a register by them, not at the far end of the die).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out

__all__ = ["SlicedMemory", "slice_bits"]


def slice_bits(depth, granularity):
    """The width of each slice of a ``depth``-word memory written ``granularity`` bits at a
    time: the data width of the DP16KD's mode for that depth (16 for 1024, 8 for 2048, ...),
    or ``granularity`` (one slice a logical word) when the memory is at most 512 deep."""
    if depth <= 512:
        return granularity
    width = 16
    while width > 1 and depth > 1024 * 16 // width:
        width //= 2
    return min(width, granularity)


class SlicedMemory(wiring.Component):
    """A ``width``-bit, ``depth``-word memory with one synchronous read port and one write port
    (``granularity`` bits an enable), as ``slice_bits`` wide slices (see the module docs).

    Members
    -------
    rd : Out(ReadPort)    ``en``, ``addr``; ``data`` a cycle later (two with ``registered``:
                          the data of the read two cycles before, held while ``en`` is low
                          for two cycles).
    wr : Out(WritePort)   ``en`` (one bit a ``granularity`` bits), ``addr``, ``data``.
    """

    def __init__(self, width, depth, granularity, registered=False):
        assert width % granularity == 0, "the word is whole logical words"
        self.width, self.depth, self.granularity = width, depth, granularity
        self.registered = registered
        addr_width = max(1, (depth - 1).bit_length())
        super().__init__({
            "rd": Out(memory.ReadPort.Signature(addr_width=addr_width, shape=width)),
            "wr": Out(memory.WritePort.Signature(addr_width=addr_width, shape=width,
                                                 granularity=granularity))})

    def elaborate(self, platform):
        m = Module()
        g = self.granularity
        s = slice_bits(self.depth, g)
        for i in range(self.width // s):
            mem = memory.Memory(shape=s, depth=self.depth, init=[])
            m.submodules[f"slice{i}"] = mem
            rd, wr = mem.read_port(), mem.write_port()
            bits = slice(i * s, (i + 1) * s)
            m.d.comb += [rd.en.eq(self.rd.en), rd.addr.eq(self.rd.addr)]
            if self.registered:
                out = Signal(s, name=f"slice{i}_out", reset_less=True)
                m.d.sync += out.eq(rd.data)
            else:
                out = rd.data
            m.d.comb += [self.rd.data[bits].eq(out),
                         wr.en.eq(self.wr.en[i * s // g]), wr.addr.eq(self.wr.addr),
                         wr.data.eq(self.wr.data[bits])]
        return m
