"""Golden model: network import, fixed-point conversion, profiling, the dynamic loop."""

import numpy as np
import pytest

from pse_hdl.config import ConfigError, PSEConfig
from pse_hdl.errors import InputError
from pse_hdl.model.calibration import best_within, budget_ladder, calibrate, uniform_mixes
from pse_hdl.model.engine import (Engine, Firmware, dense_activations, exact_thresholds,
                                  histogram_thresholds, low_confidence_share, next_rung, profile,
                                  run_dynamic)
from pse_hdl.model.network import (FloatMLP, QuantNet, digits_splits, quantize_input,
                                   quantize_network, train_digits)
from pse_hdl.model.pa import classify
from pse_hdl.model.ric import FactoredRIC

CFG = PSEConfig(period=4, warmup=8)
SHARES = (0.4, 0.5, 0.08, 0.02)


@pytest.fixture(scope="module")
def small():
    splits = digits_splits(0)
    net = train_digits((32,), seed=0, splits=splits)
    q = quantize_network(net, splits["calib"][0], CFG)
    xq = {k: quantize_input(v[0], q.layers[0].fx, CFG) for k, v in splits.items()}
    q.baseline = profile(q, xq["calib"], CFG)
    return splits, net, q, xq


def test_fixed_point_tracks_float(small):
    splits, net, q, xq = small
    x, y = splits["test"]
    f = np.mean(net.predict(x) == y)
    d = np.mean(np.argmax(dense_activations(q.layers, xq["test"], CFG)[-1], axis=1) == y)
    assert f > 0.9 and abs(f - d) <= 0.01
    assert q.layers[0].fx == 7                       # inputs in [0, 1]: 2**7 fits int8
    assert np.abs(q.layers[0].master).max() <= 32767
    assert q.layers[0].relu and not q.layers[-1].relu


def test_sklearn_import_and_npz_round_trip(small, tmp_path):
    splits, net, q, xq = small
    q.save(tmp_path / "n.npz", net)
    back = QuantNet.load(tmp_path / "n.npz")
    for a, b in zip(q.layers, back.layers):
        assert np.array_equal(a.master, b.master) and np.array_equal(a.bias, b.bias)
        assert (a.fx, a.fw, a.shift, a.relu) == (b.fx, b.fw, b.shift, b.relu)
    assert all(np.array_equal(a, b) for a, b in zip(q.baseline, back.baseline))
    from types import SimpleNamespace
    with pytest.raises(ValueError, match="only ReLU"):
        FloatMLP.from_sklearn(SimpleNamespace(activation="tanh", coefs_=[], intercepts_=[]))


def test_profile_is_the_mean_magnitude_in_ema_units(small):
    splits, net, q, xq = small
    acts = dense_activations(q.layers, xq["calib"], CFG)
    for l in range(2):
        mean = np.abs(acts[l]).mean(axis=0) * (1 << CFG.ema_frac_bits)
        assert np.all(np.abs(q.baseline[l] - mean) <= 0.5)
    # An EMA fed the same samples over and over settles near the baseline.
    ric = FactoredRIC(CFG, q.layers[1].shape[1], q.baseline[1])
    for _ in range(3):
        for a in acts[1]:
            ric.update(a)
    assert np.corrcoef(ric.state, q.baseline[1])[0, 1] > 0.8


def test_dynamic_loop_equals_step_by_step(small):
    splits, net, q, xq = small
    x = xq["test"][:40]
    cfg = CFG.replace(period=1, warmup=3)
    e1 = Engine(q, cfg, allocate=False)
    th = exact_thresholds(e1, SHARES)
    e1.thresholds = th
    e1.allocate()
    logits, stats = run_dynamic(e1, x)
    e2 = Engine(q, cfg, thresholds=th)
    manual = []
    for t in range(len(x)):
        acts = e2.infer(x[t:t + 1])
        manual.append(acts[-1][0])
        e2.observe([a[0] for a in acts[:-1]])
        if t + 1 >= cfg.warmup:
            e2.snapshot()
            e2.allocate()
    assert np.array_equal(logits, np.array(manual))
    assert stats["allocations"] == len(x) - cfg.warmup


