"""Tier 2: the MAC array's Verilog in Verilator against the golden model, over 1, 4 and 16
lanes and the precision sets {4,8,16}, {2,4,8,16} and {8,16}."""

import pytest

from pse_hdl.config import PSEConfig, preset
from sim.runner import run_cocotb

CONFIGS = {
    "L1-p4-8-16": PSEConfig(lanes=1, max_rows=128, max_cols=128),
    "L4-p4-8-16": PSEConfig(max_rows=128, max_cols=128, one_port_below=0),
    "L16-p2-4-8-16": preset("wide").replace(max_rows=128, max_cols=128, one_port_below=0),
    "L4-p8-16-acc24": PSEConfig(precisions=(8, 16), thresholds=(1, 2), acc_bits=24,
                                max_rows=128, max_cols=128),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_mac_against_model(name):
    tests, failed = run_cocotb("mac", CONFIGS[name], "sim.tb_mac")
    assert tests == 2 and failed == 0
