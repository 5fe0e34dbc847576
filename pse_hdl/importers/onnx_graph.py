"""ONNX: the chain of MLP layers from a graph's input, checked against the graph evaluated by
``onnx.reference`` (no runtime needed)."""

from pathlib import Path

import numpy as np

from ..errors import InputError
from .source import Source, _check_net, two_logits

PASS_OPS = ("Cast", "Identity", "Dropout")
INPUT_OPS = ("Flatten", "Reshape")
FINAL_OPS = ("Softmax", "LogSoftmax", "Sigmoid")
LINEAR_MODELS = ("LinearClassifier", "LinearRegressor")   # ai.onnx.ml: skl2onnx's linear models
SUPPORTED = ("Gemm", "MatMul", "Add", "BatchNormalization", "Relu", "Scaler", "Mul", "Sub",
             "Div") + PASS_OPS + INPUT_OPS + FINAL_OPS + LINEAR_MODELS
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


def node_name(node):
    return node.name or f"{node.op_type} -> {', '.join(node.output)}"


def attr(node, key, default):
    """The value of ``node``'s attribute ``key`` (``default`` when it has none)."""
    from onnx import helper
    for a in node.attribute:
        if a.name == key:
            return helper.get_attribute_value(a)
    return default


class _Chain:
    """The walk from a graph's input along its chain of layers: each node read by the method of
    its kind, the layers (``weights``, ``biases``, ``relu``), the host's per-feature affine
    before the first (``in_scale``, ``in_offset``) and the node the logits end in (``final``, a
    softmax or sigmoid; ``linear``, an ai.onnx.ml linear model) as they are found."""

    def __init__(self, graph, init):
        self.graph, self.init = graph, init
        self.outputs = {o.name for o in graph.output}
        self.consumers = {}
        for node in graph.node:
            if node.op_type in SHAPE_OPS:
                continue                    # reads a tensor's shape, not its values
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.weights, self.biases, self.relu = [], [], []
        self.in_scale = self.in_offset = None   # skl2onnx's Scalers before the first layer
        self.scalers = []
        self.final = self.linear = None

    def const(self, node, name):
        if name not in self.init:
            raise InputError(f"ONNX node {node_name(node)!r}: operand {name!r} must be a "
                             f"constant (an initializer or a Constant node) for an MLP layer")
        return self.init[name]

    def walk(self, tensor):
        """Read the chain from ``tensor``, the graph's input; return the name of its logits
        (or of the softmax or sigmoid of them)."""
        while True:
            nxt = self.consumers.get(tensor, [])
            if not nxt or (self.weights and tensor in self.outputs):
                return tensor               # the logits (whatever reads them is not a layer)
            if len(nxt) > 1:
                if all(n.op_type not in SUPPORTED for n in nxt) and self.weights:
                    return tensor           # post-processing of the logits
                raise InputError(f"the ONNX graph branches after {tensor!r} (into "
                                 f"{', '.join(n.op_type for n in nxt)}): only a chain of "
                                 f"layers is supported")
            node = nxt[0]
            end = self.step(node, tensor)
            if end is not None:
                return end
            tensor = node.output[0]

    def feeds_a_layer(self, tensor):
        """Whether a Gemm or MatMul reads ``tensor``, directly or through other nodes."""
        seen, todo = set(), [tensor]
        while todo:
            for node in self.consumers.get(todo.pop(), []):
                if node.op_type in ("Gemm", "MatMul"):
                    return True
                if id(node) not in seen:
                    seen.add(id(node))
                    todo.extend(node.output)
        return False

    def step(self, node, tensor):
        """Read one node whose input is ``tensor``; when the chain ends with it, the name of the
        logits (or of their softmax or sigmoid), else ``None``."""
        op = node.op_type
        if op in PASS_OPS:
            return None
        if op == "Scaler" or (op in ARITH_OPS and not self.weights):
            self.scaler(node, tensor)
        elif op in INPUT_OPS:
            if self.weights and node.output[0] in self.outputs \
                    and not self.consumers.get(node.output[0]):
                return tensor               # the outputs reshaped: the logits are before it
            if self.weights:
                raise InputError(f"unsupported ONNX operation {op} between layers (node "
                                 f"{node_name(node)!r}): {op} is accepted before the first "
                                 f"layer only")
        elif op in ("Gemm", "MatMul"):
            self.layer(node)
        elif op in ("Add", "BatchNormalization", "Relu"):
            if not self.weights or self.relu[-1]:
                where = {"Add": "as the bias of a MatMul",
                         "BatchNormalization": "right after a layer (folded into it), not "
                                               "before the first or after a Relu",
                         "Relu": "after a layer"}[op]
                raise InputError(f"unsupported ONNX {op} (node {node_name(node)!r}): it is "
                                 f"accepted {where}")
            {"Add": self.bias, "BatchNormalization": self.batch_norm,
             "Relu": self.relu_after}[op](node, tensor)
        elif op in LINEAR_MODELS:
            self.linear_model(node)
            return tensor                   # its raw scores are read by _raw_scores
        elif op in FINAL_OPS:
            if self.feeds_a_layer(node.output[0]):
                raise InputError(f"unsupported ONNX {op} between layers (node "
                                 f"{node_name(node)!r}): the engine's hidden layers take a "
                                 f"Relu or no activation; {op} is accepted after the last "
                                 f"layer only")
            self.final = node
            return node.output[0]
        elif op in ARITH_OPS:
            raise InputError(f"unsupported ONNX {op} after a layer (node {node_name(node)!r}): "
                             f"a {op} by a constant is accepted before the first layer only")
        else:
            raise InputError(f"unsupported ONNX operation {op} (node {node_name(node)!r}); "
                             f"an MLP graph may use {', '.join(SUPPORTED)}")
        return None

    def scaler(self, node, tensor):
        """A per-feature affine before the first layer, on the host: ai.onnx.ml's Scaler,
        (x - offset) * scale (skl2onnx's StandardScaler), or a Mul, Add, Sub or Div by a
        constant (its MinMaxScaler)."""
        op = node.op_type
        if self.weights:
            raise InputError(f"unsupported ONNX Scaler between layers (node "
                             f"{node_name(node)!r}): it is accepted before the first layer "
                             f"only")
        if op == "Scaler":
            a = np.asarray(attr(node, "scale", [1.0]), np.float64)
            b = -np.asarray(attr(node, "offset", [0.0]), np.float64) * a
        else:
            other = [n for n in node.input if n != tensor]
            if len(other) != 1 or (op in ("Sub", "Div") and node.input[0] != tensor):
                raise InputError(f"unsupported ONNX {op} (node {node_name(node)!r}): before "
                                 f"the first layer the samples go through a {op} with a "
                                 f"constant only")
            c = self.const(node, other[0]).reshape(-1)
            a, b = {"Mul": (c, 0.0 * c), "Div": (1.0 / c, 0.0 * c),
                    "Add": (1.0 + 0.0 * c, c), "Sub": (1.0 + 0.0 * c, -c)}[op]
        self.in_scale, self.in_offset = (a, b) if self.in_scale is None else \
            (self.in_scale * a, self.in_offset * a + b)
        self.scalers.append(f"ONNX {op} {node_name(node)!r}")

    def layer(self, node):
        """A Gemm (weights, bias, ``alpha``, ``beta``, ``transB``) or a MatMul (no bias yet)."""
        if node.op_type == "MatMul":
            w, c = self.const(node, node.input[1]).T, None
        else:
            if attr(node, "transA", 0):
                raise InputError(f"unsupported Gemm with transA=1 (node {node_name(node)!r})")
            b = self.const(node, node.input[1])
            w = (b if attr(node, "transB", 0) else b.T) * attr(node, "alpha", 1.0)
            c = self.const(node, node.input[2]) * attr(node, "beta", 1.0) \
                if len(node.input) > 2 and node.input[2] else None
        self.weights.append(w)
        self.biases.append(np.zeros(w.shape[0]) if c is None
                           else np.broadcast_to(c.reshape(-1), (w.shape[0],)).copy())
        self.relu.append(False)

    def bias(self, node, tensor):
        other = [n for n in node.input if n != tensor]
        c = self.const(node, other[0]).reshape(-1)
        self.biases[-1] = self.biases[-1] + np.broadcast_to(c, self.biases[-1].shape)

    def batch_norm(self, node, tensor):
        """Inference-mode batch normalization after a layer, folded into it: each output scaled
        by gamma / sqrt(var + eps) and shifted (nn.BatchNorm1d after nn.Linear)."""
        if attr(node, "training_mode", 0) or len(node.output) > 1:
            raise InputError(f"ONNX BatchNormalization {node_name(node)!r} is in training "
                             f"mode: export the model in eval mode")
        gamma, beta, mean, var = (self.const(node, n).reshape(-1) for n in node.input[1:5])
        scale = gamma / np.sqrt(var + attr(node, "epsilon", 1e-5))
        self.weights[-1] = self.weights[-1] * scale[:, None]
        self.biases[-1] = (self.biases[-1] - mean) * scale + beta

    def relu_after(self, node, tensor):
        self.relu[-1] = True

    def linear_model(self, node):
        """skl2onnx's linear model as the last layer: its raw scores are the logits."""
        self.linear = node
        dims = [d.dim_value for d in self.graph.input[0].type.tensor_type.shape.dim]
        width = self.weights[-1].shape[0] if self.weights else \
            (dims[-1] if len(dims) == 2 else 0)
        w, b = _linear_model(node, node_name(node), width)
        self.weights.append(w)
        self.biases.append(b)
        self.relu.append(False)


