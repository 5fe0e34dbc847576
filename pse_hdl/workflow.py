"""The main job: the dynamic precision and sparsity algorithm on the digits MLP, end to end.

``pse demo`` and ``bench/accuracy.py`` call :func:`run_demo`, a thin caller of the Python API
(:mod:`pse_hdl.api`) on the bundled digits network. Everything is deterministic (fixed seeds);
thresholds and scales are calibrated on the calibration split and measured on the test split.
"""

import sys
import time
from dataclasses import dataclass

import numpy as np

from .api import MismatchError
from .config import PSEConfig
from .model.engine import dense_activations, profile
from .model.network import (DEFAULT_HIDDEN, default_network, digits_splits, quantize_input,
                            quantize_network)

__all__ = ["Prepared", "prepare", "run_demo", "Demo", "MismatchError", "progress_bar",
           "accuracy"]


def accuracy(logits, y):
    return float(np.mean(np.argmax(logits, axis=1) == y))


def progress_bar(label, stream=None):
    """A tiny progress bar on stderr, drawn only when stderr is a terminal."""
    stream = stream or sys.stderr
    start = time.monotonic()

    def update(done, total):
        if not stream.isatty():
            return
        width = 30
        fill = int(width * done / max(total, 1))
        stream.write(f"\r{label} [{'#' * fill}{'.' * (width - fill)}] {done}/{total} "
                     f"{time.monotonic() - start:5.1f}s")
        if done >= total:
            stream.write("\n")
        stream.flush()
    return update


@dataclass
class Prepared:
    cfg: PSEConfig
    splits: dict
    float_net: object
    qnet: object
    xq: dict               # quantized inputs per split
    float_accuracy: float
    dense_accuracy: float  # fixed point, dense 16-bit masters


def prepare(cfg, hidden=DEFAULT_HIDDEN, seed=0, cache_dir=None):
    splits = digits_splits(seed)
    net = default_network(cache_dir, hidden, seed)
    x_cal = splits["calib"][0]
    qnet = quantize_network(net, x_cal, cfg)
    fx0 = qnet.layers[0].fx
    xq = {k: quantize_input(v[0], fx0, cfg) for k, v in splits.items()}
    qnet.baseline = profile(qnet, xq["calib"], cfg)
    x_test, y_test = splits["test"]
    return Prepared(cfg, splits, net, qnet, xq,
                    float(np.mean(net.predict(x_test) == y_test)),
                    accuracy(dense_activations(qnet.layers, xq["test"], cfg)[-1], y_test))


@dataclass
class Demo:
    """What ``pse demo`` measured: ``figures`` (the public JSON), the model engine after the run,
    the calibration table and the prepared network."""
    figures: dict
    engine: object
    table: list
    prepared: Prepared


def run_demo(cfg=None, target_bits=4.0, mode="auto", recalibrate_every=4, progress=None,
             prepared=None, backend="model", samples=None, trace=None, trace_samples=None,
             port=None, baud=None):
    """The digits MLP through the Python API (:mod:`pse_hdl.api`): calibrated on the
    calibration split, then the dynamic algorithm over the test split (its first ``samples``)
    in the golden model or, with ``backend="rtl"``, through the engine's Verilog (``"board"``:
    on a board over the serial ``port`` at ``baud``), checked sample by sample against the
    model. ``trace`` (an ``.fst``/``.vcd`` path) dumps the
    waveform of ``trace_samples`` (a ``(first, end)`` range; default the first sample)."""
    from .api import Design
    from .importers import Source
    cfg = cfg or PSEConfig()
    p = prepared or prepare(cfg)
    x_cal, y_cal = p.splits["calib"]
    design = Design(cfg, Source(p.float_net, "digits MLP", "classification"), x_cal, y_cal,
                    "classification", recalibrate_every=recalibrate_every)
    best = design.allocate(target_bits, mode)
    x_test, y_test = p.splits["test"]
    float_acc, dense_acc = p.float_accuracy, p.dense_accuracy
    if samples is not None and samples < len(x_test):
        x_test, y_test = x_test[:samples], y_test[:samples]
        float_acc = float(np.mean(p.float_net.predict(x_test) == y_test))
        dense_acc = accuracy(dense_activations(p.qnet.layers, p.xq["test"][:samples], cfg)[-1],
                             y_test)
    logits, run = design.run(x_test, backend, progress=progress, trace=trace,
                             trace_samples=trace_samples, port=port, baud=baud)
    labels = ["pruned"] + [f"{b}-bit" for b in cfg.precisions]
    figures = {
        "backend": backend,
        "float_accuracy": float_acc,
        "dense_accuracy": dense_acc,
        "pse_accuracy": accuracy(logits, y_test),
        **{k: v for k, v in run.items() if k != "backend"},
        "target_bits": target_bits,
        "allocation": design.mode,
        "calibrated_shares": dict(zip(labels, design.shares)),
        "uniform_layers": design.uniform_layers,
        "masked_layers": design.masked_layers,
        "calibration_accuracy": best["accuracy"],
        "weights": int(sum(q.master.size for q in design.qnet.layers)),
        "layers": [list(q.shape) for q in design.qnet.layers],
        "lanes": cfg.lanes,
        "period": cfg.period,
        "ema_rate": cfg.ema_num / (1 << cfg.ema_rate_bits),
    }
    return Demo(figures, design.last_engine, design.table, p)
