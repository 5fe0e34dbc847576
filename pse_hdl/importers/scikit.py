"""scikit-learn: a fitted ``MLPClassifier`` or ``MLPRegressor`` (ReLU or identity hidden
layers), a linear model (``LogisticRegression``, ``LinearSVC``, ``Ridge``, ... : one layer), or
a ``Pipeline`` ending in one. The pipeline's per-feature scalers before its first projection
become one per-feature affine on the host; a ``PCA`` or ``TruncatedSVD`` step becomes a linear
layer of the engine (the scalers after it folded into it)."""

import warnings

import numpy as np

from ..errors import InputError
from .source import Source, _check_net, two_logits

SCALERS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler")
PROJECTIONS = ("PCA", "TruncatedSVD")
# Linear models whose outputs are W x + b: classifiers scored by decision_function (their
# predict is its argmax), regressors by predict.
LINEAR_CLASSIFIERS = ("LogisticRegression", "LogisticRegressionCV", "RidgeClassifier",
                      "RidgeClassifierCV", "SGDClassifier", "Perceptron",
                      "PassiveAggressiveClassifier", "LinearSVC")
LINEAR_REGRESSORS = ("LinearRegression", "Ridge", "RidgeCV", "Lasso", "LassoCV", "ElasticNet",
                     "ElasticNetCV", "Lars", "LarsCV", "LassoLars", "LassoLarsCV",
                     "LassoLarsIC", "BayesianRidge", "ARDRegression", "HuberRegressor",
                     "SGDRegressor", "PassiveAggressiveRegressor", "QuantileRegressor",
                     "TheilSenRegressor", "OrthogonalMatchingPursuit",
                     "OrthogonalMatchingPursuitCV", "MultiTaskLasso", "MultiTaskLassoCV",
                     "MultiTaskElasticNet", "MultiTaskElasticNetCV", "LinearSVR")
MODELS = "an MLPClassifier or MLPRegressor, a linear model (LogisticRegression, LinearSVC, " \
         "Ridge, ...), or a Pipeline of scalers and PCA ending in one"


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


def _projection(name, step):
    """``(W, b)`` of a fitted PCA or TruncatedSVD step: it maps ``x`` to ``W x + b``."""
    if not hasattr(step, "components_"):
        raise InputError(f"Pipeline step {name!r} is not fitted: fit the pipeline before "
                         f"converting it")
    w = np.asarray(step.components_, np.float64)
    b = np.zeros(len(w))
    if type(step).__name__ == "PCA":
        b = -w @ np.asarray(step.mean_, np.float64)
        if step.whiten:
            d = np.sqrt(np.asarray(step.explained_variance_, np.float64))
            w, b = w / d[:, None], b / d
    return w, b


def _from_pipeline(pipe, kind):
    """A Pipeline of per-feature scalers and projections (PCA, TruncatedSVD) with a model last:
    the model's network behind a linear layer per projection, the scalers before the first
    projection one per-feature affine on the host (``FloatMLP.in_scale``/``in_offset``), those
    after one folded into it; checked against the whole pipeline."""
    if not pipe.steps:
        raise InputError("the Pipeline has no steps")
    name, last = pipe.steps[-1]
    source = from_sklearn(last, kind or f"scikit-learn Pipeline ({type(last).__name__})",
                          _reference_of=pipe)
    steps = [(k, s) for k, s in pipe.steps[:-1] if s is not None and s != "passthrough"]
    for step_name, step in steps:
        if type(step).__name__ not in SCALERS + PROJECTIONS:
            raise InputError(f"Pipeline step {step_name!r} is a {type(step).__name__}: the "
                             f"steps before the model may be per-feature scalers "
                             f"({', '.join(SCALERS)}), projections ({', '.join(PROJECTIONS)}) "
                             f"or 'passthrough'")
    width = None                      # the features the step takes (None: the samples')
    scale = offset = None             # the host's affine, over the samples' features
    layers = []                       # the projections, (W, b) each
    host = []                         # the scalers the host applies
    for step_name, step in steps:
        n = getattr(step, "n_features_in_", None)
        if n is None:
            raise InputError(f"Pipeline step {step_name!r} is not fitted: fit the pipeline "
                             f"before converting it")
        if width is not None and n != width:
            raise InputError(f"Pipeline step {step_name!r} takes {n} features but the step "
                             f"before it gives {width}")
        if type(step).__name__ in PROJECTIONS:
            layers.append(_projection(step_name, step))
            width = len(layers[-1][0])
            continue
        a, b = _scaler_affine(step_name, step, n)
        if layers:                    # after a projection: folded into its outputs
            w, c = layers[-1]
            layers[-1] = (w * a[:, None], c * a + b)
        else:
            host.append(type(step).__name__)
            scale, offset = (a, b) if scale is None else (scale * a, offset * a + b)
        width = n
    n = source.inputs
    if width is not None and width != n:
        raise InputError(f"the Pipeline's steps give {width} features but its "
                         f"{type(last).__name__} takes {n}")
    if layers:
        net = source.net
        source.net = _check_net([w for w, _ in layers] + net.weights,
                                [b for _, b in layers] + net.biases, source.kind,
                                [False] * len(layers) + net.relu)
        source.info["projections"] = [type(s).__name__ for _, s in steps
                                      if type(s).__name__ in PROJECTIONS]
    if scale is not None:
        if not (np.all(np.isfinite(scale)) and np.all(np.isfinite(offset))):
            raise InputError("the Pipeline's scalers have infinite or NaN factors")
        source.net.in_scale, source.net.in_offset = scale, offset
    source.info["input_scaling"] = host
    return source


