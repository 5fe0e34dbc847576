"""Precision Allocator (PA): importance to precision code, one weight per cycle.

The thresholds sit in registers that the host writes through a small port: it stages values
with ``wr_en``/``wr_addr``/``wr_data`` (address ``k < n`` is threshold k, address n the
hysteresis band, address n + 1 the uniform class) and applies them all at once with ``commit``. A commit whose thresholds are not
non-decreasing is refused: the active registers keep their values and ``error`` rises until the
next good commit. So a half-written set never reaches the datapath and an unordered set never does.
A uniform class k > 0 codes every weight k, whatever its importance (a uniform layer,
:mod:`pse_hdl.model.pa`); the check that k names a class is the sequencer's. With
``input_masks``, bit ``code_bits`` of the uniform class's register says the layer is masked:
its weights the thresholds prune keep code 0, the others get k.

The datapath is three register stages: ``imp - H`` and ``imp + H`` (with hysteresis); the
comparisons of the importance (and of ``imp - H`` and ``imp + H``) with every threshold; the count
of the comparisons into codes, with the previous code clamped into
``[code(imp - H), code(imp + H)]``, the golden model's rule (:mod:`pse_hdl.model.pa`). An adder
and a comparator never share a cycle, which keeps the iCE40 above its 30 MHz target.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import layouts

__all__ = ["PrecisionAllocator", "ThresholdPort"]


class ThresholdPort(wiring.Signature):
    """Host write port of the threshold registers."""

    def __init__(self, cfg):
        n = len(cfg.precisions)
        super().__init__({
            "wr_en": Out(1),
            "wr_addr": Out(range(n + 2)),
            "wr_data": Out(unsigned(cfg.importance_bits)),
            "commit": Out(1),
        })


class PrecisionAllocator(wiring.Component):
    """Importance to precision code.

    Parameters
    ----------
    cfg : PSEConfig
        ``thresholds`` and ``hysteresis`` give the reset values of the registers;
        ``hysteresis_logic`` builds the hysteresis comparators (without them the band register is
        absent and the previous code is ignored).

    Members
    -------
    i : In(stream) of :func:`layouts.importance_in`
    o : Out(stream) of :func:`layouts.code_out`
    csr : In(ThresholdPort)
    thresholds : Out(array of importance_bits), the active thresholds (read-back)
    band : Out(importance_bits), the active hysteresis band
    uniform : Out(code_bits), the active uniform class (0: codes from the thresholds)
    masked : Out(1), with ``input_masks``: the active uniform class spares pruned weights
    error : Out(1), the last commit was refused (thresholds not ordered)

    Latency 3 cycles; one weight per cycle. Backpressure stalls the whole pipeline (nothing is
    dropped, duplicated or reordered); ``i.ready`` is high whenever the output register is free
    or being taken.
    """

    def __init__(self, cfg):
        self._cfg = cfg
        self._hyst = cfg.hysteresis_logic
        n = len(cfg.precisions)
        super().__init__({
            "i": In(stream.Signature(layouts.importance_in(cfg))),
            "o": Out(stream.Signature(layouts.code_out(cfg))),
            "csr": In(ThresholdPort(cfg)),
            "thresholds": Out(data.ArrayLayout(unsigned(cfg.importance_bits), n),
                              init=list(cfg.thresholds)),
            "band": Out(unsigned(cfg.importance_bits), init=cfg.hysteresis),
            "uniform": Out(cfg.code_bits),
            **({"masked": Out(1)} if cfg.input_masks else {}),
            "error": Out(1),
        })

    @property
    def cfg(self):
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        n = len(cfg.precisions)
        ib = cfg.importance_bits

        # -- threshold registers ------------------------------------------------------------
        # One signal per staged threshold (not an array-shaped one: the names of an array's
        # element aliases, "staged[2]", collide in nextpnr with the bits of the whole).
        staged = [Signal(unsigned(ib), init=t, name=f"staged{k}")
                  for k, t in enumerate(cfg.thresholds)]
        staged_band = Signal(unsigned(ib), init=cfg.hysteresis)
        staged_uniform = Signal(cfg.code_bits)
        staged_masked = Signal() if cfg.input_masks else None
        with m.If(self.csr.wr_en):
            with m.Switch(self.csr.wr_addr):
                for k in range(n):
                    with m.Case(k):
                        m.d.sync += staged[k].eq(self.csr.wr_data)
                with m.Case(n):
                    m.d.sync += staged_band.eq(self.csr.wr_data)
                with m.Case(n + 1):
                    m.d.sync += staged_uniform.eq(self.csr.wr_data)
                    if cfg.input_masks:
                        m.d.sync += staged_masked.eq(self.csr.wr_data[cfg.code_bits])
        ordered = Const(1)
        for k in range(1, n):
            ordered = ordered & (staged[k - 1] <= staged[k])
        with m.If(self.csr.commit):
            with m.If(ordered):
                m.d.sync += [self.thresholds.eq(Cat(*staged)), self.error.eq(0),
                             self.uniform.eq(staged_uniform)]
                if cfg.input_masks:
                    m.d.sync += self.masked.eq(staged_masked)
                if self._hyst:
                    m.d.sync += self.band.eq(staged_band)
            with m.Else():
                m.d.sync += self.error.eq(1)

        # -- datapath -----------------------------------------------------------------------
        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)

        # Stage 0: the importance and, with hysteresis, imp - H and imp + H.
        s0_valid = Signal()
        s0 = Signal(layouts.importance_in(cfg))
        s0_lo, s0_hi = Signal(signed(ib + 2)), Signal(unsigned(ib + 1))
        imp = self.i.payload.importance
        with m.If(advance):
            m.d.sync += [s0_valid.eq(self.i.valid), s0.eq(self.i.payload)]
            if self._hyst:
                m.d.sync += [s0_lo.eq(imp - self.band), s0_hi.eq(imp + self.band)]

        # Stage 1: every comparison with the thresholds.
        s1_valid = Signal()
        s1 = Signal(layouts.importance_in(cfg))
        cmp_mid, cmp_lo, cmp_hi = Signal(n), Signal(n), Signal(n)
        with m.If(advance):
            m.d.sync += [s1_valid.eq(s0_valid), s1.eq(s0),
                         cmp_mid.eq(Cat(*_cmp(s0.importance, self.thresholds, n)))]
            if self._hyst:
                m.d.sync += [cmp_lo.eq(Cat(*_cmp(s0_lo, self.thresholds, n))),
                             cmp_hi.eq(Cat(*_cmp(s0_hi, self.thresholds, n)))]

        code_bits = cfg.code_bits
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(s1_valid),
                self.o.payload.importance.eq(s1.importance),
                self.o.payload.row.eq(s1.row),
                self.o.payload.column.eq(s1.column),
                self.o.payload.last.eq(s1.last),
            ]
            if self._hyst:
                lo_code = Signal(unsigned(code_bits))
                hi_code = Signal(unsigned(code_bits))
                clamped = Signal(unsigned(code_bits))
                m.d.comb += [lo_code.eq(_count(cmp_lo, n)), hi_code.eq(_count(cmp_hi, n))]
                with m.If(s1.prev < lo_code):
                    m.d.comb += clamped.eq(lo_code)
                with m.Elif(s1.prev > hi_code):
                    m.d.comb += clamped.eq(hi_code)
                with m.Else():
                    m.d.comb += clamped.eq(s1.prev)
                code = clamped
            else:
                code = _count(cmp_mid, n)
            kept = self.uniform
            if cfg.input_masks:            # a masked layer keeps code 0 where it prunes
                kept = Mux(self.masked & (code == 0), 0, self.uniform)
            m.d.sync += self.o.payload.code.eq(Mux(self.uniform != 0, kept, code))
        return m


def _cmp(value, thresholds, n):
    """``value >= t0`` and ``value > t[k]`` for k >= 1 (value may be signed)."""
    return [value >= thresholds[0]] + [value > thresholds[k] for k in range(1, n)]


def _count(cmp, n):
    """Code from the comparison bits: 0 if below t0, else 1 + the thresholds exceeded."""
    total = cmp[0]
    for k in range(1, n):
        total = total + (cmp[k] & cmp[0])
    return total
