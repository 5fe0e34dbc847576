"""Output files written atomically: under a temporary name in the same directory, then renamed,
so a reader (another process, or the next run after an interrupted one) never sees half a file."""

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["write_atomic", "savez_atomic", "savefig_atomic"]


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()       # read once, at import, before any thread could create a file


def _atomic(path, mode, write):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)    # as open() would create it (mkstemp makes it 0600)
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def output_dir(path, prog):
    """``path`` as a directory that exists (made if need be), or one line naming it on
    standard error and exit code 2 (``prog``: the script that says it)."""
    import sys
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"{prog}: cannot create the output directory {str(path)!r}: {e.strerror}",
              file=sys.stderr)
        sys.exit(2)
    return path


def write_atomic(path, text):
    """Write ``text`` to ``path``."""
    return _atomic(path, "w", lambda f: f.write(text))


def savez_atomic(path, **arrays):
    """``np.savez(path, **arrays)`` (``path`` is used as given: no ``.npz`` is appended)."""
    return _atomic(path, "wb", lambda f: np.savez(f, **arrays))


def savefig_atomic(fig, path, **kwargs):
    """``fig.savefig(path)`` as PNG (the format is given, so the temporary name may end in
    anything)."""
    return _atomic(path, "wb", lambda f: fig.savefig(f, format="png", **kwargs))


def _plain(obj):
    """``obj`` with NumPy scalars and arrays as Python values and non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def to_json(obj, **kwargs):
    """Strict JSON (RFC 8259) of ``obj``: an infinite or NaN figure (a ratio over nothing, an
    Fmax without a timing path) is ``null``, never the ``Infinity`` Python would print."""
    return json.dumps(_plain(obj), allow_nan=False, **kwargs)
