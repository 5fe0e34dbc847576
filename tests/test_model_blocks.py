"""Golden model: fixed point, RIC, PA, SM, quantization, histogram."""

import numpy as np
import pytest

from pse_hdl.config import PSEConfig
from pse_hdl.errors import ConfigError
from pse_hdl.model import histogram as hist
from pse_hdl.model.fixed import rshift_round, saturate
from pse_hdl.model.pa import allocate, check_thresholds, classify, code_bits_of
from pse_hdl.model.quant import choose_shift, dequantize, quantize
from pse_hdl.model.ric import FactoredRIC, LiteralRIC, blend_snapshot, ema_step, literal_bound
from pse_hdl.model.sm import sparsify

CFG = PSEConfig()


def test_rshift_round_is_round_half_up():
    rng = np.random.default_rng(0)
    x = rng.integers(-1 << 40, 1 << 40, 20000)
    for s in (0, 1, 3, 7, 15):
        want = np.floor(x / 2.0 ** s + 0.5).astype(np.int64)
        assert np.array_equal(rshift_round(x, s), want)
    assert rshift_round(-3, 1) == -1 and rshift_round(3, 1) == 2 and rshift_round(-5, 1) == -2


@pytest.mark.parametrize("shift", [0, 1, 2, 5, 8])
def test_snapshot_blend_moves_part_way_and_stays_between(shift):
    cfg = CFG.replace(snapshot_shift=shift, importance_floor=False)
    rng = np.random.default_rng(shift)
    top = 1 << cfg.ema_bits
    snap, live = rng.integers(0, top, 5000), rng.integers(0, top, 5000)
    live[:4] = snap[:4] + np.array([-2, 2, -1, 1]) * (1 << max(shift - 1, 0))  # exact ties
    got = blend_snapshot(snap, live, cfg)
    want = snap + np.floor((live - snap) / 2.0 ** shift + 0.5).astype(np.int64)
    assert np.array_equal(got, want)
    assert np.all(np.minimum(snap, live) <= got) and np.all(got <= np.maximum(snap, live))
    if shift == 0:
        assert np.array_equal(got, live)
    # Repeated snapshots of a constant live state converge to it.
    s = snap.copy()
    for _ in range(40 << shift):
        s = blend_snapshot(s, live, cfg)
    assert np.max(np.abs(s - live)) <= 1 << max(shift - 1, 0)


def test_snapshot_floor_keeps_the_profiled_baseline():
    """With ``importance_floor`` the snapshot follows the EMA up at once, down no lower than
    the loaded baseline; without, it decays toward the live states."""
    rng = np.random.default_rng(7)
    top = 1 << CFG.ema_bits
    floor, live = rng.integers(0, top, 2000), rng.integers(0, top, 2000)
    snap = floor.copy()
    for _ in range(60):
        snap = blend_snapshot(snap, live, CFG, floor)
    assert np.all(snap >= floor)
    assert np.max(np.abs(snap - np.maximum(live, floor))) <= 2
    free = CFG.replace(importance_floor=False)
    s = floor.copy()
    for _ in range(60):
        s = blend_snapshot(s, live, free)
    assert np.max(np.abs(s - live)) <= 2 and np.any(s < floor)
    with pytest.raises(ValueError, match="needs the floor"):
        blend_snapshot(snap, live, CFG)


def test_snapshot_shift_is_validated():
    with pytest.raises(ConfigError, match="snapshot_shift must be 0 with importance_form"):
        CFG.replace(importance_form="literal")
    with pytest.raises(ConfigError, match="importance_floor must be false with"):
        CFG.replace(importance_form="literal", snapshot_shift=0)
    with pytest.raises(ConfigError, match="snapshot_shift"):
        CFG.replace(snapshot_shift=9)


def test_saturate_flags():
    v, f = saturate([-200, -128, 127, 300], 8)
    assert v.tolist() == [-128, -128, 127, 127] and f.tolist() == [True, False, False, True]


def test_ema_factored_equals_literal_in_exact_arithmetic():
    rng = np.random.default_rng(1)
    w = rng.integers(-32768, 32768, (8, 16)).astype(float)
    a = np.zeros(16)
    lit = np.zeros((8, 16))
    alpha = 0.1
    for _ in range(200):
        x = rng.integers(-128, 128, 16).astype(float)
        a = a + alpha * (np.abs(x) - a)
        lit = lit + alpha * (np.abs(w * x) - lit)
    np.testing.assert_allclose(lit, np.abs(w) * a, rtol=1e-9)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("cfg", [CFG, PSEConfig(ema_rate=1 / 8, ema_power_of_two=True),
                                 PSEConfig(ema_frac_bits=2)], ids=["0.1", "1/8", "F2"])
