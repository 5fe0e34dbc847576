"""Board tops: the smallest design that proves a real bitstream builds for each board.

Clock and reset from the board, an LED that blinks at about 1 Hz, and a UART loopback (the FTDI
RX pin registered onto TX) as the smoke path; the host bridge to the engine's registers comes
with the integrated accelerator. Built through the board's amaranth-boards platform with the
YoWASP tools.
"""

import tempfile
from pathlib import Path

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io

from pse_hdl.toolchain import yowasp_env

from .flow import board

__all__ = ["BoardTop", "build_bitstream"]


class BoardTop(Elaboratable):
    def elaborate(self, platform):
        m = Module()
        freq = int(platform.default_clk_frequency)
        counter = Signal(range(freq))
        blink = Signal()
        with m.If(counter == freq // 2 - 1):
            m.d.sync += [counter.eq(0), blink.eq(~blink)]
        with m.Else():
            m.d.sync += counter.eq(counter + 1)
        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.FFBuffer("i", uart.rx)
        m.submodules.tx = tx = io.FFBuffer("o", uart.tx)
        m.d.comb += [led.o.eq(blink), tx.o.eq(rx.i)]
        return m


def build_bitstream(board_name, build_dir=None):
    """Build the board top; returns the path of the bitstream."""
    b = board(board_name)
    yowasp_env()
    build_dir = Path(build_dir or tempfile.mkdtemp(prefix=f"pse-board-{b.name}-"))
    platform = b.platform_class()()
    platform.build(BoardTop(), name="top", build_dir=str(build_dir), do_program=False)
    ext = "bin" if b.family == "ice40" else "bit"
    path = build_dir / f"top.{ext}"
    if not path.exists():
        raise RuntimeError(f"no bitstream at {path}")
    return path
