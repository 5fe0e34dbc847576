"""Golden model: the calibration's cycle budget, its guard during the run, and its memo."""

import numpy as np
import pytest

from pse_hdl.config import ConfigError
from pse_hdl.model.calibration import best_within, budget_ladder, calibrate, rank
from pse_hdl.model.engine import (Engine, Firmware, dense_activations, exact_thresholds, profile,
                                  run_dynamic)
from pse_hdl.model.network import quantize_input, quantize_network, train_digits
from tests.test_model_engine import CFG, SHARES, small  # noqa: F401  (the fixture)


def test_the_budget_guard_keeps_a_layout_over_the_cycle_budget_out(small):
    """With ``max_mac`` in the policy a layout whose MAC cycles (the engine's schedule, all
    layers) are over that fraction of dense 16-bit's is kept out too, each decided on its own."""
    splits, net, q, xq = small
    x = xq["test"][:60]
    th = exact_thresholds(Engine(q, CFG, allocate=False), SHARES)

    def run(max_mac):
        e = Engine(q, CFG, thresholds=th)
        ratios = []
        logits, stats = run_dynamic(e, x, Firmware(SHARES, 2, max_mac=max_mac),
                                    on_allocation=lambda k, eng: ratios.append(
                                        eng.cycles(pending=True)["scheduled"]
                                        / eng.cycles(pending=True)["dense16"]))
        return logits, stats, ratios

    free, stats, ratios = run(0.0)
    assert all(stats["swapped"]) and len(set(ratios)) > 1
    mid = sorted(ratios)[len(ratios) // 2]
    logits, stats, got = run(mid)
    assert got[0] == ratios[0] and stats["swapped"] == [r <= mid for r in got]
    assert True in stats["swapped"] and False in stats["swapped"]
    assert stats["cycles"] / stats["dense16"] <= max(ratios)
    _, stats, _ = run(max(ratios))
    assert all(stats["swapped"])

@pytest.mark.parametrize("masks", [False, True])
def test_the_calibration_memo_changes_no_figure(small, monkeypatch, masks):
    """The calibration reuses layer layouts of equal codes, figures of equal layouts and the
    activations of shared layer prefixes; without the memo (as in destructive mode) every row
    of the table is the same, in the same order."""
    import pse_hdl.model.calibration as cal
    splits = small[0]
    cfg = CFG.replace(input_masks=masks)
    # Three layers: the mixes share prefixes of one and two layers.
    q = quantize_network(train_digits((24, 16), seed=0, splits=splits), splits["calib"][0], cfg)
    q.baseline = profile(q, quantize_input(splits["calib"][0], q.layers[0].fx, cfg), cfg)
    xq = {"calib": quantize_input(splits["calib"][0], q.layers[0].fx, cfg)}

    def table():
        return calibrate(Engine(q, cfg, allocate=False), xq["calib"], splits["calib"][1],
                         target_bits=4.5, grid=[(0.5, 0.5, 0.0, 0.0), (0.3, 0.6, 0.1, 0.0),
                                                (0.2, 0.7, 0.05, 0.05), (0.6, 0.4, 0.0, 0.0)])[1]
    fast = table()
    real = cal._Memo.__init__
    monkeypatch.setattr(cal._Memo, "__init__", lambda self, *a, **k: (
        real(self, *a, **k), setattr(self, "on", False))[0])
    slow = table()
    assert len(fast) == len(slow) > 20
    for a, b in zip(fast, slow):
        assert a == b

def test_a_cycle_budget_limits_the_choice(small):
    """With ``max_mac`` the choice is the best row within both budgets (a row's MAC ratio is
    the engine's own cycle count of its layout), and none within it is an error that says
    what the fastest needs; the ladder's rungs keep to it."""
    splits, net, q, xq = small
    e = Engine(q, CFG, allocate=False)
    _, table = calibrate(e, xq["calib"], splits["calib"][1], target_bits=6.0)
    free = best_within(table, 6.0)
    limit = round(free["mac_cycle_ratio"] - 0.02, 3)
    best, _ = calibrate(e, xq["calib"], splits["calib"][1], target_bits=6.0, max_mac=limit)
    assert best["mac_cycle_ratio"] <= limit < free["mac_cycle_ratio"]
    assert best == best_within([r for r in table if r["mac_cycle_ratio"] <= limit], 6.0)
    cyc = e.cycles()                                  # the engine is left at the choice
    assert cyc["scheduled"] / cyc["dense16"] == best["mac_cycle_ratio"]
    least = min(r["mac_cycle_ratio"] for r in table if r["bits_per_weight"] <= 6.0)
    with pytest.raises(ConfigError, match=rf"no layout within 6 bits per weight needs at most "
                                          rf"0.001 of the dense 16-bit MAC cycles \(max_mac\): "
                                          rf"the fewest need {least:.3f}"):
        best_within(table, 6.0, 0.001)
    rungs = budget_ladder(table, 3.0, 6.0, max_mac=limit)
    assert rungs and all(r["mac_cycle_ratio"] <= limit for r in rungs)


def _row(accuracy, agreement, distortion, samples=27, dense=25 / 27, bits=3.0):
    return {"accuracy": accuracy, "agreement": agreement, "distortion": distortion,
            "samples": samples, "dense_accuracy": dense, "bits_per_weight": bits,
            "mac_cycle_ratio": 0.1}


def test_rows_chance_cannot_tell_from_the_dense_network_rank_by_closeness():
    """A row's accuracy differs from the dense network's only where the two disagree, so
    chance moves it by about ``sqrt(d) / n``. Rows within that of the dense network rank by
    least distortion; rows above it by more rank first, by accuracy; rows below it by more
    last. On wine's 27 calibration samples a layout one sample above the dense network,
    disagreeing with it on that sample alone, loses to one that agrees everywhere and is less
    distorted; on 450 samples a gain of 14 samples over 60 disagreements (chance 7.7) ranks
    first, one of 7 does not."""
    lucky, faithful = _row(26 / 27, 26 / 27, 0.5), _row(25 / 27, 1.0, 0.1)
    assert best_within([lucky, faithful], 4.0) is faithful
    assert best_within([lucky, {**faithful, "bits_per_weight": 4.5}], 4.0) is lucky
    # Two samples below the dense network with two disagreements is below chance (1.4).
    assert best_within([_row(23 / 27, 25 / 27, 0.01), lucky], 4.0) is lucky
    d, dense = 1 - 60 / 450, 0.6
    plain = _row(dense, 1.0, 0.1, 450, dense)
    gain = _row(dense + 14 / 450, d, 0.5, 450, dense)
    assert best_within([gain, plain], 4.0) is gain
    assert best_within([_row(dense + 7 / 450, d, 0.5, 450, dense), plain], 4.0) is plain
    assert rank(gain) > rank(_row(dense + 13 / 450, d, 0.0, 450, dense))
    # Without ``samples`` (a score other than accuracy) chance counts nothing.
    r2 = [_row(0.9, 1.0, 0.5, 0, 0.9), _row(0.9 - 1e-6, 1.0, 0.1, 0, 0.9),
          _row(0.9, 1.0, 0.2, 0, 0.9)]
    assert best_within(r2, 4.0) is r2[2]


def test_the_calibration_rows_carry_what_chance_is_counted_from(small):
    """A row scored by accuracy carries the calibration samples it counts and the dense
    network's accuracy on them; one scored otherwise no samples."""
    splits, net, q, xq = small
    y = splits["calib"][1]
    e = Engine(q, CFG, allocate=False)
    _, table = calibrate(e, xq["calib"], y, target_bits=6.0)
    dense = float(np.mean(np.argmax(dense_activations(q.layers, xq["calib"], CFG)[-1], 1) == y))
    assert {(r["samples"], r["dense_accuracy"]) for r in table} == {(len(y), dense)}
    _, table = calibrate(e, xq["calib"], y, target_bits=6.0,
                         score=lambda logits, y: float((logits.argmax(1) == y).mean()))
    assert {r["samples"] for r in table} == {0}
