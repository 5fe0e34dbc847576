"""Thresholds for target class shares (docs/SPEC.md, sections 9-11): from exact quantiles of
the importances (the calibration's candidates) or from the importance histograms the hardware
builds (what the firmware reads), per layer or ranked across layers in real units."""

import numpy as np

from . import histogram as hist

__all__ = ["layer_exponents", "exact_thresholds", "histogram_thresholds",
           "thresholds_from_histograms"]


def layer_exponents(layers, cfg):
    """Fraction bits of each layer's importance LSB: its real value is ``2**-(fw + fx + F)``."""
    return [q.fw + q.fx + cfg.ema_frac_bits for q in layers]


def _exponents(engine):
    return layer_exponents(engine.layers, engine.cfg)


def _promote(edges):
    """Class boundaries (first value of the upper class) to threshold registers: t[0] prunes
    ``imp < t0``, t[k>=1] promotes ``imp > t[k]``."""
    return hist._monotone([edges[0]] + [max(e - 1, 0) for e in edges[1:]])


def exact_thresholds(engine, shares, mode="global"):
    """Thresholds (per layer) that give the classes ``shares`` of the weights, from exact
    quantiles of the importances.

    ``mode="layer"`` applies the shares within every layer; ``"global"`` ranks all weights of the
    network together by their importance in real units (the size of their contribution to a
    pre-activation), so bits go where contributions are largest, whatever the layer.
    """
    if mode == "layer":
        return [hist.exact_thresholds_for_shares(engine.importance(l), shares)
                for l in range(len(engine.layers))]
    exps = _exponents(engine)
    e0 = max(exps)
    scaled = np.sort(np.concatenate([engine.importance(l).ravel().astype(np.float64)
                                     * 2.0 ** (e0 - e) for l, e in enumerate(exps)]))
    edges = []
    for f in np.cumsum(shares)[:-1]:
        n = int(round(f * scaled.size))
        edges.append(scaled[n] if n < scaled.size else scaled[-1] + 1)
    return [_promote([int(np.ceil(x / 2.0 ** (e0 - e))) for x in edges]) for e in exps]


def histogram_thresholds(engine, shares, mode="global", snapshot=False, layers=False):
    """The same from the hardware's importance histograms (what the firmware can read).

    In global mode the per-layer histograms are merged by shifting each by its layer's exponent
    offset (scales are powers of two, so an offset of d bits is ``d * 2**S`` bins). With
    ``layers`` the engine's uniform and masked layers are taken into account as the firmware
    does (:func:`thresholds_from_histograms`); without, every weight is ranked (the
    calibration's candidates).
    """
    cfg = engine.cfg
    hists = [hist.histogram(engine.importance(l, snapshot), cfg)
             for l in range(len(engine.layers))]
    return thresholds_from_histograms(hists, _exponents(engine), shares, cfg, mode,
                                      *((engine.uniform, engine.masked) if layers else ()))


def thresholds_from_histograms(hists, exps, shares, cfg, mode="global", uniform=(),
                               masked=()):
    """Per-layer thresholds for the class ``shares`` from the layers' importance histograms
    (``exps``: :func:`layer_exponents`): what the firmware computes from the hardware's
    histograms.

    In global mode the shares are those of the codes the layout gets (``docs/SPEC.md`` section
    9): a ``uniform`` layer's weights are all in its class whatever their importance, a
    ``masked`` one's in its class or pruned. So the boundary between pruned and kept is placed
    on the layers that can prune (per-weight and masked), and every boundary above it on the
    per-weight layers alone, for what the others leave of each class; with none uniform, every
    weight of the network is ranked together."""
    if mode == "layer":
        return [hist.thresholds_for_shares(h, shares, cfg) for h in hists]
    L = len(hists)
    uniform = list(uniform) or [0] * L
    masked = list(masked) or [False] * L
    e0 = max(exps)
    offs = [(e0 - e) << cfg.hist_sub_bits for e in exps]

    def cum_of(ls):
        merged = np.zeros(cfg.hist_bins + max(offs), np.int64)
        for l in ls:
            merged[offs[l]:offs[l] + hists[l].size] += hists[l]
        return np.concatenate([[0], np.cumsum(merged)])

    sizes = [int(np.sum(h)) for h in hists]
    below = np.cumsum(shares)[:-1] * sum(sizes)       # weights of class k or lower
    coded = [l for l in range(L) if not uniform[l]]
    prunable = [l for l in range(L) if not uniform[l] or masked[l]]
    if not any(uniform):
        cum = cum_of(range(L))
        keys = [hist.nearest_count(cum, t) for t in below]
    else:
        k0 = hist.nearest_count(cum_of(prunable), below[0]) if prunable else 0
        # A masked layer's pruned weights: its bins below the boundary.
        pruned = {l: int(np.sum(hists[l][:max(k0 - offs[l], 0)])) for l in range(L)
                  if masked[l]}
        keys, cum = [k0], cum_of(coded)
        for k, t in enumerate(below[1:], start=1):
            fixed = sum(sizes[l] if uniform[l] <= k else pruned.get(l, 0)
                        for l in range(L) if uniform[l])
            keys.append(max(hist.nearest_count(cum, t - fixed), k0) if coded else k0)
    return [_promote([hist.edge(min(k - o, cfg.hist_bins - 1), cfg.hist_sub_bits)
                      if k > o else 0 for k in keys]) for o in offs]
