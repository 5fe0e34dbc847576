"""The fast simulation backend: the engine's Verilog as a plain Verilated model behind the same
driver and firmware, bit-exact with the golden model; ``pse demo --backend rtl`` end to end."""

import json

import numpy as np
import pytest

from pse_hdl.cli import main
from pse_hdl.config import PSEConfig
from pse_hdl.host.bus import run
from pse_hdl.host.driver import Driver
from pse_hdl.host.firmware import Firmware
from pse_hdl.host.verilated import VerilatedBus, build, build_dir_for
from pse_hdl.workflow import MismatchError, run_demo
from sim.engine_ref import check_run, random_case, run_firmware

# The tests of one module-scoped model run on one worker (a second would set the fixture up
# again and wait on the first one's build with nothing to do); each model's group, and the
# tests that build their own, may run on another worker meanwhile.
ON_CFG = pytest.mark.xdist_group("fast_engine")
ON_MASK_CFG = pytest.mark.xdist_group("fast_engine_masked")

# The hardware of tests/test_api.py's RTL runs too: one Verilated build serves both modules.
CFG = PSEConfig(max_rows=32, max_cols=32, zone_depth=1024, master_depth=4096, max_layers=3,
                period=3, warmup=2)
# A tracing build of the smallest engine that holds the waveform test's network (a sixth of
# the build time of CFG's).
TRACE_CFG = CFG.replace(lanes=1, max_rows=8, max_cols=8, zone_depth=64, master_depth=256,
                        max_layers=2, hist_bins=16)


@pytest.fixture(scope="module")
def bus():
    b = VerilatedBus(CFG)
    yield b
    b.close()


@ON_CFG
def test_cached_build_costs_nothing(bus):
    path, seconds = build(CFG)
    assert path == bus.path and seconds == 0.0
    assert build_dir_for(CFG) != build_dir_for(CFG.replace(lanes=2))
    # The firmware's schedule is not hardware: the same model serves every period and delay.
    assert build_dir_for(CFG) == build_dir_for(CFG.replace(swap_delay=2, period=5, warmup=0))


@ON_CFG
@pytest.mark.parametrize("seed", range(8))
def test_random_networks_are_bit_exact(bus, seed):
    rng = np.random.default_rng(1000 + seed)
    n = len(CFG.precisions)
    shares = [None, (1.0,) + (0.0,) * n, (0.0,) * n + (1.0,)][seed % 3]
    edge = [None, "one row", "one column", None][seed % 4]
    cfg = CFG.replace(swap_delay=seed % 4)
    case = random_case(cfg, rng, shares=shares, edge=edge, samples=10,
                       uniform="random" if seed % 2 else None,
                       guard={1: "median", 3: "mac", 6: "switch"}.get(seed))
    bus.reset()
    logits, stats, allocs = run(run_firmware(case, bus))
    check_run(case, logits, stats, allocs)
    assert all(st.engine_cycles >= st.mac_cycles for st in stats)


@ON_CFG
def test_a_layout_that_does_not_fit_is_not_swapped_in(bus):
    """The RTL's re-zoning of a layout that overflows a zone fails with its error bit, the
    active bank serves on and a later layout that fits is swapped in: bit-exact with the model
    (``tests/test_model_bus.py`` has the firmware's side)."""
    case = random_case(CFG.replace(swap_delay=1), np.random.default_rng(4), samples=12,
                       guard="unfit")
    bus.reset()
    logits, stats, allocs = run(run_firmware(case, bus))
    assert stats[0].unfit and True in stats[0].swapped
    check_run(case, logits, stats, allocs)


