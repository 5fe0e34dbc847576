"""Thresholds from the importance histograms (the firmware's recalibration) and the hysteresis
band that goes with them."""

import numpy as np
import pytest

from pse_hdl.config import PSEConfig
from pse_hdl.model import histogram as hist
from pse_hdl.model.pa import allocate
from pse_hdl.model.policy import hysteresis_band
from pse_hdl.model.thresholds import thresholds_from_histograms


@pytest.mark.parametrize("uniform, masked", [((0, 0, 0), ()), ((1, 0, 0), (True, False, False)),
                                             ((0, 2, 0), ()), ((2, 1, 0), (False, True, False)),
                                             ((1, 3, 0), (True, False, False))])
def test_histogram_thresholds_reproduce_a_layouts_shares(uniform, masked):
    """The firmware's recalibration is a fixed point: thresholds on bin edges give a layout
    (uniform layers all in their class, masked ones in it or pruned); its own class shares,
    from the same histograms, give thresholds that code every layer exactly as before."""
    rng = np.random.default_rng(7)
    cfg = PSEConfig()
    exps = [20, 18, 21]
    for trial in range(20):
        imps = [rng.integers(0, 1 << 14, size=(rng.integers(3, 40), rng.integers(3, 40)))
                * rng.integers(1, 8) for _ in range(3)]
        # A masked layer's weights share their column's importance.
        imps = [np.broadcast_to(im[:1], im.shape) if masked and masked[l] else im
                for l, im in enumerate(imps)]
        hists = [hist.histogram(im, cfg) for im in imps]
        shares = rng.dirichlet(np.ones(4))
        th = thresholds_from_histograms(hists, exps, shares, cfg, "global", uniform, masked)
        codes = [allocate(im, t, uniform=u, masked=bool(masked and masked[l]))
                 for l, (im, t, u) in enumerate(zip(imps, th, uniform))]
        counts = sum(np.bincount(c.ravel(), minlength=4) for c in codes)
        own = counts / counts.sum()
        again = thresholds_from_histograms(hists, exps, own, cfg, "global", uniform, masked)
        recoded = [allocate(im, t, uniform=u, masked=bool(masked and masked[l]))
                   for l, (im, t, u) in enumerate(zip(imps, again, uniform))]
        for c, r in zip(codes, recoded):
            assert np.array_equal(c, r), trial


def test_hysteresis_band_follows_the_thresholds():
    """The band the firmware writes with a set of thresholds: half the smallest positive prune
    threshold by default, the fixed band with ``hysteresis_shift = 0``, none without the
    comparators or a positive prune threshold."""
    th = [[4000, 9000, 20000], [0, 10, 20], [1001, 2000, 3000]]
    assert hysteresis_band(th, PSEConfig()) == 500
    assert hysteresis_band(th, PSEConfig(hysteresis_shift=3)) == 125
    assert hysteresis_band(th, PSEConfig(hysteresis=77, hysteresis_shift=0)) == 77
    assert hysteresis_band(th, PSEConfig(hysteresis_logic=False)) == 0
    assert hysteresis_band([[0, 1, 2]], PSEConfig()) == 0
    assert hysteresis_band(None, PSEConfig()) == 0
