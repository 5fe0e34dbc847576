"""Bring your own network: scikit-learn MLPs, ONNX graphs and ``.npz`` float weights, and data.

Every importer returns a :class:`Source`: the float network the engine will run (ReLU hidden
layers, a linear last layer whose outputs are the logits or the regression values), what the task
is, the class labels, and the source's own predictor on float inputs. :func:`check_reproduces`
then runs both on the calibration data and refuses a network that does not reproduce its source
(within float tolerance), so a wrong import can never pass silently.

* **scikit-learn** ``MLPClassifier`` (multi-class softmax, and two-class: its single logistic
  output ``z`` becomes two logits ``(0, z)``, whose argmax is the source's ``z > 0``) and
  ``MLPRegressor``; ReLU hidden layers only.
* **ONNX**: the chain from the graph's input through ``Cast``, ``Flatten``/``Reshape`` (before
  the first layer), ``Gemm`` or ``MatMul`` (+ ``Add``), ``Relu``, ``Identity``/``Dropout``, up
  to an optional final ``Softmax``/``LogSoftmax``/``Sigmoid``; what follows it (skl2onnx's label
  and probability post-processing) is ignored. Any other operation on the chain is refused by
  name and node. The source's outputs come from ``onnx.reference`` (no runtime needed).
* **.npz**: ``n_layers`` and, per layer l, float ``W{l}`` (outputs x inputs) and ``b{l}``.

Unpickling (``.pkl``, ``.joblib``) runs code from the file, as scikit-learn's own loading does:
load only files you trust.
"""

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .model.network import FloatMLP

__all__ = ["Source", "load_model", "load_data", "check_reproduces", "split_calibration",
           "class_indices", "read_npz", "infer_task", "calibration_and_test"]

MODEL_SUFFIXES = (".onnx", ".npz", ".pkl", ".pickle", ".joblib")


@dataclass
class Source:
    net: FloatMLP                   # the float network the engine runs
    kind: str                       # where it came from, for messages and reports
    task: str = None                # "classification", "regression", or None (from the data)
    classes: np.ndarray = None      # class label of each output row (classification)
    reference: object = None        # x -> the source's own outputs (probabilities or values)
    compare: str = "logits"         # what ``reference`` returns: "logits", "softmax", "sigmoid"
    info: dict = field(default_factory=dict)

    @property
    def inputs(self):
        return self.net.weights[0].shape[1]

    @property
    def outputs(self):
        return self.net.weights[-1].shape[0]


def _check_net(weights, biases, what):
    for l, (w, b) in enumerate(zip(weights, biases)):
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise InputError(f"{what}: layer {l} has weights of shape {w.shape} and biases of "
                             f"shape {b.shape}; expected (outputs, inputs) and (outputs,)")
        if l and w.shape[1] != weights[l - 1].shape[0]:
            raise InputError(f"{what}: layer {l} takes {w.shape[1]} inputs but layer {l - 1} "
                             f"has {weights[l - 1].shape[0]} outputs")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise InputError(f"{what}: layer {l} has NaN or infinite weights or biases")
    if not weights:
        raise InputError(f"{what}: the network has no layer")
    return FloatMLP([np.asarray(w, np.float64) for w in weights],
                    [np.asarray(b, np.float64) for b in biases])


# -- scikit-learn -------------------------------------------------------------------------------

SCALERS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler")


def _scaler_affine(name, step, n):
    """``(scale, offset)`` of a fitted per-feature scaler: it maps ``x`` to
    ``x * scale + offset``."""
    kind = type(step).__name__
    ones, zeros = np.ones(n), np.zeros(n)

    def arr(v, default):
        return default if v is None else np.asarray(v, np.float64).reshape(-1)
    if kind == "StandardScaler":
        scale, mean = arr(getattr(step, "scale_", None), ones), arr(step.mean_, zeros)
        return 1.0 / scale, -mean / scale
    if kind == "RobustScaler":
        scale, center = arr(step.scale_, ones), arr(step.center_, zeros)
        return 1.0 / scale, -center / scale
    if kind == "MaxAbsScaler":
        return 1.0 / arr(step.scale_, ones), zeros
    if kind == "MinMaxScaler":
        if step.clip:
            raise InputError(f"Pipeline step {name!r}: a MinMaxScaler with clip=True is not a "
                             f"per-feature affine map; refit it with clip=False")
        return arr(step.scale_, ones), arr(step.min_, zeros)
    raise AssertionError(f"{kind} is not one of {SCALERS}")       # checked by the caller


