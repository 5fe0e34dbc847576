"""scikit-learn: a fitted ``MLPClassifier`` or ``MLPRegressor``, or a ``Pipeline`` of
per-feature scalers ending in one (the scalers become one per-feature affine on the host)."""

import warnings

import numpy as np

from ..errors import InputError
from .source import Source, _check_net

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
