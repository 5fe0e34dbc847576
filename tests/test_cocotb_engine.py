"""Tier 2: the engine's Verilog in Verilator through cocotb, driven by the host driver and firmware,
against the golden model (sim/tb_engine.py)."""

import pytest

from pse_hdl.config import PSEConfig
from sim.runner import run_cocotb

CONFIGS = {
    "L4-p4-8-16": PSEConfig(max_rows=32, max_cols=32, zone_depth=1024, master_depth=4096,
                            max_layers=3, period=2, warmup=2, hist_bins=64, swap_delay=1,
                            one_port_below=100),
    "L2-p2-4-8-16-fixed-destructive": PSEConfig(
        lanes=2, precisions=(2, 4, 8, 16), thresholds=(1, 2, 3, 4), meta_encoding="fixed",
        reversible=False, hysteresis=1 << 12, hysteresis_shift=0, max_rows=16, max_cols=32,
        zone_depth=512, master_depth=2048, max_layers=4, period=3, warmup=1, hist_bins=64,
        swap_delay=3, one_port_below=0),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_engine_against_model(name):
    tests, failed = run_cocotb("engine", CONFIGS[name], "sim.tb_engine",
                               extra_env={"PSE_SEEDS": "5"})
    assert failed == 0 and tests == 2
