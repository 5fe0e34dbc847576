"""When the task changes: ``bench/drift.py``'s streams, its figures, and the same run on the RTL."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from pse_hdl.config import PSEConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def drift():
    spec = importlib.util.spec_from_file_location("drift", ROOT / "bench" / "drift.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cameras_see_the_image_on_their_own_inputs(drift):
    x = np.arange(2 * 64, dtype=float).reshape(2, 64)
    for k in range(drift.CAMERAS):
        z = drift.camera(x, k)
        assert z.shape == (2, 256)
        assert np.count_nonzero(z[:, :64 * k]) == 0 and np.count_nonzero(z[:, 64 * (k + 1):]) == 0
        assert sorted(z[1, 64 * k:64 * (k + 1)]) == sorted(x[1])      # a permutation of pixels
    assert drift.view(x, 1)[0, 1] == x[0, 8]                          # transposed
    xs, ys = drift.every_camera(x, np.array([3, 4]))
    assert xs.shape == (8, 256) and list(ys) == [3, 4] * 4


def test_the_held_out_sensor_stream(drift):
    """The sensor switch on held-out data: each sample on the inputs of the sensor its segment
    says (40 of 160), the last segment the first one's samples again; calibrated on every
    sensor, or on the first one only."""
    (st,) = drift.held_out_streams(("sensor",), segment=100)
    x, y = st["x"], st["y"]
    assert x.shape == (500, 160) and y.shape == (500,) and st["switches"] == [100, 200, 300, 400]
    for k, s in enumerate((0, 100, 200, 300, 400)):
        seg = x[s:s + 100].reshape(100, 4, 40)
        on = k % 4
        assert np.count_nonzero(np.delete(seg, on, axis=1)) == 0
        assert np.count_nonzero(seg[:, on]) > 0
    np.testing.assert_array_equal(x[400:, :40], x[:100, :40])
    np.testing.assert_array_equal(y[400:], y[:100])
    xm, ym = st["calib_mixture"]
    assert xm.shape[1] == 160 and len(ym) == 4 * len(st["calib_first"][1])
    assert st["source"].inputs == 160 and st["source"].outputs == 4


def test_recovery_is_read_from_the_rolling_accuracy(drift):
    correct = np.ones(600, bool)
    correct[300:330] = False                   # 30 wrong samples right after the switch at 300
    # The first 100 samples within a point of 100 %: those with one wrong sample, from 329 on.
    assert drift.recovery(correct, 300) == 29
    assert drift.recovery(np.r_[np.ones(300, bool), np.zeros(300, bool)], 300) is None


def test_layout_bits_per_sample_average_to_the_run_figure(drift):
    """The per-layout bits a dynamic run reports (what the plot draws over time) average, over
    the samples each layout served, to the run's bits per weight."""
    splits = drift.digits_splits(0)
    (st,) = drift.streams(splits, ("gradual",), segment=100)
    cfg = PSEConfig()
    correct, bits = drift.method_run(cfg, st, "dynamic", 2.5)
    assert correct.shape == bits.shape == (300,)
    design = drift.Design(cfg, st["source"], *st["calib_mixture"], "classification")
    design.allocate(2.5)
    _, fig = design.run(st["x"])
    assert len(fig["layout_bits_per_weight"]) == fig["allocations"] + 1
    assert fig["layout_from_sample"][0] == 0
    assert bits.mean() == pytest.approx(fig["bits_per_weight"], rel=1e-12)


def test_the_dynamic_engine_wins_when_the_camera_changes(drift, capsys):
    """The benchmark's claim, on its camera streams: after a switch PSE dynamic is at least two
    points above both static allocations within the same budget, and back within two periods;
    destructive pruning loses what it cleared."""
    drift.main(["--json", "--plot", "", "--only", "camera", "gradual"])
    out = json.loads(capsys.readouterr().out)
    camera, gradual = out["streams"]
    for r in (camera, gradual):
        after, bits = r["after_switch"], r["bits_per_weight"]
        assert set(after) == set(drift.METHODS) == set(r["recovery_samples"])
        assert after["dynamic"] >= after["static_mixture"] + 0.02
        assert after["dynamic"] >= after["static_first_task"] + 0.02
        # The same budget for all (2.5 bits per weight, metadata included); each stays within it.
        assert max(bits[m] for m in drift.METHODS if m != "int4") <= 2.5
        # Destructive pruning cannot bring back what a camera lost while it was dark.
        assert after["dynamic_destructive"] <= after["dynamic"] - 0.02
    assert camera["recovery_samples"]["dynamic"] <= 2 * camera["allocation_period"]
    # Back on camera 0 (the same images) the reversible engine serves it as well as before.
    assert camera["return_to_first"]["dynamic"] >= -0.01
    assert gradual["return_to_first"]["dynamic"] is None


def test_the_camera_switch_on_the_rtl_gives_the_same_figures(drift):
    """``--backend rtl``: the dynamic run of a short camera stream through the engine's Verilog,
    every logit and layout checked against the golden model, scores exactly as the model."""
    (r,) = drift.measure(PSEConfig(period=8, warmup=8), 2.5, ("camera",), segment=40,
                         backend="rtl")
    assert r["rtl"]["bit_exact"] and r["rtl"]["same_figures"]
    assert r["rtl"]["after_switch"] == r["after_switch"]["dynamic"]
    # What a sample costs the engine, from its counters: INFER at 2.5 bits well under the
    # network dense at 16 bits (256 x 64 + 64 x 10 weights, four cycles each over four lanes),
    # the allocation's passes on top of it (swap_delay 0: the engine waits for them).
    c = r["rtl"]
    assert c["dense16_cycles_per_sample"] == 256 * 64 + 64 * 10 and c["swap_delay"] == 0
    assert 0 < c["infer_cycles_per_sample"] < c["dense16_cycles_per_sample"] / 4
    assert c["amortised_cycles_per_sample"] > c["infer_cycles_per_sample"] + 256 * 64 / 8


def test_seeds_report_the_gain_per_order_of_the_samples(drift):
    """``--seeds``: each stream measured again with other sample orders (and camera networks),
    the dynamic run's gain over the better static layout per seed, seed 0's first."""
    cfg = PSEConfig(period=8, warmup=8)
    first = drift.measure(cfg, 2.5, ("gradual",), segment=100)
    (r,) = drift.measure_seeds(cfg, 2.5, ("gradual",), 100, 2, first)
    g = r["seeds"]["gain_over_static"]
    assert len(g["per_seed"]) == 2 and g["per_seed"][0] == drift.gain_over_static(r)
    assert g["mean"] == pytest.approx(np.mean(g["per_seed"])) and g["min"] == min(g["per_seed"])
    (again,) = drift.measure(cfg, 2.5, ("gradual",), segment=100, seed=1)
    assert r["seeds"]["after_switch"][1] == again["after_switch"]
    assert r["seeds"]["after_switch"][1] != r["after_switch"]     # another order, other figures
    a, b = (drift.streams(drift.digits_splits(0), ("class",), seed=k)[0]["y"] for k in (0, 1))
    assert sorted(a) == sorted(b) and list(a) != list(b)


def test_mistakes_are_one_line(drift, capsys):
    with pytest.raises(SystemExit) as e:
        drift.main(["--segment", "20", "--plot", ""])
    assert e.value.code == 2 and "--segment must be between" in capsys.readouterr().err
