"""Bring your own network: scikit-learn MLPs, ONNX graphs and ``.npz`` float weights, and data.

Every importer returns a :class:`Source`: the float network the engine will run (ReLU hidden
layers, or linear ones where the source has no activation, ``FloatMLP.relu``; a linear last
layer whose outputs are the logits or the regression values), what the task
is, the class labels, and the source's own predictor on float inputs. :func:`check_reproduces`
then runs both on the calibration data and refuses a network that does not reproduce its source
(within float tolerance), so a wrong import can never pass silently.

* **scikit-learn** (``scikit``): ``MLPClassifier`` (multi-class softmax, and two-class: its
  single logistic output ``z`` becomes two logits ``(0, z)``, whose argmax is the source's
  ``z > 0``) and ``MLPRegressor``, ReLU or identity hidden layers, and linear models (one layer:
  a classifier's ``decision_function``, a regressor's ``predict``), alone or last in a
  ``Pipeline`` of per-feature scalers (those before the first projection one affine the host
  applies, ``FloatMLP.in_scale``/``in_offset``) and projections (``PCA``, ``TruncatedSVD``:
  linear layers of the engine, the scalers after them folded in).
* **ONNX** (``onnx_graph``): the chain from the graph's input through ``Cast``, scalers and
  ``Flatten``/``Reshape`` (before the first layer), ``Gemm`` or ``MatMul`` (+ ``Add``), an
  inference-mode ``BatchNormalization`` (folded), ``Relu``, ``Identity``/``Dropout``, up to an
  optional final ``Softmax``/``LogSoftmax``/``Sigmoid`` or an ``ai.onnx.ml``
  ``LinearClassifier``/``LinearRegressor`` as the last layer (its raw scores the logits); a layer
  that no ``Relu`` follows is linear; what follows it (skl2onnx's label and
  probability post-processing) gives only the class names. Nodes of constants alone are folded
  first. Any other operation on the chain is refused by name and node. The source's outputs
  come from ``onnx.reference`` (no runtime needed).
* **.npz** (``models``): ``n_layers`` and, per layer l, float ``W{l}`` (outputs x inputs) and
  ``b{l}``; optionally ``relu``, a 0 or 1 per layer.

The user's data (``data``): ``.npz`` or CSV, labels as numbers or class names.

Unpickling (``.pkl``, ``.joblib``) runs code from the file, as scikit-learn's own loading does:
load only files you trust.
"""

from .data import (calibration_and_test, class_indices, infer_task, is_text, load_data,
                   split_calibration)
from .models import MODEL_SUFFIXES, from_npz, load_model, read_npz
from .onnx_graph import from_onnx
from .scikit import from_sklearn
from .source import Source, check_reproduces

__all__ = ["Source", "load_model", "load_data", "check_reproduces", "split_calibration",
           "class_indices", "read_npz", "infer_task", "calibration_and_test", "from_onnx",
           "from_sklearn", "from_npz", "is_text", "MODEL_SUFFIXES"]
