"""``pse generate``, ``synth``, ``lint``, ``prove`` and ``board``: the hardware flows."""

import sys
from pathlib import Path

from ..config import ConfigError, PRESETS
from ..files import to_json
from .common import check_output_dir, config_of

__all__ = ["cmd_generate", "cmd_synth", "cmd_lint", "cmd_prove", "cmd_board"]


def cmd_generate(args):
    from ..files import write_atomic
    from ..rtl import BLOCKS, generate_verilog
    cfg = config_of(args)
    if args.output and Path(args.output).is_dir():
        raise ConfigError(f"--output: {args.output!r} is a directory; give a file name")
    if args.output and not Path(args.output).resolve().parent.is_dir():
        raise ConfigError(f"--output: the directory of {args.output!r} does not exist")
    if args.registers or args.header:
        from ..regmap import c_header, markdown
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
    from ..synth.flow import BOARDS, board, synthesize
    from ..rtl import BLOCKS, build, check_block
    cfg = config_of(args)
    blocks = list(BLOCKS) if args.block == "all" else [args.block]
    boards = list(BOARDS) if args.board == "all" else [args.board]
    for b in boards:                              # unknown names fail before any work
        board(b)
    for name in blocks:
        check_block(name)
    if args.seed < 0:
        raise ConfigError(f"--seed must be 0 or more, not {args.seed}")
    rows = []
    for name in blocks:
        for b in boards:
            r = synthesize(build(name, cfg), b, seed=args.seed)
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
    from ..synth.lint import WAIVERS, lint_all
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
    from ..formal import check_block
    from ..sby import prove, table
    if args.block:
        check_block(args.block)
    results = prove(args.block, must_fail=not args.no_must_fail)
    print(to_json(results, indent=2) if args.json else table(results))
    return 0 if all(r["ok"] for r in results) else 1


def cmd_board(args):
    from ..synth.boards import build_bitstream, engine_config
    from ..synth.flow import board
    b = board(args.board)                             # an unknown name fails before any work
    if args.config and not args.engine:
        raise ConfigError("--config goes with --engine (the smoke top has no engine)")
    cfg = engine_config(b.name, config_of(args) if args.config else None) if args.engine \
        else None
    if args.output:
        check_output_dir(args.output)
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
