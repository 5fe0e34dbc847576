"""Layer engine and cycle model, golden model (docs/SPEC.md, sections 7 and 8).

``y = requantize(ReLU(W_eff . x + b))`` where ``W_eff = v << s`` (0 for pruned weights).
A row's products are summed exactly (the partial sums are wide enough:
``act_bits + weight_bits + col_bits`` bits), the bias (saturated to ``acc_bits``) is added, and
the result saturates once to ``acc_bits``; the overflow flag says it did. The sum is therefore
independent of the order and the grouping of the products, so a row may be split across MAC lanes
and its partial sums added. Requantization is ``sat_act(rshift_round(acc, shift))`` after ReLU.
Pruned weights add nothing, so skipping them cannot change the result.

The cycle model: a lane spends ``ceil(b / mac_digit_bits)`` cycles on a weight of b bits and none
on a pruned weight; the layer's surviving weights, in row-major order, are cut into ``lanes``
contiguous chunks of equal cost (:func:`lane_split`), one per lane (one chunk, lane 0, for a
layer of fewer than ``one_port_below`` weights).
"""

import numpy as np
from threadpoolctl import threadpool_limits

from .fixed import rshift_round, saturate, to_int64

__all__ = ["layer_forward", "requantize", "weight_costs", "lane_split", "layer_lanes",
           "one_blas_thread",
           "cycle_model"]


def layer_forward(weights, bias, x, cfg):
    """Accumulate a batch: ``weights`` rows x cols, ``bias`` rows, ``x`` batch x cols.

    Returns ``(acc, overflow)``, both batch x rows.
    """
    w = to_int64(weights)
    x = np.atleast_2d(to_int64(x))
    b, b_ovf = saturate(bias, cfg.acc_bits)
    exact = b[None, :] + _products(x, w) if w.shape[1] else \
        np.broadcast_to(b, (x.shape[0], w.shape[0]))
    acc, ovf = saturate(exact, cfg.acc_bits)
    return acc, ovf | b_ovf[None, :]


# A decorator for the golden model's loops (the calibration, a dynamic run): one BLAS thread
# while they run. Their products are small (a batch or a sample by a layer), and OpenBLAS's
# threads cost more than they give: on two cores beside one other busy process the demo
# network's calibration took 6.0 s with them and 2.4 s without, `bench/drift.py` 24 s and 10 s.
one_blas_thread = threadpool_limits.wrap(limits=1, user_api="blas")


def _products(x, w):
    """``x @ w.T`` exactly. In float64 (BLAS) when every partial sum is an integer below 2**53
    in magnitude, which float64 holds exactly whatever the order of the additions; in int64
    otherwise."""
    if x.size and w.size:
        bound = int(np.abs(x).max()) * int(np.abs(w).max()) * w.shape[1]
        if bound < 1 << 53:
            return np.rint(x.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)
    return x @ w.T


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


def lane_split(costs, lanes):
    """Where each lane's chunk starts in a sequence of weight costs (the layer's surviving
    weights in row-major order): lane k starts at the first weight whose cost prefix reaches
    ``ceil(k C / lanes)`` (C the total), and at least one weight after lane k-1, so only trailing
    lanes can be empty. Returns ``lanes + 1`` indices (the last is the number of weights)."""
    costs = to_int64(costs)
    prefix = np.concatenate([[0], np.cumsum(costs)])[:-1]
    total, n = int(costs.sum()), costs.size
    starts = [0]
    for k in range(1, lanes):
        target = -(-k * total // lanes)
        s = int(np.searchsorted(prefix, target, side="left"))
        starts.append(min(n, max(s, starts[-1] + 1)))
    return starts + [n]


def layer_lanes(costs, weights, cfg):
    """:func:`lane_split` of a layer of ``weights`` weights (surviving ``costs``) over the
    configuration's ``lanes``: all of them, or lane 0 alone for a layer of fewer than
    ``one_port_below`` weights (the other lanes empty). Returns ``lanes + 1`` indices."""
    n = len(costs)
    ports = cfg.layer_ports(weights)
    return lane_split(costs, ports)[:-1] + [n] * (cfg.lanes - ports + 1)


def cycle_model(bits, cfg):
    """Cycles for one pass of a layer whose weights have precisions ``bits`` (rows x cols).

    Returns ``{"ideal", "scheduled", "dense16", "work"}``: the ideal ``ceil(work / lanes)``,
    the largest lane's cost under :func:`lane_split`, and the same array computing the layer
    dense at 16 bits.
    """
    lanes = cfg.lanes
    rows, cols = to_int64(bits).shape
    costs = weight_costs(bits, cfg).ravel()
    costs = costs[costs > 0]
    starts = layer_lanes(costs, rows * cols, cfg)
    free = np.array([costs[a:b].sum() for a, b in zip(starts, starts[1:])], np.int64)
    work = int(free.sum())
    return {"ideal": -(-work // lanes), "scheduled": int(free.max()), "work": work,
            "dense16": -(-(rows * cols * cfg.mac_cost(16)) // lanes)}
