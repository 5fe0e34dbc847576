"""User mistakes through the ``pse`` command line: each is one clear line on stderr naming what
was wrong and what is allowed, exit code 2, no traceback, and nothing written."""

import pickle

import numpy as np
import pytest

from pse_hdl.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mistakes")
    toml = {
        "huge.toml": "[pse]\nmaster_depth = 4194304\n",
        "hyst.toml": "[pse]\nhysteresis = 10\nhysteresis_logic = false\n",
        "thr.toml": "[pse]\nthresholds = [5, 3, 9]\n",
        "str.toml": "[pse]\nlanes = \"four\"\n",
        "digit.toml": "[pse]\nmac_digit_bits = 8\n",
        "literal.toml": "[pse]\nimportance_form = \"literal\"\nsnapshot_shift = 0\n"
                        "importance_floor = false\n",
        "bins.toml": "[pse]\nhist_bins = 1\n",
        "masks.toml": "[pse]\ninput_masks = true\nreversible = false\n",
        "preset.toml": "[pse]\npreset = \"huge\"\n",
        "sweep.toml": "[sweep]\nbogus = 1\n",
    }
    for name, text in toml.items():
        (d / name).write_text(text)
    (d / "garbage.onnx").write_bytes(b"not an onnx model")
    with open(d / "dict.pkl", "wb") as f:
        pickle.dump({"a": 1}, f)
    rng = np.random.default_rng(0)
    np.savez(d / "net.npz", n_layers=1, W0=rng.standard_normal((2, 4)), b0=np.zeros(2))
    np.savez(d / "data.npz", x=rng.standard_normal((20, 4)), y=np.arange(20) % 2)
    np.savez(d / "noy.npz", x=rng.standard_normal((20, 4)))
    np.savez(d / "wide.npz", x=rng.standard_normal((20, 7)), y=np.arange(20) % 2)
    np.savez(d / "nan.npz", x=np.full((20, 4), np.nan), y=np.arange(20) % 2)
    (d / "text.csv").write_text("1,2,3,4,0\n1,2,x,4,1\n")
    (d / "notnet.npz").write_bytes(b"PK not really")
    (d / "adir").mkdir()
    (d / "afile").write_text("")
    (d / "net.txt").write_text("W0 = 1\n")
    return d


CASES = [
    # configurations
    (["generate", "pa", "--config", "{d}/huge.toml"], "the largest supported device"),
    (["generate", "pa", "--config", "{d}/hyst.toml"], "needs hysteresis_logic = true"),
    (["generate", "pa", "--config", "{d}/thr.toml"], "thresholds must be non-decreasing"),
    (["generate", "pa", "--config", "{d}/str.toml"], "lanes must be an integer, not 'four'"),
    (["generate", "pa", "--config", "{d}/digit.toml"], "mac_digit_bits must be 4"),
    (["generate", "engine", "--config", "{d}/literal.toml"], "the engine keeps one EMA per input"),
    (["generate", "histogram", "--config", "{d}/bins.toml"], "hist_bins must be"),
    (["generate", "pa", "--config", "{d}/preset.toml"], "preset must be one of"),
    (["demo", "--plot", "", "--config", "{d}/str.toml"], "lanes must be an integer"),
    (["generate", "engine", "--config", "{d}/masks.toml"],
     "input_masks = true needs importance_form 'factored' and reversible = true"),
    # blocks, boards, presets
    (["generate", "nosuch"], "block must be one of"),
    (["synth", "nosuch"], "block must be one of"),
    (["synth", "pa", "--board", "nosuch"], "board must be one of icebreaker, ulx3s"),
    (["prove", "nosuch"], "block must be one of"),
    (["lint", "--config", "huge"], "--config must be a preset"),
    (["board", "nosuch"], "board must be one of icebreaker, ulx3s"),
    # output paths
    (["generate", "pa", "-o", "{d}/nodir/x.v"], "does not exist"),
    (["generate", "--registers", "-o", "{d}/adir"], "is a directory; give a file name"),
    (["demo", "--plot", "{d}/afile/x.png"], "does not exist"),
    # demo arguments
    (["demo", "--plot", "", "--samples", "0"], "--samples must be at least 1, not 0"),
    (["demo", "--plot", "", "--samples", "-5"], "--samples must be at least 1, not -5"),
    (["demo", "--plot", "", "--period", "0"], "period must be an integer between 1"),
    (["demo", "--plot", "", "--trace", "{d}/x.fst"], "--trace needs --backend rtl"),
    (["demo", "--plot", "", "--target-bits", "inf"], "target_bits must be a positive number"),
    (["demo", "--plot", "", "--target-bits", "-1"], "target_bits must be a positive number"),
    # your own network and data
    (["run", "{d}/missing.onnx", "--data", "{d}/data.npz"], "does not exist"),
    (["run", "{d}/garbage.onnx", "--data", "{d}/data.npz"], "is not a readable ONNX model"),
    (["run", "{d}/dict.pkl", "--data", "{d}/data.npz"], "must be an MLPClassifier or MLPRegressor"),
    (["run", "{d}/notnet.npz", "--data", "{d}/data.npz"], "is not a readable .npz file"),
    (["run", "{d}/data.npz", "--data", "{d}/data.npz"], "has no 'n_layers'"),
    (["run", "{d}/net.npz", "--data", "{d}/missing.npz"], "does not exist"),
    (["run", "{d}/net.npz", "--data", "{d}/noy.npz"], "y"),
    (["run", "{d}/net.npz", "--data", "{d}/wide.npz"], "7 features"),
    (["run", "{d}/net.npz", "--data", "{d}/nan.npz"], "NaN"),
    (["run", "{d}/net.npz", "--data", "{d}/text.csv"], "text.csv"),
    (["run", "{d}/net.txt", "--data", "{d}/data.npz"], ".onnx"),
    (["run", "{d}/net.npz", "--data", "{d}/data.npz", "--target-bits", "0"],
     "target_bits must be a positive number"),
    # sweeps
    (["sweep", "{d}/missing.toml"], "does not exist"),
    (["sweep", "{d}/sweep.toml"], "unknown key(s) bogus in [sweep]"),
]


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(c[0][:3]).replace("{d}/", "")
                                                      for c in CASES])
def test_a_mistake_is_one_line_and_exit_code_2(files, capsys, args, message):
    before = sorted(p.name for p in files.iterdir())
    argv = [a.format(d=files) for a in args]
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("pse: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err, (message, err)
    assert sorted(p.name for p in files.iterdir()) == before        # nothing written


def test_enough_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("bench, args, message", [
    ("accuracy", ["--config", "nosuch"], "--config must be a preset"),
    ("engine", ["--config", "nosuch"], "--config must be a preset"),
    ("zones", ["--config", "nosuch"], "preset must be one of"),
    ("drift", ["--plot", "", "--config", "nosuch"], "--config must be a preset"),
    ("suite", ["--plot", "", "--budgets", "99"], "--budgets must be bits per weight"),
    ("suite", ["--plot", "", "--seed", "-1"], "--seed must be 0 or more"),
    ("suite", ["--plot", "", "--seeds", "0"], "--seeds must be between 1 and 100"),
    ("drift", ["--plot", "", "--seeds", "0"], "--seeds must be between 1 and 100"),
    ("formats", ["--budget", "99"], "--budget must be bits per weight"),
    ("formats", ["--only", "nosuch"], "--only matches no network"),
    ("mutation", ["--only", "nosuch"], "unknown mutant(s) nosuch"),
])
def test_bench_mistakes_are_one_line(bench, args, message):
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "bench" / f"{bench}.py"
    r = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr, r.stderr
