"""The host's run-time policy, golden model (docs/SPEC.md, section 11): what the firmware aims
for (class shares, the budget guard, the budget ladder that follows performance) and when it
allocates. :func:`~pse_hdl.model.engine.run_dynamic` and the host firmware
(:mod:`pse_hdl.host.firmware`) both follow it.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Firmware", "within", "logit_margins", "low_confidence_share", "next_rung",
           "rung_shares", "allocation_points", "hysteresis_band"]


def hysteresis_band(thresholds, cfg):
    """The allocator's hysteresis band (``BAND``) the firmware writes with ``thresholds`` (per
    layer): the fixed ``hysteresis``, or with ``hysteresis_shift`` the smallest positive prune
    threshold of the layers shifted right by it (0 without one, or without the comparators)."""
    if not cfg.hysteresis_logic:
        return 0
    if not cfg.hysteresis_shift:
        return cfg.hysteresis
    t0 = [int(t[0]) for t in thresholds or () if int(t[0]) > 0]
    return min(t0) >> cfg.hysteresis_shift if t0 else 0


@dataclass
class Firmware:
    """Run-time policy of the host: target class shares and how often to recalibrate.

    With a ``ladder`` the budget follows the network's performance (label-free): the ladder's
    rungs are class shares from the cheapest (the budget's floor) to the dearest (its ceiling),
    ``rung`` the one calibrated to the budget. At every recalibration the share of outputs since
    the previous one whose logit margin (largest minus second largest) is below ``margin`` is
    compared with ``reference``, the share the profiling stage measured on the calibration
    split: more than ``tolerance`` above, one rung up (more bits); more than ``tolerance``
    below, one rung down (:func:`next_rung`). The thresholds are then recalibrated to the
    rung's shares.
    """
    shares: tuple                     # (pruned, precisions[0], ..., precisions[-1])
    recalibrate_every: int = 4        # allocations between recalibrations (0 = never)
    mode: str = "global"
    ladder: tuple = ()                # class shares per rung, cheapest first; () = fixed
    rung: int = 0                     # the rung of ``shares``
    margin: int = 0                   # a logit margin below it is a low-confidence output
    reference: float = 0.0            # low-confidence share of the profiling stage
    tolerance: float = 0.1
    uniform: tuple = ()               # per layer: 0 or its uniform class; () = none uniform
    masked: tuple = ()                # per layer: whether its uniform class is masked
    max_bits: float = 0.0             # a layout over this many bits per weight is not swapped
    #                                   in, the active one stays (0: no limit; :func:`within`)
    max_mac: float = 0.0              # nor one over this fraction of dense 16-bit's MAC cycles


def within(policy, footprint, weights, cycles=None):
    """Whether a layout of ``footprint`` bits (metadata and descriptors included) over
    ``weights`` weights, and of ``cycles = (scheduled, dense16)`` MAC cycles
    (:func:`~pse_hdl.model.layer.cycle_model` summed over the layers), may be swapped in under
    ``policy``'s budget guard (``max_bits``, ``max_mac``). Between two recalibrations the
    rising importance of the weights the thresholds did not foresee (the importance floor of
    the profiling stage lifts them) could take a layout over the budget; the firmware then
    keeps the layout it has. A budget that is a layout's own bits per weight (``max_loss``)
    times the weights gives back its footprint up to the float's rounding: the compare allows
    that (a footprint is whole bits)."""
    if not policy:
        return True
    if policy.max_bits and footprint > policy.max_bits * weights + 1e-6:
        return False
    return not (policy.max_mac and cycles) or cycles[0] / cycles[1] <= policy.max_mac


def logit_margins(logits):
    """Per output (row of ``logits``): the largest logit minus the second largest."""
    top = np.sort(np.asarray(logits), axis=1)
    return top[:, -1] - top[:, -2]


def low_confidence_share(logits, margin):
    """The share of outputs (rows of ``logits``) whose largest logit beats the second largest
    by less than ``margin``."""
    return float(np.mean(logit_margins(logits) < margin))


def next_rung(policy, rung, logits):
    """The rung after a recalibration that has seen the outputs ``logits`` since the previous
    one (:class:`Firmware`)."""
    if not policy.ladder or not len(logits):
        return rung
    share = low_confidence_share(logits, policy.margin)
    if share > policy.reference + policy.tolerance:
        return min(rung + 1, len(policy.ladder) - 1)
    if share < policy.reference - policy.tolerance:
        return max(rung - 1, 0)
    return rung


def rung_shares(policy, rung):
    """The class shares the firmware recalibrates toward on ``rung``."""
    return tuple(policy.ladder[rung]) if policy.ladder else tuple(policy.shares)


def allocation_points(n, cfg):
    """Sample counts after which the firmware allocates over a run of ``n`` samples: multiples
    of ``period`` at or after the warm-up, before the last sample."""
    out, t = [], 0
    while t < n:
        nxt = max(cfg.warmup, (t // cfg.period + 1) * cfg.period)
        while nxt <= t:
            nxt += cfg.period
        if nxt < n:
            out.append(nxt)
        t = nxt
    return out
