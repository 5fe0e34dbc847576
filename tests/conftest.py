import os

import pytest

# Tests treat warnings as errors (see pyproject.toml); the CLI and benches do not.
# Simulation models are built into the project's sim_build/ (cocotb builds and the fast
# Verilated models), once per configuration, and reused by later sessions.
_BUILD = os.path.join(os.path.dirname(__file__), "..", "sim_build")
os.environ.setdefault("PSE_SIM_BUILD", _BUILD)
os.environ.setdefault("PSE_FAST_BUILD", os.path.join(_BUILD, "fast"))
# One BLAS thread per worker: the golden model's products are small, and OpenBLAS threads of
# two workers on two cores spin against each other (a bench process beside another ran 6x
# slower than alone). The variable reaches simulator subprocesses; threadpoolctl covers a
# NumPy a plugin imported before this file (threadpoolctl comes with scikit-learn).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from threadpoolctl import threadpool_limits  # noqa: E402

threadpool_limits(1)

# The longest tests (measured with --durations on a 2-core machine: 50 s to 2 min each) start
# first, so that the parallel workers do not end the run waiting for one of them (longest job
# first: the same tests, a shorter wall time). Only tests without module-scoped fixtures: moved
# away from their module, they would set those up twice.
LONGEST_FIRST = [
    "tests/test_cocotb_engine.py::test_engine_against_model[L4-p4-8-16]",
    "tests/test_synth.py::test_lint_every_block_and_preset_is_clean[wide-engine]",
    "tests/test_cocotb_engine.py::test_engine_against_model[L2-p2-4-8-16-fixed-destructive]",
    "tests/test_fast_engine.py::test_waveform_of_a_sample",
    "tests/test_cocotb_zones.py::test_zones_against_model[unary-P4]",
    "tests/test_synth.py::test_up5k_master_store_maps_to_the_spram_and_the_misfit_says_by_how_much",
]


def pytest_collection_modifyitems(config, items):
    rank = {nodeid: k for k, nodeid in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid, len(rank)))    # stable: the rest keep order


@pytest.fixture(scope="module")
def binary():
    """A two-class scikit-learn MLP (one logistic output) and its held-out data (the API's
    tests: ``test_api``, ``test_api_imports``, ``test_api_mistakes``)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    from tests.user_models import fit
    d = load_breast_cancer()
    x, y = d.data / d.data.max(axis=0), d.target
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.5, random_state=0)
    x_cal, x_te, y_cal, y_te = train_test_split(x_te, y_te, test_size=0.6, random_state=0)
    m = fit(MLPClassifier((16,), max_iter=500, random_state=0), x_tr, y_tr)
    return m, (x_cal, y_cal), (x_te, y_te)


@pytest.fixture(scope="module")
def wine():
    """A three-class scikit-learn MLP on standardised wine features, half the data held out
    (``test_api``, ``test_api_imports``)."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    from tests.user_models import fit
    d = load_wine()
    x = (d.data - d.data.mean(axis=0)) / d.data.std(axis=0)
    x_tr, x_te, y_tr, y_te = train_test_split(x, d.target, test_size=0.5, random_state=0,
                                              stratify=d.target)
    m = fit(MLPClassifier((24,), max_iter=800, random_state=0), x_tr, y_tr)
    return m, (x_tr, y_tr), (x_te, y_te)
