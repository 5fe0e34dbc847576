"""Amaranth RTL of the engine's blocks, and the registry that ``pse generate`` reads."""

import re

from amaranth.back import verilog

from ..config import ConfigError

__all__ = ["BLOCKS", "check_block", "build", "generate_verilog"]


def _pa(cfg):
    from .pa import PrecisionAllocator
    return PrecisionAllocator(cfg)


def _ric(cfg):
    from .ric import RollingImportance
    return RollingImportance(cfg)


def _ric_literal(cfg):
    from .ric import RollingImportance
    return RollingImportance(cfg.replace(importance_form="literal", snapshot_shift=0,
                                         importance_floor=False))


def _sm(cfg):
    from .sm import SparsificationManager
    return SparsificationManager(cfg)


def _histogram(cfg):
    from .histogram import ImportanceHistogram
    return ImportanceHistogram(cfg)


def _control(cfg):
    from .control import ControlChain
    return ControlChain(cfg)


def _mac(cfg):
    from .mac import MacArray
    return MacArray(cfg)


def _zones(cfg):
    from .zones import ZonedMemory
    return ZonedMemory(cfg)


def _engine(cfg):
    from .engine import Engine
    return Engine(cfg)


def _link(cfg):
    from ..regmap import RegisterMap
    from .serial import SerialLink
    # 16 cycles a bit: the link's size hardly depends on the divisor (a counter's width).
    return SerialLink(cfg, RegisterMap(cfg).addr_bits, divisor=16)


# name -> (description, constructor taking a PSEConfig)
BLOCKS = {
    "ric": ("Rolling Importance Calculator: EMA of |x| per input in block RAM, |w|*A on demand",
            _ric),
    "ric_literal": ("RIC, the specification's literal form: one EMA of |w*x| per weight",
                    _ric_literal),
    "pa": ("Precision Allocator: importance to precision code, thresholds in registers", _pa),
    "sm": ("Sparsification Manager: prunes code-0 weights, clears masters in destructive mode",
           _sm),
    "histogram": ("Importance histogram: log2 bins and per-class counts of a pass", _histogram),
    "control": ("Control chain RIC -> PA -> SM -> histogram", _control),
    "mac": ("Variable-precision MAC array: digit-serial lanes, 0 cycles for pruned weights",
            _mac),
    "zones": ("Zoned weight memory: precision zones in two banks, re-zoning engine, fetch "
              "walkers sending the tagged stream", _zones),
    "engine": ("The engine: zones, MAC array and control chain behind one register map, with "
               "its sequencer (INFER, ALLOCATE, HISTOGRAM, REZONE, SWAP)", _engine),
    "link": ("Serial link: UART and the bridge that makes a host master of the engine's bus "
             "(SLIP frames, CRC-16, WRITE/READ/WAIT)", _link),
}


def check_block(name):
    """Raise a :class:`ConfigError` listing the valid blocks if ``name`` is not one."""
    if name not in BLOCKS:
        raise ConfigError(f"block must be one of {', '.join(BLOCKS)}, not {name!r}")


def build(name, cfg):
    """The named block for ``cfg``; an unknown name lists the valid ones."""
    check_block(name)
    return BLOCKS[name][1](cfg)


# Yosys's Verilog writer makes every combinational ``always @*`` block read a dummy register
# declared ``reg dummy = 0;``, so that the block runs once at time 0 (Verilog-2005: a declaration
# initialiser is an event). Under SystemVerilog rules (Icarus -g2012, commercial simulators) an
# initialiser is no event: the blocks would wait, their outputs X, until an input changed (for
# constant or reset-less inputs, never). One assignment after time 0's active region changes
# the dummy and so runs every block once in any 4-state simulator. Verilator (2-state, evaluates
# everything at start) and synthesis tools do not see it.
_DUMMY = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+)  = 0;$",
                    re.M)


def _four_state_start(text):
    return _DUMMY.sub(lambda m: f"{m.group(0)}\n`ifndef SYNTHESIS\n`ifndef VERILATOR\n"
                                f"{m.group(1)}initial #0 {m.group(2)}  = 1'h1;\n"
                                f"`endif\n`endif", text)


# Yosys's Verilog writer initialises a memory word by word: ``mem[0] = 16'h0000;`` and so on for
# every word, even when all of them are zero (Amaranth gives every memory an initial value, the
# block RAMs' power-up state). For the default engine that is most of the file (the wide preset's
# engine: 258,301 of 405,141 lines, 11 MB). A run of consecutive words with one value becomes a
# ``for`` loop over them: the same initial contents for every simulator and synthesis tool, a
# file a third of the size that Verilator lints in half the time.
_INIT_WORD = re.compile(r"^(\s*)(\S+(?: )?)\[(\d+)\] = (\d+'s?[bdh][0-9a-fA-FxXzZ_]+);$")
SHORTEST_INIT_RUN = 8


def compact_memory_init(text):
    """``text`` with every run of at least ``SHORTEST_INIT_RUN`` assignments of one value to
    consecutive words of a memory, in an ``initial`` block, written as a loop (its variable, an
    ``integer``, declared before the block)."""
    lines, out, loops, i = text.split("\n"), [], 0, 0
    block = None                                # the open initial block: (out index, its end)
    while i < len(lines):
        line = lines[i]
        if line.strip() == "initial begin":
            block = (len(out), line[:line.index("initial")] + "end")
        elif block and line == block[1]:
            block = None
        m = _INIT_WORD.match(line) if block else None
        if not m:
            out.append(line)
            i += 1
            continue
        indent, mem, first, value = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        j = i + 1
        while j < len(lines):
            n = _INIT_WORD.match(lines[j])
            if not (n and n.group(2) == mem and n.group(4) == value
                    and int(n.group(3)) == first + j - i):
                break
            j += 1
        if j - i < SHORTEST_INIT_RUN:
            out.extend(lines[i:j])
        else:
            var = f"\\pse$init${loops} "         # an escaped name: none of yosys's look so
            loops += 1
            head = block[0]
            out.insert(head, out[head][:out[head].index("initial")] + f"integer {var};")
            block = (head + 1, block[1])
            out += [f"{indent}for ({var}= {first}; {var}< {j - i + first}; {var}= {var}+ 1)",
                    f"{indent}  {mem}[{var}] = {value};"]
        i = j
    return "\n".join(out)


def generate_verilog(name, cfg):
    """Verilog text of a block; the top module is ``pse_<name>``. Reproducible (no src attrs);
    correct in 2-state and 4-state simulators alike (see ``_four_state_start``); memories
    initialised by loops (``compact_memory_init``)."""
    return compact_memory_init(_four_state_start(
        verilog.convert(build(name, cfg), name=f"pse_{name}", emit_src=False)))
