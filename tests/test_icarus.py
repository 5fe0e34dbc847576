"""Tier 2 in a 4-state simulator: every cocotb testbench on Icarus Verilog, under the
Verilog-2005 and the SystemVerilog (-g2012) event rules, at reduced counts. The stream parts
fail on any X or Z on a valid, a ready or a transferred payload (``sim.streams.check_known``), so
these tests show the generated Verilog starts known after reset where Verilator (2-state) cannot
see it. Icarus comes from the OS packages (``.ci/run`` installs it); without it the tier skips
with a message."""

import pytest

from pse_hdl.config import PSEConfig, preset
from sim.runner import ICARUS_MODES, icarus_available, run_cocotb

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not icarus_available(),
                                 reason="Icarus Verilog (iverilog, vvp) is not installed: "
                                        "apt-get install iverilog")]

FEW = {"PSE_SEEDS": "2", "PSE_WEIGHTS": "600"}
# Two lanes and small memories, the same Verilog: Icarus's time follows the logic it evaluates
# each cycle (about a thousand cycles a second for the 4-lane engine with 32x32 layers: its two
# tests simulated in 50 s, these in 14 s).
ENGINE = PSEConfig(lanes=2, max_rows=16, max_cols=16, zone_depth=512, master_depth=1024,
                   max_layers=3, period=2, warmup=2, hist_bins=32, swap_delay=1)
ZONES = PSEConfig(max_rows=64, max_cols=64, zone_depth=2048, master_depth=8192, max_layers=4)
# block, testbench, configuration, tests in the module (skipped ones included)
CASES = {
    "ric": ("sim.tb_ric", PSEConfig(max_rows=64, max_cols=64), 1),
    "pa": ("sim.tb_pa", PSEConfig(), 3),
    "sm": ("sim.tb_sm", PSEConfig(reversible=False), 2),
    "histogram": ("sim.tb_histogram", PSEConfig(), 1),
    "control": ("sim.tb_control", PSEConfig(max_rows=64, max_cols=64), 2),
    "mac": ("sim.tb_mac", preset("wide").replace(max_rows=64, max_cols=64), 2),
    "zones": ("sim.tb_zones", ZONES, 4),
    "engine": ("sim.tb_engine", ENGINE, 2),
    "link": ("sim.tb_link", PSEConfig(bridge_frame_bytes=128), 1),
}


# The serial link and the engine (built of the blocks above, each run under both) only under the
# SystemVerilog rules, the stricter of the two for X at start.
PAIRS = [(b, mode) for b in CASES for mode in ICARUS_MODES
         if b not in ("link", "engine") or mode == "icarus-2012"]


@pytest.mark.parametrize("block, mode", PAIRS)
def test_block_in_icarus(block, mode):
    tb, cfg, count = CASES[block]
    tests, failed = run_cocotb(block, cfg, tb, simulator=mode, extra_env=FEW)
    assert failed == 0 and tests == count


def test_without_the_start_event_the_sv_rules_leave_x(monkeypatch, tmp_path):
    """The must-fail variant: the Verilog exactly as yosys writes it (no assignment after time
    0) leaves the zoned memory's handshakes X under -g2012, and the X monitor says so."""
    from amaranth.back import verilog

    from pse_hdl.rtl import build
    monkeypatch.setattr("sim.runner.generate_verilog", lambda name, cfg: verilog.convert(
        build(name, cfg), name=f"pse_{name}", emit_src=False))
    tb, cfg, count = CASES["zones"]
    with pytest.raises(SystemExit):              # cocotb's runner: a failed test ends the run
        run_cocotb("zones", cfg, tb, simulator="icarus-2012", extra_env=FEW,
                   testcase="random_networks", log_file=tmp_path / "sim.log")
    assert "XValue: host_wr.ready is X" in (tmp_path / "sim.log").read_text()
