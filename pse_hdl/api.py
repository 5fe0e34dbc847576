"""The Python API: bring a network, get an engine for it.

    design = pse_hdl.convert(model, config="default", calibration=(x_cal, y_cal),
                             target_bits=4.5)
    design.predict(x)                      # the dynamic engine over the samples, golden model
    design.predict(x, backend="rtl")       # the same through the engine's Verilog, checked
    design.score(x, y)                     # accuracy (classifiers) or R^2 (regressors)
    design.trace(x)                        # per-layer activations, codes, importances
    design.allocate(target_bits=4.0)       # calibrate again for another budget
    design.report()                        # bits/weight, class shares, cycles, footprint
    design.write("out/")                   # Verilog, memory images, register writes, TOML
    design.build(board="ulx3s")            # synthesis figures of the engine
    design.save("net.pse.npz"); pse_hdl.load("net.pse.npz")

``model`` is a fitted scikit-learn ``MLPClassifier``/``MLPRegressor`` or linear model (alone or
in a ``Pipeline`` of scalers and PCA), an ONNX model or file, a ``.npz`` of float weights, or
such a scikit-learn model pickled (:mod:`pse_hdl.importers`). The import
is checked against the source on the calibration data. The network is quantized with the
calibration data (``model.network.quantize_network``), profiled (the baseline EMA states), and
its class shares calibrated to the bit budget on the calibration data only.

``predict`` runs the dynamic algorithm over the samples in order, as a stream, from the
calibrated start (so it is reproducible): the rolling importance adapts as the stream goes.
"""

import dataclasses
import os
import time

import numpy as np

from . import artefacts
from .errors import ConfigError, InputError
from .arguments import (calibration_of, check_adapt, check_bits, check_loss, check_mac,
                        config_of, same_length)
from .host.checked import MismatchError
from .importers import Source, check_reproduces, class_indices, infer_task, load_model
from .model.calibration import (argmax_accuracy, best_within, budget_ladder, calibrate,
                                fewest_within_loss, r2_score)
from .model.engine import Engine, Firmware as Policy, allocation_points, check_activations, \
    check_masked, check_uniform, logit_margins, low_confidence_share, profile, run_dynamic
from .model.network import quantize_input, quantize_network
from .model.zones import check_fit

__all__ = ["convert", "load", "Design", "MismatchError"]


# Allocation modes: thresholds for the whole network, per layer, or the calibration's choice.
MODES = ("global", "layer", "auto")
DEFAULT_BITS = 4.5          # the bit budget when neither target_bits nor max_loss is given
LOSS_CEILING = 64.0         # with max_loss and no target_bits: every layout is a candidate


def fixed_modes(mode):
    """The modes a calibration in ``mode`` builds candidates in: both for ``"auto"``."""
    return MODES[:2] if mode == "auto" else (mode,)


def convert(model, config=None, calibration=None, *, target_bits=None, mode="auto",
            recalibrate_every=4, adapt=None, max_mac=None, max_loss=None, fit=False,
            equalize=False):
    """A :class:`Design` for ``model`` (see the module docs; ``adapt``, ``max_mac`` and
    ``max_loss``: :meth:`Design.allocate`). ``target_bits`` defaults to 4.5 bits per weight,
    or with ``max_loss`` to no limit. ``fit``: the engine sized for the network
    (:meth:`~pse_hdl.config.PSEConfig.fitted`: layer limits, master store and zones from its
    layers, the rest from ``config``). ``equalize``: the inputs' ranges balanced against
    layer 0's weights on the calibration data (:meth:`FloatMLP.equalized`; the host scales
    the samples), for a network whose inputs differ in range by orders of magnitude."""
    cfg = config_of(config)
    for name, flag in (("fit", fit), ("equalize", equalize)):
        if not isinstance(flag, bool):
            raise ConfigError(f"{name} must be True or False, not {flag!r}")
    # The allocation's arguments first: a mistake there is reported before any work.
    if mode not in MODES:
        raise ConfigError(f"allocation mode must be 'global', 'layer' or 'auto', not {mode!r}")
    if target_bits is None and max_loss is None:
        target_bits = DEFAULT_BITS
    if target_bits is not None:
        check_bits("target_bits", target_bits)
    check_mac(max_mac)
    check_loss(max_loss, adapt)
    source = model if isinstance(model, Source) else load_model(model)
    x_cal, y_raw = calibration if calibration is not None else (None, None)
    task = infer_task(source, y_raw if y_raw is not None else [])
    x_cal, y_cal = calibration_of(source, calibration, task)
    check_reproduces(source, x_cal)
    if equalize:
        net, _ = source.net.equalized(x_cal)
        source = dataclasses.replace(source, net=net, info={**source.info, "equalized": True})
        check_reproduces(source, x_cal)
    shapes = [w.shape for w in source.net.weights]
    if fit:
        cfg = cfg.fitted(shapes)
    check_fit(shapes, cfg)
    design = Design(cfg, source, x_cal, y_cal, task, recalibrate_every=recalibrate_every)
    design.allocate(target_bits, mode, adapt=adapt, max_mac=max_mac, max_loss=max_loss)
    return design