def _from_pipeline(pipe, kind):
    """A Pipeline of per-feature scalers and an MLP last: the MLP, its samples scaled by the
    scalers on the host (one per-feature affine, ``FloatMLP.in_scale``/``in_offset``), checked
    against the whole pipeline."""
    if not pipe.steps:
        raise InputError("the Pipeline has no steps")
    name, last = pipe.steps[-1]
    source = from_sklearn(last, kind or f"scikit-learn Pipeline ({type(last).__name__})",
                          _reference_of=pipe)
    n = source.inputs
    scale, offset = np.ones(n), np.zeros(n)
    steps = [(k, s) for k, s in pipe.steps[:-1] if s is not None and s != "passthrough"]
    for step_name, step in steps:
        if type(step).__name__ not in SCALERS:
            raise InputError(f"Pipeline step {step_name!r} is a {type(step).__name__}: the "
                             f"steps before the MLP may be per-feature scalers "
                             f"({', '.join(SCALERS)}) or 'passthrough'")
    for step_name, step in steps:
        if not hasattr(step, "n_features_in_"):
            raise InputError(f"Pipeline step {step_name!r} is not fitted: fit the pipeline "
                             f"before converting it")
        if step.n_features_in_ != n:
            raise InputError(f"Pipeline step {step_name!r} takes {step.n_features_in_} "
                             f"features but the MLP takes {n}")
        a, b = _scaler_affine(step_name, step, n)
        scale, offset = scale * a, offset * a + b
    if not (np.all(np.isfinite(scale)) and np.all(np.isfinite(offset))):
        raise InputError("the Pipeline's scalers have infinite or NaN factors")
    source.net.in_scale, source.net.in_offset = scale, offset
    source.info["input_scaling"] = [type(s).__name__ for _, s in steps]
    return source


