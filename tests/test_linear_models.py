"""Linear layers: scikit-learn linear models (one layer), PCA and TruncatedSVD steps of a
Pipeline (a linear layer of the engine), identity-activation MLPs, ONNX graphs with a layer that
no Relu follows and skl2onnx's ``LinearClassifier``/``LinearRegressor``; the same numbers from
the engine's Verilog."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.linear_model import LogisticRegression, Perceptron, Ridge, RidgeClassifier
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import LinearSVC

import pse_hdl
from pse_hdl.cli import main
from pse_hdl.config import PSEConfig
from pse_hdl.importers import check_reproduces, load_model
from tests.user_models import fit, torch_like_onnx

SMALL = dict(max_rows=32, max_cols=32, zone_depth=1024, master_depth=4096, max_layers=3)


@pytest.fixture(scope="module")
def raw_wine():
    """Wine as it comes (features from 0.1 to 1680: the pipelines scale them)."""
    d = load_wine()
    x_tr, x_te, y_tr, y_te = train_test_split(d.data, d.target, test_size=0.5, random_state=0,
                                              stratify=d.target)
    return (x_tr, y_tr), (x_te, y_te)


def logits_of(source, x):
    return source.net.forward(x)[-1]


@pytest.mark.parametrize("est", [LogisticRegression(max_iter=2000), LinearSVC(),
                                 RidgeClassifier(), Perceptron(random_state=0)],
                         ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("classes", [2, 3])
def test_a_linear_classifier_is_one_layer_of_its_decision_function(raw_wine, est, classes):
    """Its logits are ``decision_function``'s (a two-class model's one score ``z`` as the
    logits ``(0, z)``), so its argmax is ``predict``'s, and the host scales the samples."""
    (x, y), (xt, yt) = raw_wine
    keep, keep_t = y < classes, yt < classes
    pipe = fit(make_pipeline(StandardScaler(), est), x[keep], y[keep])
    source = load_model(pipe)
    assert [w.shape for w in source.net.weights] == [(max(classes, 2), 13)]
    assert source.task == "classification" and source.compare == "logits"
    assert source.info["input_scaling"] == ["StandardScaler"]
    check_reproduces(source, xt[keep_t])
    z = np.asarray(pipe.decision_function(xt[keep_t])).reshape(keep_t.sum(), -1)
    ours = logits_of(source, xt[keep_t])
    np.testing.assert_allclose(ours[:, 1:] if classes == 2 else ours, z, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(source.classes[np.argmax(ours, axis=1)],
                                  pipe.predict(xt[keep_t]))


def test_pca_steps_become_a_linear_layer_and_the_scalers_around_them_fold(raw_wine):
    """Scalers before the first projection stay on the host; a whitened PCA becomes layer 0 of
    the engine, without a ReLU, with the scaler after it folded into it; the network gives
    ``predict_proba`` (checked by the import) and keeps its shape through save and load."""
    (x, y), (xt, yt) = raw_wine
    pipe = fit(make_pipeline(MinMaxScaler(), StandardScaler(), PCA(6, whiten=True),
                             StandardScaler(), MLPClassifier((16,), max_iter=1500, random_state=0)),
               x, y)
    source = load_model(pipe)
    assert [w.shape for w in source.net.weights] == [(6, 13), (16, 6), (3, 16)]
    assert source.net.relu == [False, True, False]
    assert source.info["input_scaling"] == ["MinMaxScaler", "StandardScaler"]
    assert source.info["projections"] == ["PCA"]
    check_reproduces(source, xt)
    e = np.exp(logits_of(source, xt) - logits_of(source, xt).max(axis=1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), pipe.predict_proba(xt),
                               atol=1e-9)


def test_a_linear_layer_is_quantized_without_a_relu_and_saved_with_its_flag(raw_wine, tmp_path):
    (x, y), (xt, yt) = raw_wine
    pipe = fit(make_pipeline(StandardScaler(), PCA(6), MLPClassifier((16,), max_iter=1500,
                                                                      random_state=0)), x, y)
    design = pse_hdl.convert(pipe, config=PSEConfig(**SMALL), calibration=(x, y),
                             target_bits=8.0)
    assert [q.relu for q in design.qnet.layers] == [False, True, False]
    acts = design.engine().infer(design.quantize(xt))
    assert (acts[1] < 0).any()                  # layer 1 takes signed activations
    design.save(tmp_path / "d.npz")
    again = pse_hdl.load(tmp_path / "d.npz")
    assert again.source.net.relu == [False, True, False]
    np.testing.assert_array_equal(again.predict(xt), design.predict(xt))


def test_an_identity_mlp_and_a_regressor_behind_a_truncated_svd(raw_wine):
    (x, y), (xt, yt) = raw_wine
    mlp = fit(MLPClassifier((8, 8), activation="identity", max_iter=800, random_state=0),
              StandardScaler().fit_transform(x), y)
    source = load_model(mlp)
    assert source.net.relu == [False, False, False]
    check_reproduces(source, StandardScaler().fit(x).transform(xt))
    reg = fit(make_pipeline(StandardScaler(), TruncatedSVD(5, random_state=0), Ridge()), x,
              x[:, 0] + x[:, 12] / 100)
    source = load_model(reg)
    assert source.task == "regression" and source.net.relu == [False, False]
    check_reproduces(source, xt)
    np.testing.assert_allclose(logits_of(source, xt)[:, 0], reg.predict(xt), rtol=1e-9)


def test_onnx_linear_models_and_layers_without_a_relu(raw_wine, tmp_path):
    """skl2onnx's LinearClassifier (scored by its raw scores, whatever its post_transform) and
    LinearRegressor, and a torch-like graph whose first layer no Relu follows."""
    from skl2onnx import to_onnx
    (x, y), (xt, yt) = raw_wine
    for classes in (2, 3):
        keep = y < classes
        pipe = fit(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                   x[keep], y[keep])
        model = to_onnx(pipe, x[:1].astype(np.float32), options={id(pipe[-1]): {"zipmap": False}})
        source = load_model(model)
        assert source.task == "classification" and list(source.classes) == list(range(classes))
        check_reproduces(source, xt[yt < classes])
        np.testing.assert_array_equal(np.argmax(logits_of(source, xt), axis=1),
                                      pipe.predict(xt))
    reg = fit(make_pipeline(StandardScaler(), Ridge()), x, x[:, 0])
    source = load_model(to_onnx(reg, x[:1].astype(np.float32)))
    assert source.task == "regression"
    check_reproduces(source, xt)
    rng = np.random.default_rng(1)
    ws = [rng.normal(size=(5, 13)), rng.normal(size=(8, 5)), rng.normal(size=(3, 8))]
    graph = torch_like_onnx(ws, [np.zeros(5), np.zeros(8), np.zeros(3)], [13])
    graph.graph.node.remove([n for n in graph.graph.node if n.name == "/relu0/Relu"][0])
    graph.graph.node[2].input[0] = "g0"                     # fc1 reads fc0 directly
    source = load_model(graph)
    assert source.net.relu == [False, True, False]
    check_reproduces(source, xt)


def test_pse_run_takes_a_linear_model_and_says_what_its_inputs_lose(raw_wine, tmp_path, capsys):
    """``pse run`` on a logistic regression of the raw wine features (one input scale for
    features from 0.1 to 1680): its int8 loses to the float model, and the note says which
    features starve and what to do; with the scaler in a Pipeline no note."""
    import joblib
    (x, y), (xt, yt) = raw_wine
    np.savez(tmp_path / "data.npz", x=np.concatenate([x, xt]), y=np.concatenate([y, yt]))
    joblib.dump(fit(LogisticRegression(max_iter=5000), x, y), tmp_path / "raw.joblib")
    joblib.dump(fit(make_pipeline(StandardScaler(), PCA(8), LogisticRegression(max_iter=2000)),
                    x, y), tmp_path / "scaled.joblib")
    args = ["--data", str(tmp_path / "data.npz"), "--target-bits", "9"]
    assert main(["run", str(tmp_path / "raw.joblib"), *args]) == 0
    out = capsys.readouterr().out
    assert "linear 13 -> 3, 39 weights" in out
    note = [line for line in out.splitlines() if line.startswith("note: uniform int8 loses")]
    assert len(note) == 1 and "input features reach fewer than 4 of layer 0's 8-bit" in note[0]
    assert "--equalize balances them" in note[0]
    assert main(["run", str(tmp_path / "raw.joblib"), *args, "--equalize", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["equalize"] and result["int8_accuracy"] > result["float_accuracy"] - 0.05
    assert main(["run", str(tmp_path / "scaled.joblib"), *args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["layers"] == [[8, 13], [3, 8]] and result["relu"] == [False, False]
    assert main(["run", str(tmp_path / "scaled.joblib"), *args]) == 0
    out = capsys.readouterr().out
    assert "hidden layers without a ReLU (linear)" in out and "0 (PCA)" in out
    assert "note: uniform int8 loses" not in out


def test_a_linear_hidden_layer_through_the_rtl_equals_the_model(raw_wine):
    (x, y), (xt, yt) = raw_wine
    pipe = fit(make_pipeline(StandardScaler(), PCA(8, whiten=True),
                             MLPClassifier((16,), max_iter=1500, random_state=0)), x, y)
    design = pse_hdl.convert(pipe, config=PSEConfig(**SMALL), calibration=(x, y),
                             target_bits=6.0)
    logits, figures = design.run(xt[:40], backend="rtl")
    assert figures["bit_exact"] and figures["samples"] == 40
    np.testing.assert_array_equal(logits, design.run(xt[:40])[0])


def test_equalization_balances_the_inputs_and_keeps_the_function(raw_wine, tmp_path):
    """``FloatMLP.equalized``: the same outputs, each input's range on the calibration data
    equal to its weight column's; ``convert(equalize=True)`` then gives a logistic
    regression of the raw features its accuracy back at 8 and 4 bits, and the flag is saved."""
    (x, y), (xt, yt) = raw_wine
    lr = fit(LogisticRegression(max_iter=5000), x, y)
    source = load_model(lr)
    net, s = source.net.equalized(x)
    np.testing.assert_allclose(net.forward(xt)[-1], source.net.forward(xt)[-1], rtol=1e-9,
                               atol=1e-9)
    np.testing.assert_allclose(np.abs(net.prepare(x)).max(axis=0),
                               np.abs(net.weights[0]).max(axis=0), rtol=1e-12)
    assert s.max() / s.min() > 100                   # the features' ranges differ that much
    cfg = PSEConfig(**SMALL)
    plain = pse_hdl.convert(lr, config=cfg, calibration=(x, y), target_bits=9.0)
    equal = pse_hdl.convert(lr, config=cfg, calibration=(x, y), target_bits=9.0, equalize=True)
    for bits in (8, 4):
        assert equal.uniform_score(xt, yt, bits) > plain.uniform_score(xt, yt, bits) + 0.2
    assert equal.score(xt, yt) > plain.score(xt, yt) + 0.2
    assert equal.report()["input"]["equalized"] and not plain.report()["input"]["equalized"]
    equal.save(tmp_path / "eq.npz")
    again = pse_hdl.load(tmp_path / "eq.npz")
    assert again.report()["input"]["equalized"]
    np.testing.assert_array_equal(again.predict(xt), equal.predict(xt))
    with pytest.raises(pse_hdl.errors.ConfigError, match="equalize must be True or False"):
        pse_hdl.convert(lr, config=cfg, calibration=(x, y), equalize="yes")
