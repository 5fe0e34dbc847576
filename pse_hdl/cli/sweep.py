"""``pse sweep``: a design-space sweep on Dask (:mod:`pse_hdl.sweep`), its table and plot."""

import sys

from ..config import ConfigError
from ..files import to_json
from .common import check_output_file

__all__ = ["cmd_sweep"]


def cmd_sweep(args):
    from ..sweep import load_spec, run_sweep
    spec = load_spec(args.spec)
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    if args.plot:
        check_output_file(args.plot, ".png")
    bar = None if args.json else _sweep_bar(spec.name)
    report = run_sweep(spec, args.output, scheduler=args.scheduler, workers=args.workers,
                       progress=bar)
    if args.plot:
        from ..plots import sweep_figure
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
