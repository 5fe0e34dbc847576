"""Importance histogram and thresholds from it (docs/SPEC.md, section 9).

Bins are log2-spaced with ``S = hist_sub_bits`` mantissa bits (``2**S`` bins per octave), the
classic hardware pseudo-logarithm: for ``v > 0`` with leading one at bit n, the key is
``n * 2**S + m + 1`` where m are the S bits after the leading one (zeros shifted in below bit 0);
``v = 0`` has key 0. The bin is ``min(key, hist_bins - 1)``. Because the key is monotonic in v,
a threshold at a bin's lower edge splits the weights exactly at that bin:
``imp < edge(k)  <=>  key(imp) < k``.
"""

import functools

import numpy as np

from .fixed import to_int64

__all__ = ["keys", "histogram", "edge", "nearest_boundary", "nearest_count",
           "thresholds_for_shares", "exact_thresholds_for_shares"]


def keys(values, sub_bits):
    v = to_int64(values)
    out = np.zeros(v.shape, np.int64)
    pos = v > 0
    n = np.zeros(v.shape, np.int64)
    n[pos] = np.floor(np.log2(v[pos].astype(np.float64))).astype(np.int64)
    # Guard against floating rounding near powers of two.
    n[pos] -= (np.left_shift(np.int64(1), n[pos]) > v[pos])
    n[pos] += (np.left_shift(np.int64(1), n[pos] + 1) <= v[pos])
    shifted = np.where(n >= sub_bits, np.right_shift(v, np.maximum(n - sub_bits, 0)),
                       np.left_shift(v, np.maximum(sub_bits - n, 0)))
    m = shifted & ((1 << sub_bits) - 1)
    out[pos] = n[pos] * (1 << sub_bits) + m[pos] + 1
    return out


def histogram(values, cfg):
    k = np.minimum(keys(values, cfg.hist_sub_bits), cfg.hist_bins - 1)
    return np.bincount(k.ravel(), minlength=cfg.hist_bins).astype(np.int64)


@functools.lru_cache(maxsize=4096)
def edge(k, sub_bits):
    """Smallest value whose key is at least ``k`` (a pure function of two integers, cached:
    the calibration asks for the same few hundred edges thousands of times)."""
    if k <= 0:
        return 0
    n, m = (k - 1) >> sub_bits, (k - 1) & ((1 << sub_bits) - 1)
    v = -(-(((1 << sub_bits) + m) << n) >> sub_bits)   # ceil
    # A key can be unreachable for tiny values (fewer bits than S): step to the next value that
    # has a key of at least k.
    while keys(np.array([v]), sub_bits)[0] < k:
        v += 1
    return int(v)


def thresholds_for_shares(hist, shares, cfg):
    """Thresholds that give the precision classes about the wanted ``shares`` of the weights.

    ``shares[0]`` is the fraction to prune, ``shares[k]`` the fraction at ``precisions[k-1]``.
    Each threshold is the lower edge of the bin boundary whose cumulative count is nearest the
    target, so the classes are unions of whole bins.
    """
    keys = [nearest_boundary(np.concatenate([[0], np.cumsum(to_int64(hist))]), f)
            for f in np.cumsum(shares)[:-1]]
    out = [edge(min(k, cfg.hist_bins - 1), cfg.hist_sub_bits) for k in keys]
    # t[0] prunes imp < t0; t[k>=1] promotes imp > t[k]: so a class boundary at edge e is
    # "imp > e - 1" for the promoting thresholds.
    t = [out[0]] + [max(e - 1, 0) for e in out[1:]]
    return _monotone(t)


def nearest_boundary(cum, fraction):
    """The bin boundary k (``cum[k]`` = count below bin k) nearest ``fraction`` of the total."""
    return nearest_count(cum, fraction * cum[-1])


def nearest_count(cum, target):
    """The bin boundary k (``cum[k]`` = count below bin k) nearest ``target`` weights."""
    k = int(np.searchsorted(cum, target - 1e-9))           # first k with cum[k] >= target
    if k > 0 and (k >= cum.size or target - cum[k - 1] < cum[k] - target):
        k -= 1
    return min(k, cum.size - 1)


def exact_thresholds_for_shares(importance, shares):
    """The same from exact quantiles of the importances (the reference for the histogram)."""
    v = np.sort(to_int64(importance).ravel())
    bounds = np.cumsum(shares)[:-1]
    out = []
    for f in bounds:
        n = int(round(f * v.size))
        out.append(int(v[n]) if n < v.size else int(v[-1]) + 1)
    t = [out[0]] + [max(e - 1, 0) for e in out[1:]]
    return _monotone(t)


def _monotone(t):
    for i in range(1, len(t)):
        t[i] = max(t[i], t[i - 1])
    return t
