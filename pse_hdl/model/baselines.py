"""The alternatives a user would pick instead of the engine, on the same fixed-point datapath.

Each returns ``(weights, footprint)``: the effective weights (what the MAC multiplies, in the
masters' units) of every layer and the storage in bits, every scale and mask counted, so the
benchmarks compare like with like. Scales are powers of two chosen as the engine chooses its
zone scales (:func:`~pse_hdl.model.quant.choose_shift`, least squared error).

* :func:`uniform` - every weight at ``bits``, one scale per layer (per tensor);
* :func:`uniform_rows` - every weight at ``bits``, one scale per output row;
* :func:`magnitude_pruned` - the smallest ``fraction`` of each layer's weights pruned (a one-bit
  mask per weight), the rest at ``bits`` with one scale per layer.
"""

import numpy as np

from .quant import choose_shift, dequantize, quantize, uniform_weights

__all__ = ["uniform", "uniform_rows", "magnitude_pruned", "prune_fraction_for"]


def _footprint(bits, weights):
    return {"total": bits, "weights": weights, "bits_per_weight": bits / weights}


def uniform(masters, bits, cfg):
    n = sum(m.size for m in masters)
    return (uniform_weights(masters, bits, cfg.weight_bits),
            _footprint(n * bits + len(masters) * cfg.shift_bits, n))


def uniform_rows(masters, bits, cfg):
    n = sum(m.size for m in masters)
    out = [np.stack(uniform_weights(list(m), bits, cfg.weight_bits)) for m in masters]
    return out, _footprint(n * bits + sum(m.shape[0] for m in masters) * cfg.shift_bits, n)


def magnitude_pruned(masters, fraction, cfg, bits=8):
    """Per layer, weights whose magnitude ranks in the lowest ``fraction`` are pruned (ties at the
    cut are kept, so a layer never loses more than its share)."""
    out, kept = [], 0
    for m in masters:
        mag = np.sort(np.abs(m).ravel())
        cut = int(round(fraction * mag.size))
        keep = np.abs(m) >= mag[cut] if cut < mag.size else np.zeros(m.shape, bool)
        s = choose_shift(m[keep], bits, cfg.weight_bits)
        out.append(np.where(keep, dequantize(quantize(m, bits, s), s), 0))
        kept += int(keep.sum())
    n = sum(m.size for m in masters)
    return out, _footprint(n + kept * bits + len(masters) * cfg.shift_bits, n)


def prune_fraction_for(budget, bits=8):
    """The pruned fraction at which a one-bit mask and ``bits``-bit survivors cost ``budget``
    bits per weight (scales aside)."""
    return min(max(1.0 - (budget - 1.0) / bits, 0.0), 1.0)
