"""The engine's job sequencer: ALLOCATE, HISTOGRAM and REZONE, passes over every weight in the
background while samples go on (``STATUS.job``). Every layer of the table is checked before a
pass or a re-zoning starts; a refused command sets an error bit and changes nothing. It shares
its signals with the foreground sequencer through :class:`~pse_hdl.rtl.sequencer.State`."""

from amaranth.hdl import Array, Cat, Const, Mux, Signal
from amaranth.lib import wiring

from ..regmap import Op
from .layouts import log2
from .zones.layouts import Op as ZoneOp
from .zones.layouts import Target, at_most, plan_layout

__all__ = ["jobs"]


def jobs(m, s, zones, chain, walker):
    """ALLOCATE, HISTOGRAM and REZONE: passes over every weight, in the background. They
    read the EMA snapshot, the master store and the code buffer, and write the code buffer
    and the shadow bank, none of which inference uses."""
    j = _job_datapath(m, s, zones, chain, walker)
    m.d.sync += s.job_done.eq(0)
    with m.FSM(name="job") as fsm:
        _job_checks(m, s, j)
        _job_passes(m, s, chain, walker, j)
        _job_rezone(m, s, zones, walker, j)
    m.d.comb += [s.job_busy.eq(~fsm.ongoing("IDLE")), s.allocating.eq(fsm.ongoing("WALK"))]
    with m.If(s.fg_cmd):
        m.d.comb += zones.cmd.valid.eq(1)


class _Job:
    """The job sequencer's own signals, shared by its states."""

    def __init__(self, m, s, **signals):
        self.m, self.s = m, s
        self.__dict__.update(signals)

    def finish(self):
        self.m.d.sync += self.s.job_done.eq(1)
        self.m.next = "IDLE"

    def next_layer(self, last, nxt):
        with self.m.If(last):
            self.finish()
        with self.m.Else():
            self.m.d.sync += self.layer.eq(self.layer + 1)
            self.m.next = nxt


def _job_datapath(m, s, zones, chain, walker):
    """The walker's routing (to the control chain, or to the zones' re-zoning), the codes'
    writes into the code buffer, the layer table's check and the shadow layout's footprint."""
    cfg, rm = s.cfg, s.rm
    n = len(cfg.precisions)
    layer = s.job_layer
    rows, cols = Signal(cfg.row_bits + 1), Signal(cfg.col_bits + 1)
    m.d.comb += [rows.eq(s.L("ROWS", layer)), cols.eq(s.L("COLS", layer))]
    total = Signal(cfg.pos_bits)              # rows x cols of the current layer
    count = Signal(cfg.pos_bits)              # codes of the current layer
    step = Signal(range(n + 4))               # THRESHOLDS: writes, commit, then waits at n + 3
    fresh, hist_only = Signal(), Signal()
    zst = zones.status

    # The walker feeds the control chain (ALLOCATE, HISTOGRAM) or the zones' re-zoning.
    to_zones = Signal()
    with m.If(to_zones):
        m.d.comb += [zones.codes.valid.eq(walker.o.valid), zones.codes.payload.eq(0),
                     zones.codes.payload.code.eq(walker.o.payload.prev),
                     walker.o.ready.eq(zones.codes.ready)]
    with m.Else():
        wiring.connect(m, walker.o, chain.w)
    m.d.comb += [walker.base.eq(s.L("MASTER_BASE", layer)), walker.total.eq(total),
                 walker.cols.eq(cols), chain.w_layer.eq(layer)]
    if cfg.input_masks:                   # a masked layer's weights carry its columns' c_j
        m.d.comb += [walker.masked.eq(s.L("MASKED", layer)),
                     walker.col_base.eq(layer * cfg.max_cols)]

    # Codes out of the chain go to the code buffer at the weight's master address.
    code_addr = Signal(cfg.master_addr_bits + 1)
    m.d.comb += [chain.o.ready.eq(1), code_addr.eq(s.L("MASTER_BASE", layer) + count)]
    cpw = rm.codes_per_word
    with m.If(chain.o.valid & ~hist_only & s.allocating):
        sel = code_addr[:log2(cpw)] if cpw > 1 else Const(0, 1)
        m.d.comb += [s.codes_wr.addr.eq(code_addr >> log2(cpw)),
                     s.codes_wr.data.eq(Cat(*[chain.o.payload.code] * cpw)),
                     s.codes_wr.en.eq(1 << sel)]

    valid_layer = Signal()
    valid = ((rows >= 1) & (rows <= cfg.max_rows) & (cols >= 1) & (cols <= cfg.max_cols)
             & ((layer == 0) | (cols == s.L("ROWS", layer - 1)))
             & (s.L("MASTER_BASE", layer) + total <= cfg.master_depth)
             & at_most(s.L("UNIFORM", layer), n))
    if cfg.input_masks:                   # a masked layer names its class
        valid = valid & (~s.L("MASKED", layer) | (s.L("UNIFORM", layer) != 0))
    m.d.comb += valid_layer.eq(valid)
    footprint = Signal(32)
    W = cfg.zone_word_bits
    m.d.comb += footprint.eq(
        sum(zst.zone_words[k] for k in range(n)) * W + zst.meta_bits
        + zst.row_descs * cfg.row_desc_bits + zst.split_descs * cfg.split_desc_bits
        + zst.layers * cfg.layer_desc_bits)
    return _Job(m, s, n=n, layer=layer, rows=rows, cols=cols, total=total, count=count,
                step=step, fresh=fresh, hist_only=hist_only, zst=zst, to_zones=to_zones,
                valid_layer=valid_layer, footprint=footprint)