def load(path):
    """A :class:`Design` saved with :meth:`Design.save`."""
    return artefacts.load(path)


class Design:
    """A network quantized, profiled and calibrated for an engine configuration."""

    def __init__(self, cfg, source, x_cal, y_cal, task, *, recalibrate_every=4):
        self.cfg, self.source, self.task = cfg, source, task
        self.x_cal, self.y_cal = np.asarray(x_cal, np.float64), np.asarray(y_cal)
        self.recalibrate_every = recalibrate_every
        self.qnet = quantize_network(source.net, self.x_cal, cfg)
        self.qnet.baseline = profile(self.qnet, self.quantize(self.x_cal), cfg)
        self.shares = self.thresholds = self.target_bits = self.mode = self.uniform = None
        self.masked = None
        self.adapt = None                 # the budget ladder, when it follows performance
        self.max_mac = None               # the calibration's MAC cycle budget, if any
        self.max_loss = None              # the calibration's loss target, if any
        self.table = []
        self.calibration_score = None

    # -- inputs and outputs -----------------------------------------------------------------
    @property
    def classes(self):
        if self.task != "classification":
            return None
        return self.source.classes if self.source.classes is not None \
            else np.arange(self.source.outputs)

    def quantize(self, x):
        """Float samples to the engine's layer-0 activations (checked: shape, finite)."""
        x = np.asarray(x)
        if x.dtype.kind not in "biuf" or x.ndim != 2:
            raise InputError(f"samples must be a 2-D numeric array (samples x features), not "
                             f"shape {x.shape} of {x.dtype}")
        if x.shape[1] != self.source.inputs:
            raise InputError(f"samples have {x.shape[1]} features but the model takes "
                             f"{self.source.inputs} inputs")
        if not np.all(np.isfinite(x)):
            raise InputError("samples have NaN or infinite values")
        return quantize_input(self.source.net.prepare(x), self.qnet.layers[0].fx, self.cfg)

    def outputs(self, logits):
        """The engine's last-layer accumulators to predictions: class labels, or the
        regression values in real units."""
        logits = np.asarray(logits)
        if self.task == "classification":
            return self.classes[np.argmax(logits, axis=1)]
        q = self.qnet.layers[-1]
        return logits * 2.0 ** -(q.fx + q.fw)

    def score_logits(self, logits, y):
        """Accuracy (classifiers) or R^2 (regressors) of the engine's logits against labels
        given as output rows (:meth:`labels`) or targets."""
        if self.task == "classification":
            return argmax_accuracy(logits, y)
        return r2_score(self.outputs(logits), y)

    # -- allocation -------------------------------------------------------------------------
    def allocate(self, target_bits=None, mode=None, adapt=None, max_mac=None, max_loss=None):
        """Calibrate the class shares and thresholds to ``target_bits`` (bits per weight,
        metadata included) on the calibration data. Returns the chosen candidate.

        ``max_loss`` (a fraction of the score: 0.01 is one point of accuracy): choose the
        layout with the fewest bits per weight whose calibration score is at most that below
        the dense 16-bit network's (the engine's datapath with unquantized weights), within
        ``target_bits`` if given (no limit otherwise; every layout is a candidate, every layer
        uniform at 16 bits among them, so a small network whose descriptors and codes leave
        4-bit values too few bits gets plain 4-bit layers at 5-6 bits instead of a pruned
        layout that loses). The run's budget (the firmware's guard) is then ``target_bits``,
        or without it the chosen layout's own bits per weight.

        ``max_mac``: a cycle budget too, as a fraction of the dense 16-bit network's MAC
        cycles on the same lanes (for example 0.2); only layouts within it are chosen, the
        ladder's rungs included.

        ``adapt=(floor, ceiling)`` (classifiers): the dynamic run's budget then follows the
        network's performance between those bits per weight, label-free: the calibration's
        best layouts within budgets from floor to ceiling (every quarter bit) are the rungs of
        a ladder, the profiling stage measures the share of low-confidence outputs (logit
        margin in the lowest quarter) on the calibration split, and at every recalibration the
        firmware moves one rung up when the run's share is more than 0.1 above it, one down
        when more than 0.1 below (:class:`~pse_hdl.model.engine.Firmware`).

        ``mode="auto"``: the candidates of both modes (thresholds for the whole network and per
        layer) are built and the usual rule chooses among all of them; the design then runs in
        the chosen one (``self.mode``, which the firmware recalibrates in)."""
        max_loss = check_loss(max_loss, adapt)
        tight = max_loss is not None and target_bits is None
        if target_bits is None:
            target_bits = LOSS_CEILING if max_loss is not None else self.target_bits
        check_bits("target_bits", target_bits)
        max_mac = check_mac(max_mac)
        mode = mode or "auto"
        top = target_bits
        if adapt is not None:
            floor, top = check_adapt(adapt, target_bits, self)
        xq = self.quantize(self.x_cal)
        best, self.table, mode = self._calibrate(xq, top, mode, max_mac, max_loss)
        self.adapt, self.max_mac, self.max_loss = None, max_mac, max_loss
        if tight:
            target_bits = best["bits_per_weight"]    # the run keeps to the chosen footprint
        if adapt is not None:
            best = best_within(self.table, target_bits, max_mac)
            # The firmware's ladder moves the thresholds only: its rungs keep best's layers
            # uniform (and masked).
            rungs = budget_ladder([r for r in self.table if r["uniform"] == best["uniform"]
                                   and r["masked"] == best["masked"]], floor, top,
                                  max_mac=max_mac, target=target_bits)
            logits = Engine(self.qnet, self.cfg, thresholds=best["thresholds"],
                            uniform=best["uniform"], masked=best["masked"]).infer(xq)[-1]
            margin = int(np.quantile(logit_margins(logits), 0.25))
            self.adapt = {"ladder": [list(r["shares"]) for r in rungs],
                          "rung": [r["shares"] for r in rungs].index(best["shares"]),
                          "margin": margin, "reference": low_confidence_share(logits, margin),
                          "floor": floor, "ceiling": top}
        self.set_allocation(best["shares"], best["thresholds"], target_bits, mode,
                            best["uniform"], best["masked"])
        self.calibration_score = best["accuracy"]
        return best

    def _calibrate(self, xq, target_bits, mode, max_mac, max_loss=None):
        """``(best, table, mode)`` of the calibration in ``mode``; with ``"auto"``, of the mode
        whose best candidate :func:`best_within` prefers among both modes' (a mode without any
        candidate within the budgets is left out; if neither has one, the first one's error
        is raised). With ``max_loss`` the best is :func:`fewest_within_loss`'s of both modes'
        rows."""
        runs, error = {}, None
        for m in fixed_modes(mode):
            engine = Engine(self.qnet, self.cfg, allocate=False)
            try:
                runs[m] = calibrate(engine, xq, self.y_cal, target_bits=target_bits, mode=m,
                                    score=argmax_accuracy if self.task == "classification"
                                    else self.score_logits, max_mac=max_mac)
            except ConfigError as e:
                error = error or e
        if not runs:
            raise error
        if max_loss is None:
            best = best_within([b for b, _ in runs.values()], target_bits, max_mac)
        else:
            best = fewest_within_loss([r for _, t in runs.values() for r in t], max_loss,
                                      max_mac)
        m = next(m for m, (_, t) in runs.items() if any(r is best for r in t))
        return best, runs[m][1], m

    def set_allocation(self, shares, thresholds, target_bits, mode, uniform=None, masked=None):
        self.shares = tuple(shares)
        self.thresholds = [list(map(int, t)) for t in thresholds]
        self.uniform = check_uniform(uniform, len(self.qnet.layers), self.cfg)
        self.masked = check_masked(masked, self.uniform, self.cfg)
        self.target_bits, self.mode = target_bits, mode

    @property
    def uniform_layers(self):
        """The layers the calibration stores uniform (no codes), masked ones included:
        ``{layer: bits}``."""
        return {l: self.cfg.precisions[u - 1] for l, u in enumerate(self.uniform or ()) if u}

    @property
    def masked_layers(self):
        """The uniform layers whose pruned input columns are not stored: ``[layer, ...]``."""
        return [l for l, m in enumerate(self.masked or ()) if m]

    @property
    def policy(self):
        a = self.adapt
        # The budget guard: no layout over the budget (with a ladder, its ceiling) is swapped in.
        if a is None:
            return Policy(self.shares, self.recalibrate_every, self.mode,
                          uniform=tuple(self.uniform), masked=tuple(self.masked),
                          max_bits=self.target_bits, max_mac=self.max_mac or 0.0)
        return Policy(self.shares, self.recalibrate_every, self.mode, uniform=tuple(self.uniform),
                      masked=tuple(self.masked),
                      ladder=tuple(map(tuple, a["ladder"])), rung=a["rung"],
                      margin=a["margin"], reference=a["reference"], max_bits=a["ceiling"],
                      max_mac=self.max_mac or 0.0)

    def engine(self):
        """A golden-model engine at the calibrated start (the first layout allocated)."""
        return Engine(self.qnet, self.cfg, thresholds=self.thresholds, uniform=self.uniform,
                      masked=self.masked)

    # -- running ----------------------------------------------------------------------------
    def run(self, x, backend="model", *, quantized=False, progress=None, trace=None,
            trace_samples=None, port=None, baud=None):
        """The dynamic algorithm over the samples ``x``: ``(logits, figures)``. With
        ``backend="rtl"`` the samples go through the engine's Verilog (the fast Verilated model)
        and every logit, every allocation's codes and footprint are checked against the golden
        model as they come (:class:`MismatchError` names the first difference); the figures
        then come from the engine's counters. ``backend="board"`` does the same with the engine
        on a board, over the serial port ``port`` (default ``$PSE_PORT``; ``"sim"`` is the
        engine's Verilog behind its UART and bridge) at ``baud`` (default the configuration's
        ``uart_baud``)."""
        if backend not in ("model", "rtl", "board"):
            raise ConfigError(f"backend must be 'model', 'rtl' or 'board', not {backend!r}")
        if backend == "board":
            port = port or os.environ.get("PSE_PORT")
            if not port:
                raise ConfigError("backend 'board' needs a serial port: port='/dev/ttyUSB1' "
                                  "(or $PSE_PORT; 'sim' for the simulated board)")
            if trace:
                raise ConfigError("a waveform needs backend 'rtl' (a board has none to give)")
        xq = check_activations(x, self.cfg, self.source.inputs) if quantized \
            else self.quantize(x)
        if not len(xq):
            raise InputError("there are no samples to run")
        engine = self.engine()
        codes, footprints = [[c.copy() for c in engine.codes]], [engine.footprint()["total"]]
        layout_bits = [engine.footprint()["bits_per_weight"]]

        def record(k, eng):
            codes.append([c.copy() for c in eng.codes])
            fp = eng.allocated_footprint()
            footprints.append(fp["total"])
            layout_bits.append(fp["bits_per_weight"])
        start = time.monotonic()
        logits, stats = run_dynamic(engine, xq, self.policy,
                                    progress if backend == "model" else None,
                                    on_allocation=record)
        labels = ["pruned"] + [f"{b}-bit" for b in self.cfg.precisions]
        # Each allocation's layout serves from its swap on, unless the budget guard kept it out:
        # then the layout before it serves on.
        served = layout_bits[:1]
        for k, b in enumerate(layout_bits[1:]):
            kept_out = k < len(stats["swapped"]) and not stats["swapped"][k]
            served.append(served[-1] if kept_out else b)
        figures = {
            "backend": backend, "samples": int(len(xq)),
            "bits_per_weight": float(stats["bits"]),
            "mac_cycle_ratio": float(stats["cycles"] / stats["dense16"]),
            "mac_cycles_per_sample": float(stats["cycles"]),
            "dense16_cycles_per_sample": float(stats["dense16"]),
            "precision_shares": {k: float(v) for k, v in zip(labels, stats["shares"])},
            "allocations": int(stats["allocations"]),
            "rungs": [int(r) for r in stats["rungs"]] if self.adapt else [],
            # Layout k serves from sample layout_from_sample[k] on (the first: the calibrated one).
            "layout_from_sample": [0] + [p + self.cfg.swap_delay
                                         for p in allocation_points(len(xq), self.cfg)],
            "layout_bits_per_weight": [float(b) for b in served],
            "layouts_over_budget": int(stats["swapped"].count(False) - stats["unfit"]),
            "layouts_unfit": int(stats["unfit"]),
            "model_run_s": time.monotonic() - start,
        }
        self.last_engine = engine
        if backend != "model":
            from .host.checked import run_checked
            logits, rtl = run_checked(self.cfg, self.qnet, self.thresholds, self.policy, xq,
                                      (logits, codes, footprints), progress, trace,
                                      trace_samples, port if backend == "board" else None, baud)
            figures.update(rtl)
        return logits, figures

    def predict(self, x, backend="model", **link):
        """Class labels (classifiers) or values (regressors) of the samples ``x``, run as a
        stream through the dynamic engine (``port=``, ``baud=`` for ``backend="board"``)."""
        return self.outputs(self.run(x, backend, **link)[0])

    def score(self, x, y, backend="model", **link):
        """Accuracy (classifiers) or R^2 (regressors) of the dynamic engine on ``(x, y)``."""
        same_length(x, y)
        logits, _ = self.run(x, backend, **link)
        return self.score_logits(logits, self.labels(y))

    def uniform_score(self, x, y, bits):
        """Score of the plain alternative on ``(x, y)``: every weight at ``bits`` with one scale
        per layer, no pruning, no metadata (``model.quant.uniform_weights``)."""
        same_length(x, y)
        from .model.engine import dense_activations
        from .model.quant import uniform_weights
        w = uniform_weights([q.master for q in self.qnet.layers], bits, self.cfg.weight_bits)
        logits = dense_activations(self.qnet.layers, self.quantize(x), self.cfg, w)[-1]
        return self.score_logits(logits, self.labels(y))

    def labels(self, y):
        """Labels (class names) to output rows for a classifier; targets as they are."""
        return class_indices(self.source, y) if self.task == "classification" else np.asarray(y)

    def trace(self, x):
        """Per layer, with the calibrated first layout: the integer activations entering it
        (``activations``, samples x inputs), its precision codes and the importance of every
        weight from the profiled baseline; and the logits."""
        engine = self.engine()
        acts = engine.infer(self.quantize(x))
        return {"activations": acts[:-1], "logits": acts[-1],
                "codes": [c.copy() for c in engine.codes],
                "importance": [engine.importance(l) for l in range(len(engine.layers))]}

    def report(self):
        """Figures of the calibrated first layout."""
        engine = self.engine()
        fp = engine.footprint()
        cyc = engine.cycles()
        labels = ["pruned"] + [f"{b}-bit" for b in self.cfg.precisions]
        return {
            "task": self.task, "source": self.source.kind,
            "layers": [list(q.shape) for q in self.qnet.layers],
            "weights": int(fp["weights"]), "target_bits": self.target_bits,
            "max_mac": self.max_mac, "max_loss": self.max_loss,
            "bits_per_weight": float(fp["bits_per_weight"]),
            "footprint_bits": {k: int(v) for k, v in fp.items()
                               if k not in ("weights", "bits_per_weight")},
            "precision_shares": {k: float(v) for k, v in zip(labels,
                                                              engine.class_shares())},
            "calibrated_shares": dict(zip(labels, self.shares)),
            "uniform_layers": self.uniform_layers,
            "masked_layers": self.masked_layers,
            "mac_cycles_per_sample": int(cyc["scheduled"]),
            "ideal_cycles_per_sample": int(cyc["ideal"]),
            "dense16_cycles_per_sample": int(cyc["dense16"]),
            "mac_cycle_ratio": cyc["scheduled"] / cyc["dense16"],
            "calibration_score": self.calibration_score,
            **self.io_formats(),
        }

    def io_formats(self):
        """How a host makes the engine's INPUT words from samples and reads its RESULT words
        (:func:`pse_hdl.artefacts.io_formats`; in ``report.json``)."""
        return artefacts.io_formats(self)

    # -- artefacts --------------------------------------------------------------------------
    def write(self, directory):
        """The engine for this network written to ``directory``: ``pse_engine.v``, ``load.txt``
        (the register writes that load the network), memory images, ``config.toml``,
        ``pse_regs.h``, ``report.json`` (:func:`pse_hdl.artefacts.write`). Returns the
        directory."""
        return artefacts.write(self, directory)

    def build(self, board="ulx3s"):
        """Synthesize the engine for ``board`` (``icebreaker`` or ``ulx3s``): LUTs, FFs, block
        RAMs, DSPs, Fmax (the ``pse synth`` flow)."""
        from .synth.flow import board as check_board, synthesize
        from .rtl import build
        check_board(board)
        return synthesize(build("engine", self.cfg), board)

    def save(self, path):
        """The design (float network, calibration data, configuration, allocation) in one
        ``.npz``; :func:`load` reads it back."""
        return artefacts.save(self, path)