def test_waveform_of_a_sample(tmp_path):
    """A tracing build dumps the chosen samples only."""
    case = random_case(TRACE_CFG, np.random.default_rng(5), shapes=[(8, 8), (4, 8)], samples=3)
    tb = VerilatedBus(TRACE_CFG, trace="vcd")
    fw = Firmware(Driver(tb, TRACE_CFG), case.qnet, case.thresholds, case.policy)
    tb.trace_open(tmp_path / "w.vcd")
    tb.trace_enable(False)
    run(fw.load())
    tb.trace_enable(True)
    run(fw.infer(case.x[0]))
    tb.trace_enable(False)
    tb.trace_close()
    text = (tmp_path / "w.vcd").read_text()
    assert "$enddefinitions" in text and "bus__req__valid" in text
    times = [int(line[1:]) for line in text.splitlines() if line.startswith("#")]
    assert 0 < max(times) - min(times) < 4 * 2000      # one sample, not the load
    tb.close()


@pytest.mark.slow
def test_demo_rtl_equals_the_model(capsys):
    assert main(["demo", "--backend", "rtl", "--samples", "48", "--json", "--plot", ""]) == 0
    rtl = json.loads(capsys.readouterr().out)
    assert main(["demo", "--samples", "48", "--json", "--plot", ""]) == 0
    model = json.loads(capsys.readouterr().out)
    assert rtl["backend"] == "rtl" and rtl["bit_exact"] is True and rtl["samples"] == 48
    for key in ("pse_accuracy", "bits_per_weight", "mac_cycle_ratio", "allocations",
                "precision_shares", "mac_cycles_per_sample"):
        assert rtl[key] == pytest.approx(model[key], rel=1e-12), key
    assert rtl["mac_cycles_per_sample"] <= rtl["engine_cycles_per_sample"] \
        <= 1.05 * rtl["ideal_cycles_per_sample"]


@pytest.mark.slow
def test_a_mismatch_names_sample_layer_and_row(monkeypatch):
    import pse_hdl.api as api
    real = api.run_dynamic

    def wrong(*args, **kwargs):
        logits, stats = real(*args, **kwargs)
        logits = logits.copy()
        logits[5, 3] += 1
        return logits, stats
    monkeypatch.setattr(api, "run_dynamic", wrong)
    with pytest.raises(MismatchError, match=r"sample 5, layer 1 \(the logits\), row 3: .*"
                                            r"--trace-samples 5:6"):
        run_demo(backend="rtl", samples=8)


def test_demo_errors_are_one_line(capsys, tmp_path):
    assert main(["demo", "--trace", str(tmp_path / "x.fst")]) == 2
    assert "--trace needs --backend rtl" in capsys.readouterr().err
    assert main(["demo", "--backend", "rtl", "--trace", str(tmp_path / "x.txt")]) == 2
    assert "must end in .fst or .vcd" in capsys.readouterr().err
    assert main(["demo", "--backend", "rtl", "--trace", "/no/such/dir/x.vcd"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["demo", "--samples", "0"]) == 2
    assert "--samples must be at least 1" in capsys.readouterr().err


# Masked layers (input_masks) in the engine: a smaller build of their own.
MASK_CFG = CFG.replace(input_masks=True, lanes=2, max_rows=16, max_cols=16, zone_depth=256,
                       master_depth=1024, max_layers=2, hist_bins=32)


@pytest.fixture(scope="module")
def mask_bus():
    b = VerilatedBus(MASK_CFG)
    yield b
    b.close()


@ON_MASK_CFG
@pytest.mark.parametrize("seed", range(4))
def test_masked_layers_are_bit_exact(mask_bus, seed):
    """The engine allocates masked layers from the column magnitudes (whole input columns
    pruned), stores the kept columns and fetches them: every logit, every allocation's codes
    and footprint equal the golden model's, with recalibration and the budget guard."""
    rng = np.random.default_rng(2000 + seed)
    n = len(MASK_CFG.precisions)
    shapes = [[(12, 9), (7, 12)], [(16, 5), (3, 16)], [(1, 16), (6, 1)], [(9, 9), (9, 9)]][seed]
    uniform = [int(rng.integers(1, n + 1)) for _ in shapes]
    case = random_case(MASK_CFG.replace(swap_delay=seed % 2), rng, shapes=shapes, samples=10,
                       uniform=uniform, masked=[True, bool(seed % 2)],
                       guard="median" if seed == 2 else None)
    mask_bus.reset()
    check_run(case, *run(run_firmware(case, mask_bus)))
