"""Tier 2: the serial link's Verilog (UART and bridge) in Verilator, driven at its pins by a
cocotb UART model, against the protocol's reference model."""

from pse_hdl.config import PSEConfig
from sim.runner import run_cocotb


def test_link_frames_on_the_line():
    tests, failed = run_cocotb("link", PSEConfig(bridge_frame_bytes=128), "sim.tb_link")
    assert tests == 1 and failed == 0