def _reference(method):
    """``method`` of an estimator on an array, as a 2-D float array: one fitted on a DataFrame
    says that the array has no feature names; its columns are the features in order, as it was
    fitted."""
    def run(x):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "X does not have valid feature names")
            return np.asarray(method(x), np.float64).reshape(len(x), -1)
    return run


def _from_linear(est, kind, whole):
    """A linear model: one layer, ``W x + b``, scored against ``decision_function`` (a
    classifier) or ``predict`` (a regressor) of ``whole``."""
    name = type(est).__name__
    if not hasattr(est, "coef_"):
        raise InputError(f"the {name} is not fitted: call fit() before converting it")
    w = np.atleast_2d(np.asarray(est.coef_, np.float64))
    b = np.broadcast_to(np.asarray(est.intercept_, np.float64).reshape(-1), (len(w),)).copy()
    weights, biases = [w], [b]
    if name in LINEAR_REGRESSORS:
        net = _check_net(weights, biases, kind)
        return Source(net, kind, "regression", None, _reference(whole.predict), "logits")
    classes = np.asarray(est.classes_)
    if len(w) == 1 and len(classes) == 2:
        two_logits(weights, biases)
        decision = _reference(whole.decision_function)

        def reference(x):
            z = decision(x)
            return np.hstack([np.zeros_like(z), z])
    else:
        reference = _reference(whole.decision_function)
    net = _check_net(weights, biases, kind)
    return Source(net, kind, "classification", classes, reference, "logits")


def from_sklearn(est, kind=None, _reference_of=None):
    """A Source of a fitted MLPClassifier or MLPRegressor, a linear model, or a Pipeline of
    scalers and projections ending in one (``_reference_of``: the estimator whose outputs the
    import must reproduce, the whole pipeline for its model)."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline
    name = type(est).__name__
    if isinstance(est, Pipeline):
        return _from_pipeline(est, kind)
    kind = kind or f"scikit-learn {name}"
    whole = est if _reference_of is None else _reference_of
    if name in LINEAR_CLASSIFIERS + LINEAR_REGRESSORS:
        return _from_linear(est, kind, whole)
    if not isinstance(est, (MLPClassifier, MLPRegressor)):
        raise InputError(f"a scikit-learn model must be {MODELS}, not {name}")
    if not hasattr(est, "coefs_"):
        raise InputError(f"the {name} is not fitted: call fit() before converting it")
    if est.activation not in ("relu", "identity"):
        raise InputError(f"only ReLU or identity hidden layers are supported, not activation="
                         f"{est.activation!r}")
    weights = [np.asarray(w, np.float64).T for w in est.coefs_]
    biases = [np.asarray(b, np.float64) for b in est.intercepts_]
    relu = [est.activation == "relu"] * (len(weights) - 1) + [False]
    if isinstance(est, MLPRegressor):
        net = _check_net(weights, biases, kind, relu)
        return Source(net, kind, "regression", None, _reference(whole.predict), "logits")
    if est.out_activation_ == "logistic":
        if weights[-1].shape[0] != 1:
            raise InputError(f"multi-label classifiers are not supported ({kind} with "
                             f"{weights[-1].shape[0]} logistic outputs)")
        two_logits(weights, biases)
    net = _check_net(weights, biases, kind, relu)
    return Source(net, kind, "classification", np.asarray(est.classes_),
                  _reference(whole.predict_proba), "softmax")
