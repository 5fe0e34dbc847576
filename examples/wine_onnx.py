"""Make the README's `pse run` example: a scikit-learn MLP on half of the wine data, exported to
ONNX with skl2onnx, and the other half as a CSV (13 feature columns, then the label).

    python examples/wine_onnx.py [DIR]        # writes DIR/wine.onnx and DIR/wine.csv
    pse run DIR/wine.onnx --data DIR/wine.csv --target-bits 6
"""

import sys
import warnings
from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pse_hdl.files import output_dir  # noqa: E402


def main(out="."):
    out = output_dir(out, "wine_onnx.py")
    x, y = load_wine(return_X_y=True)
    # Standardised here, so the data file holds what the engine sees (a Pipeline with its
    # StandardScaler converts too: the scaler then runs on the host, docs/API.md).
    x = StandardScaler().fit_transform(x).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.5, random_state=0, stratify=y)
    mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=2000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(x_tr, y_tr)
    (out / "wine.onnx").write_bytes(to_onnx(make_pipeline(mlp), x_tr[:1]).SerializeToString())
    rows = [",".join([*(f"{v:.6f}" for v in row), str(int(label))])
            for row, label in zip(x_te, y_te)]
    header = ",".join([f"x{i}" for i in range(x.shape[1])] + ["y"])
    (out / "wine.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    print(f"wrote {out / 'wine.onnx'} and {out / 'wine.csv'} ({len(rows)} samples)")


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", default=".", help="where to write wine.onnx and wine.csv")
    main(ap.parse_args().dir)