def _job_checks(m, s, j):
    """IDLE: a job command taken or refused; CHECK: every layer of the table checked before a
    pass or a re-zoning starts."""
    cfg, layer = s.cfg, j.layer
    with m.State("IDLE"):
        with m.If(s.regs.command.job):
            m.d.sync += [layer.eq(0), s.job_op.eq(s.regs.command.op),
                         j.fresh.eq(s.regs.command.arg[0]),
                         j.hist_only.eq(s.regs.command.op == Op.HISTOGRAM)]
            with m.If((s.regs.n_layers < 1) | ~at_most(s.regs.n_layers, cfg.max_layers)):
                m.d.comb += s.raise_["command"].eq(1)
            with m.Elif(s.regs.command.op == Op.HISTOGRAM):
                with m.If(s.regs.command.arg < s.regs.n_layers):
                    m.d.sync += layer.eq(s.regs.command.arg)
                    m.next = "CHECK"
                with m.Else():
                    m.d.comb += s.raise_["command"].eq(1)
            with m.Else():
                m.next = "CHECK"

    with m.State("CHECK"):
        m.d.sync += j.total.eq(j.rows * j.cols)
        m.next = "CHECK2"
    with m.State("CHECK2"):
        with m.If(~j.valid_layer):
            m.d.comb += s.raise_["command"].eq(1)
            m.next = "IDLE"
        with m.Elif(j.hist_only):
            m.next = "PASS"
        with m.Elif(layer == s.regs.n_layers - 1):
            m.d.sync += layer.eq(0)
            with m.If(s.job_op == Op.REZONE):
                m.next = "PLAN"
            with m.Else():
                m.next = "PASS"
        with m.Else():
            m.d.sync += layer.eq(layer + 1)
            m.next = "CHECK"


