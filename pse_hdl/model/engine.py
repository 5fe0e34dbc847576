"""The whole engine and its firmware, golden model (docs/SPEC.md, sections 10 and 11).

:class:`Engine` holds what the hardware holds for one network: master weights, the RIC state of
every layer, the threshold registers, the precision codes and the zone images. Its firmware is
the host's side of the algorithm:

* **profiling** (:func:`profile`): the mean activation magnitude of every input over the
  calibration data becomes the baseline EMA state (the value the EMA settles to);
* **warm-up**: the engine starts from the baseline layout; for the first ``warmup`` samples the
  codes are held while the rolling estimate settles on the task, then allocation takes over;
* **allocation**: after every ``period`` samples, importance -> PA -> SM -> zone scales -> packed
  zones, swapped in before the next sample (a sample never sees a half-built layout);
* **recalibration**: every ``recalibrate_every`` allocations the thresholds are recomputed from
  the importance histogram so the precision classes keep the target shares.

The policy those steps follow (target shares, budget guard and ladder, allocation points) is
:mod:`pse_hdl.model.policy`.

Sample t is inferred with the layout active when it starts; the RIC consumes the activations
entering each layer during that inference; allocation happens between samples.
"""

import numpy as np

from ..errors import CapacityError, InputError
from .layer import cycle_model, layer_forward, one_blas_thread, requantize
from .pa import allocate, code_bits_of
# The run-time policy (re-exported: the engine's firmware API, as before it had a module).
from .policy import (Firmware, allocation_points, hysteresis_band,  # noqa: F401
                     logit_margins, low_confidence_share, next_rung, rung_shares, within)
from .quant import choose_shift, effective_weights
from .ric import FactoredRIC, LiteralRIC, blend_snapshot
from .sm import sparsify
from .thresholds import (exact_thresholds, histogram_thresholds,  # noqa: F401
                         layer_exponents, thresholds_from_histograms)
from .zones import footprint_bits, pack_layer, place_layers

__all__ = ["Engine", "check_uniform", "check_masked", "column_norms", "profile",
           "dense_activations", "Firmware", "within",
           "run_dynamic", "exact_thresholds", "histogram_thresholds", "thresholds_from_histograms",
           "layer_exponents", "allocation_points", "logit_margins", "low_confidence_share",
           "next_rung", "rung_shares"]


