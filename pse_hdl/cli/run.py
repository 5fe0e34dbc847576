"""``pse demo`` and ``pse run``: networks through the golden model or the engine."""

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from ..api import MismatchError
from ..config import ConfigError
from ..errors import BudgetError
from ..files import to_json
from .common import check_output_file, config_of

__all__ = ["cmd_demo", "cmd_run", "sample_range"]


def sample_range(text):
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
    from ..plots import demo_figure
    from ..workflow import progress_bar, run_demo
    cfg = config_of(args)
    if args.period is not None:
        cfg = cfg.replace(period=args.period)
    if args.samples is not None and args.samples < 1:
        raise ConfigError(f"--samples must be at least 1, not {args.samples}")
    if args.trace:
        from ..host.verilated import trace_format
        if args.backend != "rtl":
            raise ConfigError("--trace needs --backend rtl (a waveform of the engine's Verilog)")
        try:
            trace_format(args.trace)
        except ValueError as e:
            raise ConfigError(f"--trace: {e}") from None
        if not Path(args.trace).resolve().parent.is_dir():
            raise ConfigError(f"--trace: the directory of {args.trace!r} does not exist")
    if args.plot:
        check_output_file(args.plot, ".png")
    _check_backend(args, cfg)
    label = {"rtl": "RTL run", "board": "board run"}.get(args.backend, "dynamic run") + \
        " over the test split"
    bar = None if args.json else progress_bar(label)
    try:
        demo = run_demo(cfg, target_bits=args.target_bits, mode=args.allocation, progress=bar,
                        backend=args.backend, samples=args.samples, trace=args.trace,
                        trace_samples=args.trace_samples, port=args.port, baud=args.baud)
    except BudgetError as e:
        raise ConfigError(f"no layout of the digits network reaches --target-bits "
                          f"{e.target_bits:g} (metadata and descriptors included): the "
                          f"smallest costs {e.least:.2f} bits per weight; give at least "
                          f"that") from None
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
        _uniform_row(result["uniform_layers"], result["masked_layers"]),
        _mode_row(result["allocation"], args.allocation),
        (f"MAC cycles vs dense 16-bit ({_lanes(cfg)})",
         f"{100 * result['mac_cycle_ratio']:.1f} %  ({result['mac_cycles_per_sample']:.0f} vs "
         f"{result['dense16_cycles_per_sample']:.0f} per sample)"),
        ("allocations during the run", _allocations(result, cfg)),
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
    print(f"pse demo: digits {network_shape(result['layers'])}, {result['weights']} weights, "
          f"target {result['target_bits']} bits/weight, {result['samples']} test samples in "
          f"{where}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if args.plot:
        print(f"figure written to {args.plot}")
    return 0


def _lanes(cfg):
    return "1 lane" if cfg.lanes == 1 else f"{cfg.lanes} lanes"


def _check_backend(args, cfg):
    """``--port``/``--baud`` belong to ``--backend board``, which needs a port; the hardware
    backends need a configuration the engine can be built from (before any calibration)."""
    if args.backend != "model":
        from ..regmap import check_engine_config
        check_engine_config(cfg)
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
    from ..model.calibration import r2_score
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


def _budget_hint(e, args, source):
    """What to give when no layout reaches the budget, in the command's own flags: a network of
    a few hundred weights pays for its descriptors and codes with bits a larger one does not
    need (``docs/ALLOCATION.md``, "Networks held out")."""
    weights = sum(int(w.size) for w in source.net.weights)
    budget = (f"--target-bits {e.target_bits:g}" if args.target_bits is not None
              else f"the default budget, {e.target_bits:g} bits per weight")
    ways = [f"--target-bits {math.ceil(e.least * 100) / 100:g} or more"]
    if args.max_loss is None:
        ways.append("--max-loss 0.01 to choose the bits from the accuracy")
    if not args.fit:
        ways.append("--fit to size the engine to the network (narrower descriptors)")
    return (f"no layout of this network ({weights} weights) reaches {budget} (metadata and "
            f"descriptors included): the smallest costs {e.least:.2f}; give "
            + ", ".join(ways[:-1]) + (" or " if len(ways) > 1 else "") + ways[-1])


def cmd_run(args):
    from ..api import convert
    from ..importers import calibration_and_test, check_reproduces, load_data, load_model
    from ..workflow import progress_bar
    cfg = config_of(args)
    if args.samples is not None and args.samples < 1:
        raise ConfigError(f"--samples must be at least 1, not {args.samples}")
    _check_backend(args, cfg)
    source = load_model(args.model)
    task, (x_cal, y_cal), (x, y) = calibration_and_test(
        source, load_data(args.data), f"data file {Path(args.data).name}")
    if args.samples is not None:
        x, y = x[:args.samples], y[:args.samples]
    try:
        design = convert(source, cfg, calibration=(x_cal, y_cal), target_bits=args.target_bits,
                         mode=args.allocation, adapt=_adapt_range(args.adapt),
                         max_mac=args.max_mac, max_loss=args.max_loss, fit=args.fit,
                         equalize=args.equalize)
    except BudgetError as e:
        raise ConfigError(_budget_hint(e, args, source)) from None
    cfg = design.cfg
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
        "target_bits": design.target_bits, "max_mac": args.max_mac,
        "max_loss": args.max_loss, "fit": args.fit, "equalize": args.equalize,
        "allocation": design.mode,
        "engine": {k: getattr(cfg, k) for k in ENGINE_SIZE},
        "uniform_layers": design.uniform_layers,
        "masked_layers": design.masked_layers,
        "input_scaling": source.info.get("input_scaling"),
        "relu": [bool(q.relu) for q in design.qnet.layers],
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
        _uniform_row(result["uniform_layers"], result["masked_layers"]),
        _mode_row(result["allocation"], args.allocation),
        (f"MAC cycles vs dense 16-bit ({_lanes(cfg)})",
         f"{100 * result['mac_cycle_ratio']:.1f} %"),
        ("allocations during the run", _allocations(result, cfg)),
    ]
    if args.max_loss is not None:
        dense = design.table[0]["dense_accuracy"]
        rows.append((f"calibration {metric}: dense 16-bit, the layout chosen (--max-loss)",
                     f"{_pct(dense, task)}, {_pct(design.calibration_score, task)}; the run "
                     f"keeps to {design.target_bits:.3f} bits/weight"))
    linear = [l for l, r in enumerate(result["relu"][:-1]) if not r]
    if linear:
        rows.append(("hidden layers without a ReLU (linear)",
                     ", ".join(map(str, linear))
                     + (f" ({', '.join(source.info['projections'])})"
                        if source.info.get("projections") else "")))
    if result["input_scaling"] or args.equalize:
        steps = list(result["input_scaling"] or []) + \
            (["the equalization's scales (--equalize)"] if args.equalize else [])
        rows.append(("samples scaled on the host", f"{' then '.join(steps)}: one per-feature "
                     f"affine (report.json's input)"))
    if args.fit:
        rows.append(("engine sized for the network (--fit)",
                     f"layers up to {cfg.max_rows}x{cfg.max_cols}, {cfg.max_layers} layers, "
                     f"{cfg.master_depth} masters, zones of "
                     f"{'/'.join(map(str, cfg.zone_depths))} words"))
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
    print(f"pse run: {args.model}, {task}, {network_shape(result['layers'])}, "
          f"{result['weights']} weights, {len(x)} test samples ({len(x_cal)} for calibration), "
          + _target(args, design))
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for hint in (input_hint(result, design.quantize(x_cal), cfg, args.equalize),
                 int4_hint(result, cfg)):
        if hint:
            print(hint)
    return 0