def _load(model):
    import onnx
    if isinstance(model, (str, Path)):
        try:
            return onnx.load(str(model))
        except Exception as e:              # protobuf raises several types for a bad file
            raise InputError(f"{model} is not a readable ONNX model: {e}") from None
    return model


def from_onnx(model, kind="ONNX"):
    from onnx import numpy_helper
    model = _load(model)
    g = model.graph
    tensors = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    typed = {**tensors, **_constant_nodes(g)}
    _fold_constants(g, typed)
    init = {k: v.astype(np.float64) for k, v in typed.items() if v.dtype.kind in "biuf"}
    inputs = [i.name for i in g.input if i.name not in init]
    if len(inputs) != 1:
        raise InputError(f"an ONNX MLP has one input, this graph has {len(inputs)}: "
                         f"{', '.join(inputs) or 'none'}")
    chain = _Chain(g, init)
    tensor = chain.walk(inputs[0])
    weights, biases, relu, final, linear = (chain.weights, chain.biases, chain.relu,
                                            chain.final, chain.linear)
    if not weights:
        raise InputError("the ONNX graph has no Gemm or MatMul layer on its input's path")
    if relu[-1]:
        raise InputError("the ONNX graph ends with a Relu: the last layer must be linear (its "
                         "outputs are the logits)")
    compare = "logits"
    if final is not None:
        compare = {"Softmax": "softmax", "LogSoftmax": "log_softmax",
                   "Sigmoid": "sigmoid"}[final.op_type]
        if compare == "sigmoid" and weights[-1].shape[0] == 1:
            two_logits(weights, biases)
            compare = "sigmoid2"
        elif compare == "sigmoid":
            raise InputError("multi-label (several sigmoid outputs) ONNX models are not "
                             "supported")
    net = _check_net(weights, biases, kind, relu)      # a layer with no Relu after it: linear
    if chain.in_scale is not None:
        n = net.weights[0].shape[1]
        try:
            net.in_scale, net.in_offset = (np.broadcast_to(v, (n,)).astype(np.float64)
                                           for v in (chain.in_scale, chain.in_offset))
        except ValueError:
            raise InputError(f"the ONNX Scaler has {len(chain.in_scale)} factors but the first "
                             f"layer takes {n} inputs") from None
    if linear is not None:
        model, tensor = _raw_scores(model, linear)
        compare = "logits"
    reference = _onnx_reference(model, inputs[0], tensor)
    task = "classification" if final is not None else None
    classes = _onnx_classes(g, tensors)
    if linear is not None:
        task, classes = "regression", None
        if linear.op_type == "LinearClassifier":
            task, classes = "classification", _linear_classes(linear)
    if classes is not None and len(classes) != net.weights[-1].shape[0]:
        classes = None                      # not this network's outputs
    return Source(net, kind, task, classes, reference, compare,
                  info={"input_scaling": chain.scalers or None})


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


