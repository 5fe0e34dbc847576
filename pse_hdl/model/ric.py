"""Rolling Importance Calculator, golden model (docs/SPEC.md, section 3).

The specification keeps, for every weight, an exponential moving average of its contribution:
``I <- I + alpha * (|w * x| - I)``. For a fixed master weight ``EMA(|w*x|) = |w| * EMA(|x|)``, so
the engine keeps one EMA per *input* channel, ``A_j = EMA(|x_j|)``, and forms the importance
``|w_ij| * A_j`` only when it allocates. Both forms are modelled here with the same fixed-point
update; :func:`literal_bound` states how far apart rounding can move them.

Fixed point: ``alpha = ema_num / 2**K`` (K = ``ema_rate_bits``); the EMA state has F =
``ema_frac_bits`` fraction bits. One update is ``s <- s + rshift_round(ema_num * (t - s), K)``
where ``t`` is the target with F fraction bits. The state never leaves [min, max] of its targets,
so the unsigned widths of the configuration hold it without saturation.
"""

import numpy as np

from .fixed import rshift_round, to_int64

__all__ = ["ema_step", "blend_snapshot", "FactoredRIC", "LiteralRIC", "literal_bound"]


def ema_step(state, target, cfg):
    state = to_int64(state)
    return state + rshift_round(cfg.ema_num * (to_int64(target) - state), cfg.ema_rate_bits)


def blend_snapshot(snap, live, cfg, floor=None):
    """The snapshot after SNAPSHOT: ``snap + rshift_round(live - snap, snapshot_shift)`` (with
    shift 0 a copy of the live states), and with ``importance_floor`` at least ``floor`` (the
    states last loaded, the profiled baseline). It stays between its old value, the live states
    and the floor, so it fits the EMA state's width."""
    snap, live = to_int64(snap), to_int64(live)
    blended = snap + rshift_round(live - snap, cfg.snapshot_shift)
    if cfg.importance_floor:
        if floor is None:
            raise ValueError("importance_floor needs the floor (the loaded states)")
        blended = np.maximum(blended, to_int64(floor))
    return blended


class FactoredRIC:
    """One EMA register per input channel; importance ``|w| * A_j`` on demand."""

    def __init__(self, cfg, n_inputs, init=None):
        self.cfg = cfg
        self.state = np.zeros(n_inputs, np.int64) if init is None else to_int64(init).copy()

    def update(self, x):
        """Consume one sample ``x`` (the layer's int activation vector)."""
        target = np.left_shift(np.abs(to_int64(x)), self.cfg.ema_frac_bits)
        self.state = ema_step(self.state, target, self.cfg)

    def importance(self, master):
        """Importance of every weight of ``master`` (rows x cols, int16 values)."""
        return np.abs(to_int64(master)) * self.state[None, :]


class LiteralRIC:
    """The specification's literal form: one EMA of ``|w * x|`` per weight."""

    def __init__(self, cfg, shape, init=None):
        self.cfg = cfg
        self.state = np.zeros(shape, np.int64) if init is None else to_int64(init).copy()

    def update(self, x, master):
        contribution = np.abs(to_int64(master)) * np.abs(to_int64(x))[None, :]
        self.state = ema_step(self.state, np.left_shift(contribution, self.cfg.ema_frac_bits),
                              self.cfg)

    def importance(self, master=None):
        return self.state


def literal_bound(cfg, master):
    """Largest possible ``|literal - factored|`` per weight, in importance LSBs.

    Each update of either EMA rounds by at most half an LSB; the error of an EMA with rate alpha
    then stays within ``1 / (2 * alpha)`` LSB for ever. The factored importance multiplies the
    error of ``A_j`` by ``|w|``, hence ``(|w| + 1) / (2 * alpha)``.
    """
    alpha = cfg.ema_num / (1 << cfg.ema_rate_bits)
    return (np.abs(to_int64(master)) + 1) / (2 * alpha)
