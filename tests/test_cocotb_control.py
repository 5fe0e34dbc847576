"""Tier 2: the control chain RIC -> PA -> SM -> histogram in Verilator against the golden model.
Three configurations: precision sets {4,8,16}, {2,4,8,16} (16 lanes, large layers), {8,16} with
a small layer limit and destructive sparsification."""

import pytest

from pse_hdl.config import PSEConfig, preset
from sim.runner import run_cocotb

CONFIGS = {
    "p4-8-16": PSEConfig(),
    "p2-4-8-16-large": preset("wide").replace(max_rows=1024, max_cols=1024),
    "p8-16-small-destructive": PSEConfig(precisions=(8, 16), thresholds=(1 << 12, 1 << 20),
                                         max_rows=32, max_cols=32, reversible=False,
                                         hist_bins=48, hist_sub_bits=1),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_control_chain_against_model(name):
    tests, failed = run_cocotb("control", CONFIGS[name], "sim.tb_control")
    assert tests == 2 and failed == 0
