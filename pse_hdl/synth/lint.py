"""``verilator --lint-only -Wall`` over the generated Verilog of every block and preset.

Zero warnings are allowed except the reviewed waivers in ``lint_waivers.vlt`` next to this module
(each with its reason). Lint runs on the Verilog alone, without cocotb's ``--public-flat-rw``
(which makes Verilator 5.048 report false UNOPTFLAT loops).
"""

import re
import subprocess
import tempfile
from pathlib import Path

from pse_hdl.config import preset, PRESETS
from pse_hdl.rtl import BLOCKS, generate_verilog
from pse_hdl.toolchain import verilator_env

__all__ = ["WAIVERS", "lint_block", "lint_all"]

WAIVERS = Path(__file__).resolve().parent / "lint_waivers.vlt"


def lint_block(block, cfg, workdir=None):
    """Lint one block; returns the list of warning/error lines (empty = clean)."""
    verilator_env()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="pse-lint-"))
    src = workdir / f"pse_{block}.v"
    src.write_text(generate_verilog(block, cfg))
    r = subprocess.run(["verilator", "--lint-only", "-Wall", str(WAIVERS), str(src),
                        "--top-module", f"pse_{block}"], capture_output=True, text=True)
    found = [line for line in r.stderr.splitlines() if re.match(r"%(Warning|Error)", line)]
    if r.returncode and not found:
        found = [f"verilator exited with {r.returncode}: {r.stderr.strip()[:500]}"]
    return found


def lint_all(blocks=None, presets=None):
    """``{(block, preset): [findings]}`` over the given (default: all) blocks and presets."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="pse-lint-") as tmp:
        for name in presets or PRESETS:
            for block in blocks or BLOCKS:
                d = Path(tmp) / name
                d.mkdir(exist_ok=True)
                out[(block, name)] = lint_block(block, preset(name), d)
    return out
