"""Synthesis (yosys + nextpnr from YoWASP) and lint flows."""

import json
from pathlib import Path

import pytest

from pse_hdl.cli import main
from pse_hdl.config import PRESETS, PSEConfig, preset
from pse_hdl.rtl import BLOCKS, build
from pse_hdl.synth.flow import SynthError, board, harness_overhead, synthesize
from pse_hdl.synth.lint import lint_all


@pytest.mark.slow
@pytest.mark.parametrize("board_name", ["icebreaker", "ulx3s"])
def test_synthesize_a_block_and_parse_the_report(board_name, tmp_path):
    block = build("sm", PSEConfig())
    harness_ffs = harness_overhead(block)[0]
    r = synthesize(block, board_name, build_dir=tmp_path)
    assert r["device"] == board(board_name).device
    assert r["luts"] > 0 and r["ffs"] >= harness_ffs
    assert r["fmax_mhz"] and r["fmax_mhz"] > 10
    assert r["target_mhz"] == (30 if board_name == "icebreaker" else 100)


@pytest.mark.slow
def test_cli_synth_json(capsys):
    assert main(["synth", "sm", "--board", "ulx3s", "--json", "--seed", "3"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    for key in ("device", "luts", "ffs", "brams", "dsps", "fmax_mhz"):
        assert key in rows[0]
    assert rows[0]["seed"] == 3
    assert "--seed 3 " in (Path(rows[0]["build_dir"]) / "nextpnr.log").read_text()


@pytest.mark.slow
def test_up5k_master_store_maps_to_the_spram_and_the_misfit_says_by_how_much(tmp_path):
    """The master store's one address (registered after its arbitration) and a read enable that
    is off during writes let yosys map it to a single-port SPRAM; without them yosys stops
    ("no valid mapping found for memory ... master"). The zoned memory does not fit the UP5K's
    logic cells yet (docs/SYNTHESIS.md): nextpnr's refusal, after yosys has mapped it, is one
    line that says by how much (one place-and-route serves both checks)."""
    with pytest.raises(SynthError, match=r"does not fit iCE40UP5K: ICESTORM_LC \d+ used of 5280 "
                                         r"\(\d+ too many\)") as e:
        synthesize(build("zones", preset("up5k")), "icebreaker", build_dir=tmp_path)
    assert "ICESTORM_RAM" not in str(e.value)
    stat = json.loads((tmp_path / "stat.json").read_text())
    cells = stat.get("design", stat)["num_cells_by_type"]
    assert cells.get("SB_SPRAM256KA") == 1


# One test per block and preset, so the parallel workers share the long ones (wide engine).
# Every block stands alone at the default preset. At the other presets: the engine, which holds
# every block but the literal RIC, at that preset's widths and depths, and the literal RIC (a
# standalone top differs from the engine's submodule in its ports alone, which the default
# preset covers; ``pse lint`` runs every block at every preset); up5k differs from tiny in the
# zoned memory only; masks (masked layers) adds the kept-column table, a token source per fetch
# walker, the MASKED registers and the COLNORM window, all of them in the engine.
OTHER_PRESETS = {"tiny": ("engine", "ric_literal"), "up5k": ("engine", "zones"),
                 "wide": ("engine", "ric_literal"), "masks": ("engine",)}
LINT_CASES = [(name, block) for name in PRESETS for block in BLOCKS
              if name == "default" or block in OTHER_PRESETS[name]]


@pytest.mark.slow
@pytest.mark.parametrize("name, block", LINT_CASES)
def test_lint_every_block_and_preset_is_clean(name, block):
    results = lint_all(blocks=[block], presets=[name])
    assert list(results) == [(block, name)]
    assert results[(block, name)] == []


def test_errors_name_the_valid_choices(capsys):
    assert main(["synth", "pa", "--board", "de10"]) == 2
    assert "board must be one of icebreaker, ulx3s" in capsys.readouterr().err
    assert main(["synth", "mult", "--board", "ulx3s"]) == 2
    assert "block must be one of" in capsys.readouterr().err
    assert main(["synth", "pa", "--config", "big"]) == 2
    assert "--config must be a preset (tiny, default, masks, up5k, wide)" in capsys.readouterr().err
    assert main(["lint", "--config", "big"]) == 2
    assert "--config must be a preset" in capsys.readouterr().err
    assert main(["synth", "pa", "--board", "ulx3s", "--seed", "-1"]) == 2
    assert "--seed must be 0 or more, not -1" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("board_name", ["icebreaker", "ulx3s"])
def test_board_top_bitstream_builds(board_name, tmp_path):
    from pse_hdl.synth.boards import build_bitstream
    path, fig = build_bitstream(board_name, tmp_path)
    assert path.stat().st_size > 10000
    assert fig["met"] and fig["fmax_mhz"] >= fig["clock_mhz"] > 0


def test_only_pse_hdl_is_installed_with_its_data_files():
    """``pip install .`` installs the package ``pse_hdl`` alone (no top-level ``sim`` or
    ``synth`` to collide with other projects), with the files the flows read at run time."""
    import tomllib
    from pathlib import Path

    from setuptools import find_packages
    root = Path(__file__).resolve().parent.parent
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = find_packages(str(root), include=tool["packages"]["find"]["include"])
    assert packages and all(p == "pse_hdl" or p.startswith("pse_hdl.") for p in packages)
    assert "pse_hdl.synth" in packages
    for package, patterns in tool["package-data"].items():
        where = root / package.replace(".", "/")
        for pattern in patterns:
            assert list(where.glob(pattern)), (package, pattern)
    from pse_hdl.synth.flow import CONSTRAINTS
    from pse_hdl.synth.lint import WAIVERS
    assert CONSTRAINTS.is_relative_to(root / "pse_hdl") and WAIVERS.exists()
    assert {p.name for p in CONSTRAINTS.iterdir()} >= {"icebreaker.pcf", "ulx3s.lpf"}


def test_lint_waivers_are_narrow(tmp_path):
    """The waivers cover the generator's idioms only: a truncating or widening assignment and
    a case statement of a different shape, written by hand, are still reported."""
    import subprocess

    from pse_hdl.synth.lint import WAIVERS
    from pse_hdl.toolchain import verilator_env
    verilator_env()
    src = tmp_path / "pse_hand.v"
    src.write_text("module pse_hand(input [7:0] a, input [3:0] b, output [3:0] t, output [7:0] w,"
                   " output [4:0] s);\n"
                   "  assign t = a;\n"           # truncation by assignment
                   "  assign w = b;\n"           # widening by assignment
                   "  assign s = a[3:0] + b[2:0];\n"  # the generator's idiom: waived
                   "endmodule\n")
    r = subprocess.run(["verilator", "--lint-only", "-Wall", str(WAIVERS), str(src),
                        "--top-module", "pse_hand"], capture_output=True, text=True)
    assert "WIDTHTRUNC" in r.stderr and ":2:" in r.stderr, r.stderr
    assert "WIDTHEXPAND" in r.stderr and ":3:" in r.stderr, r.stderr
    assert ":4:" not in r.stderr, r.stderr


def test_models_compile_through_ccache_only_where_it_can_write(tmp_path, monkeypatch):
    """``ccache`` is used when it is installed and its cache directory is writable; an
    ``OBJCACHE`` the user set (empty: none) is kept."""
    import os
    import shutil

    from pse_hdl import toolchain
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setenv("CCACHE_DIR", str(tmp_path / "new" / "ccache"))
    assert toolchain.ccache()
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("CCACHE_DIR", str(tmp_path / "file" / "ccache"))
    assert not toolchain.ccache()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CCACHE_DIR", str(tmp_path))
    assert not toolchain.ccache()
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.delenv("OBJCACHE", raising=False)
    toolchain.verilator_env()
    assert os.environ["OBJCACHE"] == "ccache"
    monkeypatch.setenv("OBJCACHE", "")
    toolchain.verilator_env()
    assert os.environ["OBJCACHE"] == ""
