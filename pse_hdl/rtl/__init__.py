"""Amaranth RTL of the engine's blocks, and the registry that ``pse generate`` reads."""

from amaranth.back import verilog

from ..config import ConfigError

__all__ = ["BLOCKS", "build", "generate_verilog"]


def _pa(cfg):
    from .pa import PrecisionAllocator
    return PrecisionAllocator(cfg, hysteresis=True)


# name -> (description, constructor taking a PSEConfig)
BLOCKS = {
    "pa": ("Precision Allocator: importance to precision code, thresholds in registers", _pa),
}


def build(name, cfg):
    """The named block for ``cfg``; an unknown name lists the valid ones."""
    try:
        _, make = BLOCKS[name]
    except KeyError:
        raise ConfigError(f"block must be one of {', '.join(BLOCKS)}, not {name!r}") from None
    return make(cfg)


def generate_verilog(name, cfg):
    """Verilog text of a block; the top module is ``pse_<name>``. Reproducible (no src attrs)."""
    return verilog.convert(build(name, cfg), name=f"pse_{name}", emit_src=False)
