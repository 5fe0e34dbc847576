"""Your own network, imported: scikit-learn models and Pipelines, ONNX from skl2onnx and
PyTorch's exporters, ``.npz`` weights, and data files, each checked against its source (the
rest of the API is in ``test_api``, the mistakes in ``test_api_mistakes``)."""

import csv
import json

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits, load_wine
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

import pse_hdl
from pse_hdl.cli import main
from tests.user_models import fit, to_onnx, torch_like_onnx


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


@pytest.mark.parametrize("view, constants, dynamo", [
    (True, False, False), (False, True, False), (True, True, False), (False, False, True),
    (True, True, True)])
def test_onnx_flattened_by_view_or_weighted_by_constant_nodes(view, constants, dynamo):
    """``x.view(x.size(0), -1)`` (a Shape read beside the Reshape), weights in Constant
    nodes, and PyTorch's dynamo exporter's Linear (the weight's Transpose, MatMul, Add), as
    exporters also write them, import faithfully."""
    d = load_digits()
    x, y = d.data / 16.0, d.target
    m = fit(MLPClassifier((32,), max_iter=300, random_state=1), x[:1000], y[:1000])
    model = torch_like_onnx([w.T for w in m.coefs_], m.intercepts_, [1, 8, 8], view=view,
                            constants=constants, dynamo=dynamo)
    assert ("Transpose" in {n.op_type for n in model.graph.node}) == dynamo
    assert ("Shape" in {n.op_type for n in model.graph.node}) == view
    assert (len(model.graph.initializer) <= 2) == constants
    design = pse_hdl.convert(model, calibration=(x[1000:1300], y[1000:1300]), target_bits=5.0)
    np.testing.assert_array_equal(design.source.net.predict(x[1300:]), m.predict(x[1300:]))
    assert design.score(x[1300:], y[1300:]) > 0.85


@pytest.mark.parametrize("scalers", [
    ("StandardScaler",), ("MinMaxScaler",), ("RobustScaler", "passthrough", "MaxAbsScaler")])
def test_a_pipeline_of_scalers_and_an_mlp(scalers, tmp_path):
    """A Pipeline of per-feature scalers ending in an MLP runs on raw samples: the scalers
    become one per-feature affine on the host (the float network reproduces the pipeline),
    saved and loaded with the design, and ``report()["input"]`` tells a host program of one's
    own how to make the engine's input words from a raw sample."""
    from sklearn import preprocessing
    from sklearn.pipeline import make_pipeline
    d = load_wine()
    x_tr, x_te, y_tr, y_te = train_test_split(d.data, d.target, test_size=0.5, random_state=0,
                                              stratify=d.target)
    steps = [s if s == "passthrough" else getattr(preprocessing, s)() for s in scalers]
    pipe = fit(make_pipeline(*steps, MLPClassifier((24,), max_iter=800, random_state=0)),
               x_tr, y_tr)
    design = pse_hdl.convert(pipe, calibration=(x_tr, y_tr), target_bits=6.0)
    np.testing.assert_array_equal(design.source.net.predict(x_te), pipe.predict(x_te))
    assert design.score(x_te, y_te) > 0.85
    design.save(tmp_path / "d.npz")
    again = pse_hdl.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(again.predict(x_te), design.predict(x_te))
    fmt = again.report()["input"]
    assert fmt["scaling"] == [s for s in scalers if s != "passthrough"]
    words = np.clip(np.round((x_te * fmt["scale"] + fmt["offset"]) * 2.0 ** fmt["frac_bits"]),
                    -2 ** (fmt["bits"] - 1), 2 ** (fmt["bits"] - 1) - 1)
    np.testing.assert_array_equal(words, design.quantize(x_te))
    if "passthrough" in scalers:
        return
    # skl2onnx writes the scalers as ai.onnx.ml Scaler nodes (a MinMaxScaler as a Mul and an
    # Add): the same import from the ONNX.
    from skl2onnx import to_onnx as convert
    model = convert(pipe, x_tr[:1].astype(np.float32))
    assert {n.op_type for n in model.graph.node} & {"Scaler", "Mul"}
    onnx_design = pse_hdl.convert(model, calibration=(x_tr, y_tr), target_bits=6.0)
    np.testing.assert_array_equal(onnx_design.source.net.predict(x_te), pipe.predict(x_te))
    assert onnx_design.report()["input"]["scaling"]


def test_onnx_batch_normalization_after_a_layer_is_folded_into_it():
    """nn.BatchNorm1d after nn.Linear (inference mode) is folded into the layer; the import's
    own check against the graph (onnx.reference) proves it faithful."""
    d = load_digits()
    x, y = d.data / 16.0, d.target
    m = fit(MLPClassifier((32, 16), max_iter=300, random_state=1), x[:1000], y[:1000])
    model = torch_like_onnx([w.T for w in m.coefs_], m.intercepts_, [64], batchnorm=True)
    assert sum(n.op_type == "BatchNormalization" for n in model.graph.node) == 2
    design = pse_hdl.convert(model, calibration=(x[1000:1300], y[1000:1300]), target_bits=5.0)
    assert [w.shape for w in design.source.net.weights] == [(32, 64), (16, 32), (10, 16)]
    assert design.score(x[1300:], y[1300:]) > 0.5


