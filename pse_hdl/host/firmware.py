"""The engine's firmware: the run-time algorithm of docs/SPEC.md section 11, on a :class:`Driver`.

The chip holds the network and does the per-weight work: inference, the rolling importance, the
allocation pass (RIC -> PA -> SM -> histogram -> code buffer), re-zoning and the bank swap. The
firmware decides *when* and the few numbers per layer that need a global view:

* **load**: masters, biases, the layer table, the profiled baseline EMA states (profiling), the
  calibrated thresholds; then a first allocation from the baseline (no previous codes);
* **warm-up**: the first layout holds for ``warmup`` samples while the EMA settles;
* **periodic allocation** every ``period`` samples: SNAPSHOT of the EMA states, then jobs that
  run in the background while samples go on: ALLOCATE; the codes read back, each class's zone
  scale (``model.quant.choose_shift`` over the masters of the class, which the host mirrors)
  and the layer's MAC cost; REZONE into the shadow bank; and ``swap_delay`` samples later
  (0: before the next one) the SWAP, unless the shadow layout's footprint is over the policy's
  ``max_bits`` or its MAC cycles over ``max_mac`` (the budget guard, ``model.engine.within``):
  the active layout then serves on;
* **recalibration** every ``recalibrate_every`` allocations: HISTOGRAM of every layer (jobs on
  the same snapshot), thresholds for the calibrated class shares from the hardware's
  histograms (``model.thresholds.thresholds_from_histograms``), before the ALLOCATE; with a budget
  ladder in the policy, the shares of the rung the outputs since the previous recalibration
  call for (``model.engine.next_rung``: label-free, from the logits it reads anyway).

It is the golden model's ``model.engine.run_dynamic`` step for step, so on any backend the
logits, codes and footprint equal the model's (tested; ``pse demo --backend rtl`` checks every
sample). The figures it reports come from the engine's counters.
"""

from dataclasses import dataclass, field

import numpy as np

from ..model.engine import allocation_points, check_masked, check_uniform, column_norms, \
    hysteresis_band, layer_exponents, next_rung, rung_shares, thresholds_from_histograms, within
from ..model.fixed import signed_range
from ..model.layer import cycle_model, weight_costs
from ..model.pa import code_bits_of
from ..model.quant import choose_shift
from ..model.zones import check_fit
from ..regmap import Op

__all__ = ["Firmware", "RunStats"]


@dataclass
class RunStats:
    """What a run measured, averaged over the samples (layout figures over the samples each
    layout served)."""
    samples: int = 0
    bits: float = 0.0                # bits per weight, from the FOOTPRINT counter
    mac_cycles: float = 0.0          # busiest lane per layer (MAC_CYCLES), per sample
    ideal: float = 0.0               # ceil(work / lanes) per layer, per sample
    dense16: float = 0.0             # the same array dense at 16 bits, per sample
    engine_cycles: float = 0.0       # cycles of an INFER command, per sample
    shares: np.ndarray = None        # class shares (pruned first), from CLASS_COUNT
    allocations: int = 0
    swapped: list = field(default_factory=list)     # per allocation: its layout swapped in
    unfit: int = 0                   # allocations whose layout did not fit (not swapped in)
    alloc_cycles: int = 0            # ALLOCATE + HISTOGRAM cycles of the whole run
    rezone_cycles: int = 0
    extra: dict = field(default_factory=dict)


