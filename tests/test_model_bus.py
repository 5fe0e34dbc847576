"""The golden-model transport: the register map executed by the golden model, driven by the same
driver and firmware as the RTL, equal to ``model.engine.run_dynamic``."""

import numpy as np
import pytest

from pse_hdl.config import PSEConfig
from pse_hdl.host.bus import run
from pse_hdl.host.driver import Driver, EngineError
from pse_hdl.host.model_bus import ModelBus
from pse_hdl.regmap import Op
from sim.engine_ref import check_run, random_case, run_firmware

CFG = PSEConfig(max_rows=32, max_cols=32, zone_depth=1024, master_depth=4096, max_layers=3,
                period=3, warmup=2, hist_bins=64)
EDGES = [None, "one row", "one column", "all pruned", "all top", None, None, None, None, None]


@pytest.mark.parametrize("seed", range(len(EDGES)))
def test_firmware_on_the_model_bus_is_the_golden_model(seed):
    n = len(CFG.precisions)
    edge = EDGES[seed]
    shares = {"all pruned": (1.0,) + (0.0,) * n, "all top": (0.0,) * n + (1.0,)}.get(edge)
    cfg = CFG.replace(swap_delay=seed % 4, hysteresis=[0, 1 << 10][seed % 2],
                      hysteresis_shift=[1, 0][seed % 2], reversible=seed != 2)
    case = random_case(cfg, np.random.default_rng(seed), shares=shares, edge=edge, samples=12,
                       uniform="random" if seed >= 5 else None,
                       guard={0: "median", 3: "switch", 6: "switch", 7: "median", 9: "mac"}.get(seed))
    check_run(case, *run(run_firmware(case, ModelBus(cfg))))


@pytest.mark.parametrize("delay", [0, 2])
def test_a_layout_that_does_not_fit_is_not_swapped_in(delay):
    """A dynamic allocation whose layout overflows a zone or the metadata memory: its re-zoning
    fails (ZONE_ERROR says which), the firmware clears the error and the active layout serves
    on, as in the golden model; a later layout that fits is swapped in again."""
    cfg = CFG.replace(swap_delay=delay)
    case = random_case(cfg, np.random.default_rng(4), samples=12, guard="unfit")
    logits, stats, allocs = run(run_firmware(case, ModelBus(cfg)))
    assert stats[0].unfit and False in stats[0].swapped and True in stats[0].swapped
    assert None in [fp for _, fp in allocs]
    check_run(case, logits, stats, allocs)


@pytest.mark.parametrize("seed", range(4))
def test_masked_layers_on_the_model_bus_are_the_golden_model(seed):
    """Masked layers (``input_masks``): the firmware loads the column magnitudes and the MASKED
    registers; ALLOCATE prunes whole columns from them, REZONE stores the kept ones."""
    n = len(CFG.precisions)
    cfg = CFG.replace(input_masks=True, swap_delay=seed % 2, hysteresis=[0, 1 << 10][seed % 2],
                      hysteresis_shift=[1, 0][seed % 2])
    rng = np.random.default_rng(50 + seed)
    shapes = [[(12, 9), (7, 12)], [(20, 5), (3, 20)], [(1, 6), (4, 1)], [(9, 9), (9, 9)]][seed]
    uniform = [int(rng.integers(1, n + 1)) for _ in shapes]
    masked = [True, bool(seed % 2)]
    shares = [None, (0.5, 0.5) + (0.0,) * (n - 1), None, (0.0, 1.0) + (0.0,) * (n - 1)][seed]
    case = random_case(cfg, rng, shapes=shapes, shares=shares, samples=12, uniform=uniform,
                       masked=masked, guard="median" if seed == 2 else None)
    check_run(case, *run(run_firmware(case, ModelBus(cfg))))


def test_model_bus_access_rules_and_errors():
    bus = ModelBus(CFG)
    drv = Driver(bus, CFG)
    run(drv.identify())
    rm = drv.map
    assert run(bus.read(11)) == 0 and run(drv.errors()) == ["bus"]
    run(drv.clear_errors())
    run(bus.write(rm.addr("ID"), 5))
    assert run(drv.read("ID")) == 0x50534531 and run(drv.errors()) == ["bus"]
    run(drv.clear_errors())
    run(drv.write_codes([1, 2, 3, 0, 1]))
    assert run(drv.read_codes(0, 5)) == [1, 2, 3, 0, 1]
    with pytest.raises(EngineError, match="command"):
        run(drv.command(Op.INFER))                  # no layout yet
    with pytest.raises(EngineError, match="swap"):
        run(drv.command(Op.SWAP))
