import os

# Tests treat warnings as errors (see pyproject.toml); the CLI and benches do not.
os.environ.setdefault("PSE_SIM_BUILD", os.path.join(os.path.dirname(__file__), "..", "sim_build"))
