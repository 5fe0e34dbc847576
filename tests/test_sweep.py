"""``pse sweep`` on Dask: a small grid on a local cluster, the same against a scheduler and
workers started as separate processes, the content cache, a worker killed in the middle, and the
specification's errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pse_hdl.cli import main
from pse_hdl.errors import InputError
from pse_hdl.sweep import SweepSpec, expand, load_spec, pareto, run_sweep

# One worker runs the module: its tests share the module's sweep (``local``), which a second
# worker would compute again.
pytestmark = pytest.mark.xdist_group("sweep")

# The default hardware: its model is the one the demo and drift tests build (one build in the
# session's cache serves them all, the sweep's RTL points too).
BASE = {"preset": "default"}


def spec(measure=("model", "rtl"), grid=None, budgets=(4.5, 6.0), samples=40, **sweep):
    return SweepSpec({
        "sweep": {"name": "test", "networks": [{"name": "digits", "hidden": [16]}],
                  "budgets": list(budgets), "measure": list(measure), "samples": samples,
                  **sweep},
        "base": dict(BASE),
        # Two firmware fields: one Verilated build serves the four configs (a hardware field,
        # lanes, varies in the model-only sweep of test_a_killed_worker_loses_nothing).
        "grid": grid if grid is not None else {"period": [4, 8], "swap_delay": [0, 2]},
    })


def metrics(report):
    return [(json.dumps(r["config"], sort_keys=True), r["budget"],
             {k: v for k, v in r["metrics"].items() if k != "rtl_run_s"}, r["error"])
            for r in report["points"]]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    return out, run_sweep(spec(), out, workers=2)


@pytest.mark.slow
def test_a_grid_on_a_local_cluster(local):
    out, report = local
    points = report["points"]
    assert len(points) == 8 and report["computed"] == 16 and report["cached"] == 0
    for r in points:
        assert r["error"] is None, r
        m = r["metrics"]
        assert 0.5 < m["accuracy"] <= 1 and m["bits_per_weight"] <= r["budget"] + 0.5
        assert m["bit_exact"] is True
        assert m["ideal_cycles_per_sample"] <= m["engine_cycles_per_sample"]
    assert report["pareto"] and set(report["pareto"]) <= set(range(8))
    assert json.loads((out / "sweep.json").read_text())["points"] == \
        json.loads(json.dumps(points, default=str))


@pytest.mark.slow
def test_a_second_run_is_all_cached(local):
    out, first = local
    again = run_sweep(spec(), out, workers=1)
    assert again["computed"] == 0 and again["cached"] == 16
    assert all(r["cached"] for r in again["points"])
    assert metrics(again) == metrics(first)
    # An extended grid computes only what is new.
    bigger = run_sweep(spec(budgets=(4.5, 6.0, 8.0)), out, workers=1)
    assert bigger["computed"] == 8 and bigger["cached"] == 16


def _start(args, log):
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=log,
                            start_new_session=True)


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two workers as separate processes on 127.0.0.1."""
    file = tmp_path / "scheduler.json"
    log = open(tmp_path / "dask.log", "w")
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--no-dashboard", "--scheduler-file", str(file)], log)]
    for _ in range(60):
        if file.exists() and file.stat().st_size:
            break
        time.sleep(0.5)
    address = json.loads(file.read_text())["address"]
    for _ in range(2):
        procs.append(_start(["distributed.cli.dask_worker", address, "--nworkers", "1",
                             "--nthreads", "1", "--no-dashboard"], log))
    yield address, procs
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
    log.close()


@pytest.mark.slow
def test_an_external_scheduler_gives_the_same_results(local, cluster, tmp_path):
    address, _ = cluster
    report = run_sweep(spec(), tmp_path / "ext", scheduler=address)
    assert report["computed"] == 16
    assert metrics(report) == metrics(local[1])


