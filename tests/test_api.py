"""Your own network: the Python API and ``pse run`` for scikit-learn, ONNX and .npz models, and
the errors a user's mistakes get (one line, exit code 2, no traceback)."""

import dataclasses
import json
import pickle
import warnings

import joblib
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor

import pse_hdl
from pse_hdl.cli import main
from pse_hdl.config import PSEConfig
from pse_hdl.errors import ConfigError, InputError
from pse_hdl.importers import split_calibration
from pse_hdl.model.engine import run_dynamic


def fit(est, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(x, y)


@pytest.fixture(scope="module")
def binary():
    """A two-class scikit-learn MLP (one logistic output) and its held-out data."""
    d = load_breast_cancer()
    x, y = d.data / d.data.max(axis=0), d.target
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.5, random_state=0)
    x_cal, x_te, y_cal, y_te = train_test_split(x_te, y_te, test_size=0.6, random_state=0)
    m = fit(MLPClassifier((16,), max_iter=500, random_state=0), x_tr, y_tr)
    return m, (x_cal, y_cal), (x_te, y_te)


@pytest.fixture(scope="module")
def wine():
    d = load_wine()
    x = (d.data - d.data.mean(axis=0)) / d.data.std(axis=0)
    x_tr, x_te, y_tr, y_te = train_test_split(x, d.target, test_size=0.5, random_state=0,
                                              stratify=d.target)
    m = fit(MLPClassifier((24,), max_iter=800, random_state=0), x_tr, y_tr)
    return m, (x_tr, y_tr), (x_te, y_te)


def to_onnx(m, x):
    from skl2onnx import to_onnx as convert
    return convert(m, x[:1].astype(np.float32), options={id(m): {"zipmap": False}})