class Firmware:
    """The firmware of one network on one engine.

    Parameters
    ----------
    driver : Driver
    qnet : QuantNet
        With its profiled ``baseline``.
    thresholds : list of lists
        Per layer, the calibrated threshold registers.
    policy : pse_hdl.model.engine.Firmware
        Class shares, recalibration interval and ranking mode.
    """

    def __init__(self, driver, qnet, thresholds, policy):
        self.drv, self.cfg = driver, driver.cfg
        self.layers = qnet.layers
        if not qnet.baseline:
            raise ValueError("the network has no profiled baseline: run profile() first")
        self.baseline = qnet.baseline
        self.thresholds = [list(map(int, t)) for t in thresholds]
        self.policy = policy
        self.uniform = check_uniform(policy.uniform if policy else None, len(self.layers),
                                     self.cfg)
        self.masked = check_masked(policy.masked if policy else None, self.uniform, self.cfg)
        self.shapes = [q.shape for q in self.layers]
        self.base = [int(b) for b in np.cumsum([0] + [r * c for r, c in self.shapes])[:-1]]
        self.weights = sum(r * c for r, c in self.shapes)
        self.masters = [q.master.copy() for q in self.layers]      # mirror of the master store
        self.codes = [None] * len(self.layers)       # the latest allocation's codes
        self.active = None            # codes, class counts and footprint of the layout in use
        self.footprint = 0
        self.allocations = 0
        self.on_allocation = None
        self.waited = 0                   # cycles the firmware waited for jobs
        self.rung = policy.rung if policy else 0      # the budget's rung (policy.ladder)
        self.rungs = []                   # the rung chosen at each recalibration
        self.swapped = []                 # per allocation after the first: swapped in or kept out
        self.unfit = 0                    # allocations whose layout did not fit
        self._steps, self._pending, self._fresh = [], {}, False

    # -- setup ------------------------------------------------------------------------------
    async def load(self):
        """Everything the engine holds for the network, then the first allocation."""
        cfg, drv = self.cfg, self.drv
        check_fit(self.shapes, cfg)
        lo, hi = signed_range(cfg.acc_bits)
        for l, q in enumerate(self.layers):
            if np.any((q.bias < lo) | (q.bias > hi)):
                raise ValueError(f"layer {l}: a bias is outside the {cfg.acc_bits}-bit "
                                 f"accumulator range")
        await drv.identify()
        await drv.wait_job()
        await drv.clear_errors()
        await drv.write("N_LAYERS", len(self.layers))
        for l, q in enumerate(self.layers):
            rows, cols = q.shape
            await drv.write_window("MASTER", q.master.ravel(), self.base[l])
            await drv.write_window("BIAS", q.bias, l * cfg.max_rows)
            await drv.write_window("RIC", self.baseline[l], l * cfg.max_cols)
            await drv.write_layer(l, ROWS=rows, COLS=cols, MASTER_BASE=self.base[l],
                                  OUT_SHIFT=q.shift, RELU=int(q.relu), UNIFORM=self.uniform[l])
            if cfg.input_masks:           # a masked layer's importance is its columns'
                await drv.write_window("COLNORM", column_norms(q.master), l * cfg.max_cols)
                await drv.write_layer(l, MASKED=int(self.masked[l]))
        await self.write_thresholds()
        await self.allocate(fresh=True)

    async def write_thresholds(self):
        """The thresholds of every layer, and the hysteresis band that goes with them."""
        for l, t in enumerate(self.thresholds):
            await self.drv.write_layer(l, **{f"THRESHOLD{k}": v for k, v in enumerate(t)})
        await self.drv.write("BAND", hysteresis_band(self.thresholds, self.cfg))

    # -- allocation -------------------------------------------------------------------------
    # An allocation is a chain of steps: SNAPSHOT (between two samples), then jobs that run in
    # the background while samples go on: HISTOGRAM of every layer when recalibration is due
    # (then the new thresholds), ALLOCATE (then the zone scales and costs from its codes),
    # REZONE. Each step does the host's work on the previous job's results and starts the next
    # job. At the swap point the rest runs to its end and SWAP follows.

    async def allocate(self, fresh=False, recalibrate=False):
        """An allocation from start to swap."""
        await self.start_allocation(fresh, recalibrate)
        await self.finish_allocation()

    async def start_allocation(self, fresh=False, recalibrate=False):
        await self.drv.command(Op.SNAPSHOT)
        self._pending, self._fresh = {}, fresh
        hists = []
        steps = []
        if recalibrate:
            steps += [self._histogram_step(l, hists) for l in range(len(self.layers))]
            steps.append(self._thresholds_step(hists))
        steps += [self._allocate_step(fresh), self._codes_step(), self._rezone_step()]
        self._steps = steps
        await self.advance()

    async def advance(self, block=False):
        """Go on with the allocation as far as its jobs have got (``block``: to its end,
        counting in ``waited`` the cycles spent waiting for a job)."""
        while self._steps:
            if await self.drv.job_running():
                if not block:
                    return
                start = await self.drv.counter("CYCLES")
                await self.drv.wait_job(unfit_ok=not self._fresh)    # the re-zoning's step sees it
                self.waited += await self.drv.counter("CYCLES") - start
            await self._steps.pop(0)()

    async def finish_allocation(self):
        await self.advance(block=True)
        if not self._fresh:
            cyc = [cycle_model(code_bits_of(c, self.cfg), self.cfg)
                   for c in self._pending["codes"]]
            ok = (self._pending["footprint"] is not None
                  and within(self.policy, self._pending["footprint"], self.weights,
                             (sum(c["scheduled"] for c in cyc), sum(c["dense16"] for c in cyc))))
            self.swapped.append(ok)
            if not ok:                    # over the budget: the active layout serves on
                return
        await self.drv.command(Op.SWAP)
        self.footprint = await self.drv.read("FOOTPRINT")
        self.active = self._pending

    def _histogram_step(self, l, hists):
        async def step():
            if l:
                await self._collect_histogram(hists)
            await self.drv.command(Op.HISTOGRAM, l, wait=False)
        return step

    async def _collect_histogram(self, hists):
        await self.drv.wait_job(Op.HISTOGRAM)
        hists.append(np.array(await self.drv.read_window("HIST", self.cfg.hist_bins), np.int64))

    def _thresholds_step(self, hists):
        async def step():
            await self._collect_histogram(hists)
            self.thresholds = thresholds_from_histograms(
                hists, layer_exponents(self.layers, self.cfg),
                rung_shares(self.policy, self.rung), self.cfg, self.policy.mode,
                self.uniform, self.masked)
            await self.write_thresholds()
        return step

    def _allocate_step(self, fresh):
        async def step():
            await self.drv.command(Op.ALLOCATE, int(fresh), wait=False)
        return step

    def _codes_step(self):
        async def step():
            # The codes the chip chose; per class the zone scale that suits its masters, the
            # layer's MAC cost; then REZONE.
            cfg, drv = self.cfg, self.drv
            await drv.wait_job(Op.ALLOCATE)
            for l, (rows, cols) in enumerate(self.shapes):
                codes = np.array(await drv.read_codes(self.base[l], rows * cols),
                                 np.int64).reshape(rows, cols)
                if not cfg.reversible:             # REZONE clears the pruned masters
                    self.masters[l] = np.where(codes == 0, 0, self.masters[l])
                m = self.masters[l]
                shifts = [choose_shift(m[codes == k], b, cfg.weight_bits)
                          for k, b in enumerate(cfg.precisions, start=1)]
                cost = int(weight_costs(code_bits_of(codes, cfg), cfg).sum())
                await drv.write_layer(l, COST=cost,
                                      **{f"SHIFT{k}": s for k, s in enumerate(shifts)})
                self.codes[l] = codes
            self._pending["codes"] = [c.copy() for c in self.codes]
            self._pending["counts"] = await self.class_counts()
            await drv.command(Op.REZONE, wait=False)
        return step

    def _rezone_step(self):
        async def step():
            # A layout that does not fit the zones or the metadata memory (the re-zoning's error
            # bits say which) is not swapped in: the active one serves on, as the model's does.
            # The first allocation's must fit.
            st = await self.drv.wait_job(Op.REZONE, unfit_ok=not self._fresh)
            if st["err_rezone"]:
                await self.drv.clear_errors(["rezone"])
                self._pending["footprint"] = None
                self.unfit += 1
            else:
                self._pending["footprint"] = await self.drv.read("SHADOW_FOOTPRINT")
            if self.on_allocation:
                self.on_allocation(self.allocations, self.codes, self._pending["footprint"])
        return step

    async def class_counts(self):
        n = len(self.cfg.precisions)
        counts = await self.drv.read_many(*[(f"CLASS_COUNT{k}", l)
                                            for l in range(len(self.layers))
                                            for k in range(n + 1)])
        return np.array(counts, np.int64).reshape(len(self.layers), n + 1).sum(axis=0)

    # -- inference --------------------------------------------------------------------------
    async def infer(self, x):
        """One sample (layer-0 activations) through the engine; returns its logits (and keeps
        the command's cycle count in ``last_infer_cycles``)."""
        await self.drv.write_window("INPUT", x)
        await self.drv.command(Op.INFER)
        result, self.last_infer_cycles = await self.drv.read_many(
            ("RESULT", self.shapes[-1][0]), "LAST_INFER_CYCLES")
        return np.array(result, np.int64)

    async def run(self, x_q, on_sample=None, on_allocation=None, progress=None,
                  before_sample=None):
        """The dynamic algorithm over the samples ``x_q`` (a batch of layer-0 activations).

        ``on_sample(t, logits)`` and ``on_allocation(k, codes, footprint)`` see every result as
        it arrives (a checker raises there to stop the run); ``before_sample(t)`` runs before
        sample t is written (to start a waveform, say). Returns ``(logits, RunStats)``.
        """
        cfg, drv = self.cfg, self.drv
        n = len(x_q)
        points = set(allocation_points(n, cfg))
        delay = cfg.swap_delay
        swap_at = None
        self.on_allocation = on_allocation
        st = RunStats(samples=n, shares=np.zeros(len(cfg.precisions) + 1))
        layout = self._layout_figures()
        start = {k: await drv.read(k) for k in ("MAC_CYCLES", "ALLOC_CYCLES", "REZONE_CYCLES",
                                                "SNAPSHOT_CYCLES")}
        cycles0 = await drv.counter("CYCLES")
        waited0, swapped0, rungs0 = self.waited, len(self.swapped), len(self.rungs)
        unfit0 = self.unfit
        logits = []
        seen = 0                      # samples before the previous recalibration
        # A run starts its count of allocations (recalibration is due every
        # recalibrate_every-th) and its budget rung afresh, as the model's run_dynamic does.
        self.rung = self.policy.rung if self.policy else 0
        for t in range(n):
            if before_sample:
                before_sample(t)
            logits.append(await self.infer(x_q[t]))
            st.engine_cycles += self.last_infer_cycles
            for k in ("bits", "ideal", "dense16", "shares"):
                setattr(st, k, getattr(st, k) + layout[k])
            if on_sample:
                on_sample(t, logits[-1])
            await self.advance()
            # Between samples t and t+1: first the swap of the layout allocated delay samples
            # ago, then a new allocation if one is due (the model's order).
            if t + 1 == swap_at:
                await self.finish_allocation()
                layout, swap_at = self._layout_figures(), None
            if t + 1 in points:
                self.allocations += 1
                st.allocations += 1
                recal = bool(self.policy and self.policy.recalibrate_every
                             and st.allocations % self.policy.recalibrate_every == 0)
                if recal:
                    if self.policy.ladder:
                        self.rung = next_rung(self.policy, self.rung, np.array(logits[seen:]))
                    self.rungs.append(self.rung)
                    seen = t + 1
                await self.start_allocation(recalibrate=recal)
                if delay == 0:
                    await self.finish_allocation()
                    layout = self._layout_figures()
                else:
                    swap_at = t + 1 + delay
            if progress:
                progress(t + 1, n)
        await self.advance(block=True)             # an allocation the run ends before using
        delta = {k: (await drv.read(k) - v) & 0xFFFF_FFFF for k, v in start.items()}
        st.mac_cycles = delta["MAC_CYCLES"]
        st.alloc_cycles, st.rezone_cycles = delta["ALLOC_CYCLES"], delta["REZONE_CYCLES"]
        st.extra["snapshot_cycles"] = delta["SNAPSHOT_CYCLES"]
        st.extra["run_cycles"] = await drv.counter("CYCLES") - cycles0
        st.extra["job_wait_cycles"] = self.waited - waited0
        st.extra["rungs"] = self.rungs[rungs0:]
        st.swapped = self.swapped[swapped0:]
        st.unfit = self.unfit - unfit0
        for k in ("bits", "mac_cycles", "ideal", "dense16", "engine_cycles", "shares"):
            setattr(st, k, getattr(st, k) / max(n, 1))
        return np.array(logits), st

    def _layout_figures(self):
        """Figures of the active layout: bits per weight from the engine's footprint counter,
        class shares from its class counts, ideal and dense cycles from its codes."""
        ideal = dense = 0
        for codes in self.active["codes"]:
            c = cycle_model(code_bits_of(codes, self.cfg), self.cfg)
            ideal, dense = ideal + c["ideal"], dense + c["dense16"]
        counts = self.active["counts"]
        return {"bits": self.active["footprint"] / self.weights, "ideal": ideal,
                "dense16": dense, "shares": counts / counts.sum()}
