import os

# Tests treat warnings as errors (see pyproject.toml); the CLI and benches do not.
# Simulation models are built into the project's sim_build/ (cocotb builds and the fast
# Verilated models), once per configuration, and reused by later sessions.
_BUILD = os.path.join(os.path.dirname(__file__), "..", "sim_build")
os.environ.setdefault("PSE_SIM_BUILD", _BUILD)
os.environ.setdefault("PSE_FAST_BUILD", os.path.join(_BUILD, "fast"))
