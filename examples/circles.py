"""Make the README's `--max-loss` example: the held-out circles network of `bench/networks.py`
(a scikit-learn MLP 2-16-16-2 on `make_circles`, seed 0, standardised inputs), pickled, and its
calibration and test splits as an `.npz`.

    python examples/circles.py [DIR]          # writes DIR/circles.joblib and DIR/circles.npz
    pse run DIR/circles.joblib --data DIR/circles.npz                   # the default 4.5 bits
    pse run DIR/circles.joblib --data DIR/circles.npz --max-loss 0.01   # the bits it needs
"""

import sys
from pathlib import Path

import joblib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from networks import _data, _split, _standardised  # noqa: E402
from pse_hdl.files import output_dir               # noqa: E402

NAME = "circles 2-16-16-2"


def main(out="."):
    out = output_dir(out, "circles.py")
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    splits = _standardised(_split(*_data("circles", 0), 0))
    mlp = MLPClassifier(hidden_layer_sizes=(16, 16), alpha=1e-4, max_iter=600, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(*splits["train"])
    joblib.dump(mlp, out / "circles.joblib")
    (x, y), (xc, yc) = splits["test"], splits["calib"]
    np.savez(out / "circles.npz", x=x, y=y, x_calib=xc, y_calib=yc)
    print(f"wrote {out / 'circles.joblib'} and {out / 'circles.npz'} ({len(y)} test samples, "
          f"{len(yc)} for calibration)")


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", default=".",
                    help="where to write circles.joblib and circles.npz")
    main(ap.parse_args().dir)
