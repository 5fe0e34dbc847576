"""Tier 2: the zoned memory's Verilog in Verilator against the golden model (sim/tb_zones.py),
for unary metadata with 4 fetch ports (no row descriptors, the default), and for fixed-width codes
with the 2-bit precision, 2 ports (2 lanes), destructive pruning and a row descriptor every 8
rows."""

import pytest

from pse_hdl.config import PSEConfig
from sim.runner import run_cocotb

SMALL = dict(max_rows=64, max_cols=64, zone_depth=2048, master_depth=8192, max_layers=4)
CONFIGS = {
    # Layers under 100 weights on port 0 alone (one_port_below), the others on all four.
    "unary-P4": PSEConfig(**SMALL, one_port_below=100),
    "fixed-P2-destructive": PSEConfig(**SMALL, one_port_below=0, precisions=(2, 4, 8, 16),
                                      thresholds=(1, 2, 3, 4), meta_encoding="fixed",
                                      lanes=2, reversible=False, desc_stride=8),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_zones_against_model(name):
    tests, failed = run_cocotb("zones", CONFIGS[name], "sim.tb_zones")
    assert failed == 0 and tests >= 3
