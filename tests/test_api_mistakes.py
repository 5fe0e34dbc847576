"""The errors a user's mistakes get from the Python API and ``pse run``: one line naming the
problem, exit code 2, no traceback; and a bug's traceback, said to be one."""

import pickle

import joblib
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import PoissonRegressor
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor

import pse_hdl
from pse_hdl.cli import main
from pse_hdl.errors import ConfigError, InputError
from tests.user_models import fit, torch_like_onnx


# -- mistakes: one line, exit code 2 -------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory, binary):
    m, cal, (x, y) = binary
    d = tmp_path_factory.mktemp("bad")
    joblib.dump(m, d / "good.joblib")
    np.savez(d / "good.npz", x=x, y=y)
    # A network of a few dozen weights: its descriptors alone are over the default budget.
    joblib.dump(fit(MLPClassifier(hidden_layer_sizes=(2,), max_iter=50, random_state=0),
                    x[:, :4], y), d / "tiny.joblib")
    np.savez(d / "tiny.npz", x=x[:, :4], y=y)
    (d / "garbage.onnx").write_bytes(b"\x00\x01not a protobuf\xff" * 10)
    (d / "garbage.npz").write_bytes(b"PK\x03\x04 broken")
    (d / "garbage.pkl").write_bytes(b"\x80\x05 not a pickle")
    (d / "model.txt").write_text("hello")
    w = [wt.T for wt in m.coefs_]
    np.savez(d / "missing.npz", n_layers=2, W0=w[0], b0=m.intercepts_[0], W1=w[1])
    np.savez(d / "nan.npz", n_layers=1, W0=np.full((2, 30), np.nan), b0=np.zeros(2))
    np.savez(d / "relu.npz", n_layers=2, W0=w[0], b0=m.intercepts_[0], W1=w[1],
             b1=m.intercepts_[1], relu=[1, 1])
    np.savez(d / "chain.npz", n_layers=2, W0=np.ones((4, 30)), b0=np.zeros(4),
             W1=np.ones((2, 5)), b1=np.zeros(2))
    joblib.dump(fit(KNeighborsClassifier(), x, y), d / "knn.joblib")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, PolynomialFeatures, StandardScaler
    for name, steps in (("poly", [StandardScaler(), PolynomialFeatures(2)]),
                        ("clip", [MinMaxScaler(clip=True)]), ("pipe_glm", [StandardScaler()])):
        last = PoissonRegressor() if name == "pipe_glm" else \
            MLPClassifier((4,), max_iter=50, random_state=0)
        joblib.dump(fit(make_pipeline(*steps, last), x, y), d / f"{name}.joblib")
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
    onnx.save(torch_like_onnx(ws, bs, [30], batch=4), str(d / "batch4.onnx"))
    bn_first = torch_like_onnx(ws, bs, [30])
    bn_first.graph.initializer.extend(numpy_helper.from_array(np.ones(30, np.float32), k)
                                      for k in ("g", "b", "m", "v"))
    bn_first.graph.node[0].op_type = "BatchNormalization"       # the Flatten's place
    bn_first.graph.node[0].input.extend(["g", "b", "m", "v"])
    onnx.save(bn_first, str(d / "bn_first.onnx"))
    mul_after = torch_like_onnx(ws, bs, [30])
    mul_after.graph.node[2].op_type = "Mul"             # the first Relu, now a Mul by b0
    mul_after.graph.node[2].input.append("b0")
    onnx.save(mul_after, str(d / "mul_after.onnx"))
    for final in ("Sigmoid", "Softmax"):                  # a final activation as a hidden one
        hidden = torch_like_onnx(ws, bs, [30])
        hidden.graph.node[2].op_type = final
        onnx.save(hidden, str(d / f"{final.lower()}_hidden.onnx"))
    np.savez(d / "no_y.npz", x=x)
    np.savez(d / "x1d.npz", x=x[:, 0], y=y)
    np.savez(d / "short.npz", x=x[:10], y=y[:9])
    np.savez(d / "y2d.npz", x=x, y=np.stack([y, 1 - y], axis=1))
    np.savez(d / "empty.npz", x=np.zeros((0, 30)), y=np.zeros(0))
    xn = x.copy()
    xn[3, 4] = np.nan
    np.savez(d / "nan_data.npz", x=xn, y=y)
    (d / "bad.csv").write_text("a,b,label\n1,2,0\n3,x,1\n")
    np.savez(d / "labels.npz", x=x, y=np.where(y == 1, 7, 0))
    np.savez(d / "names.npz", x=x, y=np.array(["benign", "malignant"])[y])
    (d / "names.csv").write_text("".join(",".join(map(str, row)) + f",{['no', 'yes'][c]}\n"
                                         for row, c in zip(x, y)))
    np.savez(d / "net.npz", n_layers=2, W0=w[0], b0=m.intercepts_[0],     # two outputs
             W1=np.vstack([-w[1], w[1]]), b1=np.hstack([-m.intercepts_[1], m.intercepts_[1]]))
    joblib.dump(fit(MLPRegressor(hidden_layer_sizes=(4,), max_iter=50, random_state=0), x, y.astype(float)),
                d / "regressor.joblib")
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
    (["run", "{d}/garbage.pkl", "--data", "{d}/good.npz"], r"could not be unpickled \(\w+: "),
    (["run", "{d}/missing.npz", "--data", "{d}/good.npz"], "lacks b1"),
    (["run", "{d}/nan.npz", "--data", "{d}/good.npz"], "NaN or infinite weights"),
    (["run", "{d}/relu.npz", "--data", "{d}/good.npz"],
     r"'relu' must hold a 0 or 1 per layer \(2\), whether a ReLU follows it, the last 0 \(the "
     r"logits\), not \[1, 1\]"),
    (["run", "{d}/chain.npz", "--data", "{d}/good.npz"],
     "layer 1 takes 5 inputs but layer 0 has 4 outputs"),
    (["run", "{d}/knn.joblib", "--data", "{d}/good.npz"],
     r"must be an MLPClassifier or MLPRegressor, a linear model \(LogisticRegression, .*\), or "
     r"a Pipeline of scalers and PCA ending in one, not KNeighborsClassifier"),
    (["run", "{d}/unfitted.joblib", "--data", "{d}/good.npz"], "is not fitted"),
    (["run", "{d}/poly.joblib", "--data", "{d}/good.npz"],
     r"Pipeline step 'polynomialfeatures' is a PolynomialFeatures: the steps before the model "
     r"may be per-feature scalers \(.*\), projections \(PCA, TruncatedSVD\) or 'passthrough'"),
    (["run", "{d}/clip.joblib", "--data", "{d}/good.npz"],
     "a MinMaxScaler with clip=True is not a per-feature affine map"),
    (["run", "{d}/pipe_glm.joblib", "--data", "{d}/good.npz"],
     r"must be an MLPClassifier or MLPRegressor, a linear model .*, not PoissonRegressor"),
    (["run", "{d}/tanh.joblib", "--data", "{d}/good.npz"],
     "only ReLU or identity hidden layers are supported, not activation='tanh'"),
    (["run", "{d}/tanh.onnx", "--data", "{d}/good.npz"],
     r"unsupported ONNX operation Tanh \(node '/Tanh'\)"),
    (["run", "{d}/relu_end.onnx", "--data", "{d}/good.npz"], "ends with a Relu"),
    (["run", "{d}/two_inputs.onnx", "--data", "{d}/good.npz"], "has one input, this graph has 2"),
    (["run", "{d}/mul_after.onnx", "--data", "{d}/good.npz"],
     r"unsupported ONNX Mul after a layer \(node '/relu0/Relu'\): a Mul by a constant is "
     r"accepted before the first layer only"),
    *[(["run", f"{{d}}/{op.lower()}_hidden.onnx", "--data", "{d}/good.npz"],
       rf"unsupported ONNX {op} between layers \(node '/relu0/Relu'\): the engine's hidden "
       rf"layers take a Relu or no activation; {op} is accepted after the last layer only")
      for op in ("Sigmoid", "Softmax")],
    (["run", "{d}/bn_first.onnx", "--data", "{d}/good.npz"],
     r"unsupported ONNX BatchNormalization \(node '/Flatten'\): it is accepted right after a "
     r"layer"),
    (["run", "{d}/batch4.onnx", "--data", "{d}/good.npz"],
     r"the ONNX graph cannot be evaluated on \d+ samples of shape \[30\] \(\w+: "),
    (["run", "{d}/good.joblib", "--data", "{d}/none.npz"], "data file .* does not exist"),
    (["run", "{d}/good.joblib", "--data", "{d}/no_y.npz"], "has no 'y'"),
    (["run", "{d}/good.joblib", "--data", "{d}/x1d.npz"], "'x' must have 2 dimension"),
    (["run", "{d}/good.joblib", "--data", "{d}/short.npz"], "x has 10 samples but y has 9"),
    (["run", "{d}/good.joblib", "--data", "{d}/y2d.npz"],
     "'y' has 2 columns: one label or target per sample is supported"),
    (["run", "{d}/good.joblib", "--data", "{d}/empty.npz"], "'x' is empty"),
    (["run", "{d}/good.joblib", "--data", "{d}/nan_data.npz"], "'x' has NaN or infinite"),
    (["run", "{d}/good.joblib", "--data", "{d}/bad.csv"],
     "line 3, column 2: 'x' is not a number"),
    (["run", "{d}/good.joblib", "--data", "{d}/names.npz"],
     "'(benign|malignant)' is not one of the model's 2 classes"),
    (["run", "{d}/good.joblib", "--data", "{d}/names.csv"],       # no header: every row data
     r"calibration labels: '(no|yes)' is not one of the model's 2 classes \(0, 1\)"),
    (["run", "{d}/net.npz", "--data", "{d}/names.npz"],
     r"labels are class names \(like '\w+'\) but the .* names none: its outputs are classes "
     r"0..1, give those numbers"),
    (["run", "{d}/regressor.joblib", "--data", "{d}/names.npz"],
     "calibration targets must be numbers for a regressor, not text like '(benign|malignant)'"),
    (["run", "{d}/good.joblib", "--data", "{d}/labels.npz"],
     "7 is not one of the model's 2 classes"),
    (["run", "{d}/good.joblib", "--data", "{d}/features.npz"],
     r"data file features.npz: its samples \('x'\) have 5 features but the model takes 30 "
     r"inputs"),
    (["run", "{d}/good.joblib", "--data", "{d}/half_calib.npz"],
     "one of x_calib and y_calib without the other"),
    (["run", "{d}/wide.joblib", "--data", "{d}/good.npz"],
     r"layer 0 is 300x30 but the configuration allows at most 256x256 \(max_rows x max_cols\)"),
    (["run", "{d}/deep.joblib", "--data", "{d}/good.npz"],
     "the network has 5 layers but max_layers is 4"),
    (["run", "{d}/good.joblib", "--data", "{d}/good.npz", "--target-bits", "0.5"],
     r"no layout of this network \(\d+ weights\) reaches --target-bits 0.5 .*: the smallest "
     r"costs \d+\.\d\d; give --target-bits \d+(\.\d+)? or more, --max-loss 0.01 to choose "
     r"the bits from the accuracy or --fit to size the engine"),
    (["run", "{d}/tiny.joblib", "--data", "{d}/tiny.npz"],
     r"no layout of this network \(12 weights\) reaches the default budget, 4.5 bits per "
     r"weight .*: the smallest costs \d+\.\d\d; give --target-bits \d+(\.\d+)? or more, "
     r"--max-loss 0.01 .* or --fit"),
    (["run", "{d}/tiny.joblib", "--data", "{d}/tiny.npz", "--fit", "--max-loss", "0.01",
      "--target-bits", "2"],
     r"reaches --target-bits 2 .*; give --target-bits \d+(\.\d+)? or more$"),
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
    design = pse_hdl.convert(m, calibration=cal, target_bits=6.0)
    with pytest.raises(InputError, match="5 samples but 4 labels or targets: one each"):
        design.score(x[:5], y[:4])
    with pytest.raises(InputError, match="5 samples but 6 labels or targets"):
        design.uniform_score(x[:5], y[:6], 4)
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
    with pytest.raises(InputError, match="must be a fitted scikit-learn model .*, an ONNX model"):
        pse_hdl.convert(object(), calibration=cal)


def test_loading_a_file_that_is_not_a_design_names_what_it_lacks(files):
    with pytest.raises(InputError, match=r"good.npz is not a saved pse-hdl design: it has no "
                                         r"'pse_design' \(Design.save writes one\)"):
        pse_hdl.load(files / "good.npz")


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