def network_shape(layers):
    """``MLP 64 -> 256 -> 10``, or ``linear 13 -> 3`` for a network of one layer (a linear
    model, or an MLP with no hidden layer): ``layers`` are ``(rows, cols)`` each."""
    kind = "linear" if len(layers) == 1 else "MLP"
    return f"{kind} {' -> '.join(str(c) for _, c in layers)} -> {layers[-1][0]}"


def input_hint(result, xq, cfg, equalized=False):
    """A note when uniform int8 loses more than a point (or 0.01 of R^2) to the float network
    and some input features keep under two bits of layer 0's activations (``xq``: the
    calibration samples as the engine takes them); ``None`` otherwise. One power-of-two scale
    serves every input, set by the largest, so features of much smaller range round to a step
    or two in every quantized model, int8 and int4 included."""
    if not result["float_accuracy"] - result["int8_accuracy"] > 0.01:
        return None
    peak = np.abs(xq).max(axis=0)
    starved = int(np.sum((peak > 0) & (peak < 4)))
    if not starved:
        return None
    top = int(np.argmax(peak))
    return (f"note: uniform int8 loses {_points(result)} to the float network, and {starved} "
            f"of the {len(peak)} input features reach fewer than 4 of layer 0's "
            f"{cfg.act_bits}-bit input steps: one scale serves every input, set by the largest "
            f"(feature {top}); "
            + ("" if equalized else "--equalize balances them against the first layer's "
               "weights, or ")
            + "scale the features to like ranges first (a StandardScaler in a Pipeline with "
            "the model), or clip the outliers that set the scale")