def test_onnx_exported_for_a_batch_of_one():
    """A graph exported for one sample at a time (its input's batch and its Reshape fixed at
    1) is checked against its source one sample at a time."""
    d = load_digits()
    x, y = d.data / 16.0, d.target
    m = fit(MLPClassifier((32,), max_iter=300, random_state=1), x[:1000], y[:1000])
    model = torch_like_onnx([w.T for w in m.coefs_], m.intercepts_, [1, 8, 8], batch=1)
    design = pse_hdl.convert(model, calibration=(x[1000:1300], y[1000:1300]), target_bits=5.0)
    np.testing.assert_array_equal(design.source.net.predict(x[1300:]), m.predict(x[1300:]))


@pytest.mark.parametrize("zipmap", [True, False])
def test_skl2onnx_of_a_classifier_of_class_names_keeps_them(wine, zipmap):
    """skl2onnx writes a classifier's class names after its probabilities (a ZipMap's labels,
    or the list its label output picks from): the import takes them, so its labels are the
    names, as the scikit-learn model's."""
    from skl2onnx import to_onnx as convert
    _, (x_tr, y_tr), (x_te, y_te) = wine
    names = np.array(["barolo", "grignolino", "barbera"])       # not in sorted order
    m = fit(MLPClassifier((24,), max_iter=800, random_state=0), x_tr, names[y_tr])
    model = convert(m, x_tr[:1].astype(np.float32),
                    options={} if zipmap else {id(m): {"zipmap": False}})
    assert ("ZipMap" in {n.op_type for n in model.graph.node}) == zipmap
    design = pse_hdl.convert(model, calibration=(x_tr, names[y_tr]), target_bits=6.0)
    assert list(design.source.classes) == list(m.classes_)
    imported = design.source.classes[design.source.net.predict(x_te)]
    np.testing.assert_array_equal(imported, m.predict(x_te))
    assert set(design.predict(x_te)) <= set(names)
    assert design.score(x_te, names[y_te]) > 0.9


def test_class_names_as_labels_from_csv_npz_and_python(wine, tmp_path, capsys):
    """A classifier trained on class names runs from data labelled with those names (a CSV
    with a header and quoted names, an .npz of strings) with the figures of the same classifier
    trained on numbers; the Python API predicts names."""
    _, (x_tr, y_tr), (x_te, y_te) = wine
    names = np.array(["cultivar, first", "cultivar, second", "cultivar, third"])  # sorted
    models = {"numbers": y_tr, "names": names[y_tr]}
    figures = {}
    for kind, labels in models.items():
        m = fit(MLPClassifier((24,), max_iter=800, random_state=0), x_tr, labels)
        joblib.dump(m, tmp_path / f"{kind}.joblib")
        y = y_te if kind == "numbers" else names[y_te]
        csv_path = tmp_path / f"{kind}.csv"
        with csv_path.open("w", newline="") as f:
            w = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
            w.writerow([f"feature {j}" for j in range(x_te.shape[1])] + ["cultivar"])
            w.writerows([[*map(float, row), label.item()] for row, label in zip(x_te, y)])
        np.savez(tmp_path / f"{kind}.npz", x=x_te, y=y)
        for data in ("csv", "npz"):
            assert main(["run", str(tmp_path / f"{kind}.joblib"), "--data",
                         str(tmp_path / f"{kind}.{data}"), "--json"]) == 0
            out = json.loads(capsys.readouterr().out)
            figures[kind, data] = {k: out[k] for k in (
                "test_samples", "source_accuracy", "float_accuracy", "int4_accuracy",
                "pse_accuracy", "bits_per_weight", "mac_cycle_ratio")}
        if kind == "names":
            design = pse_hdl.convert(m, calibration=(x_tr, labels), target_bits=6.0)
            assert set(design.predict(x_te)) <= set(names)
            assert design.score(x_te, y) == np.mean(design.predict(x_te) == y) > 0.9
    assert figures["numbers", "csv"]["source_accuracy"] > 0.9
    assert len({json.dumps(f, sort_keys=True) for f in figures.values()}) == 1, figures


def test_a_model_fitted_with_feature_names_runs_without_a_warning(binary, tmp_path, capsys):
    """An estimator fitted on a DataFrame knows its features' names; the data's arrays carry
    none (their columns are the features in order): no scikit-learn warning (the tests turn
    warnings into errors)."""
    import copy
    m, cal, (x, y) = binary
    named = copy.deepcopy(m)
    named.feature_names_in_ = np.array([f"feature {j}" for j in range(x.shape[1])], object)
    joblib.dump(named, tmp_path / "named.joblib")
    np.savez(tmp_path / "d.npz", x=x, y=y)
    assert main(["run", str(tmp_path / "named.joblib"), "--data", str(tmp_path / "d.npz"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source_accuracy"] > 0.9


def test_csv_with_commas_semicolons_or_tabs(binary, tmp_path, capsys):
    """A CSV's cells may be separated by commas, semicolons or tabs (a header with a separator
    inside quotes too): the same run."""
    m, cal, (x, y) = binary
    joblib.dump(m, tmp_path / "bc.joblib")
    figures = set()
    for name, sep in (("comma", ","), ("semicolon", ";"), ("tab", "\t")):
        path = tmp_path / f"{name}.csv"
        header = sep.join(f'"feature{sep} {j}"' for j in range(x.shape[1])) + f"{sep}label\n"
        path.write_text(header + "".join(sep.join(map(repr, map(float, row))) + f"{sep}{c}\n"
                                         for row, c in zip(x, y)))
        assert main(["run", str(tmp_path / "bc.joblib"), "--data", str(path), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["test_samples"] + out["calibration_samples"] == len(y)
        figures.add(json.dumps({k: out[k] for k in ("pse_accuracy", "bits_per_weight",
                                                    "source_accuracy")}))
    assert len(figures) == 1, figures
