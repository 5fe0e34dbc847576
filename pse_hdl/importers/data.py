"""The user's data: ``.npz`` and CSV files, labels (numbers or class names), the task, and the
calibration / test split."""

from pathlib import Path

import numpy as np

from ..errors import InputError
from .models import read_npz

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
    text = labels and is_text(a)
    if text:
        a = _text_labels(name, a, what)
    elif a.dtype.kind not in "biuf":
        raise InputError(f"{what}: '{name}' must be numeric"
                         f"{' (or class names)' if labels else ''}, not {a.dtype}")
    if labels and a.ndim == 2 and ndim == 1:
        raise InputError(f"{what}: '{name}' has {a.shape[1]} columns: one label or target per "
                         f"sample is supported (not multi-output or multi-label models)")
    if a.ndim != ndim:
        raise InputError(f"{what}: '{name}' must have {ndim} dimension(s), not shape {a.shape}")
    if a.shape[0] == 0:
        raise InputError(f"{what}: '{name}' is empty")
    if not text and not np.all(np.isfinite(a)):
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


def calibration_and_test(source, data, what="the data"):
    """``(task, (x_cal, y_cal), (x_test, y_test))`` of loaded data (``what``: its name in an
    error): its calibration arrays, or a :func:`split_calibration` of its samples."""
    for k in ("x", "x_calib"):
        if k in data and data[k].shape[1] != source.inputs:
            raise InputError(f"{what}: its samples ('{k}') have {data[k].shape[1]} features "
                             f"but the model takes {source.inputs} inputs")
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