def _points(result):
    d = result["float_accuracy"] - result["int8_accuracy"]
    return f"{100 * d:.1f} points" if result["task"] == "classification" else f"{d:.3f} of R^2"


def _target(args, design):
    """What the calibration aimed at: the bit budget, or the loss (and the budget it chose)."""
    if args.max_loss is None:
        return f"target {design.target_bits} bits/weight"
    within = "" if args.target_bits is None else f" within {args.target_bits:g} bits/weight"
    return (f"the fewest bits/weight within {args.max_loss:g} of the dense network's "
            f"calibration {'accuracy' if design.task == 'classification' else 'R^2'}{within}")


# The configuration fields --fit sizes (reported under "engine" in --json).
ENGINE_SIZE = ("max_rows", "max_cols", "max_layers", "master_depth", "zone_depths")


def int4_hint(result, cfg):
    """A note for a classifier whose run scored below uniform int4 (``None`` otherwise): the
    two figures, why (under 4 bits a layout prunes; over 4, what the budget left after the
    metadata made it prune), what the descriptors cost a small network, and masked
    layers where the configuration could have them but does not."""
    if (result["task"] != "classification"
            or result["pse_accuracy"] >= result["int4_accuracy"]):
        return None
    bits = result["bits_per_weight"]
    out = (f"note: uniform int4 scores more here ({100 * result['int4_accuracy']:.2f} % at 4.0 "
           f"bits/weight against {100 * result['pse_accuracy']:.2f} % at {bits:.2f}): ")
    pruned = result.get("precision_shares", {}).get("pruned", 0.0)
    if bits <= 4.0:
        out += ("under 4 bits a layout prunes, and this network loses more to that than int4 "
                "loses to rounding")
    elif pruned > 0:
        out += (f"with its metadata and descriptors counted, the budget left room for the "
                f"values only by pruning {100 * pruned:.0f} % of the weights")
    else:
        out += "the layout prunes nothing; its scales and classes lose to int4's on this data"
    layers = len(result["layers"])
    splits = sum(cfg.layer_ports(r * c) - 1 for r, c in result["layers"])
    per_weight = (layers * cfg.layer_desc_bits + splits * cfg.split_desc_bits) / result["weights"]
    if per_weight >= 0.25:
        kinds = f"{layers} layer" + (f" and {splits} split" if splits else "")
        out += (f"; its {kinds} descriptors alone cost {per_weight:.2f} bits/weight, "
                f"so a larger --target-bits keeps more of its {result['weights']} weights")
        if not result.get("fit"):
            out += " (--fit narrows the descriptors to the network's sizes)"
        if result.get("max_loss") is None:
            out += ("; --max-loss 0.01 instead chooses the fewest bits per weight within a "
                    "point of the dense network's calibration accuracy")
    if cfg.reversible and cfg.importance_form == "factored" and not cfg.input_masks:
        out += ("; masked layers (--config masks, or input_masks = true) match int4 "
                "on more of bench/suite.py's networks, most with --fit and --max-mac 0.2 "
                "(docs/ALLOCATION.md, \"The calibration chooses the thresholds' mode\")")
    return out


def _allocations(result, cfg):
    """How many allocations the run made, how often, and how many were kept out: over the
    budget, or not fitting the engine's memories."""
    out = f"{result['allocations']} (every {cfg.period} samples)"
    if result["layouts_over_budget"]:
        which = "the bit or cycle budget" if result.get("max_mac") else "the budget"
        out += f", {result['layouts_over_budget']} kept out: over {which}"
    if result.get("layouts_unfit"):
        out += (f", {result['layouts_unfit']} kept out: larger than the zones or the metadata "
                f"memory (zone_depth, meta_bits)")
    return out


def _pct(v, task):
    return f"{100 * v:.2f} %" if task == "classification" else f"{v:.4f}"


def _uniform_row(layers, masked):
    """The report line of the layers stored uniform (``Design.uniform_layers``), those whose
    pruned input columns are left out (``Design.masked_layers``) marked."""
    return ("  layers stored uniform (no codes)",
            ", ".join(f"{l} ({b}-bit{', input columns masked' if l in masked else ''})"
                      for l, b in layers.items()) or "none")


def _mode_row(chosen, asked):
    """The report line of the thresholds' mode (``Design.mode``), and whether the calibration
    chose it (``--allocation auto``)."""
    return ("  thresholds" + (" (the calibration's choice)" if asked == "auto" else ""),
            {"global": "for the whole network", "layer": "per layer"}[chosen])
