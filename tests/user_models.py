"""What the API tests share to build users' networks: a quiet scikit-learn fit, and ONNX MLPs
as torch.onnx.export writes them (the fitted two-class MLP is ``conftest.binary``)."""

import warnings

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from sklearn.exceptions import ConvergenceWarning

__all__ = ["fit", "torch_like_onnx"]


def fit(est, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(x, y)


def torch_like_onnx(weights, biases, in_shape, final=None, extra=None, view=False,
                    constants=False, batch=None, dynamo=False, batchnorm=False):
    """An ONNX MLP as torch.onnx.export writes Linear/ReLU stacks: Flatten, Gemm with
    transB=1, Relu, ..., optionally a final activation or an extra node. ``view``: the input
    flattened as ``x.view(x.size(0), -1)`` exports it (Shape, Gather, Concat, Reshape);
    ``constants``: the weights and biases in ``Constant`` nodes instead of initializers;
    ``batch``: exported for that batch size only (the input's first dimension, and a Reshape
    to ``[batch, -1]``, fixed); ``dynamo``: each Linear as ``torch.onnx.export(...,
    dynamo=True)`` writes it (PyTorch 2.6): the weight's Transpose, MatMul, Add;
    ``batchnorm``: an inference-mode BatchNormalization after every hidden layer (random
    statistics, seed 0), as nn.BatchNorm1d exports."""
    rng = np.random.default_rng(0)
    if batch:
        inits = [numpy_helper.from_array(np.array([batch, -1], np.int64), "to")]
        nodes = [helper.make_node("Reshape", ["input", "to"], ["flat"], name="/Reshape")]
    elif view:
        inits = [numpy_helper.from_array(np.array([0], np.int64), "zero"),
                 numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
        nodes = [helper.make_node("Shape", ["input"], ["shape"], name="/Shape"),
                 helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0, name="/Gather"),
                 helper.make_node("Concat", ["n", "minus1"], ["to"], axis=0, name="/Concat"),
                 helper.make_node("Reshape", ["input", "to"], ["flat"], name="/Reshape")]
    else:
        inits, nodes = [], [helper.make_node("Flatten", ["input"], ["flat"], name="/Flatten")]
    t = "flat"
    for l, (w, b) in enumerate(zip(weights, biases)):
        tensors = [numpy_helper.from_array(w.astype(np.float32), f"w{l}"),
                   numpy_helper.from_array(b.astype(np.float32), f"b{l}")]
        if constants:
            nodes += [helper.make_node("Constant", [], [c.name], value=c, name=f"/{c.name}")
                      for c in tensors]
        else:
            inits += tensors
        if dynamo:
            nodes += [helper.make_node("Transpose", [f"w{l}"], [f"wt{l}"], perm=[1, 0],
                                       name=f"node_Transpose_{l}"),
                      helper.make_node("MatMul", [t, f"wt{l}"], [f"m{l}"],
                                       name=f"node_MatMul_{l}"),
                      helper.make_node("Add", [f"m{l}", f"b{l}"], [f"g{l}"],
                                       name=f"node_Add_{l}")]
        else:
            nodes.append(helper.make_node("Gemm", [t, f"w{l}", f"b{l}"], [f"g{l}"], transB=1,
                                          name=f"/fc{l}/Gemm"))
        t = f"g{l}"
        if batchnorm and l < len(weights) - 1:
            n = w.shape[0]
            stats = {"gamma": rng.uniform(0.5, 2, n), "beta": rng.normal(0, 0.5, n),
                     "mean": rng.normal(0, 0.5, n), "var": rng.uniform(0.5, 2, n)}
            inits += [numpy_helper.from_array(v.astype(np.float32), f"bn{l}_{k}")
                      for k, v in stats.items()]
            nodes.append(helper.make_node("BatchNormalization",
                                          [t] + [f"bn{l}_{k}" for k in stats], [f"n{l}"],
                                          epsilon=1e-5, name=f"/bn{l}/BatchNormalization"))
            t = f"n{l}"
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
                                                     [batch or None, *in_shape])],
        [helper.make_tensor_value_info(t, TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def to_onnx(m, x):
    """A scikit-learn model converted by skl2onnx, probabilities as a tensor (no ZipMap)."""
    from skl2onnx import to_onnx as convert
    return convert(m, x[:1].astype(np.float32), options={id(m): {"zipmap": False}})
