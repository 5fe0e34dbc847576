"""Board tops: the engine behind its serial link, and a smoke test, as bitstreams.

``pse board B --engine`` builds :class:`EngineTop`: the :class:`~pse_hdl.rtl.serial.SerialEngine`
(UART, bridge, engine) on the board's clock, its UART on the board's USB-UART pins, LEDs for
a heartbeat, errors and activity. ``pse board B`` alone builds :class:`SmokeTop` (an LED that
blinks at about 1 Hz, the UART looped back), the smallest proof that the toolchain and the
board's pins work. Both go through the board's amaranth-boards platform with the YoWASP tools;
nextpnr's report gives the placed Fmax, compared with the clock the board runs the design at.
"""

import json
import subprocess
import tempfile
from pathlib import Path

from amaranth.build import ResourceError
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io

from pse_hdl.errors import ConfigError
from pse_hdl.toolchain import yowasp_env

from .flow import SynthError, _figures, _fit_message, board

__all__ = ["EngineTop", "SmokeTop", "build_bitstream", "engine_config"]

# The configuration each board's engine is built with unless the user gives one.
BOARD_PRESET = {"icebreaker": "up5k", "ulx3s": "default"}


def _blink(m, platform):
    """A signal that toggles at about 1 Hz on the board's clock."""
    freq = int(platform.default_clk_frequency)
    counter, blink = Signal(range(freq)), Signal()
    with m.If(counter == freq // 2 - 1):
        m.d.sync += [counter.eq(0), blink.eq(~blink)]
    with m.Else():
        m.d.sync += counter.eq(counter + 1)
    return blink


def _leds(m, platform, values):
    """Drive the board's first LEDs with ``values`` (as many as it has)."""
    for k, value in enumerate(values):
        try:
            pin = platform.request("led", k, dir="-")
        except ResourceError:
            break
        m.submodules[f"led{k}"] = led = io.Buffer("o", pin)
        m.d.comb += led.o.eq(value)


class SmokeTop(Elaboratable):
    """An LED blinking at about 1 Hz and the UART looped back (RX registered onto TX)."""

    def elaborate(self, platform):
        m = Module()
        _leds(m, platform, [_blink(m, platform)])
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.FFBuffer("i", uart.rx)
        m.submodules.tx = tx = io.FFBuffer("o", uart.tx)
        m.d.comb += tx.o.eq(rx.i)
        return m


class EngineTop(Elaboratable):
    """The engine behind its serial link on a board.

    LEDs, as many as the board has: 0 heartbeat (about 1 Hz: the bitstream runs), 1 an error
    (an engine error bit, or the last frame answered with an error), 2 the engine is busy, 3
    the link is busy. ``clock_hz`` and ``cfg.uart_baud`` give the UART's divisor (a
    :class:`ConfigError` if the rate cannot be made).
    """

    def __init__(self, cfg, clock_hz):
        from pse_hdl.rtl.serial import SerialEngine
        from pse_hdl.rtl.uart import divisor
        try:
            self.serial = SerialEngine(cfg, divisor(clock_hz, cfg.uart_baud))
        except ConfigError:
            self._MustUse__silence = True       # refused before it existed: no "unused" warning
            raise

    def elaborate(self, platform):
        m = Module()
        m.submodules.serial = s = self.serial
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)       # the UART synchronises it
        m.submodules.tx = tx = io.Buffer("o", uart.tx)       # straight from a register
        m.d.comb += [s.rx.eq(rx.i), tx.o.eq(s.tx)]
        _leds(m, platform, [_blink(m, platform), s.error | s.link_error, s.busy, s.link_busy])
        return m


def engine_config(board_name, cfg=None):
    """The configuration of a board's engine: ``cfg``, or the board's preset."""
    from pse_hdl.config import preset
    return cfg if cfg is not None else preset(BOARD_PRESET[board(board_name).name])


def build_bitstream(board_name, build_dir=None, *, engine=False, cfg=None):
    """Build the smoke top, or with ``engine`` the engine top for ``cfg`` (default the
    board's preset); returns ``(bitstream path, figures)``. The figures are nextpnr's
    (:func:`pse_hdl.synth.flow.synthesize`'s keys) with ``clock_mhz``, the clock the board
    runs the design at, and ``met``, whether the placed Fmax reaches it. A design that does not
    fit raises :class:`SynthError` saying by how much."""
    b = board(board_name)
    platform = b.platform_class()()
    clock_hz = platform.default_clk_frequency
    if engine:
        cfg = engine_config(b.name, cfg)
        top = EngineTop(cfg, clock_hz)                  # refuses a baud rate it cannot make
    else:
        top = SmokeTop()
    yowasp_env()
    build_dir = Path(build_dir or tempfile.mkdtemp(prefix=f"pse-board-{b.name}-"))
    options = {"nextpnr_opts": "--timing-allow-fail --report report.json --seed 1"}
    if b.family == "ice40" and "UP" in b.device.upper():
        # The master store in an SPRAM, as pse synth does (pse_hdl/synth/flow.py).
        options.update(synth_opts="-spram", script_after_read=(
            "delete t:$meminit_v2 r:MEMID=*master* %i\n"
            "setattr -set ram_style \"huge\" m:*master*"))
    try:
        platform.build(top, name="top", build_dir=str(build_dir), do_program=False, **options)
    except subprocess.CalledProcessError:
        log = build_dir / "top.tim"
        if log.exists():
            (build_dir / "nextpnr.log").write_text(log.read_text())
            fit = _fit_message(b, build_dir)
            if fit and engine:
                fit = (f"the engine (with its serial link) does not fit the {b.name}'s "
                       f"{b.device}: {fit.split(': ', 1)[1]}"
                       + ("; no engine configuration fits the UP5K yet (the zoned memory's "
                          "logic alone needs more cells than it has; docs/BOARD.md)"
                          if b.family == "ice40" else ""))
            if fit:
                raise SynthError(fit) from None
        raise SynthError(f"the {b.name} build failed: see the logs in {build_dir}") from None
    path = build_dir / f"top.{'bin' if b.family == 'ice40' else 'bit'}"
    if not path.exists():
        raise SynthError(f"no bitstream at {path}")
    figures = _figures(b, json.loads((build_dir / "report.json").read_text()), {}, build_dir)
    figures.update(clock_mhz=clock_hz / 1e6, met=bool(figures["fmax_mhz"]) and
                   figures["fmax_mhz"] >= clock_hz / 1e6, bitstream=str(path))
    figures.pop("target_mhz", None)
    return path, figures
