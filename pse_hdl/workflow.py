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


class MismatchError(RuntimeError):
    """The RTL produced a number the golden model does not: a bug in one of the two."""


@dataclass
class Demo:
    """What ``pse demo`` measured: ``figures`` (the public JSON), the model engine after the run,
    the calibration table and the prepared network."""
    figures: dict
    engine: object
    table: list
    prepared: Prepared


def run_demo(cfg=None, target_bits=4.5, mode="global", recalibrate_every=4, progress=None,
             prepared=None, backend="model", samples=None, trace=None, trace_samples=None):
    """Calibrate on the calibration split, then run the dynamic algorithm over the test split
    (its first ``samples``) in the golden model and, with ``backend="rtl"``, through the
    engine's Verilog (the fast Verilated model), checking every sample's logits and every
    allocation's codes and footprint against the model. The figures of an RTL run come from the
    engine's counters. ``trace`` (an ``.fst`` path) dumps the waveform of ``trace_samples``
    (a ``(first, end)`` range of samples; default the first sample)."""
    cfg = cfg or PSEConfig()
    if backend not in ("model", "rtl"):
        raise ValueError(f"backend must be 'model' or 'rtl', not {backend!r}")
    p = prepared or prepare(cfg)
    engine = Engine(p.qnet, cfg, allocate=False)
    best, table = calibrate(engine, p.xq["calib"], p.splits["calib"][1],
                            target_bits=target_bits, mode=mode)
    policy = Firmware(best["shares"], recalibrate_every, mode)
    x_test, y_test = p.xq["test"], p.splits["test"][1]
    float_acc, dense_acc = p.float_accuracy, p.dense_accuracy
    if samples is not None and samples < len(x_test):
        x_test, y_test = x_test[:samples], y_test[:samples]
        float_acc = float(np.mean(p.float_net.predict(p.splits["test"][0][:samples]) == y_test))
        dense_acc = accuracy(dense_activations(p.qnet.layers, x_test, cfg)[-1], y_test)
    # The golden model's run: the reference of an RTL run, and the figures of a model run.
    engine = Engine(p.qnet, cfg, thresholds=best["thresholds"])
    codes = [[c.copy() for c in engine.codes]]
    footprints = [engine.footprint()["total"]]

    def record(k, eng):
        codes.append([c.copy() for c in eng.codes])
        footprints.append(eng.allocated_footprint()["total"])
    start = time.monotonic()
    logits, stats = run_dynamic(engine, x_test, policy, None if backend == "rtl" else progress,
                                on_allocation=record)
    model_seconds = time.monotonic() - start
    labels = ["pruned"] + [f"{b}-bit" for b in cfg.precisions]
    figures = {
        "backend": backend,
        "float_accuracy": float_acc,
        "dense_accuracy": dense_acc,
        "pse_accuracy": accuracy(logits, y_test),
        "bits_per_weight": float(stats["bits"]),
        "mac_cycle_ratio": float(stats["cycles"] / stats["dense16"]),
        "mac_cycles_per_sample": float(stats["cycles"]),
        "dense16_cycles_per_sample": float(stats["dense16"]),
        "precision_shares": {k: float(v) for k, v in zip(labels, stats["shares"])},
        "allocations": int(stats["allocations"]),
        "samples": int(len(x_test)),
        "target_bits": target_bits,
        "calibrated_shares": dict(zip(labels, best["shares"])),
        "calibration_accuracy": best["accuracy"],
        "weights": int(sum(q.master.size for q in p.qnet.layers)),
        "layers": [list(q.shape) for q in p.qnet.layers],
        "lanes": cfg.lanes,
        "period": cfg.period,
        "ema_rate": cfg.ema_num / (1 << cfg.ema_rate_bits),
        "model_run_s": model_seconds,
    }
    if backend == "rtl":
        figures.update(_rtl_run(cfg, p, best["thresholds"], policy, x_test, y_test, logits,
                                codes, footprints, progress, trace, trace_samples))
    return Demo(figures, engine, table, p)


def _rtl_run(cfg, p, thresholds, policy, x, y, want_logits, want_codes, want_footprints,
             progress, trace, trace_samples):
    """The same run through the engine's Verilog, checked against the model as it goes."""
    from .host.bus import run
    from .host.driver import Driver
    from .host.firmware import Firmware as HostFirmware
    from .host.verilated import VerilatedBus, trace_format

    bus = VerilatedBus(cfg, trace=trace_format(trace) if trace else False)
    fw = HostFirmware(Driver(bus, cfg), p.qnet, thresholds, policy)
    first, end = trace_samples or (0, 1)
    if trace:
        bus.trace_open(trace)

    def check_codes(k, codes, footprint):
        for l, (got, want) in enumerate(zip(codes, want_codes[k])):
            bad = np.argwhere(np.asarray(got) != want)
            if bad.size:
                i, j = bad[0]
                raise MismatchError(f"allocation {k}, layer {l}, row {i}, column {j}: the RTL "
                                    f"coded {got[i, j]}, the golden model {want[i, j]}")
        if footprint != want_footprints[k]:
            raise MismatchError(f"allocation {k}: the RTL's layout stores {footprint} bits, "
                                f"the golden model's {want_footprints[k]}")

    def before_sample(t):
        if trace:
            bus.trace_enable(first <= t < end)

    def check_sample(t, logits):
        bad = np.flatnonzero(logits != want_logits[t])
        if bad.size:
            r = int(bad[0])
            hint = "" if trace else (f"; rerun with --trace mismatch.fst --trace-samples {t}:"
                                     f"{t + 1} for the waveform of that sample")
            raise MismatchError(f"sample {t}, layer {len(p.qnet.layers) - 1} (the logits), row "
                                f"{r}: the RTL computed {logits[r]}, the golden model "
                                f"{want_logits[t][r]}{hint}")

    start = time.monotonic()
    cycles0 = bus.cycles
    try:
        before_sample(-1)
        run(fw.load())
        check_codes(0, fw.codes, fw.footprint)
        logits, st = run(fw.run(x, on_sample=check_sample, on_allocation=check_codes,
                                before_sample=before_sample, progress=progress))
    finally:
        if trace:
            bus.trace_close()
    seconds = time.monotonic() - start
    cycles = bus.cycles - cycles0
    labels = ["pruned"] + [f"{b}-bit" for b in cfg.precisions]
    return {
        "bit_exact": True,
        "pse_accuracy": accuracy(logits, y),
        "bits_per_weight": float(st.bits),
        "mac_cycle_ratio": float(st.mac_cycles / st.dense16),
        "mac_cycles_per_sample": float(st.mac_cycles),
        "dense16_cycles_per_sample": float(st.dense16),
        "precision_shares": {k: float(v) for k, v in zip(labels, st.shares)},
        "allocations": int(st.allocations),
        "engine_cycles_per_sample": float(st.engine_cycles),
        "ideal_cycles_per_sample": float(st.ideal),
        "allocation_cycles": int(st.alloc_cycles),
        "rezone_cycles": int(st.rezone_cycles),
        "snapshot_cycles": int(st.extra["snapshot_cycles"]),
        "job_wait_cycles": int(st.extra["job_wait_cycles"]),
        "run_cycles": int(st.extra["run_cycles"]),
        "swap_delay": cfg.swap_delay,
        "sim_cycles": int(cycles),
        "rtl_run_s": seconds,
        "build_s": bus.build_seconds,
        "cycles_per_s": cycles / seconds if seconds else 0.0,
    }
