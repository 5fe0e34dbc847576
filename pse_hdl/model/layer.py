"""Layer engine and cycle model, golden model (docs/SPEC.md, sections 7 and 8).

``y = requantize(ReLU(W_eff . x + b))`` where ``W_eff = v << s`` (0 for pruned weights).
The accumulator is ``acc_bits`` wide and saturating: it starts at the bias (saturated) and adds
the products of a row in ascending column order, saturating after every addition; a sticky
overflow flag records any saturation. Requantization is ``sat_act(rshift_round(acc, shift))``
after ReLU. Pruned weights add nothing, so skipping them cannot change the result.

The cycle model: a lane spends ``ceil(b / mac_digit_bits)`` cycles on a weight of b bits and none
on a pruned weight; rows are issued to lanes in order, each to the lane that frees first.
"""

import numpy as np

from .fixed import rshift_round, saturate, signed_range, to_int64

__all__ = ["layer_forward", "requantize", "weight_costs", "schedule_rows", "cycle_model"]


def layer_forward(weights, bias, x, cfg):
    """Accumulate a batch: ``weights`` rows x cols, ``bias`` rows, ``x`` batch x cols.

    Returns ``(acc, overflow)``, both batch x rows.
    """
    w = to_int64(weights)
    x = np.atleast_2d(to_int64(x))
    lo, hi = signed_range(cfg.acc_bits)
    b, b_ovf = saturate(bias, cfg.acc_bits)
    products = x[:, None, :] * w[None, :, :]                    # batch x rows x cols
    prefix = b[None, :, None] + np.cumsum(products, axis=2)
    acc = prefix[:, :, -1] if w.shape[1] else np.broadcast_to(b, (x.shape[0], w.shape[0])).copy()
    overflow = np.broadcast_to(b_ovf, acc.shape).copy()
    # Fast path: where no prefix sum leaves the range, saturation never acted. Elsewhere replay
    # the row sequentially with saturation after every addition.
    bad = np.any((prefix < lo) | (prefix > hi), axis=2) if w.shape[1] else np.zeros_like(overflow)
    for n, i in zip(*np.nonzero(bad)):
        a, flag = int(b[i]), bool(b_ovf[i])
        for p in products[n, i]:
            a += int(p)
            if a > hi or a < lo:
                a, flag = min(max(a, lo), hi), True
        acc[n, i], overflow[n, i] = a, flag
    return acc, overflow


def requantize(acc, shift, relu, cfg):
    a = to_int64(acc)
    if relu:
        a = np.maximum(a, 0)
    y, _ = saturate(rshift_round(a, shift), cfg.act_bits)
    return y


def weight_costs(bits, cfg):
    """MAC cycles of each weight from its precision in bits (0 = pruned)."""
    bits = to_int64(bits)
    return np.where(bits > 0, -(-bits // cfg.mac_digit_bits), 0)


def schedule_rows(bits, cfg, lanes=None):
    """Rows to lanes: in row order, each row to the lane that frees first (lowest index on a
    tie), by the rows' weight costs. Returns ``(lane_of_row, lane_busy_cycles)``."""
    lanes = lanes or cfg.lanes
    per_row = weight_costs(bits, cfg).sum(axis=1)
    free = np.zeros(lanes, np.int64)
    lane_of = np.zeros(len(per_row), np.int64)
    for i, c in enumerate(per_row):
        k = int(np.argmin(free))
        lane_of[i] = k
        free[k] += c
    return lane_of, free


def cycle_model(bits, cfg, lanes=None):
    """Cycles for one pass of a layer whose weights have precisions ``bits`` (rows x cols).

    Returns ``{"ideal", "scheduled", "dense16", "work"}``: the ideal ``ceil(work / lanes)``,
    the makespan of the in-order rows-to-lanes schedule, and the same array computing the layer
    dense at 16 bits.
    """
    lanes = lanes or cfg.lanes
    _, free = schedule_rows(bits, cfg, lanes)
    work = int(free.sum())
    rows, cols = to_int64(bits).shape
    return {"ideal": -(-work // lanes), "scheduled": int(free.max()), "work": work,
            "dense16": -(-(rows * cols * cfg.mac_cost(16)) // lanes)}
