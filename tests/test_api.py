"""Your own network: the Python API and ``pse run`` for scikit-learn, ONNX and .npz models
(the imports are in ``test_api_imports``, the errors a user's mistakes get in
``test_api_mistakes``)."""

import dataclasses
import json

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor

import pse_hdl
from pse_hdl.cli import main
from pse_hdl.config import PSEConfig
from pse_hdl.errors import ConfigError
from pse_hdl.importers import split_calibration
from pse_hdl.model.engine import run_dynamic
from tests.user_models import fit


def test_cli_run_prints_the_table_with_baselines(binary, tmp_path, capsys):
    m, cal, (x, y) = binary
    joblib.dump(m, tmp_path / "bc.joblib")
    np.savez(tmp_path / "bc.npz", x=x, y=y)
    assert main(["run", str(tmp_path / "bc.joblib"), "--data", str(tmp_path / "bc.npz"),
                 "--target-bits", "6"]) == 0
    text = capsys.readouterr().out
    for line in ("source model accuracy", "imported float network accuracy", "uniform int8",
                 "uniform int4", "PSE accuracy (dynamic)", "bits per weight"):
        assert line in text, line
    assert main(["run", str(tmp_path / "bc.joblib"), "--data", str(tmp_path / "bc.npz"),
                 "--target-bits", "6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # The two-class model imported faithfully: the float network scores what scikit-learn
    # scores on the same test samples.
    (_, _), (x_t, y_t) = split_calibration(x, y)
    assert out["float_accuracy"] == out["source_accuracy"] == m.score(x_t, y_t)


def test_a_run_below_int4_says_so_and_why():
    """``pse run``'s table ends with a note when a classifier's run scores below uniform int4:
    both figures, why (pruning under 4 bits, or over them the pruning the metadata forced),
    what a small network's layer descriptors cost, and masked layers where the configuration
    could mask but does not."""
    from pse_hdl.cli.run import int4_hint
    cfg = PSEConfig()
    run = {"task": "classification", "bits_per_weight": 3.9, "pse_accuracy": 0.90,
           "int4_accuracy": 0.92, "layers": [[256, 64], [10, 256]], "weights": 18944}
    note = int4_hint(run, cfg)
    assert note.startswith("note: uniform int4 scores more here (92.00 % at 4.0 bits/weight "
                           "against 90.00 % at 3.90)")
    assert "--config masks" in note and "descriptors" not in note
    small = int4_hint({**run, "layers": [[16, 4], [3, 16]], "weights": 112}, cfg)
    assert f"its 2 layer descriptors alone cost {2 * cfg.layer_desc_bits / 112:.2f}" in small
    # A layer of 96 weights or more is split over the ports: its split descriptors count too.
    circles = int4_hint({**run, "layers": [[16, 2], [16, 16], [2, 16]], "weights": 320}, cfg)
    desc = 3 * cfg.layer_desc_bits + (cfg.fetch_ports - 1) * cfg.split_desc_bits
    assert f"its 3 layer and {cfg.fetch_ports - 1} split descriptors alone cost " \
        f"{desc / 320:.2f} bits/weight" in circles
    assert "--max-loss 0.01 instead chooses the fewest bits" in small
    assert "--max-loss" not in int4_hint({**run, "layers": [[16, 4], [3, 16]], "weights": 112,
                                          "max_loss": 0.01}, cfg)
    assert "--config masks" not in int4_hint(run, PSEConfig(input_masks=True))
    assert "--config masks" not in int4_hint(run, PSEConfig(reversible=False))
    assert int4_hint({**run, "pse_accuracy": 0.92}, cfg) is None
    over = int4_hint({**run, "bits_per_weight": 4.43, "precision_shares": {"pruned": 0.703}},
                     cfg)
    assert over.startswith("note: uniform int4 scores more here (92.00 % at 4.0 bits/weight "
                           "against 90.00 % at 4.43): with its metadata and descriptors "
                           "counted, the budget left room for the values only by pruning 70 %")
    assert "prunes nothing" in int4_hint({**run, "bits_per_weight": 4.5,
                                          "precision_shares": {"pruned": 0.0}}, cfg)
    assert int4_hint({**run, "task": "regression"}, cfg) is None


def test_regressor(tmp_path):
    d = load_digits()
    x, t = d.data / 16.0, d.target.astype(np.float64)
    x_tr, x_te, t_tr, t_te = train_test_split(x, t, test_size=0.4, random_state=0)
    r = fit(MLPRegressor(hidden_layer_sizes=(24,), max_iter=400, random_state=0), x_tr, t_tr)
    design = pse_hdl.convert(r, calibration=(x_tr[:400], t_tr[:400]), target_bits=8.0)
    assert design.task == "regression"
    pred = design.predict(x_te)
    assert pred.shape == (len(x_te), 1)
    assert design.score(x_te, t_te) > 0.5 < r.score(x_te, t_te)
    joblib.dump(r, tmp_path / "r.joblib")
    np.savez(tmp_path / "r.npz", x=x_te, y=t_te)
    assert main(["run", str(tmp_path / "r.joblib"), "--data", str(tmp_path / "r.npz"),
                 "--target-bits", "8"]) == 0


def test_save_load_write_trace(binary, tmp_path):
    m, cal, (x, y) = binary
    design = pse_hdl.convert(m, calibration=cal, target_bits=6.0, max_mac=0.25)
    assert design.report()["mac_cycle_ratio"] <= 0.25
    design.save(tmp_path / "d.npz")
    again = pse_hdl.load(tmp_path / "d.npz")
    assert again.uniform == design.uniform and again.thresholds == design.thresholds
    assert again.report()["max_mac"] == 0.25
    np.testing.assert_array_equal(again.predict(x), design.predict(x))
    out = design.write(tmp_path / "out")
    for name in ("pse_engine.v", "load.txt", "masters.hex", "biases.hex", "ric_baseline.hex",
                 "config.toml", "pse_regs.h", "report.json"):
        assert (out / name).stat().st_size > 0, name
    assert "module pse_engine" in (out / "pse_engine.v").read_text()
    assert len((out / "masters.hex").read_text().split()) == 16 * 30 + 2 * 16
    tr = design.trace(x[:3])
    assert [a.shape for a in tr["activations"]] == [(3, 30), (3, 16)]
    assert [c.shape for c in tr["codes"]] == [(16, 30), (2, 16)]


@pytest.mark.slow
def test_predict_through_the_rtl_equals_the_model(binary):
    m, cal, (x, y) = binary
    cfg = PSEConfig(max_rows=32, max_cols=32, zone_depth=1024, master_depth=4096, max_layers=3)
    design = pse_hdl.convert(m, config=cfg, calibration=cal, target_bits=6.0)
    logits, figures = design.run(x[:40], backend="rtl")
    assert figures["bit_exact"] and figures["samples"] == 40
    np.testing.assert_array_equal(logits, design.run(x[:40])[0])


def test_fit_sizes_the_engine_to_the_network(wine, tmp_path, capsys):
    """A network wider than the configuration allows is refused with the way out; ``fit``
    sizes the engine to it. Fitted to a small network the descriptors narrow, and so do the
    bits per weight of the same layout; ``pse run --fit`` says what it built."""
    m, cal, (x, y) = wine
    wide = fit(MLPClassifier((300,), max_iter=200, random_state=0), *cal)
    with pytest.raises(ConfigError, match=r"allows at most 256x256 .*; --fit \(fit=True"):
        pse_hdl.convert(wide, calibration=cal)
    design = pse_hdl.convert(wide, calibration=cal, fit=True)
    assert (design.cfg.max_rows, design.cfg.max_cols) == (512, 512)
    assert design.score(x, y) > 0.9
    with pytest.raises(ConfigError, match="fit must be True or False, not 'yes'"):
        pse_hdl.convert(m, calibration=cal, fit="yes")
    default = pse_hdl.convert(m, calibration=cal, target_bits=6.0)
    fitted = pse_hdl.convert(m, calibration=cal, target_bits=6.0, fit=True)
    assert fitted.cfg.layer_desc_bits < default.cfg.layer_desc_bits
    # The default engine's layout, stored by the fitted engine: the same codes in fewer bits.
    fitted.set_allocation(default.shares, default.thresholds, 6.0, default.mode,
                          default.uniform, default.masked)
    one, other = default.engine(), fitted.engine()
    for c, d in zip(one.active_codes, other.active_codes):
        np.testing.assert_array_equal(c, d)
    assert other.footprint()["total"] < one.footprint()["total"] - 2 * 40
    np.savez(tmp_path / "wine.npz", x=x, y=y, x_calib=cal[0], y_calib=cal[1])
    joblib.dump(m, tmp_path / "wine.joblib")
    assert main(["run", str(tmp_path / "wine.joblib"), "--data", str(tmp_path / "wine.npz"),
                 "--target-bits", "6", "--fit", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fit"] and out["engine"] == {"max_rows": 32, "max_cols": 32, "max_layers": 2,
                                            "master_depth": 384,
                                            "zone_depths": [64, 32, 32]}
    assert main(["run", str(tmp_path / "wine.joblib"), "--data", str(tmp_path / "wine.npz"),
                 "--target-bits", "6", "--fit"]) == 0
    assert "layers up to 32x32, 2 layers, 384 masters, zones of 64/32/32" in capsys.readouterr().out


def test_auto_allocation_takes_the_better_mode(wine):
    """``mode="auto"`` (the default): both modes' candidates, the calibration's rule choosing
    among them: the design runs in the mode whose best candidate scores best on the calibration
    split, with that mode's layout; ``allocate()`` without a mode chooses again."""
    m, cal, (x, y) = wine
    runs = {mode: pse_hdl.convert(m, calibration=cal, target_bits=4.0, mode=mode)
            for mode in ("global", "layer", "auto")}
    auto = runs.pop("auto")
    default = pse_hdl.convert(m, calibration=cal, target_bits=4.0)
    assert (default.mode, default.shares) == (auto.mode, auto.shares)
    other = next(md for md in runs if md != auto.mode)
    default.allocate(4.0, other)
    assert default.mode == other
    default.allocate(4.0)
    assert (default.mode, default.shares) == (auto.mode, auto.shares)
    assert auto.mode in runs and auto.shares == runs[auto.mode].shares
    assert auto.calibration_score == max(r.calibration_score for r in runs.values())
    np.testing.assert_array_equal(auto.predict(x), runs[auto.mode].predict(x))
    with pytest.raises(ConfigError, match="'global', 'layer' or 'auto', not 'both'"):
        pse_hdl.convert(m, calibration=cal, mode="both")


@pytest.mark.slow
def test_an_engine_sized_for_the_network_is_bit_exact(binary):
    """The fitted engine of a 30-16-2 network (16x32 layers, 512 masters, zones of 128, 64
    and 64 words) runs through its Verilog with the golden model's logits."""
    m, cal, (x, y) = binary
    design = pse_hdl.convert(m, calibration=cal, target_bits=6.0, fit=True)
    cfg = design.cfg
    assert (cfg.max_rows, cfg.max_cols, cfg.master_depth, cfg.zone_depths) == (16, 32, 512,
                                                                               (128, 64, 64))
    logits, figures = design.run(x[:40], backend="rtl")
    assert figures["bit_exact"] and figures["samples"] == 40
    np.testing.assert_array_equal(logits, design.run(x[:40])[0])


def test_a_run_stays_within_its_budget_the_same_on_the_rtl(wine):
    """Without the budget guard this run's layouts grow past the 5.0-bit budget between
    recalibrations; with it (``Design``'s default) those layouts are kept out, every layout that
    serves is within the budget, and the engine's firmware keeps out the same ones."""
    m, cal, (x, y) = wine
    cfg = PSEConfig(max_rows=32, max_cols=32, zone_depth=1024, master_depth=4096, max_layers=3,
                    period=2, warmup=2)
    design = pse_hdl.convert(m, config=cfg, calibration=cal, target_bits=5.0)
    assert design.policy.max_bits == 5.0
    _, free = run_dynamic(design.engine(), design.quantize(x),
                          dataclasses.replace(design.policy, max_bits=0.0))
    assert free["bits"] > 5.0
    logits, fig = design.run(x, backend="rtl")
    assert fig["bit_exact"] and fig["bits_per_weight"] <= 5.0
    assert max(fig["layout_bits_per_weight"]) <= 5.0
    assert 0 < fig["layouts_over_budget"] == fig["rtl_layouts_over_budget"] < fig["allocations"]
    np.testing.assert_array_equal(logits, design.run(x)[0])


def test_the_budget_follows_performance_the_same_on_the_rtl(wine):
    """``adapt``: noisy samples (the network unsure) push the budget up the ladder, clean ones
    bring it down; the engine's Verilog takes the same rungs and gives the same logits."""
    m, cal, (x, y) = wine
    cfg = PSEConfig(max_rows=32, max_cols=32, zone_depth=1024, master_depth=4096, max_layers=3,
                    period=2, warmup=2)
    design = pse_hdl.convert(m, config=cfg, calibration=cal, target_bits=9.0,
                             adapt=(7.0, 12.0))
    a = design.adapt
    assert len(a["ladder"]) >= 3 and 0 < a["rung"] < len(a["ladder"]) - 1
    assert 0.15 < a["reference"] < 0.35                # the lowest quarter of margins
    noisy = x + np.random.default_rng(0).normal(0, 1.5, x.shape)
    stream = np.concatenate([x, noisy, x, x])
    logits, fig = design.run(stream, backend="rtl")
    assert fig["bit_exact"] and fig["rungs"] == fig["rtl_rungs"]
    np.testing.assert_array_equal(logits, design.run(stream)[0])
    r = fig["rungs"]
    assert max(r) > a["rung"] and r[-1] < max(r)
    # A target between the ladder's quarter-bit steps (an internal error before): the run
    # starts at the target's own layout, a rung of the ladder.
    best = design.allocate(8.9, adapt=(7.0, 12.0))
    assert design.adapt["ladder"][design.adapt["rung"]] == list(best["shares"])
    with pytest.raises(ConfigError, match="adapt needs a classifier"):
        design.task = "regression"
        design.allocate(9.0, adapt=(7.0, 12.0))


def test_a_masked_design_saves_and_loads(binary, tmp_path):
    """With ``input_masks`` the calibration's masked layers travel with the design: the loaded
    design predicts the same, and its report names them."""
    m, cal, (x, y) = binary
    cfg = PSEConfig(input_masks=True)
    design = pse_hdl.convert(m, calibration=cal, target_bits=4.0, config=cfg)
    # The best masked candidate of the calibration's table (whatever it chose at 4 bits).
    row = max((r for r in design.table if any(r["masked"])), key=lambda r: r["accuracy"])
    design.set_allocation(row["shares"], row["thresholds"], 4.0, "global", row["uniform"],
                          row["masked"])
    assert design.masked_layers == [l for l, k in enumerate(row["masked"]) if k]
    design.save(tmp_path / "d.npz")
    again = pse_hdl.load(tmp_path / "d.npz")
    assert again.masked == design.masked and again.uniform == design.uniform
    np.testing.assert_array_equal(again.predict(x), design.predict(x))
    assert again.report()["masked_layers"] == design.masked_layers
