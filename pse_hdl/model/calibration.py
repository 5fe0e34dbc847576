"""The calibration search, golden model: which class shares (and so which thresholds) a
network gets for a bit budget or an accuracy target (docs/ALLOCATION.md).

:func:`calibrate` builds a layout for every candidate of :func:`share_grid` whose values and
codes fit the budget, scores it on the calibration split and keeps the best within the budget;
:func:`best_within` and :func:`budget_ladder` read the table it returns (the ladder is what the
firmware's recalibration climbs, :class:`~pse_hdl.model.engine.Firmware`).
"""

import itertools
import math

import numpy as np

from ..errors import BudgetError, CapacityError, ConfigError
from .engine import (dense_activations, exact_thresholds, layer_exponents,
                     thresholds_from_histograms)
from .histogram import histogram
from .layer import cycle_model, layer_forward, one_blas_thread, requantize
from .pa import code_bits_of
from .zones import check_fit, footprint_bits, place_layers

__all__ = ["share_grid", "uniform_mixes", "estimated_bits", "argmax_accuracy", "closeness",
           "calibrate", "best_within", "fewest_within_loss", "budget_ladder"]


def share_grid(cfg, prune=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9),
               top=(0.0, 0.02, 0.05, 0.1), middle=(0.0, 0.05, 0.1, 0.2, 0.3)):
    """Candidate class shares: pruned, then the precisions low to high. The highest precision
    gets ``top``, the others between lowest and highest ``middle`` each, the lowest the rest.
    Pruning goes to 90 %: budgets under about 2.6 bits per weight need it, and a network whose
    inputs are not all in use at once (one sensor of several) tolerates it."""
    n = len(cfg.precisions)
    out = []
    for p in prune:
        for t in (top if n > 1 else (0.0,)):
            for m in (middle if n > 2 else (0.0,)):
                mids = [m] * (n - 2)
                low = 1.0 - p - t - sum(mids)
                if low >= -1e-9:
                    shares = (p, max(low, 0.0), *mids, t) if n > 1 else (p, 1.0 - p)
                    out.append(tuple(round(x, 6) for x in shares))
    return out


def uniform_mixes(layers, classes=(1,), masked=()):
    """Which layers a candidate makes uniform (:mod:`pse_hdl.model.pa`): per layer 0 (per-weight
    codes), one of ``classes``, or ``-u`` for a masked layer of a class u in ``masked``. Every
    combination for up to four layers; beyond that none, each layer alone and all of them (the
    count stays linear in the depth)."""
    options = (0, *classes, *(-u for u in masked))
    if len(options) == 1:
        return [(0,) * layers]
    if layers <= 4:
        return list(itertools.product(options, repeat=layers))
    out = [(0,) * layers]
    for u in options[1:]:
        out += [tuple(u if i == l else 0 for i in range(layers)) for l in range(layers)]
        out.append((u,) * layers)
    return out


def estimated_bits(shares, cfg, codes=True):
    """Bits per weight of class ``shares`` counting values and codes only (values only without
    ``codes``: a masked layer stores none): a lower bound of the layout's footprint up to the
    rounding of shares to whole weights (descriptors and partly filled words only add to
    it)."""
    return sum(s * ((cfg.precisions[k - 1] if k else 0) + (cfg.code_length(k) if codes else 0))
               for k, s in enumerate(shares))


def argmax_accuracy(logits, y):
    """The share of samples whose largest logit is the label (ties: the lowest index)."""
    return float(np.mean(np.argmax(logits, axis=1) == y))


