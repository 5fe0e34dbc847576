"""Any model: a path or an object to a :class:`~.source.Source` (``load_model``), and the
``.npz`` of float weights."""

from pathlib import Path

import numpy as np

from ..errors import InputError
from .onnx_graph import from_onnx
from .scikit import from_sklearn
from .source import Source, _check_net

MODEL_SUFFIXES = (".onnx", ".npz", ".pkl", ".pickle", ".joblib")


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
    relu = None
    if "relu" in z:                         # per layer, whether a ReLU follows it
        relu = np.asarray(z["relu"]).reshape(-1)
        if relu.dtype.kind not in "bui" or len(relu) != n or not np.isin(relu, (0, 1)).all() \
                or relu[-1]:
            raise InputError(f"{path}: 'relu' must hold a 0 or 1 per layer ({n}), whether a "
                             f"ReLU follows it, the last 0 (the logits), not {relu.tolist()}")
    net = _check_net([z[f"W{l}"] for l in range(n)], [z[f"b{l}"] for l in range(n)],
                     str(path), relu)
    return Source(net, f".npz {Path(path).name}")



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
    raise InputError(f"a model must be a fitted scikit-learn model (an MLP or a linear "
                     f"model), an ONNX model or a path to one of {', '.join(MODEL_SUFFIXES)}, "
                     f"not {type(model).__name__}")
