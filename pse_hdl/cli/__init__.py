"""The ``pse`` command line: the parser and how every command ends (a user's mistake in one line
and exit code 2, a bug with its traceback). The commands live in ``run`` (``demo``, ``run``,
``sweep``) and ``hardware`` (``generate``, ``synth``, ``lint``, ``prove``, ``board``)."""

import argparse
import os
import sys
import traceback

from ..api import MODES, MismatchError
from ..config import PRESETS
from ..errors import UserError
from ..toolchain import ToolchainError
from .hardware import cmd_board, cmd_generate, cmd_lint, cmd_prove, cmd_synth
from .run import cmd_demo, cmd_run, sample_range
from .sweep import cmd_sweep

__all__ = ["main", "build_parser"]


def build_parser():
    p = argparse.ArgumentParser(prog="pse", description="Precision & Sparsity Engine: RTL "
                                "generator, golden model and flows.")
    p.add_argument("--debug", action="store_true",
                   help="let an internal error (a bug) propagate, for a debugger")
    # --debug is accepted after the command too.
    common = argparse.ArgumentParser(add_help=False)
    link = argparse.ArgumentParser(add_help=False)
    link.add_argument("--port", help="with --backend board: the board's serial port "
                      "(/dev/ttyUSB1, COM3; 'sim' for the engine's Verilog behind its UART; "
                      "default $PSE_PORT)")
    link.add_argument("--baud", type=int, help="with --backend board: the baud rate "
                      "(default the configuration's uart_baud, 1000000)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="let an internal error (a bug) propagate, for a debugger")
    sub = p.add_subparsers(dest="command", required=True)
    cfg_help = f"a preset ({', '.join(PRESETS)}) or a TOML file (default: default)"

    _model_commands(sub, common, link, cfg_help)
    _hardware_commands(sub, common, cfg_help)
    return p


def _model_commands(sub, common, link, cfg_help):
    """``demo``, ``run`` and ``sweep``: networks through the engine."""
    d = sub.add_parser("demo", parents=[common, link],
                       help="run the dynamic precision/sparsity algorithm on the digits MLP in "
                       "the golden model and print the figures")
    d.add_argument("--config", help=cfg_help)
    d.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    d.add_argument("--target-bits", type=float, default=4.0,
                   help="bit budget per weight, metadata included (default 4.0: uniform "
                        "int4's)")
    d.add_argument("--allocation", choices=MODES, default="auto",
                   help="rank weights across the network or within each layer (default auto: "
                   "the calibration chooses between the two)")
    d.add_argument("--period", type=int, help="allocation period P in samples (overrides config)")
    d.add_argument("--backend", choices=("model", "rtl", "board"), default="model",
                   help="model: the golden model (default); rtl: the engine's Verilog in a fast "
                   "Verilated model; board: the engine on a board over --port; every sample "
                   "of rtl and board checked against the golden model")
    d.add_argument("--samples", type=int, help="run only the first N test samples")
    d.add_argument("--trace", metavar="FILE.fst",
                   help="with --backend rtl: write a waveform (.fst or .vcd, for GTKWave or "
                   "Surfer) of the samples --trace-samples selects (a separate tracing build)")
    d.add_argument("--trace-samples", type=sample_range, metavar="A:B",
                   help="samples A..B-1 to trace (default 0:1)")
    d.add_argument("--plot", default="pse_demo.png", help="PNG to write (default pse_demo.png; "
                   "'' for none)")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("run", parents=[common, link],
                       help="run your own network (scikit-learn, ONNX, .npz) on your data "
                       "through the engine, with float and uniform int8/int4 baselines")
    r.add_argument("model", help="an .onnx, .npz (float weights) or pickled scikit-learn MLP or "
                   "linear model, alone or in a Pipeline (.pkl, .joblib: unpickling runs code, "
                   "load only files you trust)")
    r.add_argument("--data", required=True,
                   help="an .npz with x, y (and optionally x_calib, y_calib) or a CSV (the last "
                   "column the label: a number or the model's class name); without "
                   "calibration arrays 30 %% of the samples are split off for calibration "
                   "(seed 0, stratified)")
    r.add_argument("--config", help=cfg_help)
    r.add_argument("--fit", action="store_true",
                   help="size the engine to the network: layer limits, master store and zones "
                   "from its layers, one lane for a network too small to use more (the rest "
                   "from --config)")
    r.add_argument("--equalize", action="store_true",
                   help="balance the inputs' ranges against the first layer's weights (the "
                   "host scales each feature; for inputs whose ranges differ by orders of "
                   "magnitude)")
    r.add_argument("--target-bits", type=float,
                   help="bit budget per weight, metadata included (default 4.5; with "
                   "--max-loss, none)")
    r.add_argument("--max-loss", type=float, metavar="FRACTION",
                   help="instead of a budget, the fewest bits per weight whose calibration "
                   "score is at most this below the dense 16-bit network's (0.01: one point "
                   "of accuracy); with --target-bits, within that budget too")
    r.add_argument("--allocation", choices=MODES, default="auto",
                   help="rank weights across the network or within each layer (default auto: "
                   "the calibration chooses between the two)")
    r.add_argument("--adapt", metavar="FLOOR:CEILING",
                   help="let the budget follow the network's performance (label-free: the "
                   "share of low-margin outputs against profiling) between these bits per "
                   "weight (classifiers)")
    r.add_argument("--max-mac", type=float, metavar="FRACTION",
                   help="a cycle budget too: only layouts whose MAC cycles are at most this "
                   "fraction of dense 16-bit on the same lanes (e.g. 0.2)")
    r.add_argument("--backend", choices=("model", "rtl", "board"), default="model",
                   help="model: the golden model; rtl: the engine's Verilog; board: the engine "
                   "on a board over --port; rtl and board checked against the golden model")
    r.add_argument("--samples", type=int, help="run only the first N test samples")
    r.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    r.set_defaults(func=cmd_run)

    sw = sub.add_parser("sweep", parents=[common], help="a design-space sweep on Dask: "
                        "accuracy, bits, cycles, area and Fmax over a grid of configurations "
                        "(docs/SWEEP.md)")
    sw.add_argument("spec", help="the sweep specification (TOML, see examples/sweep.toml)")
    sw.add_argument("--scheduler", help="an existing Dask cluster, e.g. tcp://host:8786 "
                    "(default: a local cluster)")
    sw.add_argument("--workers", type=int, default=2,
                    help="worker processes of the local cluster (default 2)")
    sw.add_argument("-o", "--output", default="pse_sweep",
                    help="directory of the results and their cache (default pse_sweep)")
    sw.add_argument("--plot", help="PNG of accuracy against bits per weight, Pareto marked")
    sw.add_argument("--json", action="store_true", help="print the points and the Pareto front")
    sw.set_defaults(func=cmd_sweep)


def _hardware_commands(sub, common, cfg_help):
    """``generate``, ``synth``, ``lint``, ``prove`` and ``board``: the hardware's flows."""
    g = sub.add_parser("generate", parents=[common], help="write the Verilog of a block")
    g.add_argument("block", nargs="?", help="block name (see --list)")
    g.add_argument("--list", action="store_true", help="list the blocks")
    g.add_argument("--registers", action="store_true",
                   help="the engine's register map as Markdown (docs/REGISTERS.md)")
    g.add_argument("--header", action="store_true",
                   help="the engine's register map as a C header")
    g.add_argument("--config", help=cfg_help)
    g.add_argument("-o", "--output", help="output file (default: stdout)")
    g.set_defaults(func=cmd_generate)

    s = sub.add_parser("synth", parents=[common],
                       help="synthesize a block for iCE40 UP5K (iCEBreaker) and/or ECP5-85F "
                       "(ULX3S): resources and Fmax")
    s.add_argument("block", help="block name or 'all' (see pse generate --list)")
    s.add_argument("--board", default="all", help="icebreaker, ulx3s or all (default)")
    s.add_argument("--config", help=cfg_help)
    s.add_argument("--json", action="store_true",
                   help="print a JSON array with one object per block and device")
    s.add_argument("--seed", type=int, default=1,
                   help="nextpnr's placement seed (default 1; placement, so Fmax, moves by a "
                        "few %% from one seed to another)")
    s.set_defaults(func=cmd_synth)

    li = sub.add_parser("lint", parents=[common],
                        help="verilator --lint-only -Wall on every block and preset")
    li.add_argument("--config", help="one preset only (default: all presets)")
    li.set_defaults(func=cmd_lint)

    pr = sub.add_parser("prove", parents=[common], help="formal proofs (SymbiYosys, k-induction) "
                        "of the stream rules, transfer conservation, swap atomicity and the bus "
                        "rules, each with a variant that must fail (docs/FORMAL.md)")
    pr.add_argument("block", nargs="?", help="one block (pse generate --list, or registers: "
                    "the engine's register file; default: all)")
    pr.add_argument("--json", action="store_true", help="print one JSON object per run")
    pr.add_argument("--no-must-fail", action="store_true",
                    help="skip the broken variants that show each proof can fail")
    pr.set_defaults(func=cmd_prove)

    bo = sub.add_parser("board", parents=[common], help="build a board's bitstream: the engine "
                        "behind its serial link (--engine), or a smoke test (LED, UART loopback)")
    bo.add_argument("board", help="icebreaker or ulx3s")
    bo.add_argument("--engine", action="store_true",
                    help="the engine behind its UART bridge (default configuration: up5k on the "
                    "icebreaker, default on the ulx3s)")
    bo.add_argument("--config", help="with --engine: " + cfg_help)
    bo.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    bo.add_argument("-o", "--output", help="build directory (default: a temporary one)")
    bo.set_defaults(func=cmd_board)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:                        # a mistake in what the user gave
        print(f"pse: error: {e}", file=sys.stderr)
        return 2
    except MismatchError as e:                    # the RTL and the golden model differ
        print(f"pse: error: the RTL differs from the golden model at {e}", file=sys.stderr)
        return 1
    except ToolchainError as e:                   # synthesis and toolchain failures
        print(f"pse: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:                       # the reader went away (`pse ... | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141                                # as a shell reports SIGPIPE
    except Exception:                             # a bug: its traceback, and say so
        if args.debug:
            raise
        traceback.print_exc()
        print("pse: internal error: a bug in pse-hdl, not in what you gave; please report it "
              "with the traceback above", file=sys.stderr)
        return 1