def r2_score(pred, y):
    """The coefficient of determination of ``pred`` for targets ``y`` (a regressor's score;
    0 when ``y`` does not vary)."""
    pred, y = np.asarray(pred, np.float64).reshape(len(y), -1), \
        np.asarray(y, np.float64).reshape(len(y), -1)
    ss = float(((y - y.mean(axis=0)) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / ss if ss else 0.0


def closeness(logits, dense):
    """How close a candidate's ``logits`` stay to the ``dense`` 16-bit network's (float64),
    :func:`best_within`'s tie-breaks: the share of samples whose argmax agrees, and the mean
    squared logit error relative to the dense logits' variance."""
    return {"agreement": float(np.mean(np.argmax(logits, axis=1) == np.argmax(dense, axis=1))),
            "distortion": float(np.mean((logits - dense) ** 2))
            / max(float(np.var(dense)), 1e-12)}


@one_blas_thread
def calibrate(engine, x_q, y, *, target_bits=None, max_loss=None, float_accuracy=None,
              mode="global", grid=None, score=argmax_accuracy, uniform_classes=None,
              max_mac=None):
    """Choose class shares, and which layers are uniform, on a calibration split (never the
    test split).

    With ``target_bits``: the shares of best calibration score whose layout costs at most
    that many bits per weight; the budget is a target, not a ceiling, so between candidates
    whose scores chance cannot tell from the dense 16-bit network's (:func:`rank`) the one
    whose outputs stay closest to it wins (the mean squared logit error relative to the
    logits' variance): on a small calibration split many candidates tie on accuracy, and the
    closest to the unquantized network is the one that generalises. With
    ``max_loss`` (fraction, needs ``float_accuracy``): the fewest bits per weight within that
    loss. Either way, with ``max_mac`` only candidates whose MAC cycles are at most that
    fraction of the dense 16-bit network's on the same lanes are chosen (the cycle budget of
    a deployment with a latency to meet). ``score(logits, y)`` measures a candidate (default:
    argmax accuracy). Candidates
    whose :func:`estimated_bits` already exceed the budget by more than a quarter bit are not
    built. A candidate whose layout does not fit the zones is left out; if none fits, or none
    meets the target, :class:`CapacityError` or :class:`ConfigError` says what the smallest
    candidate needs.

    Every candidate is also tried with some layers uniform (:func:`uniform_mixes` of
    ``uniform_classes``; default: the classes whose precision is within ``target_bits``, at
    least the lowest, or every class with ``max_loss``; ``()``: none): a layer where
    per-weight precision does not pay for its codes is stored as plain ``b``-bit weights.
    With ``input_masks`` in the configuration, layers may also be masked at those classes
    (uniform, the columns the candidate's thresholds prune left out). The thresholds are the
    candidate's either way (a layer's allocation does not depend on the others'), so each
    layer's layouts are built once and combined. Returns ``(best, table)`` where each row is a
    dict of shares, thresholds, uniform (per layer), masked (per layer), accuracy, agreement,
    distortion, bits, cycles.
    """
    if (target_bits is None) == (max_loss is None):
        raise ValueError("give exactly one of target_bits and max_loss")
    cfg = engine.cfg
    check_fit([q.shape for q in engine.layers], cfg)
    candidates, coded_ok = _candidate_shares(cfg, target_bits, grid)
    dense = dense_activations(engine.layers, x_q, cfg)[-1].astype(np.float64)
    # What ``rank`` weighs a row's chance by: the samples an accuracy counts (none for
    # another score, R^2) and the dense network's own score.
    samples = len(y) if score is argmax_accuracy else 0
    dense_score = score(dense, y)
    L = len(engine.layers)
    if uniform_classes is None:
        uniform_classes = [k for k, b in enumerate(cfg.precisions, start=1)
                           if target_bits is None or k == 1 or b <= target_bits]
    masked_classes = tuple(uniform_classes) if cfg.input_masks else ()
    mixes = uniform_mixes(L, tuple(uniform_classes), masked_classes)
    plain = {}                             # (layer, class): (image, weights) of a uniform layer
    memo = _Memo(engine, x_q)
    engine.masked = [False] * L
    for u in sorted({u for mix in mixes for u in mix if u > 0}):
        engine.uniform = [u] * L
        for l in range(L):
            plain[l, u] = engine.pack(l, engine.master[l])
    engine.uniform, engine.masked = [0] * L, [False] * L
    table, full, all_uniform = [], [], set()
    # Which layers a mix masks: the thresholds come from the importances the firmware's
    # recalibration will rank (a masked layer's are per column), so per pattern. With masked
    # layers they are the histogram's, as the recalibration's: a column's weights share one
    # importance, so a histogram bin's edge can move a whole column, which the first
    # recalibration would otherwise do to the calibrated layout.
    patterns = {}
    for mix in mixes:
        patterns.setdefault(tuple(u < 0 for u in mix), []).append(mix)
    # The importance histograms of a pattern do not depend on the shares: built once each.
    hists, exps = {}, layer_exponents(engine.layers, cfg)
    for shares in candidates:
        for pattern, group in patterns.items():
            if not any(pattern) and coded_ok is not None and shares not in coded_ok:
                continue
            engine.masked = list(pattern)
            if any(pattern):
                if pattern not in hists or not memo.on:
                    hists[pattern] = [histogram(engine.importance(l, True), cfg)
                                      for l in range(L)]
                thresholds = thresholds_from_histograms(hists[pattern], exps, shares, cfg, mode)
            else:
                thresholds = exact_thresholds(engine, shares, mode)
            needed = {(l, u) for mix in group for l, u in enumerate(mix) if u <= 0}
            layouts = _candidate_layers(engine, thresholds, masked_classes if any(pattern)
                                        else (), memo, needed)
            for mix in group:
                if all(u > 0 for u in mix):    # the same layout whatever the shares: once
                    if mix in all_uniform:
                        continue
                    all_uniform.add(mix)
                layout = [plain[l, u] if u > 0 else layouts[l, u] for l, u in enumerate(mix)]
                row = _score_layout(engine, layout, y, dense, score, full, memo)
                if row is not None:
                    # With masked layers, or uniform ones in global mode, the shares the
                    # recalibration keeps are the layout's own (its codes'), which the
                    # firmware places its thresholds for (``thresholds_from_histograms``): a
                    # masked column moves as a whole, so a share between two columns' steps
                    # would move the cut at the first recalibration, and a uniform layer's
                    # weights take no other class.
                    own = any(pattern) or (mode == "global" and any(mix))
                    table.append({"shares": _layout_shares(layout, cfg) if own else shares,
                                  "thresholds": [list(t) for t in thresholds],
                                  "uniform": [abs(u) for u in mix],
                                  "masked": [u < 0 for u in mix], **row,
                                  "samples": samples, "dense_accuracy": dense_score})
    if not table:
        raise CapacityError(f"no candidate layout fits the configuration's memories; the first "
                            f"one: {full[0]}")
    if target_bits is not None:
        best = best_within(table, target_bits, max_mac)
    else:
        best = _fewest_bits_within(table, max_loss, float_accuracy, max_mac)
    engine.thresholds = [list(t) for t in best["thresholds"]]
    engine.uniform, engine.masked = list(best["uniform"]), list(best["masked"])
    engine.codes = [None] * L
    engine.allocate()
    return best, table


def _candidate_shares(cfg, target_bits, grid):
    """The class shares worth building for a budget, and of those the ones worth building with
    per-weight codes (``None``: all): the grid's (or ``grid``) whose estimated bits are within
    a quarter bit of the budget (with masked layers, which store no codes, more are near); the
    four cheapest when none is, so the error can name the least."""
    candidates = grid or share_grid(cfg)
    coded_ok = None
    if target_bits is not None and grid is None:
        near = [c for c in candidates if estimated_bits(c, cfg) <= target_bits + 0.25]
        if cfg.input_masks:
            coded_ok = set(near)
            near = [c for c in candidates
                    if estimated_bits(c, cfg, codes=False) <= target_bits + 0.25]
        candidates = near or sorted(candidates, key=lambda c: estimated_bits(c, cfg))[:4]
    return candidates, coded_ok


def _fewest_bits_within(table, max_loss, float_accuracy, max_mac):
    """The row of fewest bits per weight within ``max_loss`` of ``float_accuracy`` (and within
    the cycle budget), the more accurate of equal bits; a :class:`ConfigError` says what the
    best reaches when none is."""
    ok = [r for r in table if float_accuracy - r["accuracy"] <= max_loss
          and (max_mac is None or r["mac_cycle_ratio"] <= max_mac)]
    if not ok:
        fast = [r for r in table if max_mac is None or r["mac_cycle_ratio"] <= max_mac]
        top = max((r["accuracy"] for r in fast), default=None)
        within = "" if max_mac is None else f" within max_mac {max_mac:g}"
        raise ConfigError(f"no layout{within} is within {max_loss:g} of the float accuracy "
                          f"{float_accuracy:.4f}: " + ("none is that fast" if top is None
                                                       else f"the best reaches {top:.4f}"))
    return max(ok, key=lambda r: (-r["bits_per_weight"], r["accuracy"]))


class _Memo:
    """What the candidates of one calibration share, computed once: a layer's layout for codes
    seen before (candidates that differ elsewhere, or in shares that move no weight of it,
    give a layer the same codes: a masked layer has a few dozen distinct column cuts over
    thousands of candidates), a layout's figures, and the activations a prefix of layer
    layouts leaves (the mixes of a candidate share their first layers). Keys are the identity
    of the layouts' weight arrays, which the memo keeps alive. Only with the masters fixed
    (``reversible``): destructive packing changes them."""

    def __init__(self, engine, x_q, prefixes=64):
        self.on = engine.cfg.reversible
        self.x_q = np.asarray(x_q, np.int64)
        self.packs, self.rows, self.acts, self.prefixes = {}, {}, {}, prefixes
        self.cycle = {}

    def cycles(self, image, cfg):
        """:func:`cycle_model` of a layer image's codes, once per image (the memo keeps the
        images it packed alive, so their identity is a key)."""
        if not self.on:
            return cycle_model(code_bits_of(image.codes, cfg), cfg)
        key = id(image)
        if key not in self.cycle:
            self.cycle[key] = (image, cycle_model(code_bits_of(image.codes, cfg), cfg))
        return self.cycle[key][1]

    def pack(self, engine, l, codes):
        """``engine.pack(l, codes)``, once per layer, uniform class, mask and codes."""
        if not self.on:
            return engine.pack(l, codes)
        key = (l, engine.uniform[l], engine.masked[l], codes.shape, codes.tobytes())
        if key not in self.packs:
            self.packs[key] = engine.pack(l, codes)
        return self.packs[key]

    def logits(self, engine, weights):
        """``dense_activations(...)[-1]`` of the calibration samples with ``weights``, from the
        longest prefix of layer layouts computed before."""
        if not self.on:
            return dense_activations(engine.layers, self.x_q, engine.cfg, weights)[-1]
        ids = tuple(map(id, weights))
        L = len(weights)
        start = next((k for k in range(L - 1, 0, -1) if ids[:k] in self.acts), 0)
        a = self.acts[ids[:start]] if start else self.x_q
        for l in range(start, L):
            q = engine.layers[l]
            acc, _ = layer_forward(weights[l], q.bias, a, engine.cfg)
            if l == L - 1:
                return acc
            a = requantize(acc, q.shift, q.relu, engine.cfg)
            if len(self.acts) >= self.prefixes:       # bounded: the oldest prefix goes
                self.acts.pop(next(iter(self.acts)))
            self.acts[ids[:l + 1]] = a


def _candidate_layers(engine, thresholds, masked_classes, memo, needed):
    """The layers' layouts for ``thresholds`` that ``needed`` names: per weight (key ``(l,
    0)``) and masked at each class u of ``masked_classes`` (key ``(l, -u)``), as ``(image,
    weights)``. A layer's codes do not depend on the others', so the others are not packed."""
    L = len(engine.layers)
    out = {}
    for u in (0, *masked_classes):
        if not any((l, -u) in needed for l in range(L)):
            continue
        engine.uniform, engine.masked = [u] * L, [bool(u)] * L
        engine.thresholds, engine.codes = [list(t) for t in thresholds], [None] * L
        built = engine.build_layout(pack=lambda l, codes: memo.pack(engine, l, codes)
                                    if (l, -u) in needed else (None, None))
        out.update({(l, -u): layout
                    for l, layout in enumerate(zip(built["images"], built["weights"]))
                    if (l, -u) in needed})
    engine.uniform, engine.masked = [0] * L, [False] * L
    return out


def _layout_shares(layout, cfg):
    """The class shares of a layout's weights (pruned first), as class shares are written."""
    counts = sum(np.bincount(im.codes.ravel(), minlength=len(cfg.precisions) + 1)
                 for im, _ in layout)
    return tuple(round(float(c), 6) for c in counts / counts.sum())


def _score_layout(engine, layout, y, dense, score, full, memo):
    """A candidate layout's calibration figures, or ``None`` if it does not fit the zones (the
    reason appended to ``full``); a layout scored before is not scored again."""
    key = tuple(id(w) for _, w in layout)
    if memo.on and key in memo.rows:
        return memo.rows[key]
    cfg = engine.cfg
    images = [im for im, _ in layout]
    try:
        place_layers(images, cfg)
    except CapacityError as e:
        full.append(str(e))
        row = None
    else:
        logits = memo.logits(engine, [w for _, w in layout])
        cyc = [memo.cycles(im, cfg) for im in images]
        row = {"accuracy": score(logits, y), **closeness(logits, dense),
               "bits_per_weight": footprint_bits(images, cfg)["bits_per_weight"],
               "mac_cycle_ratio": sum(c["scheduled"] for c in cyc)
               / sum(c["dense16"] for c in cyc)}
    if memo.on:
        memo.rows[key] = row
    return row


def best_within(table, target_bits, max_mac=None):
    """The row of a calibration ``table`` (:func:`calibrate`) chosen for ``target_bits``: the
    first within the budget by :func:`rank`. With ``max_mac``, only rows whose MAC cycles are
    at most that fraction of the dense 16-bit network's on the same lanes."""
    ok = [r for r in table if r["bits_per_weight"] <= target_bits]
    if not ok:
        least = min(r["bits_per_weight"] for r in table)
        raise BudgetError(f"no layout reaches {target_bits:g} bits per weight (metadata and "
                          f"descriptors included): the smallest costs {least:.2f}; raise "
                          f"the budget (target_bits) to at least that, or give max_loss "
                          f"instead to choose the bits from the accuracy", target_bits, least)
    if max_mac is not None:
        fast = [r for r in ok if r["mac_cycle_ratio"] <= max_mac]
        if not fast:
            least = min(r["mac_cycle_ratio"] for r in ok)
            raise ConfigError(f"no layout within {target_bits:g} bits per weight needs at most "
                              f"{max_mac:g} of the dense 16-bit MAC cycles (max_mac): the "
                              f"fewest need {least:.3f}; raise max_mac to at least that")
        ok = fast
    return max(ok, key=rank)


def fewest_within_loss(table, max_loss, max_mac=None):
    """The row of a calibration ``table`` with the fewest bits per weight whose calibration
    score is at most ``max_loss`` below the dense 16-bit network's (``dense_accuracy``: the
    engine's datapath with unquantized weights; a fraction, 0.01 = one point of accuracy),
    equal bits by :func:`rank`. With ``max_mac``, only rows within that fraction of the dense
    network's MAC cycles. A table built with every class uniform holds the dense network
    itself (every layer 16-bit), so a loss of 0 has an answer unless ``max_mac`` rules it out."""
    fast = [r for r in table if max_mac is None or r["mac_cycle_ratio"] <= max_mac]
    ok = [r for r in fast if r["accuracy"] >= r["dense_accuracy"] - max_loss - 1e-12]
    if not ok:
        within = "" if max_mac is None else f" within max_mac {max_mac:g}"
        top = max((r["accuracy"] for r in fast), default=None)
        raise ConfigError(
            f"no layout{within} scores within {max_loss:g} (max_loss) of the dense 16-bit "
            f"network's {table[0]['dense_accuracy']:.4f} on the calibration split: "
            + ("none is that fast; raise max_mac" if top is None
               else f"the best reaches {top:.4f}; raise max_loss to at least "
                    f"{table[0]['dense_accuracy'] - top:.4f}"))
    least = min(r["bits_per_weight"] for r in ok)
    return max((r for r in ok if r["bits_per_weight"] <= least), key=rank)


def rank(row):
    """How :func:`best_within` orders calibration rows (larger first), against the dense
    16-bit network the candidates approximate. A candidate's accuracy differs from the dense
    network's only on the ``d`` of the ``n`` calibration samples where the two disagree, so
    chance alone moves the difference by about ``sqrt(d) / n`` (one standard deviation, each
    such sample a coin toss). A row whose difference is within that is as accurate as the
    dense network as far as the split can tell, and among those the one whose logits stay
    closest to the dense network's (least ``distortion``) generalises best; a row more than
    that above it ranks before them, by accuracy; one more than that below ranks after them,
    by accuracy, then agreement, then distortion. On a small split this is what decides: on
    wine's 27 calibration samples, with masked layers, the most accurate layout was one sample
    above the dense network (disagreeing with it on that sample alone) and lost 9 to 11 test
    points to the one chance could not tell from it. A gain over many samples (noise inputs
    masked out) still ranks first. Rows without ``samples`` (a score other than accuracy)
    count no chance. The order is total, so the row chosen for a budget is also the one
    chosen from any part of the table that holds it (the budget ladder's rungs)."""
    acc, agreement, distortion = row["accuracy"], row["agreement"], row["distortion"]
    n, excess = row["samples"], acc - row["dense_accuracy"]
    chance = math.sqrt(max(0.0, 1.0 - agreement) / n) if n else 0.0
    if excess > chance + 1e-9:
        return (2, acc, agreement, -distortion)
    if excess >= -chance - 1e-9:
        return (1, -distortion, acc, agreement)
    return (0, acc, agreement, -distortion)


def budget_ladder(table, floor, ceiling, step=0.25, max_mac=None, target=None):
    """The rungs of a budget that follows performance (:class:`Firmware`): the row
    :func:`best_within` each budget from ``floor`` to ``ceiling`` in ``step`` chooses (within
    ``max_mac``), and the ``target`` budget's between them wherever it falls, repeats dropped,
    so the rungs cost strictly more bits from one to the next and the target's row is one of
    them (the run starts there)."""
    budgets = set(np.arange(floor, ceiling + 1e-9, step).tolist())
    if target is not None:
        budgets.add(float(target))
    rungs = []
    for bits in sorted(budgets):
        try:
            row = best_within(table, bits, max_mac)
        except ConfigError:               # nothing this cheap: the ladder starts higher
            continue
        if not rungs or rungs[-1]["shares"] != row["shares"]:
            rungs.append(row)
    return rungs
