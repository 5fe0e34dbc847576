"""The :class:`Source` every importer returns, the checks of its network, and the check that
an import reproduces its source (``check_reproduces``)."""

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..model.network import FloatMLP

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


def two_logits(weights, biases):
    """A two-class model's single output ``z`` as two logits ``(0, z)``, in place: their
    softmax is the sigmoid's, and their argmax (ties to the lowest) is class 1 exactly when
    ``z > 0``, as the source's prediction says."""
    weights[-1] = np.vstack([np.zeros_like(weights[-1]), weights[-1]])
    biases[-1] = np.concatenate([[0.0], biases[-1]])


def _check_net(weights, biases, what, relu=None):
    """The float network of ``weights`` and ``biases`` (``relu``: per layer, whether a ReLU
    follows it; default every hidden layer), refused in one line where they do not chain."""
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
                    [np.asarray(b, np.float64) for b in biases], relu=relu)



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