def profile(qnet, x_q, cfg):
    """Baseline EMA state per layer: the mean ``|x_j|`` over the calibration inputs ``x_q``
    (dense 16-bit pass), with the EMA state's F fraction bits, rounded half up.

    The mean is what an EMA converges to on a stationary task, without the EMA's bias toward
    the last ``1/alpha`` samples, so it is the baseline the run-time estimate starts from.
    """
    acts = dense_activations(qnet.layers, x_q, cfg)
    n = x_q.shape[0]
    return [(np.left_shift(np.abs(a).sum(axis=0), cfg.ema_frac_bits) + n // 2) // n
            for a in acts[:-1]]


def dense_activations(layers, x_q, cfg, weights=None):
    """Integer activations entering every layer, and the logits last. ``layers`` are
    :class:`QuantLayer`; ``weights`` replaces their masters (a layout's effective weights)."""
    acts = [np.asarray(x_q, np.int64)]
    for l, q in enumerate(layers):
        w = q.master if weights is None else weights[l]
        acc, _ = layer_forward(w, q.bias, acts[-1], cfg)
        # Hidden layers are requantized into the next layer's activations (as the MAC does);
        # the last layer's accumulators are the logits.
        acts.append(requantize(acc, q.shift, q.relu, cfg) if l < len(layers) - 1 else acc)
    return acts


def _check_ints(name, a, lo, hi):
    """``a`` is an integer array within ``[lo, hi]``; an :class:`InputError` names it
    otherwise (a float array with NaN, or a value the hardware's width cannot hold)."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        if a.dtype.kind != "f" or not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise InputError(f"{name} must be integers, not {a.dtype} values"
                             + (" with NaN or infinities" if a.dtype.kind == "f" else ""))
    if a.size and (a.min() < lo or a.max() > hi):
        raise InputError(f"{name} must lie in [{lo}, {hi}], not [{a.min()}, {a.max()}]")


def check_network(qnet, cfg):
    """Every integer the hardware holds fits its width: masters in ``weight_bits``, biases in
    ``acc_bits``, profiled EMA states non-negative in the state width."""
    w, acc = cfg.weight_bits, cfg.acc_bits
    for l, q in enumerate(qnet.layers):
        _check_ints(f"layer {l} master weights", q.master, -(1 << (w - 1)), (1 << (w - 1)) - 1)
        _check_ints(f"layer {l} biases", q.bias, -(1 << (acc - 1)), (1 << (acc - 1)) - 1)
    for l, a in enumerate(qnet.baseline):
        _check_ints(f"layer {l} profiled importance baseline", a, 0, (1 << 62))


def check_activations(x_q, cfg, inputs):
    """Quantized samples: 2-D, ``inputs`` columns, integers in ``act_bits``."""
    x_q = np.asarray(x_q)
    if x_q.ndim != 2 or x_q.shape[1] != inputs:
        raise InputError(f"quantized samples must be a 2-D array of samples x {inputs} inputs, "
                         f"not shape {x_q.shape}")
    b = cfg.act_bits
    _check_ints("quantized samples", x_q, -(1 << (b - 1)), (1 << (b - 1)) - 1)
    return x_q.astype(np.int64)


def check_uniform(uniform, layers, cfg):
    """Per-layer uniform classes (:mod:`pse_hdl.model.pa`): ``layers`` of them, each 0 (per
    weight) or a class 1..len(precisions); ``None`` or empty is all 0. Returns a list."""
    n = len(cfg.precisions)
    if uniform is None or not len(uniform):
        return [0] * layers
    out = [int(u) for u in uniform]
    if len(out) != layers or any(not 0 <= u <= n for u in out):
        raise InputError(f"uniform must give each of the {layers} layers 0 (per-weight codes) "
                         f"or a class 1..{n}, not {list(uniform)}")
    return out


def check_masked(masked, uniform, cfg):
    """Per-layer masked flags (:mod:`pse_hdl.model.pa`): ``None`` or empty is none; a masked
    layer needs ``input_masks`` and its uniform class. Returns a list of bools."""
    if masked is None or not len(masked):
        return [False] * len(uniform)
    out = [bool(m) for m in masked]
    if len(out) != len(uniform):
        raise InputError(f"masked must give each of the {len(uniform)} layers true or false, "
                         f"not {list(masked)}")
    if any(out) and not cfg.input_masks:
        raise InputError("masked layers need input_masks = true in the configuration")
    bad = [l for l, (m, u) in enumerate(zip(out, uniform)) if m and not u]
    if bad:
        raise InputError(f"a masked layer needs a uniform class: layer {bad[0]} has none")
    return out


def column_norms(master):
    """A masked layer's column magnitudes: the mean of ``|master|`` down each column, rounded
    half up (``(sum + rows // 2) // rows``), so at most the largest magnitude."""
    m = np.abs(np.asarray(master, np.int64))
    rows = m.shape[0]
    return (m.sum(axis=0) + rows // 2) // rows


class Engine:
    """Everything the hardware holds for one network (see the module docs). ``thresholds``
    per layer (default: the configuration's), ``uniform`` per layer (:func:`check_uniform`),
    ``masked`` per layer (:func:`check_masked`)."""

    def __init__(self, qnet, cfg, thresholds=None, *, uniform=None, masked=None, allocate=True):
        if not qnet.baseline:
            raise ValueError("the network has no profiled baseline: run profile() first")
        check_network(qnet, cfg)
        self.cfg = cfg
        self.layers = qnet.layers
        self.master = [q.master.copy() for q in qnet.layers]
        literal = cfg.importance_form == "literal"
        self.rics = [(LiteralRIC(cfg, q.shape, np.abs(q.master) * a[None, :]) if literal
                      else FactoredRIC(cfg, q.shape[1], a))
                     for q, a in zip(qnet.layers, qnet.baseline)]
        self.thresholds = [list(t) for t in (thresholds or [cfg.thresholds] * len(self.layers))]
        L = len(self.layers)
        self.uniform = check_uniform(uniform, L, cfg)
        self.masked = check_masked(masked, self.uniform, cfg)
        # A masked layer's importance is per input column: its EMA times the column's mean
        # master magnitude, from the masters as loaded.
        self.column_norms = [column_norms(q.master) for q in qnet.layers]
        self.codes = [None] * L           # the latest allocation's codes (the code buffer)
        self.active_codes = [None] * L    # the codes of the layout inference uses
        self.images = [None] * L          # that layout's zone images
        self.weights = [None] * L         # and its effective weights
        self.pending = None               # an allocated layout not yet swapped in
        # The snapshot the allocations read, and its floor: loading the baseline loads both.
        self.snap = [ric.state.copy() for ric in self.rics]
        self.floor = [ric.state.copy() for ric in self.rics]
        if allocate:
            self.allocate()

    def importance(self, l, snapshot=False):
        """Importance of layer l's weights from the live EMA states, or from the
        :meth:`snapshot` (what an allocation reads). In a masked layer every weight of a
        column has the column's importance."""
        if self.masked[l]:
            state = self.snap[l] if snapshot else self.rics[l].state
            return np.broadcast_to(self.column_norms[l] * state, self.master[l].shape)
        if snapshot:
            state = self.snap[l]
            if isinstance(self.rics[l], LiteralRIC):
                return state
            return np.abs(self.master[l]) * state[None, :]
        return self.rics[l].importance(self.master[l])

    def snapshot(self):
        """Move the snapshot an allocation reads toward the live EMA states, not below the
        floor (:func:`~pse_hdl.model.ric.blend_snapshot`); the live ones go on observing."""
        self.snap = [blend_snapshot(s, ric.state, self.cfg, f)
                     for s, ric, f in zip(self.snap, self.rics, self.floor)]

    def allocate(self, pending=False):
        """Codes of every layer from the importance (of the snapshot, if one was taken), the
        thresholds and the previous codes, then the zone scales and images of the new layout.
        It becomes the active layout at once, or with ``pending`` at the next :meth:`swap`."""
        layout = self.build_layout()
        place_layers(layout["images"], self.cfg)
        self.pending = layout
        if not pending:
            self.swap()

    def build_layout(self, pack=None):
        """The allocation's layers, not yet placed in the zones: ``{"codes", "images",
        "weights"}`` per layer (the code buffer and, in destructive mode, the masters are
        updated). ``pack(l, codes)`` replaces :meth:`pack` (the calibration's memo)."""
        pack = pack or self.pack
        layout = {"codes": [], "images": [], "weights": []}
        band = hysteresis_band(self.thresholds, self.cfg)
        for l in range(len(self.layers)):
            codes = allocate(self.importance(l, snapshot=True), self.thresholds[l],
                             self.codes[l], band, self.uniform[l], self.masked[l])
            self.master[l], _ = sparsify(codes, self.master[l], self.cfg.reversible)
            image, weights = pack(l, codes)
            self.codes[l] = codes
            layout["codes"].append(codes)
            layout["images"].append(image)
            layout["weights"].append(weights)
        return layout

    def swap(self):
        """Make the pending layout the active one."""
        if self.pending is not None:
            self.active_codes, self.images, self.weights = (
                self.pending["codes"], self.pending["images"], self.pending["weights"])
            self.pending = None

    def discard(self):
        """Drop the pending layout: the active one stays (the code buffer keeps the pending
        layout's codes, the previous codes of the next allocation, as the hardware's does)."""
        self.pending = None

    def set_codes(self, l, codes):
        """Give layer l the codes ``codes`` now (a static allocation; a uniform layer's codes
        are its class whatever ``codes`` says)."""
        image, weights = self.pack(l, codes)
        self.codes[l] = self.active_codes[l] = image.codes
        self.images[l], self.weights[l] = image, weights

    def pack(self, l, codes):
        """Layer l's zone image and effective weights for ``codes`` (a uniform layer: its
        class; a masked one: its class or 0 per column), with the zone scales that suit its
        masters."""
        if self.uniform[l] and not self.masked[l]:
            codes = np.full(np.shape(codes), self.uniform[l], np.int64)
        m = self.master[l]
        shifts = [choose_shift(m[codes == k], b, self.cfg.weight_bits)
                  for k, b in enumerate(self.cfg.precisions, start=1)]
        image = pack_layer(codes, m, shifts, self.cfg, self.uniform[l], self.masked[l])
        return image, effective_weights(image.codes, m, shifts, self.cfg)

    def infer(self, x_q):
        """Activations entering each layer and the logits, with the current layout."""
        return dense_activations(self.layers, x_q, self.cfg, self.weights)

    def observe(self, acts_one):
        for l, ric in enumerate(self.rics):
            if isinstance(ric, LiteralRIC):
                ric.update(acts_one[l], self.master[l])
            else:
                ric.update(acts_one[l])

    def footprint(self):
        """Storage of the active layout."""
        return footprint_bits(self.images, self.cfg)

    def allocated_footprint(self):
        """Storage of the latest allocated layout (pending until its swap)."""
        return footprint_bits(self.pending["images"] if self.pending else self.images, self.cfg)

    def cycles(self, pending=False):
        """MAC cycles of a pass over the active layout (``pending``: the latest allocated one),
        :func:`~pse_hdl.model.layer.cycle_model` summed over the layers."""
        out = {"ideal": 0, "scheduled": 0, "dense16": 0, "work": 0}
        for codes in (self.pending["codes"] if pending and self.pending else self.active_codes):
            c = cycle_model(code_bits_of(codes, self.cfg), self.cfg)
            out = {k: out[k] + c[k] for k in out}
        return out

    def class_shares(self):
        counts = np.bincount(np.concatenate([c.ravel() for c in self.active_codes]),
                             minlength=len(self.cfg.precisions) + 1)
        return counts / counts.sum()


@one_blas_thread
def run_dynamic(engine, x_q, firmware=None, progress=None, on_allocation=None):
    """Run the dynamic algorithm over the samples ``x_q``; return logits and statistics.

    At every allocation point (:func:`allocation_points`, between two samples) the EMA states
    are frozen (a snapshot), the thresholds recalibrated if due, and a layout allocated from
    them; it serves from the ``swap_delay``-th sample on (0: the very next one), while the engine
    keeps inferring with the layout before it (the hardware re-zones in the background).
    Layout-dependent figures (footprint, cycles, class shares) are averaged over the samples
    that each layout served; ``stats["rungs"]`` lists the budget rung chosen at each
    recalibration (:class:`Firmware`). A layout over the policy's ``max_bits`` is not swapped in
    (:func:`within`): the one before it serves on; nor is one that does not fit the zones or the
    metadata memory (the hardware's re-zoning fails, its error bits say why; counted in
    ``stats["unfit"]``). ``stats["swapped"]`` says, per allocation, whether its layout was.
    ``on_allocation(k, engine)`` sees the engine after allocation k, its layout pending (none
    if it did not fit).
    """
    cfg = engine.cfg
    x_q = check_activations(x_q, cfg, engine.layers[0].shape[1])
    n = x_q.shape[0]
    delay = cfg.swap_delay
    points = allocation_points(n, cfg)
    swaps = {p + delay for p in points if delay}
    bounds = sorted(set(points) | {b for b in swaps if b < n} | {n})
    logits = []
    stats = {"bits": 0.0, "cycles": 0.0, "dense16": 0.0, "ideal": 0.0, "shares": 0.0,
             "allocations": 0, "rungs": [], "swapped": [], "unfit": 0}
    unfit = False                     # the latest allocation's layout did not fit

    def swap():
        nonlocal unfit
        ok = not unfit
        if ok:
            fp, cyc = engine.allocated_footprint(), engine.cycles(pending=True)
            ok = within(firmware, fp["total"], fp["weights"], (cyc["scheduled"], cyc["dense16"]))
        unfit = False
        if ok:
            engine.swap()
        else:
            engine.discard()
        stats["swapped"].append(ok)
    rung = firmware.rung if firmware else 0
    seen = 0                          # samples before the previous recalibration
    t = 0
    for end in bounds:
        if end > t:
            acts = engine.infer(x_q[t:end])
            logits.append(acts[-1])
            m = end - t
            fp, cyc = engine.footprint(), engine.cycles()
            stats["bits"] += fp["bits_per_weight"] * m
            stats["cycles"] += cyc["scheduled"] * m
            stats["ideal"] += cyc["ideal"] * m
            stats["dense16"] += cyc["dense16"] * m
            stats["shares"] = stats["shares"] + engine.class_shares() * m
            for s in range(m):
                engine.observe([a[s] for a in acts[:-1]])
            t = end
            if progress:
                progress(t, n)
        if t in swaps and (engine.pending is not None or unfit):
            swap()
        if t in points:
            stats["allocations"] += 1
            engine.snapshot()
            if firmware and firmware.recalibrate_every and \
                    stats["allocations"] % firmware.recalibrate_every == 0:
                if firmware.ladder:
                    rung = next_rung(firmware, rung, np.concatenate(logits)[seen:t])
                seen = t
                stats["rungs"].append(rung)
                engine.thresholds = histogram_thresholds(engine, rung_shares(firmware, rung),
                                                         firmware.mode, snapshot=True,
                                                         layers=True)
            try:
                engine.allocate(pending=True)
            except CapacityError:
                unfit = True
                stats["unfit"] += 1
            if on_allocation:
                on_allocation(stats["allocations"], engine)
            if not delay:
                swap()
    for k in ("bits", "cycles", "ideal", "dense16", "shares"):
        stats[k] = stats[k] / n
    return np.concatenate(logits), stats
