"""cocotb testbenches and the helpers that build and run them (see sim/runner.py)."""