def from_sklearn(est, kind=None, _reference_of=None):
    """A Source of a fitted MLPClassifier or MLPRegressor, or of a Pipeline of per-feature
    scalers ending in one (``_reference_of``: the estimator whose outputs the import must
    reproduce, the whole pipeline for its MLP)."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline
    name = type(est).__name__
    if isinstance(est, Pipeline):
        return _from_pipeline(est, kind)
    if not isinstance(est, (MLPClassifier, MLPRegressor)):
        raise InputError(f"a scikit-learn model must be an MLPClassifier or MLPRegressor (or "
                         f"a Pipeline of scalers ending in one), not {name}")
    if not hasattr(est, "coefs_"):
        raise InputError(f"the {name} is not fitted: call fit() before converting it")
    if est.activation != "relu":
        raise InputError(f"only ReLU hidden layers are supported, not activation="
                         f"{est.activation!r}")
    weights = [np.asarray(w, np.float64).T for w in est.coefs_]
    biases = [np.asarray(b, np.float64) for b in est.intercepts_]
    kind = kind or f"scikit-learn {name}"

    def reference(method):
        """``method`` of the estimator on an array: one fitted on a DataFrame says that the
        array has no feature names; its columns are the features in order, as it was fitted."""
        def run(x):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "X does not have valid feature names")
                return np.asarray(method(x), np.float64).reshape(len(x), -1)
        return run
    whole = est if _reference_of is None else _reference_of
    if isinstance(est, MLPRegressor):
        net = _check_net(weights, biases, kind)
        return Source(net, kind, "regression", None, reference(whole.predict), "logits")
    if est.out_activation_ == "logistic":
        if weights[-1].shape[0] != 1:
            raise InputError(f"multi-label classifiers are not supported ({kind} with "
                             f"{weights[-1].shape[0]} logistic outputs)")
        # Two-class: P(class 1) = sigmoid(z). Two logits (0, z) have the same softmax, and
        # their argmax (ties to the lowest) is class 1 exactly when z > 0, as predict() says.
        weights[-1] = np.vstack([np.zeros_like(weights[-1]), weights[-1]])
        biases[-1] = np.concatenate([[0.0], biases[-1]])
    net = _check_net(weights, biases, kind)
    return Source(net, kind, "classification", np.asarray(est.classes_),
                  reference(whole.predict_proba), "softmax")


# -- ONNX -------------------------------------------------------------------------------------

PASS_OPS = ("Cast", "Identity", "Dropout")
INPUT_OPS = ("Flatten", "Reshape")
FINAL_OPS = ("Softmax", "LogSoftmax", "Sigmoid")
SUPPORTED = ("Gemm", "MatMul", "Add", "BatchNormalization", "Relu", "Scaler", "Mul", "Sub",
             "Div") + PASS_OPS + INPUT_OPS + FINAL_OPS
ARITH_OPS = ("Mul", "Div", "Add", "Sub")   # by a constant, before the first layer
SHAPE_OPS = ("Shape", "Size")       # read a tensor's shape only (x.view(x.size(0), -1))


def _constant_nodes(graph):
    """``{output: array}`` of the graph's numeric ``Constant`` nodes (exporters write weights
    and shapes as those as well as initializers), in their own types."""
    from onnx import helper, numpy_helper
    out = {}
    for node in graph.node:
        if node.op_type != "Constant" or len(node.attribute) != 1:
            continue
        a = node.attribute[0]
        value = helper.get_attribute_value(a)
        if a.name == "value":
            value = numpy_helper.to_array(value)
        elif a.name not in ("value_float", "value_floats", "value_int", "value_ints"):
            continue                        # sparse or string constants: no MLP operand
        out[node.output[0]] = np.asarray(value)
    return out


def _fold_constants(graph, constants):
    """Add to ``constants`` (name: array) the outputs of the nodes whose inputs are all
    constants (the ``Transpose`` of a weight that PyTorch's dynamo exporter writes before a
    ``MatMul``, a ``Cast``), each evaluated once by ``onnx.reference``. Nodes are in
    topological order, as ONNX requires, so one pass folds chains of them. A node it cannot
    evaluate stays for the walk, which names it if a layer needs its output."""
    from onnx.reference import ReferenceEvaluator
    for node in graph.node:
        if (node.op_type == "Constant" or not node.input or node.domain not in ("", "ai.onnx")
                or not all(name in constants for name in node.input if name)):
            continue
        try:
            outs = ReferenceEvaluator(node).run(
                None, {name: constants[name] for name in node.input if name})
        except Exception:                   # the evaluator's own, for an unfoldable node
            continue
        constants.update((name, np.asarray(v)) for name, v in zip(node.output, outs))


def from_onnx(model, kind="ONNX"):
    import onnx
    from onnx import numpy_helper
    if isinstance(model, (str, Path)):
        try:
            model = onnx.load(str(model))
        except Exception as e:              # protobuf raises several types for a bad file
            raise InputError(f"{model} is not a readable ONNX model: {e}") from None
    g = model.graph
    tensors = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    typed = {**tensors, **_constant_nodes(g)}
    _fold_constants(g, typed)
    init = {k: v.astype(np.float64) for k, v in typed.items() if v.dtype.kind in "biuf"}
    inputs = [i.name for i in g.input if i.name not in init]
    if len(inputs) != 1:
        raise InputError(f"an ONNX MLP has one input, this graph has {len(inputs)}: "
                         f"{', '.join(inputs) or 'none'}")
    consumers = {}
    for node in g.node:
        if node.op_type in SHAPE_OPS:
            continue                        # reads a tensor's shape, not its values
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in g.output}

    def node_name(node):
        return node.name or f"{node.op_type} -> {', '.join(node.output)}"

    def const(node, name):
        if name not in init:
            raise InputError(f"ONNX node {node_name(node)!r}: operand {name!r} must be a "
                             f"constant (an initializer or a Constant node) for an MLP layer")
        return init[name]

    def attr(node, key, default):
        for a in node.attribute:
            if a.name == key:
                return onnx.helper.get_attribute_value(a)
        return default

    weights, biases, relu = [], [], []
    tensor, final = inputs[0], None
    in_scale = in_offset = None             # skl2onnx's Scalers before the first layer
    scalers = []
    while True:
        nxt = consumers.get(tensor, [])
        if not nxt or (weights and tensor in outputs):
            break                           # the logits (whatever reads them is not a layer)
        if len(nxt) > 1:
            ops = ", ".join(n.op_type for n in nxt)
            if all(n.op_type not in SUPPORTED for n in nxt) and weights:
                break                       # post-processing of the logits
            raise InputError(f"the ONNX graph branches after {tensor!r} (into {ops}): only a "
                             f"chain of layers is supported")
        node = nxt[0]
        op = node.op_type
        if op in PASS_OPS:
            pass
        elif op == "Scaler" or (op in ARITH_OPS and not weights):
            # A per-feature affine before the first layer, on the host: ai.onnx.ml's Scaler,
            # (x - offset) * scale (skl2onnx's StandardScaler), or a Mul, Add, Sub or Div by a
            # constant (its MinMaxScaler).
            if weights:
                raise InputError(f"unsupported ONNX Scaler between layers (node "
                                 f"{node_name(node)!r}): it is accepted before the first "
                                 f"layer only")
            if op == "Scaler":
                a = np.asarray(attr(node, "scale", [1.0]), np.float64)
                b = -np.asarray(attr(node, "offset", [0.0]), np.float64) * a
            else:
                other = [n for n in node.input if n != tensor]
                if len(other) != 1 or (op in ("Sub", "Div") and node.input[0] != tensor):
                    raise InputError(f"unsupported ONNX {op} (node {node_name(node)!r}): "
                                     f"before the first layer the samples go through a {op} "
                                     f"with a constant only")
                c = const(node, other[0]).reshape(-1)
                a, b = {"Mul": (c, 0.0 * c), "Div": (1.0 / c, 0.0 * c),
                        "Add": (1.0 + 0.0 * c, c), "Sub": (1.0 + 0.0 * c, -c)}[op]
            in_scale, in_offset = (a, b) if in_scale is None else \
                (in_scale * a, in_offset * a + b)
            scalers.append(f"ONNX {op} {node_name(node)!r}")
        elif op in INPUT_OPS:
            if weights and node.output[0] in outputs and not consumers.get(node.output[0]):
                break                       # the outputs reshaped: the logits are before it
            if weights:
                raise InputError(f"unsupported ONNX operation {op} between layers (node "
                                 f"{node_name(node)!r}): {op} is accepted before the first "
                                 f"layer only")
        elif op == "Gemm":
            if attr(node, "transA", 0):
                raise InputError(f"unsupported Gemm with transA=1 (node {node_name(node)!r})")
            b = const(node, node.input[1])
            w = b if attr(node, "transB", 0) else b.T
            w = w * attr(node, "alpha", 1.0)
            c = const(node, node.input[2]) * attr(node, "beta", 1.0) if len(node.input) > 2 \
                and node.input[2] else np.zeros(w.shape[0])
            weights.append(w)
            biases.append(np.broadcast_to(c.reshape(-1), (w.shape[0],)).copy())
            relu.append(False)
        elif op == "MatMul":
            w = const(node, node.input[1]).T
            weights.append(w)
            biases.append(np.zeros(w.shape[0]))
            relu.append(False)
        elif op == "Add":
            if not weights or relu[-1]:
                raise InputError(f"unsupported ONNX Add (node {node_name(node)!r}): an Add is "
                                 f"accepted as the bias of a MatMul")
            other = [n for n in node.input if n != tensor]
            c = const(node, other[0]).reshape(-1)
            biases[-1] = biases[-1] + np.broadcast_to(c, biases[-1].shape)
        elif op == "BatchNormalization":
            # Inference-mode batch normalization after a layer, folded into it: each output
            # scaled by gamma / sqrt(var + eps) and shifted (nn.BatchNorm1d after nn.Linear).
            if not weights or relu[-1]:
                raise InputError(f"unsupported ONNX BatchNormalization (node "
                                 f"{node_name(node)!r}): it is accepted right after a layer "
                                 f"(folded into it), not before the first or after a Relu")
            if attr(node, "training_mode", 0) or len(node.output) > 1:
                raise InputError(f"ONNX BatchNormalization {node_name(node)!r} is in training "
                                 f"mode: export the model in eval mode")
            gamma, beta, mean, var = (const(node, n).reshape(-1) for n in node.input[1:5])
            scale = gamma / np.sqrt(var + attr(node, "epsilon", 1e-5))
            weights[-1] = weights[-1] * scale[:, None]
            biases[-1] = (biases[-1] - mean) * scale + beta
        elif op == "Relu":
            if not weights or relu[-1]:
                raise InputError(f"unsupported ONNX Relu (node {node_name(node)!r}): a Relu is "
                                 f"accepted after a layer")
            relu[-1] = True
        elif op in FINAL_OPS:
            final = node
            tensor = node.output[0]
            break
        elif op in ARITH_OPS:
            raise InputError(f"unsupported ONNX {op} after a layer (node {node_name(node)!r}): "
                             f"a {op} by a constant is accepted before the first layer only")
        else:
            raise InputError(f"unsupported ONNX operation {op} (node {node_name(node)!r}); "
                             f"an MLP graph may use {', '.join(SUPPORTED)}")
        tensor = node.output[0]
    if not weights:
        raise InputError("the ONNX graph has no Gemm or MatMul layer on its input's path")
    if relu[-1]:
        raise InputError("the ONNX graph ends with a Relu: the last layer must be linear (its "
                         "outputs are the logits)")
    if not all(relu[:-1]):
        l = relu.index(False)
        raise InputError(f"layer {l} of the ONNX graph has no Relu after it: hidden layers "
                         f"must be ReLU")
    compare = "logits"
    if final is not None:
        compare = {"Softmax": "softmax", "LogSoftmax": "log_softmax",
                   "Sigmoid": "sigmoid"}[final.op_type]
        if compare == "sigmoid" and weights[-1].shape[0] == 1:
            weights[-1] = np.vstack([np.zeros_like(weights[-1]), weights[-1]])
            biases[-1] = np.concatenate([[0.0], biases[-1]])
            compare = "sigmoid2"
        elif compare == "sigmoid":
            raise InputError("multi-label (several sigmoid outputs) ONNX models are not "
                             "supported")
    net = _check_net(weights, biases, kind)
    if in_scale is not None:
        n = net.weights[0].shape[1]
        try:
            net.in_scale, net.in_offset = (np.broadcast_to(v, (n,)).astype(np.float64)
                                           for v in (in_scale, in_offset))
        except ValueError:
            raise InputError(f"the ONNX Scaler has {len(in_scale)} factors but the first layer "
                             f"takes {n} inputs") from None
    reference = _onnx_reference(model, inputs[0], tensor)
    task = "classification" if final is not None else None
    classes = _onnx_classes(g, tensors)
    if classes is not None and len(classes) != net.weights[-1].shape[0]:
        classes = None                      # not this network's outputs
    return Source(net, kind, task, classes, reference, compare,
                  info={"input_scaling": scalers or None})


def _onnx_classes(graph, tensors):
    """The class labels a classifier's graph names after its probabilities (skl2onnx: a
    ``ZipMap``'s ``classlabels_strings``/``classlabels_int64s``, or the constant list an
    ``ArrayFeatureExtractor`` picks the ``ArgMax``'s label from), or ``None``."""
    from onnx import helper

    def names(values):
        return np.array([v.decode() if isinstance(v, bytes) else v for v in values])
    for node in graph.node:
        if node.op_type == "ZipMap":
            for a in node.attribute:
                if a.name in ("classlabels_strings", "classlabels_int64s"):
                    return names(helper.get_attribute_value(a))
    argmax = {n.output[0] for n in graph.node if n.op_type == "ArgMax"}
    for node in graph.node:
        if (node.op_type == "ArrayFeatureExtractor" and node.input[0] in tensors
                and node.input[1] in argmax):
            return names(tensors[node.input[0]].ravel())
    return None