def _job_passes(m, s, chain, walker, j):
    """ALLOCATE and HISTOGRAM, one layer at a time: the layer's thresholds and band into the
    PA, then the walk of its weights through the control chain, then its class counts."""
    cfg, n, layer, step = s.cfg, j.n, j.layer, j.step
    with m.State("PASS"):
        # Clear the histogram; the layer's thresholds and band go into the PA's staging
        # registers, then a commit applies them at once.
        m.d.sync += [j.total.eq(j.rows * j.cols), j.count.eq(0), step.eq(0)]
        m.d.comb += chain.hist_host.clear.eq(1)
        m.next = "THRESHOLDS"
    with m.State("THRESHOLDS"):
        csr = chain.csr
        with m.If(step <= n + 2):
            m.d.sync += step.eq(step + 1)
        with m.If(step < n):
            m.d.comb += [csr.wr_en.eq(1), csr.wr_addr.eq(step),
                         csr.wr_data.eq(Array(s.L(f"THRESHOLD{k}", layer)
                                              for k in range(n))[step[:max(1, log2(n))]]
                                        if n > 1 else s.L("THRESHOLD0", layer))]
        with m.Elif(step == n):
            m.d.comb += [csr.wr_en.eq(1), csr.wr_addr.eq(n),
                         csr.wr_data.eq(Mux(j.fresh, 0, s.regs.band))]
        with m.Elif(step == n + 1):
            m.d.comb += [csr.wr_en.eq(1), csr.wr_addr.eq(n + 1),
                         csr.wr_data.eq(s.L("UNIFORM", layer))]
            if cfg.input_masks:       # the PA's masked bit above the class
                m.d.comb += csr.wr_data.eq(Cat(s.L("UNIFORM", layer), s.L("MASKED", layer)))
        with m.Elif(step == n + 2):
            m.d.comb += csr.commit.eq(1)
        with m.Else():
            with m.If(chain.error & ~j.hist_only):
                m.d.comb += s.raise_["thresholds"].eq(1)
                m.next = "IDLE"
            with m.Elif(~chain.hist_host.busy):
                m.d.comb += walker.start.eq(1)
                m.next = "WALK"
    with m.State("WALK"):
        with m.If(chain.o.valid):
            m.d.sync += j.count.eq(j.count + 1)
            with m.If(j.count + 1 == j.total):
                m.next = "COUNTS"
    with m.State("COUNTS"):
        # The histogram counted the last code in the cycle it passed: now complete.
        with m.If(~j.hist_only):
            for k in range(n + 1):
                m.d.sync += s.class_count[layer][k].eq(chain.class_count[k])
        j.next_layer(j.hist_only | (layer == s.regs.n_layers - 1), "PASS")


def _job_rezone(m, s, zones, walker, j):
    """REZONE: every layer's plan to the zones, the re-zoning command, the walk of every
    layer's codes into it, and the shadow layout's footprint once it has settled."""
    cfg, n, layer, zst = s.cfg, j.n, j.layer, j.zst
    with m.State("PLAN"):
        plan = Signal(plan_layout(cfg))
        m.d.comb += [plan.rows.eq(j.rows), plan.cols.eq(j.cols),
                     plan.master_base.eq(s.L("MASTER_BASE", layer)),
                     plan.cost.eq(s.L("COST", layer)), plan.uniform.eq(s.L("UNIFORM", layer))]
        if cfg.input_masks:
            m.d.comb += plan.masked.eq(s.L("MASKED", layer))
        m.d.comb += [plan.shift[k].eq(s.L(f"SHIFT{k}", layer)) for k in range(n)]
        m.d.comb += [zones.host_wr.valid.eq(1),
                     zones.host_wr.payload.target.eq(Target.PLAN),
                     zones.host_wr.payload.addr.eq(layer),
                     zones.host_wr.payload.data.eq(plan.as_value())]
        with m.If(zones.host_wr.ready):
            m.d.sync += [s.shadow_rows[layer].eq(j.rows)]
            with m.If(layer == s.regs.n_layers - 1):
                m.d.sync += layer.eq(0)
                m.next = "REZONE"
            with m.Else():
                m.d.sync += layer.eq(layer + 1)
    with m.State("REZONE"):
        # The foreground's FETCH and SWAP take the zones' command stream first.
        with m.If(~s.fg_cmd):
            m.d.comb += [zones.cmd.valid.eq(1), zones.cmd.payload.op.eq(ZoneOp.REZONE),
                         zones.cmd.payload.arg.eq(s.regs.n_layers)]
            with m.If(zones.cmd.ready):
                m.next = "FEED"
    with m.State("FEED"):
        m.d.comb += j.to_zones.eq(1)
        m.d.sync += j.total.eq(j.rows * j.cols)
        m.next = "FEED_START"
    with m.State("FEED_START"):
        m.d.comb += [j.to_zones.eq(1), walker.start.eq(1)]
        m.next = "FEED_RUN"
    with m.State("FEED_RUN"):
        m.d.comb += j.to_zones.eq(1)
        with m.If(~walker.busy):
            with m.If(layer == s.regs.n_layers - 1):
                m.next = "SETTLE"
            with m.Else():
                m.d.sync += layer.eq(layer + 1)
                m.next = "FEED"
    with m.State("SETTLE"):
        with m.If(~zst.rezoning):
            m.d.sync += [s.shadow_footprint.eq(j.footprint), s.shadow_n.eq(s.regs.n_layers),
                         s.zone_error.eq(zst.error.as_value())]
            with m.If(~zst.shadow_ready):
                m.d.comb += s.raise_["rezone"].eq(1)
            j.finish()
