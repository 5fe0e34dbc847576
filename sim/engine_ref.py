"""What the engine should do, from the golden model: random networks and their model traces.

Shared by the tier-1 tests (Amaranth simulator), the cocotb testbench and the fast-simulation
tests: a :class:`Case` is a quantized network with its profiled baseline, calibrated-like
thresholds, a firmware policy and samples; :func:`trace` runs the golden model's dynamic
algorithm (``model.engine.run_dynamic``) on it and records every sample's logits and, for every
allocation (0 = the first one, from the baseline), the codes and the footprint.
"""

from dataclasses import dataclass, replace

import numpy as np

from pse_hdl.host.driver import Driver
from pse_hdl.host.firmware import Firmware as HostFirmware
from pse_hdl.model.engine import Engine, Firmware, exact_thresholds, run_dynamic
from pse_hdl.model.network import QuantLayer, QuantNet

__all__ = ["Case", "random_shapes", "random_case", "trace", "run_firmware", "check_run"]


@dataclass
class Case:
    cfg: object
    qnet: QuantNet
    thresholds: list
    policy: Firmware
    x: np.ndarray                 # samples: layer-0 activations
    then: Firmware = None         # a second run on the same engine, over the second half

    def runs(self):
        """``(policy, samples)`` of each run of the case, one after the other."""
        if self.then is None:
            return [(self.policy, self.x)]
        h = len(self.x) // 2
        return [(self.policy, self.x[:h]), (self.then, self.x[h:])]


def random_shapes(cfg, rng, edge=None):
    """1..max_layers layers chained (a layer's inputs are the previous one's rows); ``edge``
    asks for one-row or one-column layers."""
    n = int(rng.integers(1, cfg.max_layers + 1))
    cols = int(rng.integers(1, cfg.max_cols + 1))
    shapes = []
    for l in range(n):
        rows = int(rng.integers(1, cfg.max_rows + 1))
        if edge == "one row" and l == n - 1:
            rows = 1
        if edge == "one column" and l == 0:
            cols = 1
        shapes.append((rows, cols))
        cols = rows
    return shapes


def random_case(cfg, rng, shapes=None, samples=6, shares=None, edge=None, uniform=None,
                guard=False, masked=None):
    """A random network: masters spread over every magnitude, biases, requantization shifts
    that keep hidden activations mostly in range (some saturate), a random baseline.
    ``uniform``: the layers' uniform classes (a list), ``"random"`` for a random mix, or
    ``None`` for none; ``masked``: which of those layers are masked. ``guard="median"``: the policy's budget guard just under the median
    footprint of the run's allocations without it (and no recalibration), so the first ones
    are swapped in, the later ones kept out; ``guard="mac"``: the same with the MAC cycle guard
    (``max_mac`` just under the median cycle ratio); ``guard="switch"``: two runs, every layout
    of the first kept out, every one of the second swapped in; ``guard="unfit"``: layers as large
    as the configuration allows, their class shares chosen so that the first layout fits the
    zones and the metadata memory and some later ones do not (not swapped in; the active layout
    serves on)."""
    if guard == "unfit":
        return _unfit_case(cfg, rng, samples)
    shapes = shapes or random_shapes(cfg, rng, edge)
    layers, base = [], []
    amax = 1 << (cfg.act_bits - 1)
    for l, (rows, cols) in enumerate(shapes):
        wmax = 1 << (cfg.weight_bits - 1)
        master = rng.integers(-wmax, wmax, (rows, cols)) >> rng.integers(0, 8, (rows, cols))
        bias = rng.integers(-(1 << 18), 1 << 18, rows)
        spread = (cols * amax * wmax).bit_length()
        shift = int(rng.integers(max(0, spread - cfg.act_bits - 6), spread - cfg.act_bits + 2))
        layers.append(QuantLayer(master.astype(np.int64), bias.astype(np.int64), 6, 14,
                                 max(shift, 0), l < len(shapes) - 1))
        base.append(rng.integers(0, amax << cfg.ema_frac_bits, cols).astype(np.int64))
    qnet = QuantNet(layers, base)
    n = len(cfg.precisions)
    if shares is None:
        raw = rng.dirichlet(np.ones(n + 1))
        shares = tuple(float(x) for x in raw)
    engine = Engine(qnet, cfg, allocate=False, uniform=uniform if masked else None,
                    masked=masked)
    thresholds = exact_thresholds(engine, shares)
    x = rng.integers(-amax, amax, (samples, shapes[0][1])) * (rng.random((samples, 1)) < 0.9)
    if uniform == "random":
        uniform = [int(rng.integers(0, n + 1)) if rng.random() < 0.6 else 0 for _ in shapes]
    case = Case(cfg, qnet, thresholds, Firmware(shares, 2, uniform=tuple(uniform or ()),
                                                masked=tuple(masked or ())),
                x.astype(np.int64))
    if guard == "median":
        weights = sum(r * c for r, c in shapes)
        case.policy = replace(case.policy, recalibrate_every=0)
        fps = trace(case)["footprints"][1:] or [0]
        case.policy = replace(case.policy, max_bits=(float(np.median(fps)) - 0.5) / weights)
    elif guard == "mac":
        case.policy = replace(case.policy, recalibrate_every=0)
        ratios = trace(case)["mac_ratios"][1:] or [1.0]
        case.policy = replace(case.policy, max_mac=float(np.median(ratios)) * (1 - 1e-9))
    elif guard == "switch":
        case.policy, case.then = replace(case.policy, max_bits=1e-9), case.policy
    elif guard:
        raise ValueError(f"guard must be 'median', 'mac' or 'switch', not {guard!r}")
    return case


