"""The ``pse`` command line: ``demo``, ``generate`` (and the synthesis and lint flows)."""

import argparse
import json
import sys
from pathlib import Path

from .config import ConfigError, PRESETS, from_arg

__all__ = ["main"]


def _config(args):
    return from_arg(getattr(args, "config", None))


def cmd_demo(args):
    from .plots import demo_figure
    from .workflow import progress_bar, run_demo
    cfg = _config(args)
    if args.period is not None:
        cfg = cfg.replace(period=args.period)
    bar = None if args.json else progress_bar("dynamic run over the test split")
    result = run_demo(cfg, target_bits=args.target_bits, mode=args.allocation, progress=bar)
    if args.plot:
        demo_figure(result, args.plot)
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    if args.json:
        print(json.dumps(public, indent=2))
        return 0
    rows = [
        ("float accuracy (test split)", f"{100 * result['float_accuracy']:.2f} %"),
        ("fixed-point dense accuracy (int8 x int16)", f"{100 * result['dense_accuracy']:.2f} %"),
        ("PSE accuracy (dynamic, test split)", f"{100 * result['pse_accuracy']:.2f} %"),
        ("bits per weight (values + metadata + descriptors)",
         f"{result['bits_per_weight']:.3f}"),
        *[(f"  share of weights {k}", f"{100 * v:.1f} %")
          for k, v in result["precision_shares"].items()],
        (f"MAC cycles vs dense 16-bit ({cfg.lanes} lanes)",
         f"{100 * result['mac_cycle_ratio']:.1f} %  ({result['mac_cycles_per_sample']:.0f} vs "
         f"{result['dense16_cycles_per_sample']:.0f} per sample)"),
        ("allocations during the run", f"{result['allocations']} (every {cfg.period} samples)"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"pse demo: digits MLP {' -> '.join(str(s[1]) for s in result['layers'])} -> "
          f"{result['layers'][-1][0]}, {result['weights']} weights, target "
          f"{result['target_bits']} bits/weight")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if args.plot:
        print(f"figure written to {args.plot}")
    return 0


def cmd_generate(args):
    from .rtl import BLOCKS, generate_verilog
    if args.list or not args.block:
        for name, (desc, _) in BLOCKS.items():
            print(f"{name:<10} {desc}")
        return 0
    text = generate_verilog(args.block, _config(args))
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="pse", description="Precision & Sparsity Engine: RTL "
                                "generator, golden model and flows.")
    sub = p.add_subparsers(dest="command", required=True)
    cfg_help = f"a preset ({', '.join(PRESETS)}) or a TOML file (default: default)"

    d = sub.add_parser("demo", help="run the dynamic precision/sparsity algorithm on the digits "
                       "MLP in the golden model and print the figures")
    d.add_argument("--config", help=cfg_help)
    d.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    d.add_argument("--target-bits", type=float, default=4.5,
                   help="bit budget per weight, metadata included (default 4.5)")
    d.add_argument("--allocation", choices=("global", "layer"), default="global",
                   help="rank weights across the network or within each layer")
    d.add_argument("--period", type=int, help="allocation period P in samples (overrides config)")
    d.add_argument("--plot", default="pse_demo.png", help="PNG to write (default pse_demo.png; "
                   "'' for none)")
    d.set_defaults(func=cmd_demo)

    g = sub.add_parser("generate", help="write the Verilog of a block")
    g.add_argument("block", nargs="?", help="block name (see --list)")
    g.add_argument("--list", action="store_true", help="list the blocks")
    g.add_argument("--config", help=cfg_help)
    g.add_argument("-o", "--output", help="output file (default: stdout)")
    g.set_defaults(func=cmd_generate)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"pse: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