def _linear_model(node, name, width):
    """``(W, b)`` of an ai.onnx.ml ``LinearClassifier`` (a row per class) or
    ``LinearRegressor`` (a row per target) taking ``width`` features (0: not known)."""
    coef = np.asarray(attr(node, "coefficients", []), np.float64)
    if node.op_type == "LinearClassifier":
        rows, what = len(_linear_classes(node)), "class"
    else:
        rows, what = int(attr(node, "targets", 1)), "target"
    if not coef.size or coef.size != rows * (width or coef.size // max(rows, 1)):
        of = f" of {width} features" if width else ""
        raise InputError(f"ONNX {node.op_type} {name!r} has {coef.size} coefficients for "
                         f"{rows} {what}{'es' if what == 'class' else 's'}{of}: a row of "
                         f"coefficients per {what} is supported")
    b = np.asarray(attr(node, "intercepts", []), np.float64)
    if b.size not in (0, rows):
        raise InputError(f"ONNX {node.op_type} {name!r} has {b.size} intercepts for {rows} "
                         f"outputs")
    return coef.reshape(rows, -1), b if b.size else np.zeros(rows)


def _linear_classes(node):
    labels = attr(node, "classlabels_ints", None) or attr(node, "classlabels_strings", None)
    if not labels:
        raise InputError(f"ONNX LinearClassifier {node.name!r} names no class labels")
    return np.asarray([v.decode() if isinstance(v, bytes) else v for v in labels])


def _raw_scores(model, node):
    """A copy of ``model`` whose linear-model ``node`` gives its raw scores (no
    ``post_transform``), and the name of those scores: the logits the engine computes."""
    import onnx
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for n in m.graph.node:
        if list(n.output) == list(node.output):
            for a in n.attribute:
                if a.name == "post_transform":
                    a.s = b"NONE"
    return m, node.output[-1]


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
