"""Fixed-point primitives shared by every block of the golden model (docs/SPEC.md, section 1).

There is one rounding rule in the whole engine: round half up (toward +inf), implemented in
hardware as "add half an LSB, then arithmetic shift right". There is one overflow rule:
saturate to the signed (or unsigned) range of the destination and raise a sticky flag.
All functions work on Python ints and on NumPy int64 arrays alike.
"""

import numpy as np

__all__ = ["rshift_round", "saturate", "signed_range", "to_int64"]


def to_int64(x):
    return np.asarray(x, dtype=np.int64)


def signed_range(bits):
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def rshift_round(x, shift):
    """``round(x / 2**shift)`` with ties toward +inf; ``shift`` >= 0 (scalar or array)."""
    x = to_int64(x)
    shift = to_int64(shift)
    if np.any(shift < 0):
        raise ValueError(f"shift must be >= 0, not {shift!r}")
    half = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)
    return np.right_shift(x + half, shift)


def saturate(x, bits, signed=True):
    """Clamp ``x`` to a ``bits``-wide range; return ``(value, overflowed)``."""
    x = to_int64(x)
    lo, hi = signed_range(bits) if signed else (0, (1 << bits) - 1)
    return np.clip(x, lo, hi), (x < lo) | (x > hi)
