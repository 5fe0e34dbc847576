"""Tier 2: RIC (both forms), SM and histogram, each on its own, in Verilator against the
golden model, over the precision sets {4,8,16}, {2,4,8,16} and {8,16}, and the options'
variants (the literal importance, a power-of-two rate, the snapshot copy, destructive
sparsification); six seeds (every stall pattern once) x 5,000 weights each
(``sim/common.py``; ``PSE_SEEDS``/``PSE_WEIGHTS`` set longer runs)."""

import pytest

from pse_hdl.config import PSEConfig, preset
from sim.runner import run_cocotb

SETS = {
    "p4-8-16": PSEConfig(),
    "p2-4-8-16": preset("wide").replace(max_rows=1024, max_cols=1024),
    "p8-16": PSEConfig(precisions=(8, 16), thresholds=(1 << 12, 1 << 20), max_rows=32,
                       max_cols=32, hist_bins=48, hist_sub_bits=1),
}
CASES = [("ric", name, cfg, "sim.tb_ric") for name, cfg in SETS.items()] + [
    ("ric", "literal", PSEConfig(importance_form="literal", snapshot_shift=0,
                                 importance_floor=False, max_rows=128, max_cols=64), "sim.tb_ric"),
    ("ric", "literal-pow2-rate", PSEConfig(importance_form="literal", snapshot_shift=0,
                                           importance_floor=False, max_rows=64, max_cols=16,
                                           ema_rate=1 / 8, ema_power_of_two=True), "sim.tb_ric"),
    ("ric", "snapshot-copy", PSEConfig(snapshot_shift=0, importance_floor=False, max_rows=64,
                                       max_cols=64), "sim.tb_ric"),
] + [("sm", name, cfg, "sim.tb_sm") for name, cfg in SETS.items()] + [
    ("sm", "destructive", PSEConfig(reversible=False), "sim.tb_sm"),
] + [("histogram", name, cfg, "sim.tb_histogram") for name, cfg in SETS.items()]


@pytest.mark.slow
@pytest.mark.parametrize("block,name,cfg,tb", CASES, ids=[f"{b}-{n}" for b, n, _, _ in CASES])
def test_block_against_model(block, name, cfg, tb):
    tests, failed = run_cocotb(block, cfg, tb)
    # The SM's testbench also checks the harness: a stuck stream fails instead of hanging.
    assert tests == (2 if block == "sm" else 1) and failed == 0