def _onnx_reference(model, input_name, output_name):
    """The graph from ``input_name`` to ``output_name`` evaluated in float by
    ``onnx.reference``. Only that part is kept: what follows (skl2onnx's ``ZipMap`` of
    probabilities, label post-processing) may use operations the reference evaluator lacks."""
    import onnx
    from onnx.reference import ReferenceEvaluator
    m = onnx.ModelProto()
    m.CopyFrom(model)
    if output_name not in {o.name for o in m.graph.output}:
        m.graph.output.append(onnx.helper.make_tensor_value_info(output_name,
                                                                 onnx.TensorProto.FLOAT, None))
    m = onnx.utils.Extractor(m).extract_model([input_name], [output_name])
    evaluator = ReferenceEvaluator(m)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]

    def run(x):
        x = np.asarray(x, np.float32)
        if len(shape) > 2 and all(shape[1:]):
            x = x.reshape([len(x)] + shape[1:])
        # A graph exported for a batch of one (its Reshapes' shapes fixed) takes one at a time.
        batches = [x[i:i + 1] for i in range(len(x))] if shape and shape[0] == 1 else [x]
        try:
            out = [evaluator.run([output_name], {input_name: b})[0] for b in batches]
        except Exception as e:                  # the reference evaluator's, for this graph
            raise InputError(f"the ONNX graph cannot be evaluated on {len(x)} samples of "
                             f"shape {list(x.shape[1:])} ({type(e).__name__}: {e})") from None
        return np.concatenate([np.asarray(o, np.float64).reshape(len(b), -1)
                               for o, b in zip(out, batches)])
    return run