def test_the_budget_guard_keeps_a_layout_over_budget_out(small):
    """A layout over the policy's ``max_bits`` is not swapped in: with a limit below every
    layout the first one serves the whole run (the logits are the static network's); with the
    limit at the largest allocated layout every one is swapped in, as without a guard."""
    splits, net, q, xq = small
    x = xq["test"][:60]
    cfg = CFG.replace(swap_delay=2)

    def run(max_bits):
        e = Engine(q, cfg, thresholds=exact_thresholds(Engine(q, cfg, allocate=False), SHARES))
        first = e.footprint()
        fps = []
        logits, stats = run_dynamic(e, x, Firmware(SHARES, 2, max_bits=max_bits),
                                    on_allocation=lambda k, eng: fps.append(
                                        eng.allocated_footprint()["total"]))
        return e, first, fps, logits, stats

    e, first, fps, free, stats = run(0.0)
    assert stats["swapped"] == [True] * stats["allocations"] and len(set(fps)) > 1
    static = Engine(q, cfg, thresholds=exact_thresholds(Engine(q, cfg, allocate=False), SHARES))
    assert not np.array_equal(free, static.infer(x)[-1])
    weights = first["weights"]
    e, _, _, logits, stats = run(min(fps) / weights - 1e-6)
    assert stats["swapped"] == [False] * stats["allocations"]
    assert np.array_equal(logits, static.infer(x)[-1])
    assert stats["bits"] == pytest.approx(first["bits_per_weight"], rel=1e-12)
    # Hysteresis reads the latest allocation's codes, kept out or not.
    assert not all(np.array_equal(a, b) for a, b in zip(e.codes, e.active_codes))
    _, _, _, logits, stats = run(max(fps) / weights)
    assert all(stats["swapped"]) and np.array_equal(logits, free)
    # In between: each layout within the limit is swapped in, each over it kept out.
    mid = sorted(fps)[len(fps) // 2] / weights
    _, _, got, _, stats = run(mid)
    assert stats["swapped"] == [f <= mid * weights for f in got]
    assert True in stats["swapped"] and False in stats["swapped"]


def test_warmup_holds_profiled_codes(small):
    splits, net, q, xq = small
    e = Engine(q, CFG.replace(warmup=30, period=4), allocate=False)
    e.thresholds = exact_thresholds(e, SHARES)
    e.allocate()
    codes0 = [c.copy() for c in e.codes]
    run_dynamic(e, xq["test"][:29])
    assert all(np.array_equal(a, b) for a, b in zip(codes0, e.codes))
    run_dynamic(e, xq["test"][:31])
    assert not all(np.array_equal(a, b) for a, b in zip(codes0, e.codes))


def test_destructive_mode_keeps_pruned_weights_pruned(small):
    splits, net, q, xq = small
    e = Engine(q, CFG.replace(reversible=False), allocate=False)
    e.thresholds = exact_thresholds(e, SHARES)
    e.allocate()
    pruned0 = [c == 0 for c in e.codes]
    assert all(np.all(m[p] == 0) for m, p in zip(e.master, pruned0))
    run_dynamic(e, xq["test"][:60])
    assert all(np.all(c[p] == 0) for c, p in zip(e.codes, pruned0))
    r = Engine(q, CFG, allocate=False)
    r.thresholds = e.thresholds
    r.allocate()
    assert all(np.array_equal(a, b.master) for a, b in zip(r.master, q.layers))


def test_literal_importance_form_runs_and_agrees_at_start(small):
    splits, net, q, xq = small
    lit = Engine(q, CFG.replace(importance_form="literal", snapshot_shift=0, importance_floor=False), allocate=False)
    fac = Engine(q, CFG, allocate=False)
    for l in range(2):
        assert np.array_equal(lit.importance(l), fac.importance(l))
    lit.thresholds = exact_thresholds(fac, SHARES)
    lit.allocate()
    logits, _ = run_dynamic(lit, xq["test"][:50])
    assert logits.shape == (50, 10)


@pytest.mark.parametrize("mode", ["global", "layer"])
def test_histogram_thresholds_close_to_exact(small, mode):
    splits, net, q, xq = small
    e = Engine(q, CFG, allocate=False)
    n = sum(c.master.size for c in q.layers)
    shares = []
    for th in (exact_thresholds(e, SHARES, mode), histogram_thresholds(e, SHARES, mode)):
        counts = sum(np.bincount(classify(e.importance(l), th[l]).ravel(), minlength=4)
                     for l in range(2))
        shares.append(counts / n)
    assert np.all(np.abs(shares[0] - np.array(SHARES)) < 0.01)
    # Classes from the histogram are whole bins (4 per octave): within a few percent.
    assert np.all(np.abs(shares[1] - np.array(SHARES)) < 0.06)


def test_dynamic_run_uses_the_band_of_its_thresholds(small):
    """A weight near a threshold keeps its class within the band: the engine's allocation with
    a band from ``hysteresis_shift`` clamps codes to the previous ones as the PA's rule says."""
    from pse_hdl.model.pa import allocate
    from pse_hdl.model.policy import hysteresis_band
    splits, net, q, xq = small
    e = Engine(q, CFG, allocate=False)
    e.thresholds = exact_thresholds(e, SHARES)
    e.allocate()
    prev = [c.copy() for c in e.codes]
    rng = np.random.default_rng(3)
    e.snap = [s * rng.uniform(0.6, 1.6, size=s.shape) for s in e.snap]
    e.snap = [np.round(s).astype(np.int64) for s in e.snap]
    band = hysteresis_band(e.thresholds, CFG)
    assert band > 0
    e.allocate()
    for l in range(len(e.layers)):
        imp = e.importance(l, snapshot=True)
        want = allocate(imp, e.thresholds[l], prev[l], band, e.uniform[l], e.masked[l])
        assert np.array_equal(e.codes[l], want)
    # and the band made a difference: without it some codes differ
    assert any(not np.array_equal(e.codes[l], allocate(e.importance(l, snapshot=True),
                                                       e.thresholds[l]))
               for l in range(len(e.layers)))


def test_calibration_meets_the_bit_budget(small):
    splits, net, q, xq = small
    e = Engine(q, CFG, allocate=False)
    grid = [(0.5, 0.5, 0.0, 0.0), (0.3, 0.5, 0.1, 0.1), (0.0, 0.0, 0.0, 1.0)]
    best, table = calibrate(e, xq["calib"], splits["calib"][1], target_bits=5.0, grid=grid)
    assert best["bits_per_weight"] <= 5.0
    assert all(r["bits_per_weight"] > 5.0 or r["accuracy"] <= best["accuracy"] for r in table)
    with pytest.raises(ConfigError, match=r"no layout reaches 0.5 bits per weight .*: the "
                                          r"smallest costs \d+\.\d\d; raise the budget"):
        calibrate(e, xq["calib"], splits["calib"][1], target_bits=0.5, grid=grid)


def test_uniform_mixes_cover_every_layer():
    assert uniform_mixes(2, (1,)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len(uniform_mixes(3, (1, 2))) == 27
    six = uniform_mixes(6, (1,))
    assert len(six) == 8 and (0,) * 6 in six and (1,) * 6 in six
    assert all(sum(m) == 1 for m in six[1:7])
    assert uniform_mixes(3, ()) == [(0, 0, 0)]


def test_a_uniform_layer_is_plain_storage(small):
    """A layer uniform at 4 bits has every weight 4-bit, none pruned, no metadata, and the
    same weights as uniform per-layer int4; the network all uniform is uniform int4."""
    from pse_hdl.model.quant import uniform_weights
    splits, net, q, xq = small
    e = Engine(q, CFG, thresholds=exact_thresholds(Engine(q, CFG, allocate=False), SHARES),
               uniform=[0, 1])
    assert np.all(e.active_codes[1] == 1) and e.images[1].meta == []
    assert (e.images[1].splits[:, -1] == 0).all()          # no metadata offsets
    assert (e.active_codes[0] == 0).any() and e.images[0].meta
    u4 = uniform_weights([x.master for x in q.layers], 4, CFG.weight_bits)
    np.testing.assert_array_equal(e.weights[1], u4[1])
    coded = Engine(q, CFG, thresholds=e.thresholds)
    f_u, f_c = e.footprint(), coded.footprint()
    n1 = q.layers[1].master.size
    assert f_c["metadata"] - f_u["metadata"] == len(coded.images[1].meta)
    assert f_u["values"] - f_c["values"] <= (n1 * 4 // CFG.zone_word_bits + 2) * CFG.zone_word_bits
    both = Engine(q, CFG, uniform=[1, 1])
    np.testing.assert_array_equal(both.infer(xq["test"])[-1],
                                  dense_activations(q.layers, xq["test"], CFG, u4)[-1])
    assert both.footprint()["metadata"] == 0
    # Allocation ignores the thresholds and the previous codes of a uniform layer.
    both.thresholds = [[1 << 30] * 3] * 2
    both.allocate()
    assert all(np.all(c == 1) for c in both.active_codes)
    with pytest.raises(InputError, match=r"uniform must give each of the 2 layers 0 .* or a "
                                         r"class 1\.\.3, not \[0, 4\]"):
        Engine(q, CFG, uniform=[0, 4])


def test_calibration_tries_uniform_layers(small):
    """Every share candidate is tried with each mix of uniform layers; the rows of a mix are
    the candidate's layout with those layers uniform (their accuracy what the engine gives)."""
    splits, net, q, xq = small
    e = Engine(q, CFG, allocate=False)
    grid = [(0.5, 0.5, 0.0, 0.0), (0.3, 0.5, 0.1, 0.1)]
    best, table = calibrate(e, xq["calib"], splits["calib"][1], target_bits=6.0, grid=grid)
    mixes = [tuple(r["uniform"]) for r in table]
    assert sorted(mixes) == sorted([(0, 0), (0, 1), (1, 0)] * 2 + [(1, 1)])
    assert e.uniform == list(best["uniform"])        # the engine is left at the choice
    # Within 8 bits a layer may be uniform at 8 bits too.
    wide = calibrate(e, xq["calib"], splits["calib"][1], target_bits=8.0, grid=grid)[1]
    assert {tuple(r["uniform"]) for r in wide} >= {(2, 0), (0, 2), (2, 1), (2, 2)}
    for r in table[:4]:
        eng = Engine(q, CFG, thresholds=r["thresholds"], uniform=r["uniform"])
        assert eng.footprint()["bits_per_weight"] == r["bits_per_weight"]
        logits = eng.infer(xq["calib"])[-1]
        assert np.mean(np.argmax(logits, axis=1) == splits["calib"][1]) == r["accuracy"]
    only = calibrate(e, xq["calib"], splits["calib"][1], target_bits=6.0, grid=grid,
                     uniform_classes=())[1]
    assert [r["uniform"] for r in only] == [[0, 0]] * 2


def test_budget_ladder_rungs_cost_more_bits_each(small):
    splits, net, q, xq = small
    e = Engine(q, CFG, allocate=False)
    _, table = calibrate(e, xq["calib"], splits["calib"][1], target_bits=6.0)
    rungs = budget_ladder(table, 3.0, 6.0)
    bits = [r["bits_per_weight"] for r in rungs]
    assert len(rungs) >= 3 and bits == sorted(bits) and len(set(bits)) == len(bits)
    assert bits[0] <= 3.25 and bits[-1] <= 6.0
    assert all(r["accuracy"] <= rungs[-1]["accuracy"] for r in rungs)
    # A target between the steps is a rung of its own: the run starts at its row.
    for target in (4.1, 5.9):
        rungs = budget_ladder(table, 3.0, 6.0, target=target)
        bits = [r["bits_per_weight"] for r in rungs]
        assert best_within(table, target) in rungs and bits == sorted(set(bits))


def test_the_budget_follows_low_confidence_outputs():
    """A rung up when more outputs than the profiled share are unsure, down when fewer, within
    the ladder; margins counted between the two largest logits, ties unsure."""
    logits = np.array([[10, 0, 9], [5, 5, 0], [0, 20, 1], [7, -3, 0]])
    assert low_confidence_share(logits, 2) == 0.5          # margins 1, 0, 19, 7
    ladder = ((0.6, 0.4, 0, 0), (0.5, 0.5, 0, 0), (0.4, 0.6, 0, 0))
    p = Firmware(ladder[1], ladder=ladder, rung=1, margin=2, reference=0.25)
    assert next_rung(p, 1, logits) == 2                    # 0.5 > 0.25 + 0.1
    assert next_rung(p, 2, logits) == 2                    # the ceiling holds
    sure = logits[2:]
    assert next_rung(p, 1, sure) == 0 and next_rung(p, 0, sure) == 0
    assert next_rung(p, 1, logits[1:]) == 1                # 1/3: within the tolerance
    assert next_rung(Firmware(ladder[1]), 1, logits) == 1  # no ladder: fixed shares


def test_the_dynamic_run_moves_up_the_ladder_on_a_harder_stream(small):
    """Samples the network is unsure of (noise added) push the budget up; clean ones let it
    settle back."""
    splits, net, q, xq = small
    e = Engine(q, CFG, allocate=False)
    # The ladder moves thresholds: per-weight layouts only.
    best, table = calibrate(e, xq["calib"], splits["calib"][1], target_bits=6.0,
                            uniform_classes=())
    rungs = budget_ladder(table, 3.0, 6.0)
    start = min(range(len(rungs)), key=lambda k: abs(rungs[k]["bits_per_weight"] - 4.0))
    eng = Engine(q, CFG, thresholds=rungs[start]["thresholds"])
    top = np.sort(eng.infer(xq["calib"])[-1], axis=1)
    margin = int(np.quantile(top[:, -1] - top[:, -2], 0.25))
    pol = Firmware(rungs[start]["shares"], recalibrate_every=2, ladder=tuple(
        tuple(r["shares"]) for r in rungs), rung=start, margin=margin, reference=0.25)
    rng = np.random.default_rng(0)
    x = xq["test"][:200]
    noisy = np.clip(x + rng.integers(-60, 60, x.shape), -128, 127)
    _, stats = run_dynamic(eng, np.concatenate([noisy, x]), pol)
    r = stats["rungs"]
    assert max(r[:len(r) // 2]) > start                    # unsure outputs: more bits
    assert r[-1] < max(r)                                  # sure again: fewer


def test_a_corrupt_network_cache_is_rebuilt_with_a_message(tmp_path, capsys):
    from pse_hdl.model.network import default_network
    hidden = (8,)
    good = default_network(tmp_path, hidden)
    path = next(tmp_path.glob("digits_mlp_8_*.npz"))
    for damage in (path.read_bytes()[:100], b"not a zip at all", b""):
        path.write_bytes(damage)
        net = default_network(tmp_path, hidden)
        assert "training it again" in capsys.readouterr().err
        assert all(np.array_equal(a, b) for a, b in zip(net.weights, good.weights))
    np.savez(path, n_layers=1, W0=np.zeros((3, 3)), b0=np.zeros(3))   # whole, but not this MLP
    path.rename(path.with_suffix(".npz"))
    default_network(tmp_path, hidden)
    assert "training it again" in capsys.readouterr().err
    default_network(tmp_path, hidden)                                  # rewritten: read quietly
    assert capsys.readouterr().err == ""


MASKS = CFG.replace(input_masks=True)


def test_a_masked_layer_prunes_whole_input_columns(small):
    """A masked layer's codes are its class or 0 column by column: 0 exactly where the
    column's importance (the snapshot's EMA times the column's rounded mean master magnitude)
    is under the prune threshold; it stores the kept columns' weights and their indices."""
    from pse_hdl.model.engine import column_norms
    splits, net, q, xq = small
    probe = Engine(q, MASKS, allocate=False, uniform=[1, 0], masked=[True, False])
    thresholds = histogram_thresholds(probe, SHARES)
    e = Engine(q, MASKS, thresholds=thresholds, uniform=[1, 0], masked=[True, False])
    m = np.abs(q.layers[0].master)
    norms = column_norms(q.layers[0].master)
    assert np.array_equal(norms, (m.sum(0) + m.shape[0] // 2) // m.shape[0])
    keep = norms * e.snap[0] >= thresholds[0][0]
    assert 0 < keep.sum() < keep.size
    codes = e.active_codes[0]
    assert np.array_equal(codes, np.where(keep, 1, 0)[None, :].repeat(m.shape[0], 0))
    assert e.images[0].kept.tolist() == np.flatnonzero(keep).tolist()
    assert e.footprint()["metadata"] == keep.sum() * MASKS.col_bits + len(e.images[1].meta)
    # The run over a stream keeps whole columns at every allocation.
    run_dynamic(e, xq["test"][:40], Firmware(SHARES, 2, uniform=(1, 0), masked=(True, False)),
                on_allocation=lambda k, eng: _whole_columns(eng.pending["codes"][0]))



def test_a_finer_histogram_lets_a_masked_cut_fall_between_more_columns(small):
    """The recalibration's thresholds lie on histogram bin edges, so a masked layer's cut moves
    by whole bins: at 16 bins an octave over the same range (``examples/input_masks.toml``) the
    shares reach every cut of the default's 4 bins an octave (a coarse edge is a fine one too)
    and cuts between columns that share a coarse bin."""
    splits, net, q, xq = small

    def cuts(sub):
        cfg = MASKS.replace(hist_sub_bits=sub,
                            hist_bins=MASKS.hist_bins << (sub - MASKS.hist_sub_bits))
        probe = Engine(q, cfg, allocate=False, uniform=[1, 0], masked=[True, False])
        kept = set()
        for p in np.linspace(0.0, 0.9, 91):
            th = histogram_thresholds(probe, (p, 1.0 - p, 0.0, 0.0))
            e = Engine(q, cfg, thresholds=th, uniform=[1, 0], masked=[True, False])
            kept.add(int(np.count_nonzero(e.active_codes[0][0])))
        return kept

    coarse, fine = cuts(2), cuts(4)
    assert coarse < fine and len(fine) > len(coarse) + 2

def _whole_columns(codes):
    assert np.all(codes == codes[:1]) and set(np.unique(codes)) <= {0, 1}


def test_masked_layers_are_checked(small):
    splits, net, q, xq = small
    with pytest.raises(InputError, match="masked layers need input_masks = true"):
        Engine(q, CFG, uniform=[1, 0], masked=[True, False])
    with pytest.raises(InputError, match="layer 1 has none"):
        Engine(q, MASKS, uniform=[1, 0], masked=[False, True])
    with pytest.raises(InputError, match="masked must give each of the 2 layers"):
        Engine(q, MASKS, uniform=[1, 1], masked=[True])
    with pytest.raises(ConfigError, match="input_masks = true needs importance_form"):
        PSEConfig(input_masks=True, reversible=False)
    with pytest.raises(ConfigError, match="input_masks must be true or false"):
        PSEConfig(input_masks=1)


def test_calibration_with_input_masks_tries_masked_layers(small):
    """With input_masks the calibration also tries each layer masked; a row's figures are the
    engine's for its thresholds and layers, its shares the layout's own (what the firmware's
    recalibration keeps), and the dynamic run of the choice stays within the budget."""
    splits, net, q, xq = small
    e = Engine(q, MASKS, allocate=False)
    grid = [(0.5, 0.5, 0.0, 0.0), (0.3, 0.7, 0.0, 0.0)]
    best, table = calibrate(e, xq["calib"], splits["calib"][1], target_bits=4.0, grid=grid)
    kinds = {(tuple(r["uniform"]), tuple(r["masked"])) for r in table}
    assert ((1, 0), (True, False)) in kinds and ((1, 1), (True, True)) in kinds
    assert ((0, 0), (False, False)) in kinds
    for r in [r for r in table if any(r["masked"])][:4]:
        eng = Engine(q, MASKS, thresholds=r["thresholds"], uniform=r["uniform"],
                     masked=r["masked"])
        assert eng.footprint()["bits_per_weight"] == r["bits_per_weight"]
        assert np.allclose(eng.class_shares(), r["shares"], atol=1e-6)
        logits = eng.infer(xq["calib"])[-1]
        assert np.mean(np.argmax(logits, axis=1) == splits["calib"][1]) == r["accuracy"]
    eng = Engine(q, MASKS, thresholds=best["thresholds"], uniform=best["uniform"],
                 masked=best["masked"])
    policy = Firmware(best["shares"], 2, uniform=tuple(best["uniform"]),
                      masked=tuple(best["masked"]), max_bits=4.0)
    _, stats = run_dynamic(eng, xq["test"][:64], policy)
    assert stats["bits"] <= 4.0
