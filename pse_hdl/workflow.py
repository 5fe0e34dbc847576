"""The main job: the dynamic precision and sparsity algorithm on the digits MLP, end to end.

Used by ``pse demo`` and by ``bench/accuracy.py``. Everything is deterministic (fixed seeds);
thresholds and scales are calibrated on the calibration split and measured on the test split.
"""

import sys
import time
from dataclasses import dataclass

import numpy as np

from .config import PSEConfig
from .model.engine import Engine, Firmware, calibrate, dense_activations, profile, run_dynamic
from .model.network import (DEFAULT_HIDDEN, default_network, digits_splits, quantize_input,
                            quantize_network)

__all__ = ["Prepared", "prepare", "run_demo", "progress_bar", "accuracy"]


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


def run_demo(cfg=None, target_bits=4.5, mode="global", recalibrate_every=4, progress=None,
             prepared=None):
    """Calibrate on the calibration split, then run the dynamic algorithm over the test split."""
    cfg = cfg or PSEConfig()
    p = prepared or prepare(cfg)
    engine = Engine(p.qnet, cfg, allocate=False)
    best, table = calibrate(engine, p.xq["calib"], p.splits["calib"][1],
                            target_bits=target_bits, mode=mode)
    # A fresh engine starts from the profiled baseline with the calibrated thresholds.
    engine = Engine(p.qnet, cfg, thresholds=best["thresholds"])
    logits, stats = run_dynamic(engine, p.xq["test"],
                                Firmware(best["shares"], recalibrate_every, mode), progress)
    y_test = p.splits["test"][1]
    labels = ["pruned"] + [f"{b}-bit" for b in cfg.precisions]
    return {
        "float_accuracy": p.float_accuracy,
        "dense_accuracy": p.dense_accuracy,
        "pse_accuracy": accuracy(logits, y_test),
        "bits_per_weight": float(stats["bits"]),
        "mac_cycle_ratio": float(stats["cycles"] / stats["dense16"]),
        "mac_cycles_per_sample": float(stats["cycles"]),
        "dense16_cycles_per_sample": float(stats["dense16"]),
        "precision_shares": {k: float(v) for k, v in zip(labels, stats["shares"])},
        "allocations": int(stats["allocations"]),
        "target_bits": target_bits,
        "calibrated_shares": dict(zip(labels, best["shares"])),
        "calibration_accuracy": best["accuracy"],
        "weights": int(sum(q.master.size for q in p.qnet.layers)),
        "layers": [list(q.shape) for q in p.qnet.layers],
        "lanes": cfg.lanes,
        "period": cfg.period,
        "ema_rate": cfg.ema_num / (1 << cfg.ema_rate_bits),
        "_engine": engine, "_table": table, "_prepared": p,
    }
