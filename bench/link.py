"""The serial link: what a sample costs on the wire, and the samples a second a UART allows.

    python bench/link.py [--json] [--samples N]

Runs digits MLPs through the engine behind its UART and bridge (``--backend board --port sim``:
the Verilated serial engine, the host driver and firmware, every sample checked bit for bit
against the golden model) and, in the same run, through the plain Verilated engine (the rtl
backend, no link), and prints per design point: frames (round trips) and bytes per sample, the
load's bytes, the samples a second the UART alone allows at 1 and 3 Mbaud (10 bits a byte;
allocations, recalibrations and re-zonings included), and the simulations' own speed (load
and samples; model builds not counted).

* ``up5k``: the iCEBreaker's preset with a digits MLP 64-32-10 (scikit-learn, trained here);
* ``default``: the ULX3S's with the demo's digits MLP 64-256-10.
"""

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pse_hdl.config import PRESETS                             # noqa: E402
from pse_hdl.files import to_json                             # noqa: E402


def small_digits():
    """A digits MLP 64-32-10 (scikit-learn) with calibration and test data."""
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier
    x, y = load_digits(return_X_y=True)
    x = x / 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPClassifier((32,), max_iter=300, random_state=0).fit(x[:1200], y[:1200])
    return model, (x[1200:1500], y[1200:1500]), x[1500:]


def point(name, samples):
    import pse_hdl
    if name == "up5k":
        model, calib, x = small_digits()
        design = pse_hdl.convert(model, PRESETS["up5k"], calibration=calib)
    else:
        from pse_hdl.api import Design
        from pse_hdl.importers import Source
        from pse_hdl.workflow import prepare
        cfg = PRESETS["default"]
        p = prepare(cfg)
        design = Design(cfg, Source(p.float_net, "digits MLP", "classification"),
                        *p.splits["calib"], "classification")
        design.allocate(4.5, "global")
        x = p.splits["test"][0]
    x = x[:samples]
    _, board = design.run(x, "board", port="sim")
    _, rtl = design.run(x, "rtl")
    per = board["link_bytes_per_sample"]
    return {
        "name": name, "samples": len(x), "bit_exact": board["bit_exact"],
        "weights": int(sum(q.master.size for q in design.qnet.layers)),
        "frames_per_sample": board["link_frames_per_sample"], "bytes_per_sample": per,
        "retries": board["link_retries"],
        "uart_samples_per_s_1mbaud": 1e6 / 10 / per, "uart_samples_per_s_3mbaud": 3e6 / 10 / per,
        "engine_cycles_per_sample": board["engine_cycles_per_sample"],
        # simulation speed, load and samples (the model builds are cached and not counted)
        "sim_serial_samples_per_s": len(x) / board["rtl_run_s"],
        "sim_rtl_samples_per_s": len(x) / rtl["rtl_run_s"],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--samples", type=int, default=48)
    args = ap.parse_args(argv)
    if args.samples < 1:
        print(f"bench/link.py: error: --samples must be at least 1, not {args.samples}",
              file=sys.stderr)
        return 2
    rows = [point(name, args.samples) for name in ("up5k", "default")]
    if args.json:
        print(to_json({"points": rows}, indent=2))
        return 0
    print(f"{'design point':<28}{'frames/sample':>14}{'bytes/sample':>14}"
          f"{'1 Mbaud':>10}{'3 Mbaud':>10}{'sim serial':>12}{'sim rtl':>10}")
    for r in rows:
        label = f"{r['name']} ({r['weights']} weights)"
        print(f"{label:<28}{r['frames_per_sample']:>14.2f}{r['bytes_per_sample']:>14.0f}"
              f"{r['uart_samples_per_s_1mbaud']:>10.0f}{r['uart_samples_per_s_3mbaud']:>10.0f}"
              f"{r['sim_serial_samples_per_s']:>12.1f}{r['sim_rtl_samples_per_s']:>10.1f}")
    print(f"(samples a second; {rows[0]['samples']} samples each, bit-exact: "
          f"{all(r['bit_exact'] for r in rows)}; UART columns: the wire alone, 10 bits a byte)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
