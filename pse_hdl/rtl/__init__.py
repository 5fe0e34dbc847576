"""Amaranth RTL of the engine's blocks, and the registry that ``pse generate`` reads."""

from amaranth.back import verilog

from ..config import ConfigError

__all__ = ["BLOCKS", "check_block", "build", "generate_verilog"]


def _pa(cfg):
    from .pa import PrecisionAllocator
    return PrecisionAllocator(cfg, hysteresis=True)


def _ric(cfg):
    from .ric import RollingImportance
    return RollingImportance(cfg)


def _ric_literal(cfg):
    from .ric import RollingImportance
    return RollingImportance(cfg.replace(importance_form="literal", snapshot_shift=0))


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
}


def check_block(name):
    """Raise a :class:`ConfigError` listing the valid blocks if ``name`` is not one."""
    if name not in BLOCKS:
        raise ConfigError(f"block must be one of {', '.join(BLOCKS)}, not {name!r}")


def build(name, cfg):
    """The named block for ``cfg``; an unknown name lists the valid ones."""
    check_block(name)
    return BLOCKS[name][1](cfg)


def generate_verilog(name, cfg):
    """Verilog text of a block; the top module is ``pse_<name>``. Reproducible (no src attrs)."""
    return verilog.convert(build(name, cfg), name=f"pse_{name}", emit_src=False)
