import os

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
