"""The engine's host bus: memory-mapped 32-bit words, requests and read responses as streams.

Transport-neutral: the host driver, a cocotb testbench, a C++ shim around the Verilated model and
a UART bridge all speak it. A request ``{addr, write, data}`` is taken when ``req.valid &
req.ready``; a write has no response; a read has exactly one response on ``rsp``, in order. The
engine keeps at most one read in flight (it takes a read only when its response register is
free), so a host may issue writes back to back, one per cycle, and a read whenever it has taken
the previous response.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BusSignature", "request_layout", "response_layout"]

DATA_BITS = 32


def request_layout(addr_bits):
    return data.StructLayout({"addr": unsigned(addr_bits), "write": 1,
                              "data": unsigned(DATA_BITS)})


def response_layout():
    return data.StructLayout({"data": unsigned(DATA_BITS)})


class BusSignature(wiring.Signature):
    """The bus as its master (the host) sees it: ``req`` out, ``rsp`` in. A slave takes it as
    ``In(BusSignature(...))``."""

    def __init__(self, addr_bits):
        self.addr_bits = addr_bits
        super().__init__({"req": Out(stream.Signature(request_layout(addr_bits))),
                          "rsp": In(stream.Signature(response_layout()))})
