"""Golden model: layer engine (exact sum, one saturation, requantization) and cycle model."""

import numpy as np
import pytest

from pse_hdl.config import PSEConfig
from pse_hdl.model.layer import cycle_model, layer_forward, requantize, weight_costs

CFG = PSEConfig()


def reference(w, b, x, acc_bits):
    """Plain Python: the saturated bias plus the exact sum of the row's products, saturated
    once."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    acc = np.zeros((x.shape[0], w.shape[0]), np.int64)
    ovf = np.zeros_like(acc, bool)
    for n in range(x.shape[0]):
        for i in range(w.shape[0]):
            a = int(b[i])
            f = a < lo or a > hi
            a = min(max(a, lo), hi)
            for j in range(w.shape[1]):
                a += int(w[i, j]) * int(x[n, j])
            f = f or a < lo or a > hi
            acc[n, i], ovf[n, i] = min(max(a, lo), hi), f
    return acc, ovf


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("acc_bits", [24, 32])
def test_layer_forward_saturates_the_exact_sum(seed, acc_bits):
    cfg = PSEConfig(acc_bits=acc_bits)
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(1, 20, 2)
    w = rng.integers(-32768, 32768, (rows, cols)) * (rng.random((rows, cols)) < 0.6)
    if seed % 2:          # adversarial: same sign everywhere drives the accumulator to its rails
        w = np.abs(w) * rng.choice([-1, 1])
    x = rng.integers(-128, 128, (5, cols))
    b = rng.integers(-(1 << 30), 1 << 30, rows)
    acc, ovf = layer_forward(w, b, x, cfg)
    ref_acc, ref_ovf = reference(w, b, x, acc_bits)
    assert np.array_equal(acc, ref_acc) and np.array_equal(ovf, ref_ovf)
    if seed % 2 and acc_bits == 24:
        assert ovf.any()


def test_the_sum_does_not_depend_on_the_order():
    """A run through the rail and back: saturating after every product would give hi - p."""
    cfg = PSEConfig(acc_bits=24)
    hi = (1 << 23) - 1
    w = np.array([[32767, -32767]])
    x = np.array([[127, 127]])
    acc, ovf = layer_forward(w, [hi], x, cfg)
    assert acc[0, 0] == hi and not ovf[0, 0]
    acc, ovf = layer_forward(w[:, ::-1], [hi], x, cfg)
    assert acc[0, 0] == hi and not ovf[0, 0]


def test_requantize():
    acc = np.array([-1000, 0, 1, 2, 3, 1 << 20])
    assert requantize(acc, 2, True, CFG).tolist() == [0, 0, 0, 1, 1, 127]
    assert requantize(acc, 2, False, CFG).tolist() == [-128, 0, 0, 1, 1, 127]


def test_cycle_model():
    bits = np.array([[16, 8, 4, 0], [0, 0, 0, 0], [4, 4, 4, 4]])
    assert weight_costs(bits, CFG).tolist() == [[4, 2, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]]
    c = cycle_model(bits, CFG.replace(lanes=2, one_port_below=0))
    assert c["work"] == 11 and c["ideal"] == 6 and c["dense16"] == 24
    # costs 4 2 1 | 1 1 1 1: the second lane starts at the weight whose prefix reaches 6
    assert c["scheduled"] == 7 - 1 and c["ideal"] == 6
    assert cycle_model(np.zeros((4, 4)), CFG)["scheduled"] == 0
    dense = cycle_model(np.full((8, 8), 16), CFG.replace(lanes=4, one_port_below=0))
    assert dense["scheduled"] == dense["dense16"] == 64
    # A layer under one_port_below takes its weights' cycles on one lane.
    small = cycle_model(bits, CFG.replace(lanes=2, one_port_below=13))
    assert small["scheduled"] == small["work"] == 11 and small["dense16"] == 24


@pytest.mark.parametrize("seed", range(20))
def test_lane_split_is_contiguous_balanced_and_only_trailing_lanes_are_empty(seed):
    from pse_hdl.model.layer import lane_split
    rng = np.random.default_rng(seed)
    costs = rng.choice([1, 2, 4], size=int(rng.integers(0, 40)))
    lanes = int(rng.choice([1, 2, 3, 4, 16]))
    starts = lane_split(costs, lanes)
    assert starts[0] == 0 and starts[-1] == len(costs) and starts == sorted(starts)
    sizes = np.diff(starts)
    nonempty = sizes > 0
    assert not np.any(~nonempty[:-1] & nonempty[1:])      # no empty lane before a busy one
    if len(costs) >= lanes:
        loads = [costs[a:b].sum() for a, b in zip(starts, starts[1:])]
        assert max(loads) <= -(-costs.sum() // lanes) + 4


def test_weight_costs_are_digits_rounded_up():
    """One cycle per started 4-bit digit: 2-bit and 4-bit weights 1, 8-bit 2, 16-bit 4."""
    assert weight_costs(np.array([0, 2, 4, 8, 16]), CFG).tolist() == [0, 1, 1, 2, 4]


def test_products_are_exact_in_either_arithmetic():
    """``layer_forward`` sums products in float64 when every partial sum stays an exact integer
    (below 2**53) and in int64 beyond: both give the exact integer result."""
    from pse_hdl.model.layer import _products
    rng = np.random.default_rng(3)
    for scale in (7, 15, 26):                 # small, the engine's widths, past float64's 53 bits
        x = rng.integers(-(1 << scale), 1 << scale, (5, 300))
        w = rng.integers(-(1 << scale), 1 << scale, (9, 300))
        exact = np.array([[sum(int(a) * int(b) for a, b in zip(xr, wr)) for wr in w] for xr in x],
                         dtype=object)
        got = _products(x, w)
        assert got.dtype == np.int64 and (got == exact.astype(np.int64)).all()
    assert _products(np.zeros((2, 0), np.int64), np.zeros((3, 0), np.int64)).shape == (2, 3)