# -- .npz ---------------------------------------------------------------------------------------

def read_npz(path):
    """The arrays of an ``.npz`` file, read at once (no file left open, no pickles)."""
    import io
    try:
        with np.load(io.BytesIO(Path(path).read_bytes()), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:                  # zip, format and value errors of a broken file
        raise InputError(f"{path} is not a readable .npz file: {e}") from None


def from_npz(path):
    z = read_npz(path)
    if "n_layers" not in z:
        raise InputError(f"{path} has no 'n_layers': a network .npz has n_layers and, per "
                         f"layer l, W{{l}} (outputs x inputs) and b{{l}}")
    n = int(z["n_layers"])
    missing = [k for l in range(n) for k in (f"W{l}", f"b{l}") if k not in z]
    if missing:
        raise InputError(f"{path} lacks {', '.join(missing)} (float weights W{{l}} and "
                         f"biases b{{l}} of every layer)")
    net = _check_net([z[f"W{l}"] for l in range(n)], [z[f"b{l}"] for l in range(n)],
                     str(path))
    return Source(net, f".npz {Path(path).name}")


# -- any model ----------------------------------------------------------------------------------

def load_model(model):
    """A :class:`Source` from a fitted scikit-learn MLP, an ``onnx.ModelProto``, or a path to an
    ``.onnx``, ``.npz``, ``.pkl``/``.pickle``/``.joblib`` file."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.exists():
            raise InputError(f"model file {str(path)!r} does not exist")
        if path.is_dir():
            raise InputError(f"model {str(path)!r} is a directory, not a model file")
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            return from_onnx(path, f"ONNX {path.name}")
        if suffix == ".npz":
            return from_npz(path)
        if suffix in (".pkl", ".pickle", ".joblib"):
            import joblib
            try:
                est = joblib.load(path)
            except Exception as e:          # unpickling raises many types for a bad file
                raise InputError(f"{path} could not be unpickled ({type(e).__name__}: "
                                 f"{e})") from None
            return from_sklearn(est, f"scikit-learn {type(est).__name__} ({path.name})")
        raise InputError(f"model file {str(path)!r} must end in one of "
                         f"{', '.join(MODEL_SUFFIXES)}")
    if type(model).__module__.startswith("onnx"):
        return from_onnx(model)
    if type(model).__module__.startswith("sklearn"):
        return from_sklearn(model)
    raise InputError(f"a model must be a fitted scikit-learn MLP, an ONNX model or a path to "
                     f"one of {', '.join(MODEL_SUFFIXES)}, not {type(model).__name__}")


def check_reproduces(source, x):
    """Refuse an import whose float network does not give the source's outputs on ``x``."""
    if source.reference is None:
        return
    ours = source.net.forward(x)[-1]
    if source.compare in ("softmax", "sigmoid2"):
        e = np.exp(ours - ours.max(axis=1, keepdims=True))
        ours = e / e.sum(axis=1, keepdims=True)
    elif source.compare == "log_softmax":
        m = ours.max(axis=1, keepdims=True)
        ours = ours - m - np.log(np.exp(ours - m).sum(axis=1, keepdims=True))
    theirs = source.reference(x)
    if source.compare == "sigmoid2" and theirs.shape[1] == 1:
        theirs = np.hstack([1 - theirs, theirs])
    if theirs.shape != ours.shape:
        raise InputError(f"the imported {source.kind} gives outputs of shape {ours.shape} but "
                         f"the source gives {theirs.shape}: the import is not faithful")
    tol = 1e-6 if source.kind.startswith("scikit") else 1e-4
    err = float(np.max(np.abs(theirs - ours) / (1 + np.abs(theirs)))) if ours.size else 0.0
    if not err <= tol:
        raise InputError(f"the imported {source.kind} does not reproduce its source on the "
                         f"calibration data (largest relative difference {err:.3g}, allowed "
                         f"{tol:g}): refusing a wrong import")


# -- data -------------------------------------------------------------------------------------

def is_text(a):
    """Whether ``a`` holds text (class names) rather than numbers."""
    return np.asarray(a).dtype.kind in "USO"


def _text_labels(name, a, what):
    """Class names as a ``str`` array (bytes decoded); anything else in an object array is an
    error."""
    if a.dtype.kind == "S":
        a = np.char.decode(a, "utf-8", errors="replace")
    elif a.dtype.kind == "O":
        bad = next((v for v in a.ravel() if not isinstance(v, str)), None)
        if bad is not None:
            raise InputError(f"{what}: '{name}' mixes text with {type(bad).__name__} values "
                             f"like {bad!r}: labels are all numbers or all class names")
    return a.astype(str)


def _array(name, a, ndim, what, labels=False):
    """``a`` checked: ``ndim`` dimensions, not empty, finite numbers (or, with ``labels``, class
    names: text)."""
    a = np.asarray(a)
    if labels and is_text(a):
        a = _text_labels(name, a, what)
        if a.ndim != ndim:
            raise InputError(f"{what}: '{name}' must have {ndim} dimension(s), not shape "
                             f"{a.shape}")
        if a.shape[0] == 0:
            raise InputError(f"{what}: '{name}' is empty")
        return a
    if a.dtype.kind not in "biuf":
        raise InputError(f"{what}: '{name}' must be numeric"
                         f"{' (or class names)' if labels else ''}, not {a.dtype}")
    if labels and a.ndim == 2 and ndim == 1:
        raise InputError(f"{what}: '{name}' has {a.shape[1]} columns: one label or target per "
                         f"sample is supported (not multi-output or multi-label models)")
    if a.ndim != ndim:
        raise InputError(f"{what}: '{name}' must have {ndim} dimension(s), not shape {a.shape}")
    if a.shape[0] == 0:
        raise InputError(f"{what}: '{name}' is empty")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{what}: '{name}' has NaN or infinite values")
    return a


def load_data(path):
    """``{"x", "y"[, "x_calib", "y_calib"]}`` from an ``.npz`` (those keys) or a CSV (numbers,
    the last column the label or target, an optional header line)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"data file {str(path)!r} does not exist")
    if path.is_dir():
        raise InputError(f"data {str(path)!r} is a directory, not a data file")
    what = f"data file {path.name}"
    if path.suffix.lower() == ".npz":
        z = read_npz(path)
        for k in ("x", "y"):
            if k not in z:
                raise InputError(f"{what} has no '{k}': a data .npz holds x (samples x "
                                 f"features), y (labels or targets) and optionally "
                                 f"x_calib, y_calib")
        out = {k: z[k] for k in ("x", "y", "x_calib", "y_calib") if k in z}
        if ("x_calib" in out) != ("y_calib" in out):
            raise InputError(f"{what} has one of x_calib and y_calib without the other")
    elif path.suffix.lower() == ".csv":
        out = _read_csv(path, what)
    else:
        raise InputError(f"data file {str(path)!r} must be an .npz (x, y) or a .csv")
    for x, y in (("x", "y"), ("x_calib", "y_calib")):
        if x in out:
            out[x] = _array(x, out[x], 2, what).astype(np.float64)
            out[y] = _array(y, out[y], 1, what, labels=True)
            if len(out[x]) != len(out[y]):
                raise InputError(f"{what}: {x} has {len(out[x])} samples but {y} has "
                                 f"{len(out[y])}")
    return out


def _number(cell):
    try:
        return float(cell)
    except ValueError:
        return None


def _read_csv(path, what):
    """``{"x", "y"}`` of a CSV (cells separated by commas, or the semicolons or tabs some
    locales and tools write instead): numbers, the last column the label or target (numbers,
    or class names), an optional header line (the first, if a feature cell of it is not a
    number, or its label is not while the other rows' are)."""
    import csv
    text = path.read_text(errors="replace")
    try:
        delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t").delimiter
    except csv.Error:                           # one column, or nothing alike on every line
        delimiter = ","
    rows = [(n, [c.strip() for c in r])
            for n, r in enumerate(csv.reader(text.splitlines(), delimiter=delimiter), start=1)
            if any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"{what} has no rows of numbers")
    if len({len(r) for _, r in rows}) != 1 or len(rows[0][1]) < 2:
        raise InputError(f"{what}: every row needs the same number of columns, at least "
                         f"two (features, then the label)")
    numeric = all(_number(r[-1]) is not None for _, r in rows[1:])
    first = rows[0][1]
    if any(_number(c) is None for c in first[:-1]) or (numeric and len(rows) > 1
                                                       and _number(first[-1]) is None):
        rows = rows[1:]                         # a header
        if not rows:
            raise InputError(f"{what} has a header and no rows of numbers")
    x = np.empty((len(rows), len(rows[0][1]) - 1))
    for i, (n, cells) in enumerate(rows):
        for j, c in enumerate(cells[:-1]):
            v = _number(c)
            if v is None:
                raise InputError(f"{what}, line {n}, column {j + 1}: {c[:40]!r} is not a "
                                 f"number (every column but the last is a feature)")
            x[i, j] = v
    labels = [r[-1] for _, r in rows]
    numeric = all(_number(c) is not None for c in labels)
    return {"x": x, "y": np.array([float(c) for c in labels] if numeric else labels)}


def class_indices(source, y, what="labels"):
    """Labels to output rows (classification); a label the model does not know is an error."""
    y = np.asarray(y)
    classes = source.classes if source.classes is not None else np.arange(source.outputs)
    if source.classes is None and is_text(y):
        raise InputError(f"{what} are class names (like {str(y.ravel()[0])!r}) but the "
                         f"{source.kind} names none: its outputs are classes "
                         f"0..{source.outputs - 1}, give those numbers")
    if source.classes is None and y.dtype.kind not in "biuf":
        raise InputError(f"{what} must be class numbers 0..{source.outputs - 1}, not {y.dtype}")
    if source.classes is None and np.any(y != np.round(y)):
        raise InputError(f"{what} must be class numbers 0..{source.outputs - 1} for a "
                         f"classifier, not fractions like {y[y != np.round(y)][0]!r}")
    lookup = {v.item() if hasattr(v, "item") else v: i for i, v in enumerate(classes)}
    out = np.empty(len(y), np.int64)
    for i, v in enumerate(y):
        key = v.item() if hasattr(v, "item") else v
        if key not in lookup:
            raise InputError(f"{what}: {key!r} is not one of the model's {len(classes)} classes "
                             f"({', '.join(map(str, classes[:10]))}"
                             f"{', ...' if len(classes) > 10 else ''})")
        out[i] = lookup[key]
    return out


def infer_task(source, y):
    """The source's task, or from the labels where the source does not say (ONNX without a
    final activation, .npz): whole numbers and several outputs make a classifier."""
    if source.task:
        return source.task
    y = np.asarray(y)
    integral = y.dtype.kind in "biu" or (y.dtype.kind == "f" and np.all(y == np.round(y)))
    return "classification" if (integral or is_text(y)) and source.outputs > 1 \
        else "regression"


def calibration_and_test(source, data):
    """``(task, (x_cal, y_cal), (x_test, y_test))`` of loaded data: its calibration arrays, or a
    :func:`split_calibration` of its samples."""
    task = infer_task(source, data["y"])
    if "x_calib" in data:
        return task, (data["x_calib"], data["y_calib"]), (data["x"], data["y"])
    cal, test = split_calibration(data["x"], data["y"], stratify=task == "classification")
    return task, cal, test


def split_calibration(x, y, fraction=0.3, seed=0, stratify=True):
    """A deterministic calibration / test split: ``fraction`` of the samples (at least one) for
    calibration, stratified by label where every class has two samples or more."""
    from sklearn.model_selection import train_test_split
    n = len(x)
    if n < 2:
        raise InputError(f"the data has {n} sample: at least 2 are needed to split off "
                         f"calibration samples (or give x_calib, y_calib)")
    k = max(1, int(round(fraction * n)))
    labels = y if stratify and np.all(np.unique(y, return_counts=True)[1] >= 2) else None
    try:
        x_test, x_cal, y_test, y_cal = train_test_split(x, y, test_size=k, random_state=seed,
                                                        stratify=labels)
    except ValueError:
        x_test, x_cal, y_test, y_cal = train_test_split(x, y, test_size=k, random_state=seed)
    return (x_cal, y_cal), (x_test, y_test)
