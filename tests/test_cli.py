"""The ``pse`` command line."""

import json
import os
import subprocess
import sys


from pse_hdl.cli import main


def test_demo_json_keys_and_targets(tmp_path, capsys):
    png = tmp_path / "demo.png"
    assert main(["demo", "--json", "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("float_accuracy", "pse_accuracy", "bits_per_weight", "mac_cycle_ratio"):
        assert key in out
    assert out["allocation"] in ("global", "layer")         # the calibration's choice
    assert 0 <= out["pse_accuracy"] <= 1 and 0 <= out["float_accuracy"] <= 1
    # The targets of the foundation issue on the default network.
    assert out["bits_per_weight"] <= 4.0
    assert out["float_accuracy"] - out["pse_accuracy"] <= 0.005
    assert out["mac_cycle_ratio"] <= 0.25
    assert abs(sum(out["precision_shares"].values()) - 1) < 1e-9
    assert png.stat().st_size > 10000


def test_demo_table(capsys):
    assert main(["demo", "--plot", "", "--period", "32"]) == 0
    out = capsys.readouterr().out
    assert "PSE accuracy" in out and "bits per weight" in out and "MAC cycles" in out
    assert "thresholds (the calibration's choice)" in out


def test_generate_list_and_block(tmp_path, capsys):
    assert main(["generate", "--list"]) == 0
    assert "pa" in capsys.readouterr().out
    v = tmp_path / "pa.v"
    assert main(["generate", "pa", "--config", "tiny", "-o", str(v)]) == 0
    assert "module pse_pa" in v.read_text()


def test_errors_name_the_choices(capsys, tmp_path):
    assert main(["generate", "nosuch"]) == 2
    assert "block must be one of" in capsys.readouterr().err
    assert main(["generate", "pa", "--config", "huge"]) == 2
    assert "--config must be a preset" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[pse]\nlanes = 5\n")
    assert main(["generate", "pa", "--config", str(bad)]) == 2
    assert "lanes must be a power of two" in capsys.readouterr().err
    assert main(["generate", "--config", "huge"]) == 2          # also when only listing
    assert "--config must be a preset" in capsys.readouterr().err
    missing = tmp_path / "no_such_dir" / "pa.v"
    assert main(["generate", "pa", "-o", str(missing)]) == 2
    assert "--output: the directory of" in capsys.readouterr().err


def test_generated_file_is_written_whole_with_the_usual_mode(tmp_path):
    v = tmp_path / "pa.v"
    assert main(["generate", "pa", "--config", "tiny", "-o", str(v)]) == 0
    assert [f.name for f in tmp_path.iterdir()] == ["pa.v"]       # no temporary left behind
    mask = os.umask(0)
    os.umask(mask)
    assert v.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_closed_pipe_is_not_an_internal_error():
    # `pse generate --list | head -0`: the reader is gone before the first line is written
    with subprocess.Popen([sys.executable, "-m", "pse_hdl.cli", "generate", "--list"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        p.stdout.close()
        err = p.stderr.read()
    assert p.returncode == 141 and err == "", err


def test_every_command_has_help():
    for cmd in ([], ["demo"], ["generate"]):
        r = subprocess.run([sys.executable, "-m", "pse_hdl.cli", *cmd, "--help"],
                           capture_output=True, text=True)
        assert r.returncode == 0 and "usage: pse" in r.stdout


def test_register_map_docs_are_generated_from_the_description(tmp_path):
    from pathlib import Path

    from pse_hdl.config import PSEConfig
    from pse_hdl.regmap import markdown
    doc = Path(__file__).resolve().parent.parent / "docs" / "REGISTERS.md"
    assert doc.read_text() == markdown(PSEConfig()), \
        "docs/REGISTERS.md is stale: run `pse generate --registers -o docs/REGISTERS.md`"
    h = tmp_path / "pse_regs.h"
    assert main(["generate", "--header", "-o", str(h)]) == 0
    text = h.read_text()
    assert "#define PSE_CTRL 0x3u" in text and "#define PSE_OP_INFER 1u" in text


def test_demo_mistakes_are_one_line(capsys):
    for args, message in [
            (["--config", "tiny"], "layer 0 is 256x64 but the configuration allows at most "
                                   "128x128 (max_rows x max_cols)"),
            (["--target-bits", "1.2"], "no layout of the digits network reaches --target-bits "
                                       "1.2 (metadata and descriptors included): the smallest "
                                       "costs"),
            (["--target-bits", "nan"], "target_bits must be a positive number")]:
        assert main(["demo", "--plot", "", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_configuration_files_and_output_paths_are_one_line(capsys, tmp_path):
    files = {"scalar.toml": b"pse = 5\n", "latin1.toml": b"\xff\xfe lanes = 4\n",
             "broken.toml": b"[pse\nlanes = 4\n", "unknown.toml": b"[pse]\nlanez = 4\n"}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "adir").mkdir()
    cases = [
        (["generate", "pa", "--config", str(tmp_path / "scalar.toml")],
         "must be a table of fields"),
        (["generate", "pa", "--config", str(tmp_path / "latin1.toml")], "is not UTF-8 text"),
        (["generate", "pa", "--config", str(tmp_path / "broken.toml")], "is not valid TOML"),
        (["generate", "pa", "--config", str(tmp_path / "unknown.toml")], "unknown field(s) lanez"),
        (["generate", "pa", "--config", str(tmp_path / "adir")], "is a directory, not a TOML"),
        (["generate", "pa", "--config", str(tmp_path / "none.toml")], "does not exist"),
        (["generate", "pa", "--config", ""], "--config must be a preset"),
        (["generate", "pa", "-o", str(tmp_path / "adir")], "is a directory; give a file name"),
        (["demo", "--plot", str(tmp_path / "adir")], "is a directory: give a file name"),
        (["demo", "--plot", str(tmp_path / "nodir" / "x.png")], "does not exist"),
        (["demo", "--plot", str(tmp_path / "x.jpg")], "must end in .png"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*files, "adir"])


def test_json_is_strict_and_the_smallest_histogram_runs(tmp_path, capsys):
    """``--json`` never prints Infinity or NaN (they become null), and the smallest histogram
    the configuration accepts (2 bins) runs a demo to the end."""
    from pse_hdl.files import to_json
    assert json.loads(to_json({"fmax": float("inf"), "ratio": float("nan"), "n": 3})) == \
        {"fmax": None, "ratio": None, "n": 3}
    cfg = tmp_path / "bins.toml"
    cfg.write_text("[pse]\nhist_bins = 2\n")
    assert main(["demo", "--config", str(cfg), "--samples", "20", "--plot", "", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 < out["bits_per_weight"] < 16
