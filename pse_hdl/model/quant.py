"""Quantization of master weights into a precision zone (docs/SPEC.md, section 5).

A zone of precision b holds ``v = sat_b(rshift_round(master, s))`` where s is the zone's scale
shift (a power-of-two scale shared by the zone's weights of one layer); the value the MAC uses is
``v << s``, with ``0 <= s <= weight_bits - b`` so that ``v << s`` fits ``weight_bits``. The zone of
the widest precision (b = weight_bits) uses s = 0 and is exact.
"""

import numpy as np

from .fixed import rshift_round, saturate, to_int64

__all__ = ["quantize", "dequantize", "choose_shift", "check_shifts", "effective_weights",
           "uniform_weights"]


def quantize(master, bits, shift):
    value, _ = saturate(rshift_round(master, shift), bits)
    return value


def dequantize(value, shift):
    return np.left_shift(to_int64(value), shift)


def choose_shift(master, bits, weight_bits):
    """The zone scale that minimises the squared error of ``master`` at ``bits`` precision.

    Candidates are the shifts from the smallest one that avoids saturation downwards by two
    (clipping a few outliers can pay for a finer step); ties go to the larger shift.
    """
    m = to_int64(master).ravel()
    if bits >= weight_bits or m.size == 0:
        return 0
    peak = int(np.max(np.abs(m)))
    hi = 0
    while hi < weight_bits - bits and peak > (1 << (bits - 1)) - 1 << hi:
        hi += 1
    best, best_err = hi, None
    for s in range(hi, max(-1, hi - 3), -1):
        err = int(np.sum((dequantize(quantize(m, bits, s), s) - m) ** 2))
        if best_err is None or err < best_err:
            best, best_err = s, err
    return best


def check_shifts(shifts, cfg):
    """Zone scales must lie in ``[0, weight_bits - b]``: the scaled weight then fits
    ``weight_bits``, which the MAC relies on."""
    for s, bits in zip(shifts, cfg.precisions):
        if not 0 <= int(s) <= cfg.weight_bits - bits:
            raise ValueError(f"zone scale of the {bits}-bit zone must lie in "
                             f"[0, {cfg.weight_bits - bits}], not {s!r}")


def effective_weights(codes, master, shifts, cfg):
    """``v << s`` for every weight from its code, 0 where pruned (what the MAC multiplies)."""
    check_shifts(shifts, cfg)
    codes, master = to_int64(codes), to_int64(master)
    out = np.zeros(codes.shape, np.int64)
    for k, bits in enumerate(cfg.precisions, start=1):
        sel = codes == k
        out[sel] = dequantize(quantize(master[sel], bits, shifts[k - 1]), shifts[k - 1])
    return out


def uniform_weights(masters, bits, weight_bits):
    """The baseline a user picks instead: every weight of a layer at ``bits`` precision with
    one power-of-two scale per layer (``choose_shift``), no pruning, no metadata."""
    out = []
    for m in masters:
        s = choose_shift(m, bits, weight_bits)
        out.append(dequantize(quantize(m, bits, s), s))
    return out
