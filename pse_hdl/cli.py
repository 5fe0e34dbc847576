"""The ``pse`` command line: ``demo``, ``generate`` (and the synthesis and lint flows)."""

import argparse
import os
import sys
import traceback
from pathlib import Path

import numpy as np

from .config import ConfigError, PRESETS, from_arg
from .api import MismatchError
from .errors import UserError
from .files import to_json
from .toolchain import ToolchainError

__all__ = ["main"]


def _config(args):
    return from_arg(getattr(args, "config", None))


def _sample_range(text):
    """``A:B`` (samples A..B-1) or ``A`` (sample A alone)."""
    try:
        a, _, b = text.partition(":")
        first, end = int(a), int(b) if b else int(a) + 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A:B or A (sample numbers), not {text!r}")
    if not 0 <= first < end:
        raise argparse.ArgumentTypeError(f"expected 0 <= A < B, not {text!r}")
    return first, end


def cmd_demo(args):
    from .plots import demo_figure
    from .workflow import progress_bar, run_demo
    cfg = _config(args)
    if args.period is not None:
        cfg = cfg.replace(period=args.period)
    if args.samples is not None and args.samples < 1:
        raise ConfigError(f"--samples must be at least 1, not {args.samples}")
    if args.trace:
        from .host.verilated import trace_format
        if args.backend != "rtl":
            raise ConfigError("--trace needs --backend rtl (a waveform of the engine's Verilog)")
        try:
            trace_format(args.trace)
        except ValueError as e:
            raise ConfigError(f"--trace: {e}") from None
        if not Path(args.trace).resolve().parent.is_dir():
            raise ConfigError(f"--trace: the directory of {args.trace!r} does not exist")
    if args.plot:
        _check_output_file(args.plot, ".png")
    _check_link(args)
    label = {"rtl": "RTL run", "board": "board run"}.get(args.backend, "dynamic run") + \
        " over the test split"
    bar = None if args.json else progress_bar(label)
    try:
        demo = run_demo(cfg, target_bits=args.target_bits, mode=args.allocation, progress=bar,
                        backend=args.backend, samples=args.samples, trace=args.trace,
                        trace_samples=args.trace_samples, port=args.port, baud=args.baud)
    except MismatchError as e:
        if args.json:
            print(to_json({"backend": args.backend, "bit_exact": False, "mismatch": str(e)},
                             indent=2))
        print(f"pse: error: the RTL differs from the golden model at {e}", file=sys.stderr)
        return 1
    result = demo.figures
    if args.plot:
        demo_figure(demo, args.plot)
    if args.json:
        print(to_json(result, indent=2))
        return 0
    rows = [
        ("float accuracy (test split)", f"{100 * result['float_accuracy']:.2f} %"),
        ("fixed-point dense accuracy (int8 x int16)", f"{100 * result['dense_accuracy']:.2f} %"),
        ("PSE accuracy (dynamic, test split)", f"{100 * result['pse_accuracy']:.2f} %"),
        ("bits per weight (values + metadata + descriptors)",
         f"{result['bits_per_weight']:.3f}"),
        *[(f"  share of weights {k}", f"{100 * v:.1f} %")
          for k, v in result["precision_shares"].items()],
        _uniform_row(result["uniform_layers"]),
        (f"MAC cycles vs dense 16-bit ({cfg.lanes} lanes)",
         f"{100 * result['mac_cycle_ratio']:.1f} %  ({result['mac_cycles_per_sample']:.0f} vs "
         f"{result['dense16_cycles_per_sample']:.0f} per sample)"),
        ("allocations during the run", f"{result['allocations']} (every {cfg.period} samples)"),
    ]
    if result["backend"] != "model":
        rows += [
            ("engine cycles per sample (INFER)",
             f"{result['engine_cycles_per_sample']:.0f}  (ideal {result['ideal_cycles_per_sample']:.0f}"
             f", {100 * (result['engine_cycles_per_sample'] / result['ideal_cycles_per_sample'] - 1):+.1f} %)"),
            ("bit-exact with the golden model", f"yes, {result['samples']} samples, "
             f"{result['allocations'] + 1} layouts"),
        ]
        rows += _link_rows(result) if result["backend"] == "board" else [
            ("simulated cycles", f"{result['sim_cycles']} in {result['rtl_run_s']:.1f} s "
             f"({result['cycles_per_s'] / 1e6:.2f} M/s; build {result['build_s']:.0f} s)")]
    width = max(len(r[0]) for r in rows)
    port = args.port or os.environ.get("PSE_PORT")
    where = {"rtl": "the engine's Verilog (Verilator)",
             "board": "the engine's Verilog behind its UART (--port sim)" if port == "sim"
             else f"the engine on the board at {port}"}.get(result["backend"], "the golden model")
    print(f"pse demo: digits MLP {' -> '.join(str(s[1]) for s in result['layers'])} -> "
          f"{result['layers'][-1][0]}, {result['weights']} weights, target "
          f"{result['target_bits']} bits/weight, {result['samples']} test samples in {where}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if args.plot:
        print(f"figure written to {args.plot}")
    return 0


def _check_link(args):
    """``--port``/``--baud`` belong to ``--backend board``, which needs a port."""
    if args.backend == "board" and not (args.port or os.environ.get("PSE_PORT")):
        raise ConfigError("--backend board needs --port (a serial port such as /dev/ttyUSB1, "
                          "or 'sim' for the engine's Verilog behind its UART)")
    if args.backend != "board" and (args.port or args.baud):
        raise ConfigError("--port and --baud go with --backend board")
    if args.baud is not None and args.baud <= 0:
        raise ConfigError(f"--baud must be a positive rate, not {args.baud}")


def _link_rows(result):
    """What the serial link carried, for the printed tables."""
    return [("serial link", f"{result['link_frames']} frames ({result['link_retries']} "
             f"retried), {result['link_bytes_per_sample']:.0f} bytes per sample"),
            ("samples per second", f"{result['samples_per_s']:.1f} measured, "
             f"{result['uart_limited_samples_per_s']:.0f} at most at {result['uart_baud']} "
             f"baud")]


def _source_score(source, task, x, y_idx, y, reference=True):
    """The score on the test data of the source model's own predictor (``reference``) or of the
    imported float network, both in float."""
    from .api import r2_score
    out = source.reference(x) if reference and source.reference else source.net.forward(x)[-1]
    if task == "classification":
        if out.shape[1] == 1:                   # a single sigmoid probability
            out = np.hstack([1 - out, out])
        return float(np.mean(np.argmax(out, axis=1) == y_idx))
    return r2_score(out, y)


def _adapt_range(text):
    """``--adapt FLOOR:CEILING`` as two numbers (None without the option)."""
    if text is None:
        return None
    try:
        floor, ceiling = (float(v) for v in text.split(":"))
    except ValueError:
        raise ConfigError(f"--adapt must be FLOOR:CEILING in bits per weight, e.g. 3.5:5, "
                          f"not {text!r}") from None
    return floor, ceiling


def cmd_run(args):
    from .api import convert
    from .importers import calibration_and_test, check_reproduces, load_data, load_model
    from .workflow import progress_bar
    cfg = _config(args)
    if args.samples is not None and args.samples < 1:
        raise ConfigError(f"--samples must be at least 1, not {args.samples}")
    _check_link(args)
    source = load_model(args.model)
    task, (x_cal, y_cal), (x, y) = calibration_and_test(source, load_data(args.data))
    if args.samples is not None:
        x, y = x[:args.samples], y[:args.samples]
    design = convert(source, cfg, calibration=(x_cal, y_cal), target_bits=args.target_bits,
                     mode=args.allocation, adapt=_adapt_range(args.adapt))
    check_reproduces(source, x)
    y_idx = design.labels(y)
    bar = None if args.json else progress_bar(f"{args.backend} run over the test samples")
    logits, run = design.run(x, args.backend, progress=bar, port=args.port, baud=args.baud)
    score = design.score_logits
    y_cls = y_idx if task == "classification" else None
    metric = "accuracy" if task == "classification" else "R^2"
    result = {
        "model": str(args.model), "source": source.kind, "task": task, "metric": metric,
        "backend": args.backend, "test_samples": int(len(x)),
        "calibration_samples": int(len(x_cal)),
        "layers": [list(q.shape) for q in design.qnet.layers],
        "weights": int(sum(q.master.size for q in design.qnet.layers)),
        "source_accuracy": _source_score(source, task, x, y_cls, y),
        "float_accuracy": _source_score(source, task, x, y_cls, y, reference=False),
        "int8_accuracy": design.uniform_score(x, y, 8),
        "int4_accuracy": design.uniform_score(x, y, 4),
        "pse_accuracy": score(logits, y_idx),
        "target_bits": args.target_bits,
        "uniform_layers": design.uniform_layers,
        **{k: v for k, v in run.items() if k not in ("backend", "samples")},
    }
    if args.json:
        print(to_json(result, indent=2))
        return 0
    rows = [
        (f"source model {metric} ({source.kind})", _pct(result["source_accuracy"], task)),
        (f"imported float network {metric}", _pct(result["float_accuracy"], task)),
        ("uniform int8, 8.0 bits/weight", _pct(result["int8_accuracy"], task)),
        ("uniform int4, 4.0 bits/weight", _pct(result["int4_accuracy"], task)),
        (f"PSE {metric} (dynamic)", _pct(result["pse_accuracy"], task)),
        ("bits per weight (values + metadata + descriptors)", f"{result['bits_per_weight']:.3f}"),
        *[(f"  share of weights {k}", f"{100 * v:.1f} %")
          for k, v in result["precision_shares"].items()],
        _uniform_row(result["uniform_layers"]),
        (f"MAC cycles vs dense 16-bit ({cfg.lanes} lanes)",
         f"{100 * result['mac_cycle_ratio']:.1f} %"),
        ("allocations during the run", f"{result['allocations']} (every {cfg.period} samples)"),
    ]
    if design.adapt:
        a = design.adapt
        rows.append(("budget rungs at the recalibrations (bits between "
                     f"{a['floor']:g} and {a['ceiling']:g})",
                     " ".join(map(str, result["rungs"])) or "none"))
    if args.backend != "model":
        rows.append(("bit-exact with the golden model", f"yes, {len(x)} samples"))
    if args.backend == "board":
        rows += _link_rows(result)
    width = max(len(r[0]) for r in rows)
    print(f"pse run: {args.model}, {task}, MLP "
          f"{' -> '.join(str(s_[1]) for s_ in result['layers'])} -> {result['layers'][-1][0]}, "
          f"{result['weights']} weights, {len(x)} test samples ({len(x_cal)} for calibration), "
          f"target {args.target_bits} bits/weight")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    return 0


def _pct(v, task):
    return f"{100 * v:.2f} %" if task == "classification" else f"{v:.4f}"


def _uniform_row(layers):
    """The report line of the layers stored uniform (``Design.uniform_layers``)."""
    return ("  layers stored uniform (no codes)",
            ", ".join(f"{l} ({b}-bit)" for l, b in layers.items()) or "none")


def cmd_sweep(args):
    from .sweep import load_spec, run_sweep
    spec = load_spec(args.spec)
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    if args.plot:
        _check_output_file(args.plot, ".png")
    bar = None if args.json else _sweep_bar(spec.name)
    report = run_sweep(spec, args.output, scheduler=args.scheduler, workers=args.workers,
                       progress=bar)
    if args.plot:
        from .plots import sweep_figure
        sweep_figure(report, args.plot)
    if args.json:
        print(to_json({"points": report["points"], "pareto": report["pareto"]}, indent=2,
                         default=str))
        return 0
    shown = ("accuracy", "bits_per_weight", "mac_cycle_ratio", "engine_cycles_per_sample")
    boards = ("luts", "brams", "fmax_mhz")
    keys = [k for k in shown if any(k in r["metrics"] for r in report["points"])]
    keys += sorted({k for r in report["points"] for k in r["metrics"]
                    if k.endswith(boards)})
    fields = sorted({k for r in report["points"] for k in r["config"]})
    head = [*fields, "budget", *keys]
    print(f"sweep {spec.name}: {len(report['points'])} points, {report['computed']} tasks "
          f"computed, {report['cached']} from the cache ({args.output}); * = Pareto front")
    print("  " + "  ".join(f"{h:>14}" for h in head))
    front = set(report["pareto"])
    for i, r in enumerate(report["points"]):
        cells = [str(r["config"].get(f, "")) for f in fields] + [str(r["budget"])]
        if r["error"]:
            print(f"  {'  '.join(f'{c:>14}' for c in cells)}  error: {r['error']}")
            continue
        cells += [f"{r['metrics'][k]:.4g}" if k in r["metrics"] else "-" for k in keys]
        print(("* " if i in front else "  ") + "  ".join(f"{c:>14}" for c in cells))
    if args.plot:
        print(f"figure written to {args.plot}")
    return 0


def _sweep_bar(name):
    """Tasks done, running and failed (invalid points), on stderr when it is a terminal."""
    import time
    start = time.monotonic()

    def update(done, total, running, failed):
        if not sys.stderr.isatty():
            return
        fill = int(30 * done / max(total, 1))
        sys.stderr.write(f"\rsweep {name} [{'#' * fill}{'.' * (30 - fill)}] {done}/{total} done, "
                         f"{running} running, {failed} failed {time.monotonic() - start:6.1f}s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return update


def _check_output_dir(path):
    """A build directory: an existing one, or one made now (with its parents)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"--output: {path!r} exists and is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--output: {path!r} cannot be made: {e.strerror}") from None


def _check_output_file(path, suffix):
    """A file to write later: the right ending, in a directory that exists (checked before
    long work)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{path!r} is a directory: give a file name ending in {suffix}")
    if p.suffix.lower() != suffix:
        raise ConfigError(f"{path!r} must end in {suffix}")
    if not p.resolve().parent.is_dir():
        raise ConfigError(f"the directory of {path!r} does not exist")


def cmd_generate(args):
    from .files import write_atomic
    from .rtl import BLOCKS, generate_verilog
    cfg = _config(args)
    if args.output and Path(args.output).is_dir():
        raise ConfigError(f"--output: {args.output!r} is a directory; give a file name")
    if args.output and not Path(args.output).resolve().parent.is_dir():
        raise ConfigError(f"--output: the directory of {args.output!r} does not exist")
    if args.registers or args.header:
        from .regmap import c_header, markdown
        text = (markdown if args.registers else c_header)(cfg)
    elif args.list or not args.block:
        for name, (desc, _) in BLOCKS.items():
            print(f"{name:<10} {desc}")
        return 0
    else:
        text = generate_verilog(args.block, cfg)
    if args.output:
        write_atomic(args.output, text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_synth(args):
    from .synth.flow import BOARDS, board, synthesize
    from .rtl import BLOCKS, build, check_block
    cfg = _config(args)
    blocks = list(BLOCKS) if args.block == "all" else [args.block]
    boards = list(BOARDS) if args.board == "all" else [args.board]
    for b in boards:                              # unknown names fail before any work
        board(b)
    for name in blocks:
        check_block(name)
    rows = []
    for name in blocks:
        for b in boards:
            r = synthesize(build(name, cfg), b)
            rows.append({"block": name, "config": args.config or "default", **r})
    if args.json:
        print(to_json(rows, indent=2))
        return 0
    print(f"{'block':<12} {'device':<10} {'LUTs':>6} {'FFs':>6} {'BRAM':>5} {'DSP':>4} "
          f"{'LUT %':>6} {'BRAM %':>7} {'Fmax MHz':>9} {'target':>7}")
    for r in rows:
        print(f"{r['block']:<12} {r['device']:<10} {r['luts']:>6} {r['ffs']:>6} {r['brams']:>5} "
              f"{r['dsps']:>4} {r['lut_util_pct']:>6} {r['bram_util_pct']:>7} "
              f"{r['fmax_mhz']:>9} {r['target_mhz']:>7g}")
    return 0


def cmd_lint(args):
    from .synth.lint import WAIVERS, lint_all
    presets = [args.config] if args.config else None
    if presets and presets[0] not in PRESETS:
        raise ConfigError(f"--config must be a preset ({', '.join(PRESETS)}), not {presets[0]!r}")
    results = lint_all(presets=presets)
    bad = 0
    for (block, name), found in results.items():
        print(f"{block:<12} {name:<8} {'clean' if not found else f'{len(found)} finding(s)'}")
        for line in found:
            print(f"    {line}")
        bad += len(found)
    print(f"{len(results)} block/preset pairs linted with -Wall; waivers: {WAIVERS.name}; "
          f"{bad} finding(s)")
    return 1 if bad else 0


def cmd_prove(args):
    from .formal import check_block, prove, table
    if args.block:
        check_block(args.block)
    results = prove(args.block, must_fail=not args.no_must_fail)
    print(to_json(results, indent=2) if args.json else table(results))
    return 0 if all(r["ok"] for r in results) else 1


def cmd_board(args):
    from .synth.boards import build_bitstream, engine_config
    from .synth.flow import board
    b = board(args.board)                             # an unknown name fails before any work
    if args.config and not args.engine:
        raise ConfigError("--config goes with --engine (the smoke top has no engine)")
    cfg = engine_config(b.name, _config(args) if args.config else None) if args.engine \
        else None
    if args.output:
        _check_output_dir(args.output)
    path, fig = build_bitstream(b.name, args.output, engine=args.engine, cfg=cfg)
    if args.json:
        print(to_json(fig, indent=2))
        return 0
    what = "the engine behind its serial link" if args.engine else "the smoke top"
    program = {"ice40": f"iceprog {path}  (or: openFPGALoader -b icebreaker {path})",
               "ecp5": f"openFPGALoader -b ulx3s {path}  (or: fujprog {path})"}[b.family]
    ram = "EBR" if b.family == "ice40" else "DP16KD"
    print(f"pse board: {what} for the {b.name} ({b.device}), bitstream {path}")
    print(f"  logic {fig['luts']} ({fig['lut_util_pct']} %), {ram} {fig['brams']} "
          f"({fig['bram_util_pct']} %), DSP {fig['dsps']}"
          + (f", SPRAM {fig['sprams']}" if "sprams" in fig else ""))
    print(f"  placed Fmax {fig['fmax_mhz']} MHz, the board runs it at {fig['clock_mhz']:g} MHz: "
          f"{'met' if fig['met'] else 'NOT met'}")
    if args.engine:
        print(f"  serial link: {cfg.uart_baud} baud, 8N1 (pse run ... --backend board --port "
              f"PORT --config <the same configuration>)")
    print(f"  program it: {program}")
    return 0


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

    d = sub.add_parser("demo", parents=[common, link], help="run the dynamic precision/sparsity algorithm on the digits "
                       "MLP in the golden model and print the figures")
    d.add_argument("--config", help=cfg_help)
    d.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    d.add_argument("--target-bits", type=float, default=4.0,
                   help="bit budget per weight, metadata included (default 4.0: uniform "
                        "int4's)")
    d.add_argument("--allocation", choices=("global", "layer"), default="global",
                   help="rank weights across the network or within each layer")
    d.add_argument("--period", type=int, help="allocation period P in samples (overrides config)")
    d.add_argument("--backend", choices=("model", "rtl", "board"), default="model",
                   help="model: the golden model (default); rtl: the engine's Verilog in a fast "
                   "Verilated model; board: the engine on a board over --port; every sample "
                   "of rtl and board checked against the golden model")
    d.add_argument("--samples", type=int, help="run only the first N test samples")
    d.add_argument("--trace", metavar="FILE.fst",
                   help="with --backend rtl: write a waveform (.fst or .vcd, for GTKWave or "
                   "Surfer) of the samples --trace-samples selects (a separate tracing build)")
    d.add_argument("--trace-samples", type=_sample_range, metavar="A:B",
                   help="samples A..B-1 to trace (default 0:1)")
    d.add_argument("--plot", default="pse_demo.png", help="PNG to write (default pse_demo.png; "
                   "'' for none)")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("run", parents=[common, link], help="run your own network (scikit-learn, ONNX, .npz) on your data "
                       "through the engine, with float and uniform int8/int4 baselines")
    r.add_argument("model", help="an .onnx, .npz (float weights) or pickled scikit-learn MLP "
                   "(.pkl, .joblib: unpickling runs code, load only files you trust)")
    r.add_argument("--data", required=True,
                   help="an .npz with x, y (and optionally x_calib, y_calib) or a CSV (the last "
                   "column the label); without calibration arrays 30 %% of the samples are "
                   "split off for calibration (seed 0, stratified)")
    r.add_argument("--config", help=cfg_help)
    r.add_argument("--target-bits", type=float, default=4.5,
                   help="bit budget per weight, metadata included (default 4.5)")
    r.add_argument("--allocation", choices=("global", "layer"), default="global")
    r.add_argument("--adapt", metavar="FLOOR:CEILING",
                   help="let the budget follow the network's performance (label-free: the "
                   "share of low-margin outputs against profiling) between these bits per "
                   "weight (classifiers)")
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

    s = sub.add_parser("synth", parents=[common], help="synthesize a block for iCE40 UP5K (iCEBreaker) and/or "
                       "ECP5-85F (ULX3S): resources and Fmax")
    s.add_argument("block", help="block name or 'all' (see pse generate --list)")
    s.add_argument("--board", default="all", help="icebreaker, ulx3s or all (default)")
    s.add_argument("--config", help=cfg_help)
    s.add_argument("--json", action="store_true",
                   help="print a JSON array with one object per block and device")
    s.set_defaults(func=cmd_synth)

    li = sub.add_parser("lint", parents=[common], help="verilator --lint-only -Wall on every block and preset")
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
    return p


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


if __name__ == "__main__":
    sys.exit(main())