@pytest.mark.slow
def test_a_killed_worker_loses_nothing(cluster, tmp_path):
    address, procs = cluster
    toml = tmp_path / "s.toml"
    toml.write_text('[sweep]\nname = "kill"\nnetworks = [{name = "digits", hidden = [16]}]\n'
                    'budgets = [4.0, 4.5, 5.0, 5.5, 6.0, 6.5]\nmeasure = ["model"]\n'
                    'samples = 300\n[base]\npreset = "default"\nmax_rows = 64\n'
                    'max_cols = 64\nzone_depth = 512\nmaster_depth = 4096\n'
                    '[grid]\nlanes = [1, 2, 4]\n')
    out = tmp_path / "out"
    sweep = subprocess.Popen([sys.executable, "-m", "pse_hdl.cli", "sweep", str(toml),
                              "--scheduler", address, "-o", str(out), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(600):                         # the first result, then a worker dies
        if list((out / "cache").glob("*.json")) or sweep.poll() is not None:
            break
        time.sleep(0.2)
    os.killpg(procs[1].pid, signal.SIGKILL)
    stdout, stderr = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, stderr
    points = json.loads(stdout)["points"]
    assert len(points) == 18 and all(p["error"] is None and "accuracy" in p["metrics"]
                                     for p in points)


@pytest.mark.slow
def test_one_synthesis_point(tmp_path):
    report = run_sweep(spec(measure=("synth",), grid={"lanes": [4]}, budgets=(4.5,),
                            synth_block="sm", boards=["ulx3s"]), tmp_path, workers=1)
    (r,) = report["points"]
    assert r["error"] is None and r["metrics"]["ulx3s_luts"] > 0
    assert r["metrics"]["ulx3s_fmax_mhz"] > 50


def test_invalid_points_are_reported_not_fatal(tmp_path):
    s = spec(measure=("model",), grid={"lanes": [3, 4]}, budgets=(6.0,), samples=20)
    points, tasks = expand(s)
    assert len(points) == 2 and len(tasks) == 1
    assert "lanes must be a power of two" in points[0]["error"]
    report = run_sweep(s, tmp_path, workers=1)
    assert report["points"][0]["error"] and report["points"][1]["error"] is None
    tiny = run_sweep(spec(measure=("model",), grid={"lanes": [4]}, budgets=(0.5,), samples=20),
                     tmp_path, workers=1)
    assert "no layout reaches 0.5 bits per weight" in tiny["points"][0]["error"]


def test_pareto_front():
    rows = [{"error": None, "metrics": {"accuracy": 0.9, "bits_per_weight": 4.0}},
            {"error": None, "metrics": {"accuracy": 0.8, "bits_per_weight": 4.5}},
            {"error": None, "metrics": {"accuracy": 0.95, "bits_per_weight": 5.0}},
            {"error": "bad", "metrics": {}}]
    assert pareto(rows) == [0, 2]


@pytest.mark.parametrize("text, message", [
    ("[grid]\nlanes = [2]\n", "has no \\[sweep\\] table"),
    ("[sweep]\nbudgets = []\n", "budgets must be a list of positive numbers"),
    ("[sweep]\nmeasure = ['power']\n", "measure must be a list of model, rtl, synth"),
    ("[sweep]\nnetworks = [{name = 'mnist'}]\n", "the built-in network is 'digits'"),
    ("[sweep]\n[grid]\nlane = [2]\n", "names lane, which are not fields of PSEConfig"),
    ("[sweep]\n[grid]\nlanes = 4\n", "lanes must be a non-empty list"),
    ("[sweep]\nboards = ['de10']\n", "board must be one of"),
    ("[sweep]\nspeed = 1\n", "unknown key\\(s\\) speed"),
    ("[sweep\n", "is not valid TOML"),
])
def test_specification_errors(tmp_path, capsys, text, message):
    f = tmp_path / "s.toml"
    f.write_text(text)
    assert main(["sweep", str(f)]) == 2
    err = capsys.readouterr().err
    import re
    assert re.search(message, err) and err.count("\n") == 1, err
    with pytest.raises(Exception, match=message):
        load_spec(f)


def test_the_example_specification_is_valid():
    s = load_spec(Path(__file__).resolve().parent.parent / "examples" / "sweep.toml")
    points, tasks = expand(s)
    assert len(points) == 8 and all(p["error"] is None for p in points)
    assert sum(t["kind"] == "synth" for t in tasks.values()) == 4


def test_missing_specification(capsys):
    assert main(["sweep", "/no/such.toml"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(InputError):
        load_spec("/no/such.toml")
