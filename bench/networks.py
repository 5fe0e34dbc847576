"""The networks of the accuracy benches: scikit-learn MLPs trained here (fixed seeds, a few
seconds each) on bundled or generated data, with train / calibration (15 %) / test (30 %)
splits.

Two sets. ``SCOREBOARD``, the ten networks of ``bench/suite.py``'s scoreboard (issue 14): the
allocator has been developed and measured on them for many rounds, so a figure on them may
hold only there. ``HELD_OUT``, eight more fixed on 2026-12-04 before any PSE run on them and
never used to choose a design or a default (``bench/suite.py --set held-out``): other data
(two-dimensional moons and circles, Gaussian blobs and quantiles, Hastie's ten-feature task,
a wide and a noisy binary ``make_classification``), another digits depth, and scikit-learn's
default L2 penalty (``alpha = 1e-4``), as a user who does not tune it trains.
"""

import warnings

from pse_hdl.importers import Source, from_sklearn
from pse_hdl.model.layer import one_blas_thread
from pse_hdl.model.network import default_network, digits_splits

# name, dataset, hidden layers, L2 alpha (None: the demo's network, as `pse demo` trains it)
SCOREBOARD = (
    ("digits 64-256-10 (demo)", "digits", (256,), None),
    ("digits 64-64-10", "digits", (64,), 1e-3),
    ("digits 64-128-64-10", "digits", (128, 64), 1e-3),
    ("digits 64-32-10", "digits", (32,), 1e-3),
    ("wine 13-32-3", "wine", (32,), 1e-3),
    ("breast cancer 30-32-2", "breast_cancer", (32,), 1e-3),
    ("iris 4-16-3", "iris", (16,), 1e-3),
    ("synthetic easy 20-64-3", "synthetic_easy", (64,), 1e-3),
    ("synthetic medium 24-128-5", "synthetic_medium", (128,), 1e-3),
    ("synthetic hard 32-128-64-8", "synthetic_hard", (128, 64), 1e-3),
)
HELD_OUT = (
    ("moons 2-32-2", "moons", (32,), 1e-4),
    ("circles 2-16-16-2", "circles", (16, 16), 1e-4),
    ("blobs 16-64-6", "blobs", (64,), 1e-4),
    ("quantiles 10-64-3", "quantiles", (64,), 1e-4),
    ("hastie 10-64-2", "hastie", (64,), 1e-4),
    ("digits 64-100-50-10", "digits", (100, 50), 1e-4),
    ("wide 40-96-4", "wide", (96,), 1e-4),
    ("noisy binary 12-48-2", "noisy_binary", (48,), 1e-4),
)
SETS = {"scoreboard": SCOREBOARD, "held-out": HELD_OUT}


def _split(x, y, seed):
    """55 % train, 15 % calibration, 30 % test, stratified (as the digits demo)."""
    from sklearn.model_selection import train_test_split
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.30, random_state=seed,
                                                      stratify=y)
    x_tr, x_cal, y_tr, y_cal = train_test_split(x_rest, y_rest, test_size=0.15 / 0.70,
                                                random_state=seed, stratify=y_rest)
    return {"train": (x_tr, y_tr), "calib": (x_cal, y_cal), "test": (x_test, y_test)}


def _standardised(splits):
    from sklearn.preprocessing import StandardScaler
    sc = StandardScaler().fit(splits["train"][0])
    return {k: (sc.transform(x), y) for k, (x, y) in splits.items()}


def _classification(seed, n_features, n_informative, n_classes, sep, n_redundant=4, flip=0.01):
    from sklearn import datasets
    return datasets.make_classification(n_samples=3000, n_features=n_features,
                                        n_informative=n_informative, n_redundant=n_redundant,
                                        n_classes=n_classes, class_sep=sep, flip_y=flip,
                                        random_state=seed)


def _data(name, seed=0):
    """``(x, y)`` of a dataset: bundled, or generated with ``seed``."""
    from sklearn import datasets
    if name in ("digits", "wine", "breast_cancer", "iris"):
        d = getattr(datasets, f"load_{name}")()
        return d.data, d.target
    if name.startswith("synthetic_"):
        return _classification(seed, *{"synthetic_easy": (20, 8, 3, 1.5),
                                        "synthetic_medium": (24, 12, 5, 1.0),
                                        "synthetic_hard": (32, 16, 8, 0.8)}[name])
    if name == "wide":
        return _classification(seed, 40, 10, 4, 1.2, n_redundant=10, flip=0.02)
    if name == "noisy_binary":
        return _classification(seed, 12, 6, 2, 0.7, n_redundant=2, flip=0.05)
    if name == "moons":
        return datasets.make_moons(n_samples=2000, noise=0.3, random_state=seed)
    if name == "circles":
        return datasets.make_circles(n_samples=2000, noise=0.15, factor=0.5, random_state=seed)
    if name == "blobs":
        return datasets.make_blobs(n_samples=3000, n_features=16, centers=6, cluster_std=5.0,
                                   random_state=seed)
    if name == "quantiles":
        return datasets.make_gaussian_quantiles(n_samples=3000, n_features=10, n_classes=3,
                                                random_state=seed)
    if name == "hastie":
        x, y = datasets.make_hastie_10_2(n_samples=3000, random_state=seed)
        return x, (y > 0).astype(int)
    raise KeyError(name)


def network(name, seed=0):
    """``(source, splits)`` of a network of either set: trained here, deterministic."""
    _, data, hidden, alpha = next(n for n in SCOREBOARD + HELD_OUT if n[0] == name)
    if alpha is None:                     # the demo's network, exactly as `pse demo` runs it
        return (Source(default_network(seed=seed), "digits MLP", "classification"),
                digits_splits(seed))
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    splits = _standardised(_split(*_data(data, seed), seed))
    mlp = MLPClassifier(hidden_layer_sizes=hidden, alpha=alpha, max_iter=600, random_state=seed)
    with warnings.catch_warnings(), one_blas_thread:     # small products: see one_blas_thread
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(*splits["train"])
    return from_sklearn(mlp, name), splits