def torch_like_onnx(weights, biases, in_shape, final=None, extra=None):
    """An ONNX MLP as torch.onnx.export writes Linear/ReLU stacks: Flatten, Gemm with
    transB=1, Relu, ..., optionally a final activation or an extra node."""
    inits, nodes = [], [helper.make_node("Flatten", ["input"], ["flat"], name="/Flatten")]
    t = "flat"
    for l, (w, b) in enumerate(zip(weights, biases)):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{l}"),
                  numpy_helper.from_array(b.astype(np.float32), f"b{l}")]
        nodes.append(helper.make_node("Gemm", [t, f"w{l}", f"b{l}"], [f"g{l}"], transB=1,
                                      name=f"/fc{l}/Gemm"))
        t = f"g{l}"
        if l < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [t], [f"r{l}"], name=f"/relu{l}/Relu"))
            t = f"r{l}"
    if extra:
        nodes.append(helper.make_node(extra, [t], ["extra"], name=f"/{extra}"))
        t = "extra"
    if final:
        nodes.append(helper.make_node(final, [t], ["output"], name=f"/{final}", axis=1)
                     if final == "Softmax" else helper.make_node(final, [t], ["output"]))
        t = "output"
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                     [None, *in_shape])],
        [helper.make_tensor_value_info(t, TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# -- working imports ---------------------------------------------------------------------------

def test_two_class_scikit_learn_is_imported_faithfully(binary):
    m, cal, (x, y) = binary
    design = pse_hdl.convert(m, calibration=cal, target_bits=6.0)
    assert design.source.outputs == 2 and design.task == "classification"
    # The float network predicts exactly what scikit-learn predicts (the wrong import of a
    # single logistic output as one logit gave 37 %).
    np.testing.assert_array_equal(design.classes[design.source.net.predict(x)], m.predict(x))
    assert design.score(x, y) > 0.85
    rep = design.report()
    assert rep["bits_per_weight"] <= 6.0 and rep["layers"] == [[16, 30], [2, 16]]


def test_multi_class_onnx_from_skl2onnx(wine, tmp_path, capsys):
    m, cal, (x, y) = wine
    path = tmp_path / "wine.onnx"
    path.write_bytes(to_onnx(m, x).SerializeToString())
    design = pse_hdl.convert(str(path), calibration=cal, target_bits=6.0)
    np.testing.assert_array_equal(design.source.net.predict(x), m.predict(x))
    np.savez(tmp_path / "wine.npz", x=x, y=y, x_calib=cal[0], y_calib=cal[1])
    assert main(["run", str(path), "--data", str(tmp_path / "wine.npz"), "--target-bits", "6",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["float_accuracy"] == out["source_accuracy"] == m.score(x, y)
    assert out["test_samples"] == len(y) and out["calibration_samples"] == len(cal[1])


def test_skl2onnx_default_conversion_with_zipmap(wine):
    """skl2onnx's default classifier graph ends in a ZipMap of probabilities, which
    onnx.reference cannot run: the import checks against the graph up to the softmax only."""
    from skl2onnx import to_onnx as convert
    m, cal, (x, y) = wine
    model = convert(m, x[:1].astype(np.float32))
    assert "ZipMap" in {n.op_type for n in model.graph.node}
    design = pse_hdl.convert(model, calibration=cal, target_bits=6.0)
    np.testing.assert_array_equal(design.source.net.predict(x), m.predict(x))


def test_pytorch_style_onnx_and_npz_weights(tmp_path, capsys):
    d = load_digits()
    x, y = d.data / 16.0, d.target
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.4, random_state=1)
    m = fit(MLPClassifier((32,), max_iter=300, random_state=1), x_tr, y_tr)
    weights = [w.T for w in m.coefs_]
    model = torch_like_onnx(weights, m.intercepts_, [8, 8], final="Softmax")
    design = pse_hdl.convert(model, calibration=(x_tr[:300], y_tr[:300]), target_bits=5.0)
    np.testing.assert_array_equal(design.source.net.predict(x_te), m.predict(x_te))
    npz = tmp_path / "net.npz"
    np.savez(npz, n_layers=2, W0=weights[0], b0=m.intercepts_[0], W1=weights[1],
             b1=m.intercepts_[1])
    np.savetxt(tmp_path / "d.csv", np.hstack([x_te, y_te[:, None]]), delimiter=",")
    assert main(["run", str(npz), "--data", str(tmp_path / "d.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("source_accuracy", "float_accuracy", "pse_accuracy", "bits_per_weight",
                "mac_cycle_ratio", "int4_accuracy", "int8_accuracy"):
        assert key in out, key
    assert out["float_accuracy"] == out["source_accuracy"] > 0.9
    assert out["test_samples"] + out["calibration_samples"] == len(y_te)


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
    """``pse run``'s table ends with a note when a classifier's run scores below uniform int4
    at 4 bits or fewer: both figures, what a small network's layer descriptors cost, and masked
    layers where the configuration could mask but does not."""
    from pse_hdl.cli.run import int4_hint
    cfg = PSEConfig()
    run = {"task": "classification", "bits_per_weight": 3.9, "pse_accuracy": 0.90,
           "int4_accuracy": 0.92, "layers": [[32, 64], [10, 32]], "weights": 2368}
    note = int4_hint(run, cfg)
    assert note.startswith("note: uniform int4 scores more here (92.00 % at 4.0 bits/weight "
                           "against 90.00 % at 3.90)")
    assert "examples/input_masks.toml" in note and "descriptors" not in note
    small = int4_hint({**run, "layers": [[16, 4], [3, 16]], "weights": 112}, cfg)
    assert f"its 2 layer descriptors alone cost {2 * cfg.layer_desc_bits / 112:.2f}" in small
    assert "examples/input_masks.toml" not in int4_hint(run, PSEConfig(input_masks=True))
    assert "examples/input_masks.toml" not in int4_hint(run, PSEConfig(reversible=False))
    assert int4_hint({**run, "pse_accuracy": 0.92}, cfg) is None
    assert int4_hint({**run, "bits_per_weight": 4.5}, cfg) is None
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


# -- mistakes: one line, exit code 2 -------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory, binary):
    m, cal, (x, y) = binary
    d = tmp_path_factory.mktemp("bad")
    joblib.dump(m, d / "good.joblib")
    np.savez(d / "good.npz", x=x, y=y)
    (d / "garbage.onnx").write_bytes(b"\x00\x01not a protobuf\xff" * 10)
    (d / "garbage.npz").write_bytes(b"PK\x03\x04 broken")
    (d / "garbage.pkl").write_bytes(b"\x80\x05 not a pickle")
    (d / "model.txt").write_text("hello")
    w = [wt.T for wt in m.coefs_]
    np.savez(d / "missing.npz", n_layers=2, W0=w[0], b0=m.intercepts_[0], W1=w[1])
    np.savez(d / "nan.npz", n_layers=1, W0=np.full((2, 30), np.nan), b0=np.zeros(2))
    np.savez(d / "chain.npz", n_layers=2, W0=np.ones((4, 30)), b0=np.zeros(4),
             W1=np.ones((2, 5)), b1=np.zeros(2))
    joblib.dump(fit(LogisticRegression(max_iter=200), x, y), d / "logreg.joblib")
    joblib.dump(MLPClassifier((4,)), d / "unfitted.joblib")
    joblib.dump(fit(MLPClassifier((4,), activation="tanh", max_iter=50, random_state=0), x, y),
                d / "tanh.joblib")
    joblib.dump(fit(MLPClassifier((300,), max_iter=20, random_state=0), x, y), d / "wide.joblib")
    joblib.dump(fit(MLPClassifier((4, 4, 4, 4), max_iter=20, random_state=0), x, y),
                d / "deep.joblib")
    rng = np.random.default_rng(0)
    ws, bs = [rng.normal(size=(8, 30)), rng.normal(size=(2, 8))], [np.zeros(8), np.zeros(2)]
    onnx.save(torch_like_onnx(ws, bs, [30], extra="Tanh"), str(d / "tanh.onnx"))
    onnx.save(torch_like_onnx(ws, bs, [30], extra="Relu"), str(d / "relu_end.onnx"))
    two = torch_like_onnx(ws, bs, [30])
    two.graph.input.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [None, 30]))
    onnx.save(two, str(d / "two_inputs.onnx"))
    np.savez(d / "no_y.npz", x=x)
    np.savez(d / "x1d.npz", x=x[:, 0], y=y)
    np.savez(d / "short.npz", x=x[:10], y=y[:9])
    np.savez(d / "empty.npz", x=np.zeros((0, 30)), y=np.zeros(0))
    xn = x.copy()
    xn[3, 4] = np.nan
    np.savez(d / "nan_data.npz", x=xn, y=y)
    (d / "bad.csv").write_text("a,b,label\n1,2,0\n3,x,1\n")
    np.savez(d / "labels.npz", x=x, y=np.where(y == 1, 7, 0))
    np.savez(d / "features.npz", x=x[:, :5], y=y)
    np.savez(d / "half_calib.npz", x=x, y=y, x_calib=x[:20])
    return d


BAD = [
    # (arguments with {d} for the files, the message expected)
    (["run", "{d}/none.onnx", "--data", "{d}/good.npz"], "model file .* does not exist"),
    (["run", "{d}", "--data", "{d}/good.npz"], "is a directory, not a model file"),
    (["run", "{d}/model.txt", "--data", "{d}/good.npz"], "must end in one of .onnx, .npz"),
    (["run", "{d}/garbage.onnx", "--data", "{d}/good.npz"], "is not a readable ONNX model"),
    (["run", "{d}/garbage.npz", "--data", "{d}/good.npz"], "is not a readable .npz file"),
    (["run", "{d}/garbage.pkl", "--data", "{d}/good.npz"], "could not be unpickled"),
    (["run", "{d}/missing.npz", "--data", "{d}/good.npz"], "lacks b1"),
    (["run", "{d}/nan.npz", "--data", "{d}/good.npz"], "NaN or infinite weights"),
    (["run", "{d}/chain.npz", "--data", "{d}/good.npz"],
     "layer 1 takes 5 inputs but layer 0 has 4 outputs"),
    (["run", "{d}/logreg.joblib", "--data", "{d}/good.npz"],
     "must be an MLPClassifier or MLPRegressor, not LogisticRegression"),
    (["run", "{d}/unfitted.joblib", "--data", "{d}/good.npz"], "is not fitted"),
    (["run", "{d}/tanh.joblib", "--data", "{d}/good.npz"],
     "only ReLU hidden layers are supported, not activation='tanh'"),
    (["run", "{d}/tanh.onnx", "--data", "{d}/good.npz"],
     r"unsupported ONNX operation Tanh \(node '/Tanh'\)"),
    (["run", "{d}/relu_end.onnx", "--data", "{d}/good.npz"], "ends with a Relu"),
    (["run", "{d}/two_inputs.onnx", "--data", "{d}/good.npz"], "has one input, this graph has 2"),
    (["run", "{d}/good.joblib", "--data", "{d}/none.npz"], "data file .* does not exist"),
    (["run", "{d}/good.joblib", "--data", "{d}/no_y.npz"], "has no 'y'"),
    (["run", "{d}/good.joblib", "--data", "{d}/x1d.npz"], "'x' must have 2 dimension"),
    (["run", "{d}/good.joblib", "--data", "{d}/short.npz"], "x has 10 samples but y has 9"),
    (["run", "{d}/good.joblib", "--data", "{d}/empty.npz"], "'x' is empty"),
    (["run", "{d}/good.joblib", "--data", "{d}/nan_data.npz"], "'x' has NaN or infinite"),
    (["run", "{d}/good.joblib", "--data", "{d}/bad.csv"], "line 3: a cell is not a number"),
    (["run", "{d}/good.joblib", "--data", "{d}/labels.npz"],
     "7 is not one of the model's 2 classes"),
    (["run", "{d}/good.joblib", "--data", "{d}/features.npz"],
     "has 5 features but the model takes 30 inputs"),
    (["run", "{d}/good.joblib", "--data", "{d}/half_calib.npz"],
     "one of x_calib and y_calib without the other"),
    (["run", "{d}/wide.joblib", "--data", "{d}/good.npz"],
     r"layer 0 is 300x30 but the configuration allows at most 256x256 \(max_rows x max_cols\)"),
    (["run", "{d}/deep.joblib", "--data", "{d}/good.npz"],
     "the network has 5 layers but max_layers is 4"),
    (["run", "{d}/good.joblib", "--data", "{d}/good.npz", "--target-bits", "0.5"],
     r"no layout reaches 0.5 bits per weight .*: the smallest costs \d+\.\d\d"),
    (["run", "{d}/good.joblib", "--data", "{d}/good.npz", "--target-bits", "-1"],
     "target_bits must be a positive number"),
    (["run", "{d}/good.joblib", "--data", "{d}/good.npz", "--samples", "0"],
     "--samples must be at least 1"),
    (["run", "{d}/good.joblib", "--data", "{d}/good.npz", "--config", "huge"],
     "--config must be a preset"),
    (["run", "{d}/good.joblib", "--data", "{d}/good.npz", "--adapt", "3"],
     "--adapt must be FLOOR:CEILING in bits per weight"),
    (["run", "{d}/good.joblib", "--data", "{d}/good.npz", "--adapt", "5:9"],
     r"adapt must have floor <= target_bits <= ceiling, not 5.0 <= 4.5 <= 9.0"),
    (["run", "{d}/good.joblib", "--data", "{d}/good.npz", "--max-mac", "0"],
     r"max_mac must be a fraction of the dense 16-bit MAC cycles in \(0, 1\], not 0.0"),
    (["run", "{d}/good.joblib", "--data", "{d}/good.npz", "--max-mac", "0.001"],
     r"no layout within 4.5 bits per weight needs at most 0.001 of the dense 16-bit MAC "
     r"cycles \(max_mac\): the fewest need 0\.\d+; raise max_mac"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[f"{i:02d}" for i in range(len(BAD))])
def test_cli_mistakes_get_one_clear_line(files, args, message, capsys):
    assert main([a.format(d=files) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pse: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    import re
    assert re.search(message, err), err


def test_api_mistakes_name_the_problem(binary, monkeypatch):
    m, cal, (x, y) = binary
    with pytest.raises(InputError, match="needs calibration=\\(x, y\\)"):
        pse_hdl.convert(m)
    with pytest.raises(InputError, match="calibration x has 3 features but the model takes 30"):
        pse_hdl.convert(m, calibration=(cal[0][:, :3], cal[1]))
    with pytest.raises(ConfigError, match="preset must be one of|--config must be"):
        pse_hdl.convert(m, config="huge", calibration=cal)
    design = pse_hdl.convert(m, calibration=cal, target_bits=6.0)
    with pytest.raises(InputError, match="samples have NaN or infinite values"):
        design.predict(np.full((2, 30), np.nan))
    with pytest.raises(InputError, match="samples have 4 features"):
        design.predict(np.zeros((2, 4)))
    with pytest.raises(ConfigError, match="backend must be 'model', 'rtl' or 'board'"):
        design.run(x, backend="fpga")
    monkeypatch.delenv("PSE_PORT", raising=False)
    with pytest.raises(ConfigError, match="backend 'board' needs a serial port"):
        design.predict(x, backend="board")
    with pytest.raises(ConfigError, match="a waveform needs backend 'rtl'"):
        design.run(x, backend="board", port="sim", trace="w.vcd")
    with pytest.raises(InputError, match="does not exist"):
        pse_hdl.load("/no/such/design.npz")
    with pytest.raises(InputError, match="saved as .npz"):
        design.save("/tmp/design.json")
    with pytest.raises(InputError, match="must be a fitted scikit-learn MLP, an ONNX model"):
        pse_hdl.convert(object(), calibration=cal)


def test_a_bug_shows_its_traceback_and_says_it_is_a_bug(capsys, monkeypatch):
    import pse_hdl.cli as cli

    def broken(args):
        raise KeyError("oops")
    monkeypatch.setattr(cli, "cmd_generate", broken)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions[0].choices.values():
        if action.prog.endswith("generate"):
            action.set_defaults(func=broken)
    assert main(["generate", "--list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "KeyError: 'oops'" in err and "in broken" in err
    assert err.rstrip().splitlines()[-1].startswith("pse: internal error: a bug in pse-hdl")
    with pytest.raises(KeyError):
        main(["--debug", "generate", "--list"])
    with pytest.raises(KeyError):
        main(["generate", "--list", "--debug"])


def test_unpickling_is_documented():
    import pse_hdl.importers as imp
    assert "Unpickling" in imp.__doc__ and "trust" in imp.__doc__
    assert pickle  # the .pkl route is joblib's, which reads pickles


def test_integers_outside_the_hardware_widths_are_refused():
    """Already-quantized samples and the golden model's network are range-checked: a value the
    hardware cannot hold, a NaN or a fraction is an InputError naming the array."""
    from pse_hdl.config import PSEConfig
    from pse_hdl.errors import InputError
    from pse_hdl.model.engine import Engine, check_activations
    from pse_hdl.model.network import QuantLayer, QuantNet
    cfg = PSEConfig()
    with pytest.raises(InputError, match=r"quantized samples must lie in \[-128, 127\]"):
        check_activations(np.array([[0, 200]]), cfg, 2)
    with pytest.raises(InputError, match="quantized samples must be integers"):
        check_activations(np.array([[0.5, np.nan]]), cfg, 2)
    with pytest.raises(InputError, match="samples x 3 inputs"):
        check_activations(np.zeros((2, 2), int), cfg, 3)
    assert check_activations(np.array([[-128, 127.0]]), cfg, 2).dtype == np.int64

    def net(master, bias):
        layer = QuantLayer(np.array(master), np.array(bias), 7, 12, 8, False)
        return QuantNet([layer], [np.ones(len(master[0]), np.int64)])
    with pytest.raises(InputError, match=r"layer 0 master weights must lie in \[-32768, 32767\]"):
        Engine(net([[40000, 0]], [0]), cfg)
    with pytest.raises(InputError, match="layer 0 biases must lie in"):
        Engine(net([[1, 0]], [1 << 40]), cfg)
    with pytest.raises(InputError, match="layer 0 master weights must be integers"):
        Engine(net([[np.nan, 0.0]], [0]), cfg)


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
