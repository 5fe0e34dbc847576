"""Precision Allocator, golden model (docs/SPEC.md, section 4).

Thresholds ``t[0] <= t[1] <= ... <= t[n-1]`` (n = number of precisions) map an importance to a
code: 0 (pruned) if ``imp < t[0]``; otherwise ``1 + #{k >= 1 : imp > t[k]}``, so code k means
precision ``precisions[k-1]``. With the default precisions this is the specification's rule:
above ``high`` 16 bits, above ``medium`` 8 bits, else 4 bits, pruned below ``low``.

Hysteresis band H: the new code is the previous code clamped to ``[code(imp - H), code(imp + H)]``,
so a weight moves only when its importance clears a threshold by more than H.

A **uniform** layer (its ``uniform`` register k > 0) is not allocated per weight: every weight
gets code k (precision ``precisions[k-1]``), none is pruned, and its zone image stores no codes
(:mod:`pse_hdl.model.zones`): a layer where per-weight precision does not pay costs exactly
what plain ``b``-bit storage costs. A **masked** layer is a uniform layer whose weights the
thresholds would prune keep code 0: its importance is one value per input column
(:meth:`~pse_hdl.model.engine.Engine.importance`), so its codes are k or 0 column by column,
and the zone image stores only the kept columns (:mod:`pse_hdl.model.zones`).
"""

import numpy as np

from .fixed import to_int64

__all__ = ["check_thresholds", "classify", "allocate", "code_bits_of"]


def check_thresholds(thresholds, cfg):
    """The run-time check of threshold registers: returns an error string or ``None``."""
    t = [int(x) for x in thresholds]
    if len(t) != len(cfg.precisions):
        return f"expected {len(cfg.precisions)} thresholds, got {len(t)}"
    if any(not 0 <= x < (1 << cfg.importance_bits) for x in t):
        return f"thresholds must lie in [0, 2**{cfg.importance_bits})"
    if t != sorted(t):
        return f"thresholds must be non-decreasing, not {t}"
    return None


def classify(importance, thresholds):
    imp = to_int64(importance)
    t = to_int64(thresholds)
    code = (imp >= t[0]).astype(np.int64)
    for k in range(1, len(t)):
        code += (imp > t[k]) & (imp >= t[0])
    return code


def allocate(importance, thresholds, prev=None, hysteresis=0, uniform=0, masked=False):
    """Precision codes for ``importance`` (any shape), optionally with hysteresis. A uniform
    layer (``uniform = k > 0``) gets code k for every weight, whatever its importance; a
    masked one (``masked`` too) code k for every weight the thresholds do not prune."""
    if uniform and masked:
        codes = allocate(importance, thresholds, prev, hysteresis)
        return np.where(codes != 0, uniform, 0).astype(np.int64)
    if uniform:
        return np.full(np.shape(importance), uniform, np.int64)
    if hysteresis == 0 or prev is None:
        return classify(importance, thresholds)
    imp = to_int64(importance)
    lo = classify(imp - hysteresis, thresholds)
    hi = classify(imp + hysteresis, thresholds)
    return np.clip(to_int64(prev), lo, hi)


def code_bits_of(codes, cfg):
    """Precision in bits of each code (0 for pruned)."""
    table = np.array((0,) + tuple(cfg.precisions), np.int64)
    return table[to_int64(codes)]