def test_ema_factored_and_literal_agree_within_bound(seed, cfg):
    rng = np.random.default_rng(seed)
    w = rng.integers(-32768, 32768, (16, 32))
    w[0, :] = 0
    w[1, 0] = -32768
    fac, lit = FactoredRIC(cfg, 32), LiteralRIC(cfg, w.shape)
    for t in range(300):
        x = rng.integers(-128, 128, 32) * (rng.random(32) < 0.7)
        fac.update(x)
        lit.update(x, w)
        diff = np.abs(lit.importance() - fac.importance(w))
        assert np.all(diff <= literal_bound(cfg, w)), t


def test_ema_saturation_stays_in_width():
    ric = FactoredRIC(CFG, 4)
    for _ in range(500):
        ric.update(np.array([-128, 127, 0, -128]))
    top = 128 << CFG.ema_frac_bits
    assert ric.state.max() <= top < (1 << CFG.ema_bits)
    assert ric.state[0] >= top - (1 << CFG.ema_rate_bits) // (2 * CFG.ema_num) - 1
    for _ in range(500):
        ric.update(np.zeros(4))
    assert ric.state.min() >= 0


def test_ema_step_moves_toward_target_without_overshoot():
    rng = np.random.default_rng(3)
    s = rng.integers(0, 1 << 16, 10000)
    t = rng.integers(0, 1 << 16, 10000)
    n = ema_step(s, t, CFG)
    assert np.all((n - s) * (t - s) >= 0)
    assert np.all(np.abs(n - s) <= np.abs(t - s))


def test_pa_is_the_specification_rule():
    t = [10, 100, 1000]          # low, medium, high
    imp = np.array([0, 9, 10, 11, 100, 101, 1000, 1001, 1 << 30])
    codes = classify(imp, t)
    assert codes.tolist() == [0, 0, 1, 1, 1, 2, 2, 3, 3]
    # code -> precision with the default set: pruned, 4, 8, 16
    assert code_bits_of(codes, CFG).tolist() == [0, 0, 4, 4, 4, 8, 8, 16, 16]


def test_pa_hysteresis_clamps_previous_code():
    t = [10, 100, 1000]
    rng = np.random.default_rng(4)
    imp = rng.integers(0, 2000, 5000)
    prev = rng.integers(0, 4, 5000)
    assert np.array_equal(allocate(imp, t, prev, 0), classify(imp, t))
    h = 50
    new = allocate(imp, t, prev, h)
    lo, hi = classify(imp - h, t), classify(imp + h, t)
    assert np.all((lo <= new) & (new <= hi))
    keep = (prev >= lo) & (prev <= hi)
    assert np.array_equal(new[keep], prev[keep])
    # A weight just above a threshold does not move up within the band.
    assert allocate([120], t, [1], 50)[0] == 1 and allocate([151], t, [1], 50)[0] == 2


def test_threshold_register_check():
    assert check_thresholds([1, 2, 3], CFG) is None
    assert "non-decreasing" in check_thresholds([3, 2, 1], CFG)
    assert "expected 3" in check_thresholds([1, 2], CFG)


def test_sm_reversible_and_destructive():
    codes = np.array([[0, 1], [3, 0]])
    master = np.array([[5, -6], [7, 8]])
    kept, pruned = sparsify(codes, master, reversible=True)
    assert np.array_equal(kept, master) and pruned.tolist() == [[True, False], [False, True]]
    cleared, _ = sparsify(codes, master, reversible=False)
    assert cleared.tolist() == [[0, -6], [7, 0]]


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantize_round_trip_error(bits):
    rng = np.random.default_rng(bits)
    m = rng.integers(-32768, 32768, 5000)
    s = 16 - bits
    q = quantize(m, bits, s)
    assert q.min() >= -(1 << (bits - 1)) and q.max() <= (1 << (bits - 1)) - 1
    err = dequantize(q, s) - m
    inside = (m >= -(1 << 15)) & (m < (((1 << (bits - 1)) - 1) << s) - (1 << (s - 1)))
    assert np.all(np.abs(err[inside]) <= 1 << (s - 1))
    assert np.array_equal(quantize(m, 16, 0), m)


