"""Tier 2: the Precision Allocator's generated Verilog in Verilator, against the golden model."""

import pytest

from pse_hdl.config import PSEConfig, preset
from sim.runner import run_cocotb

CONFIGS = {
    "p4-8-16": PSEConfig(),
    "p2-4-8-16": preset("wide"),
    "p8-16": PSEConfig(precisions=(8, 16), thresholds=(1 << 12, 1 << 20), max_rows=16,
                       max_cols=1024),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_pa_against_model(name):
    tests, failed = run_cocotb("pa", CONFIGS[name], "sim.tb_pa")
    assert tests == 3 and failed == 0