def _unfit_case(cfg, rng, samples):
    """A case (see :func:`random_case`) whose later layouts straddle the memories."""
    from pse_hdl.errors import CapacityError
    shapes = [(cfg.max_rows, cfg.max_cols)] * min(cfg.max_layers, cfg.master_depth
                                                 // (cfg.max_rows * cfg.max_cols))
    state = rng.bit_generator.state
    for a in np.linspace(0.0, 0.9, 91):        # unary metadata: about 1.9 + a bits a weight
        rng.bit_generator.state = state
        shares = tuple(float(x) for x in (0.1, 0.9 - a, 0.57 * a, 0.43 * a))
        shares = shares[:len(cfg.precisions) + 1]
        try:
            case = random_case(cfg, rng, shapes=list(shapes), samples=samples, shares=shares)
            stats = trace(case)["stats"][0]
        except CapacityError:                  # the first layout does not fit: no more will
            break
        if stats["unfit"] and not all(not s for s in stats["swapped"]):
            return case
    raise ValueError("no class shares give layouts that straddle the configuration's zones "
                     "and metadata memory")


def trace(case):
    """The golden model's run: ``{"logits", "codes": [per allocation, per layer],
    "footprints": [per allocation], "mac_ratios": [per allocation], "stats"}``."""
    engine = Engine(case.qnet, case.cfg, thresholds=case.thresholds,
                    uniform=case.policy.uniform, masked=case.policy.masked)
    codes, footprints = [[c.copy() for c in engine.codes]], [engine.footprint()["total"]]
    ratios = []

    def record(k, eng):
        codes.append([c.copy() for c in eng.codes])
        footprints.append(eng.allocated_footprint()["total"] if eng.pending else None)
        cyc = eng.cycles(pending=True)
        ratios.append(cyc["scheduled"] / cyc["dense16"])
    cyc = engine.cycles()
    ratios.append(cyc["scheduled"] / cyc["dense16"])
    runs = [run_dynamic(engine, x, policy, on_allocation=record) for policy, x in case.runs()]
    return {"logits": np.concatenate([r[0] for r in runs]), "codes": codes,
            "footprints": footprints, "mac_ratios": ratios, "stats": [r[1] for r in runs]}


async def run_firmware(case, bus):
    """The host firmware on ``bus`` (any transport) over the case's samples. Returns the
    logits, the statistics of each run and, for every allocation from the first (at load), its
    codes and footprint."""
    fw = HostFirmware(Driver(bus, case.cfg), case.qnet, case.thresholds, case.policy)
    await fw.load()
    allocs = [([c.copy() for c in fw.codes], fw.footprint)]
    logits, stats = [], []
    for policy, x in case.runs():
        fw.policy = policy
        out, st = await fw.run(x, on_allocation=lambda k, codes, footprint: allocs.append(
            ([c.copy() for c in codes], footprint)))
        logits.append(out)
        stats.append(st)
    return np.concatenate(logits), stats, allocs


def check_run(case, logits, stats, allocs):
    """Every logit, every allocation's codes and footprint, and the layout figures the firmware
    measured equal the golden model's run of the case."""
    want = trace(case)
    bad = np.argwhere(np.asarray(logits) != want["logits"])
    assert not bad.size, f"logits differ first at sample, row {tuple(bad[0])}"
    assert len(allocs) == len(want["codes"]), (len(allocs), len(want["codes"]))
    for k, (codes, footprint) in enumerate(allocs):
        for l, (got, exp) in enumerate(zip(codes, want["codes"][k])):
            np.testing.assert_array_equal(got, exp, err_msg=f"allocation {k} layer {l}")
        assert footprint == want["footprints"][k], f"allocation {k} footprint"
    assert len(stats) == len(want["stats"])
    for st, ms in zip(stats, want["stats"]):
        for got, exp, what in ((st.mac_cycles, ms["cycles"], "MAC cycles"),
                               (st.bits, ms["bits"], "bits per weight"),
                               (st.ideal, ms["ideal"], "ideal cycles")):
            assert abs(got - exp) <= 1e-9 * max(1.0, abs(exp)), (what, got, exp)
        np.testing.assert_allclose(st.shares, ms["shares"], atol=1e-12)
        assert st.swapped == ms["swapped"], (st.swapped, ms["swapped"])
        assert st.unfit == ms["unfit"], (st.unfit, ms["unfit"])