def test_quantize_saturates():
    assert quantize([1000, -1000], 4, 2).tolist() == [7, -8]


def test_choose_shift_minimises_error():
    rng = np.random.default_rng(5)
    m = (rng.standard_normal(3000) * 2000).astype(np.int64)
    s = choose_shift(m, 4, 16)
    errs = {k: np.sum((dequantize(quantize(m, 4, k), k) - m) ** 2) for k in range(13)}
    assert errs[s] == min(errs.values())
    assert choose_shift(m, 16, 16) == 0 and choose_shift(np.array([], np.int64), 4, 16) == 0


def test_choose_shift_ties_go_to_the_larger_shift():
    """Small zones where two candidate shifts give the same error: the larger one wins."""
    rng = np.random.default_rng(11)
    ties = 0
    for _ in range(400):
        m = rng.integers(-40, 41, int(rng.integers(1, 4)))
        peak, hi = int(np.max(np.abs(m))), 0
        while hi < 12 and peak > 7 << hi:
            hi += 1
        cands = range(hi, max(-1, hi - 3), -1)
        errs = {k: int(np.sum((dequantize(quantize(m, 4, k), k) - m) ** 2)) for k in cands}
        best = min(errs.values())
        tied = [k for k, e in errs.items() if e == best]
        assert choose_shift(m, 4, 16) == max(tied), (m, errs)
        ties += len(tied) > 1
    assert ties >= 20                                  # the rule was exercised


def test_choose_shift_may_clip_by_two_steps():
    """A few outliers among many small values: clipping them two scale steps below the shift
    that holds them all is the smallest error, and it is found."""
    rng = np.random.default_rng(4)
    found = 0
    for _ in range(300):
        m = np.concatenate([rng.integers(-60, 61, 400), rng.integers(300, 1000, 1)])
        peak, hi = int(np.max(np.abs(m))), 0
        while peak > 7 << hi:
            hi += 1
        errs = {k: int(np.sum((dequantize(quantize(m, 4, k), k) - m) ** 2))
                for k in range(hi + 1)}
        if errs[hi - 2] < min(errs[hi], errs[hi - 1]) and errs[hi - 2] <= min(errs.values()):
            assert choose_shift(m, 4, 16) == hi - 2, (m, errs)
            found += 1
    assert found >= 5


@pytest.mark.parametrize("sub", [0, 1, 2, 3])
def test_histogram_keys_and_edges(sub):
    v = np.arange(0, 5000)
    k = hist.keys(v, sub)
    assert np.all(np.diff(k) >= 0)
    for key in range(1, int(k.max()) + 1):
        e = hist.edge(key, sub)
        assert k[e] >= key and (e == 0 or k[e - 1] < key)
    big = np.array([(1 << 31) - 1, 1 << 31, (1 << 40) + 12345])
    ref = [int(np.floor(np.log2(float(x)))) for x in big]
    assert (hist.keys(big, sub) - 1 >> sub).tolist() == ref


def test_histogram_thresholds_split_on_bin_edges():
    cfg = CFG
    rng = np.random.default_rng(6)
    imp = (rng.lognormal(16, 3, 20000)).astype(np.int64)
    h = hist.histogram(imp, cfg)
    assert h.sum() == imp.size
    shares = (0.4, 0.5, 0.08, 0.02)
    t = hist.thresholds_for_shares(h, shares, cfg)
    codes = classify(imp, t)
    got = np.bincount(codes, minlength=4) / imp.size
    # Classes are unions of whole bins, so each share is off by at most one bin's mass.
    widest = h.max() / imp.size
    assert np.all(np.abs(np.cumsum(got)[:-1] - np.cumsum(shares)[:-1]) <= widest + 1e-9)
    exact = classify(imp, hist.exact_thresholds_for_shares(imp, shares))
    assert np.all(np.abs(np.bincount(exact, minlength=4) / imp.size - shares) < 1e-3)


def test_zone_scale_must_keep_the_weight_in_its_width():
    from pse_hdl.model.quant import check_shifts
    check_shifts((12, 8, 0), CFG)
    with pytest.raises(ValueError, match=r"4-bit zone must lie in \[0, 12\], not 13"):
        check_shifts((13, 0, 0), CFG)
