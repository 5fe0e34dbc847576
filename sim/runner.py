"""Build each Verilator model once per configuration and run a cocotb test module on it.

The generated Verilog, the build flags and the configuration form a key; a model whose key has
a finished build in ``sim_build/`` is reused, so a pytest session (and the next one) pays for
each Verilator compile once. The configuration reaches the testbench as JSON in ``PSE_CONFIG``.
"""

import fcntl
import hashlib
import json
import os
from pathlib import Path

from pse_hdl.config import PSEConfig
from pse_hdl.rtl import generate_verilog
from pse_hdl.toolchain import VERILATOR_WAIVERS, get_runner

__all__ = ["run_cocotb", "measure", "config_from_env", "ICARUS_MODES", "icarus_available"]

ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = Path(os.environ.get("PSE_SIM_BUILD", ROOT / "sim_build"))

# Random initial values for every register and X: Verilator is two-state, so this is how a
# testbench sees what a missing reset would leave behind.
BUILD_ARGS = [*VERILATOR_WAIVERS, "--x-assign", "unique", "--x-initial", "unique", "-O2"]
# The model's C++ at -O1 (Verilator's makefile default is -Os), given to cocotb's make through
# MAKEFLAGS: the engine's 4-lane testbench builds in 43 s and runs in 9 s, against 60 s and 9 s
# at -Os; at -O0 it builds in 26 s and runs in 30 s.
MAKE_OPT = "OPT_FAST=-O1 OPT_GLOBAL=-O1"


# Icarus Verilog, 4-state: the same Verilog under the Verilog-2005 and the SystemVerilog event
# rules (cocotb's runner passes -g2012 first; a later -g option overrides it).
ICARUS_MODES = {"icarus-2005": ["-g2005"], "icarus-2012": ["-g2012"]}


def icarus_available():
    """Whether Icarus Verilog (``iverilog``, ``vvp``) is on PATH."""
    import shutil
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def _build(block, cfg, build_args, log_file=None, simulator="verilator"):
    verilog = generate_verilog(block, cfg)
    key = hashlib.sha256("\0".join([verilog, simulator, MAKE_OPT, *build_args]).encode()
                         ).hexdigest()[:16]
    top = f"pse_{block}"
    build_dir = BUILD_ROOT / (f"{block}-{key}" if simulator == "verilator"
                              else f"{block}-{simulator}-{key}")
    stamp = build_dir / "built.ok"
    if simulator == "verilator":
        runner = get_runner()
    else:
        from cocotb_tools.runner import get_runner as cocotb_runner
        runner = cocotb_runner("icarus")
        build_args = ICARUS_MODES[simulator]
    if not stamp.exists():
        build_dir.mkdir(parents=True, exist_ok=True)
        # Parallel test workers may ask for the same model: one builds, the others wait.
        with open(build_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not stamp.exists():
                src = build_dir / f"{top}.v"
                src.write_text(verilog)
                extra = {} if simulator == "verilator" else {"timescale": ("1ns", "1ps")}
                flags = os.environ.get("MAKEFLAGS")
                os.environ["MAKEFLAGS"] = f"{flags} {MAKE_OPT}" if flags else MAKE_OPT
                try:
                    runner.build(sources=[src], hdl_toplevel=top, build_args=build_args,
                                 build_dir=build_dir, always=True,
                                 log_file=build_dir / "build.log" if log_file else None,
                                 **extra)
                finally:
                    if flags is None:
                        del os.environ["MAKEFLAGS"]
                    else:
                        os.environ["MAKEFLAGS"] = flags
                stamp.write_text(key)
    return runner, top, build_dir


def run_cocotb(block, cfg, test_module, *, testcase=None, seed=1, extra_env=None,
               build_args=BUILD_ARGS, log_file=None, simulator="verilator"):
    """Run ``sim/<test_module>.py`` against block ``block``; return (tests, failures).
    With ``log_file`` the simulator's output goes there (and the build's next to the model)
    instead of to the terminal, as the benchmarks want for clean tables. ``simulator`` is
    ``"verilator"`` or one of :data:`ICARUS_MODES` (the testbench sees it as ``PSE_SIM``)."""
    from cocotb_tools.check_results import get_results
    runner, top, build_dir = _build(block, cfg, list(build_args), log_file, simulator)
    env = {"PSE_CONFIG": json.dumps(cfg.to_dict()), "PSE_SIM": simulator,
           "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.update(extra_env or {})
    results = runner.test(test_module=test_module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                          testcase=testcase,
                          build_dir=build_dir, test_dir=build_dir, seed=seed, extra_env=env,
                          log_file=log_file,
                          results_xml=str(build_dir / f"results_{test_module}_{os.getpid()}.xml"))
    return get_results(Path(results))


def measure(block, cfg, test_module, testcase, arrays):
    """Run a measuring testcase: ``arrays`` go to it as an ``.npz`` file named by ``PSE_IN``,
    its JSON answer comes back through ``PSE_OUT``. Output goes to
    ``sim_build/bench_<block>.log``, so a benchmark's table stays readable."""
    import tempfile

    import numpy as np
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.npz", Path(tmp) / "out.json"
        np.savez(src, **arrays)
        log = BUILD_ROOT / f"bench_{block}.log"
        _, failed = run_cocotb(block, cfg, test_module, testcase=testcase, log_file=log,
                               extra_env={"PSE_IN": str(src), "PSE_OUT": str(out)})
        if failed:
            raise RuntimeError(f"the RTL disagreed with the golden model; see {log}")
        return json.loads(out.read_text())


def config_from_env():
    """Inside a testbench: the configuration the runner passed."""
    return PSEConfig.from_dict(json.loads(os.environ["PSE_CONFIG"]))
