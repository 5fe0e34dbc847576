"""The engine's foreground sequencer and its counters, and the signals both sequencers share
(:class:`State`).

The **foreground** runs INFER, SNAPSHOT and SWAP (``STATUS.busy``); the **job** sequencer
(:mod:`pse_hdl.rtl.jobs`) runs ALLOCATE, HISTOGRAM and REZONE (``STATUS.job``) in the background
while samples go on. They keep
the engine's invariants: a command is validated (layer table, layer count, the active layout,
what a job is using) before anything starts and refused with an error bit otherwise; layer l+1
starts when every row of layer l is written back; the bank swap happens only between samples.
The layer table and the active layout's shapes are reset-less registers, like the zones' bank
select, so a reset in the middle of any command leaves the network and its active layout usable.
"""

from amaranth.hdl import Array, Cat, Mux, Signal, Value, signed

from ..regmap import ERRORS, Op
from .zones.layouts import Op as ZoneOp
from .zones.layouts import at_most

__all__ = ["State", "foreground", "counters"]


def foreground(m, s, zones, mac, chain):
    """INFER, SNAPSHOT and SWAP: a sample, or short commands between two samples. They run
    while a job (ALLOCATE, HISTOGRAM, REZONE) works in the background."""
    cfg = s.cfg
    layer = s.fg_layer
    count = Signal(cfg.pos_bits)
    is_last = layer == s.active_n - 1
    zst = zones.status

    mac_take = _results(m, s, mac, chain, layer, is_last)
    lane_work, busiest = _busiest_lane(m, cfg, mac)
    m.d.sync += [s.layer_mac_cycles.eq(0), s.fg_done.eq(0)]

    def finish():
        m.d.sync += s.fg_done.eq(1)
        m.next = "IDLE"

    def start_between_jobs(state, ok, error):
        """Go to ``state`` if no job runs (else the ``busy`` error) and ``ok`` (else ``error``)."""
        with m.If(s.job_busy):
            m.d.comb += s.raise_["busy"].eq(1)
        with m.Elif(ok):
            m.next = state
        with m.Else():
            m.d.comb += s.raise_[error].eq(1)

    snap = chain.snap
    with m.FSM(name="foreground") as fsm:
        with m.State("IDLE"):
            with m.If(s.regs.command.fg):
                m.d.sync += [layer.eq(0), s.fg_op.eq(s.regs.command.op)]
                with m.Switch(s.regs.command.op):
                    with m.Case(Op.INFER):
                        with m.If((s.regs.n_layers == s.active_n) & (s.active_n != 0)):
                            m.d.sync += s.best_valid.eq(0)
                            m.next = "INFER"
                        with m.Else():
                            m.d.comb += s.raise_["command"].eq(1)
                    with m.Case(Op.SNAPSHOT):
                        start_between_jobs("SNAPSHOT", (s.regs.n_layers >= 1)
                                           & at_most(s.regs.n_layers, cfg.max_layers), "command")
                    with m.Case(Op.SWAP):
                        start_between_jobs("SWAP", zst.shadow_ready, "swap")
                    with m.Case(Op.CLEAR):
                        m.d.sync += s.clear.eq(1)

        with m.State("INFER"):
            m.d.sync += count.eq(0)
            m.d.sync += [w.eq(0) for w in lane_work]
            m.d.comb += [s.fg_cmd.eq(1), zones.cmd.payload.op.eq(ZoneOp.FETCH),
                         zones.cmd.payload.arg.eq(layer)]
            with m.If(zones.cmd.ready):
                m.next = "INFER_RUN"
        with m.State("INFER_RUN"):
            with m.If(mac_take):
                m.d.sync += count.eq(count + 1)
                with m.If(count + 1 == s.active_rows[layer]):
                    m.d.sync += s.layer_mac_cycles.eq(busiest)
                    with m.If(is_last):
                        finish()
                    with m.Else():
                        m.d.sync += layer.eq(layer + 1)
                        m.next = "INFER"

        # The EMA states of every layer's inputs are copied into the snapshot the
        # allocation passes read (once the observations of the last sample have landed).
        with m.State("SNAPSHOT"):
            with m.If(~chain.busy & ~snap.busy):
                m.d.comb += [snap.start.eq(1), snap.base.eq(layer * cfg.max_cols),
                             snap.count.eq(s.L("COLS", layer))]
                m.next = "SNAPSHOT_RUN"
        with m.State("SNAPSHOT_RUN"):
            with m.If(~snap.busy):
                with m.If(layer == s.regs.n_layers - 1):
                    finish()
                with m.Else():
                    m.d.sync += layer.eq(layer + 1)
                    m.next = "SNAPSHOT"

        with m.State("SWAP"):
            m.d.comb += [s.fg_cmd.eq(1), zones.cmd.payload.op.eq(ZoneOp.SWAP)]
            with m.If(zones.cmd.ready):
                m.d.sync += [s.active_footprint.eq(s.shadow_footprint),
                             s.active_n.eq(s.shadow_n)]
                m.d.sync += [s.active_rows[l].eq(s.shadow_rows[l])
                             for l in range(cfg.max_layers)]
                finish()

    m.d.comb += [s.fg_busy.eq(~fsm.ongoing("IDLE")),
                 s.inferring.eq(fsm.ongoing("INFER") | fsm.ongoing("INFER_RUN")),
                 s.snapshotting.eq(fsm.ongoing("SNAPSHOT") | fsm.ongoing("SNAPSHOT_RUN")),
                 s.stalls.eq(Cat(zones.o[p].valid & ~zones.o[p].ready
                                 for p in range(cfg.lanes)).any())]
    s.lane_digits = [mac.digits[k] for k in range(cfg.lanes)]


def _results(m, s, mac, chain, layer, is_last):
    """The MAC's results of a sample: written back as the next layer's operands (and observed
    by the RIC), or, for the last layer, into the result memory with the running argmax; the
    layer's finishing parameters to the MAC. Returns the strobe of a result taken."""
    res = mac.o.payload
    with m.If(s.inferring & ~is_last):
        m.d.comb += [chain.x.valid.eq(mac.o.valid), chain.x.payload.value.eq(res.value),
                     chain.x.payload.column.eq(res.row), chain.x.payload.last.eq(0),
                     mac.o.ready.eq(chain.x.ready),
                     mac.x.valid.eq(mac.o.valid & chain.x.ready),
                     mac.x.payload.value.eq(res.value), mac.x.payload.column.eq(res.row),
                     mac.x.payload.half.eq(~layer[0])]
    with m.Else():
        m.d.comb += mac.o.ready.eq(1)
    mac_take = mac.o.valid & mac.o.ready
    with m.If(s.inferring & is_last & mac_take):
        m.d.comb += [s.result_wr.en.eq(1), s.result_wr.addr.eq(res.row),
                     s.result_wr.data.acc.eq(res.acc),
                     s.result_wr.data.overflow.eq(res.overflow)]
        with m.If(~s.best_valid | (res.acc > s.best_acc)
                  | ((res.acc == s.best_acc) & (res.row < s.argmax))):
            m.d.sync += [s.best_valid.eq(1), s.best_acc.eq(res.acc), s.argmax.eq(res.row)]
    with m.If(s.inferring & mac_take & res.overflow):
        m.d.comb += s.raise_["overflow"].eq(1)
    m.d.comb += [mac.half.eq(layer[0]), mac.layer.eq(layer),
                 mac.out_shift.eq(s.L("OUT_SHIFT", layer)), mac.relu.eq(s.L("RELU", layer)),
                 chain.x_layer.eq(Mux(s.inferring, layer + 1, 0))]
    return mac_take


def _busiest_lane(m, cfg, mac):
    """Digit cycles of every lane in the current layer, and the busiest lane's (the layer's
    cost): ``(lane_work, busiest)``."""
    lane_work = [Signal(cfg.layer_cost_bits, name=f"lane_work{k}") for k in range(cfg.lanes)]
    for k, w in enumerate(lane_work):
        with m.If(mac.digits[k]):
            m.d.sync += w.eq(w + 1)
    # A balanced tree of named maxima: each level is a signal, so the Verilog grows linearly with
    # the lanes (an unnamed chain repeats every operand and doubles with each lane).
    level = lane_work
    while len(level) > 1:
        pairs = [level[i:i + 2] for i in range(0, len(level), 2)]
        level = [pair[0] if len(pair) == 1 else Signal.like(pair[0], name="busiest")
                 for pair in pairs]
        for out, pair in zip(level, pairs):
            if len(pair) == 2:
                m.d.comb += out.eq(Mux(pair[1] > pair[0], pair[1], pair[0]))
    busiest = level[0]
    return lane_work, busiest


def counters(m, s):
    """The counters of the register map (cleared by CLEAR)."""
    c = s.counters
    with m.If(s.clear):
        m.d.sync += [v.eq(0) for v in c.values()]
        m.d.sync += s.clear.eq(0)
    with m.Else():
        cycles = Cat(c["CYCLES_LO"], c["CYCLES_HI"])
        m.d.sync += cycles.eq(cycles + 1)
        with m.If(s.inferring):
            m.d.sync += c["INFER_CYCLES"].eq(c["INFER_CYCLES"] + 1)
        with m.If(s.snapshotting):
            m.d.sync += c["SNAPSHOT_CYCLES"].eq(c["SNAPSHOT_CYCLES"] + 1)
        with m.If(s.job_busy & ((s.job_op == Op.ALLOCATE) | (s.job_op == Op.HISTOGRAM))):
            m.d.sync += c["ALLOC_CYCLES"].eq(c["ALLOC_CYCLES"] + 1)
        with m.If(s.job_busy & (s.job_op == Op.REZONE)):
            m.d.sync += c["REZONE_CYCLES"].eq(c["REZONE_CYCLES"] + 1)
        with m.If(s.inferring & s.stalls):
            m.d.sync += c["FETCH_STALLS"].eq(c["FETCH_STALLS"] + 1)
        m.d.sync += [c["MAC_CYCLES"].eq(c["MAC_CYCLES"] + s.layer_mac_cycles),
                     c["MAC_WORK"].eq(c["MAC_WORK"] + sum(s.lane_digits))]
        with m.If(s.fg_done):
            with m.Switch(s.fg_op):
                with m.Case(Op.INFER):
                    m.d.sync += c["SAMPLES"].eq(c["SAMPLES"] + 1)
                with m.Case(Op.SWAP):
                    m.d.sync += c["SWAPS"].eq(c["SWAPS"] + 1)
        with m.If(s.job_done & (s.job_op == Op.ALLOCATE)):
            m.d.sync += c["ALLOCATIONS"].eq(c["ALLOCATIONS"] + 1)
    # The cycles of the last INFER: from the command to its last result.
    with m.If(s.regs.command.fg & (s.regs.command.op == Op.INFER)):
        m.d.sync += s.infer_timer.eq(1)
    with m.Elif(s.inferring):
        m.d.sync += s.infer_timer.eq(s.infer_timer + 1)
    with m.If(s.fg_done & (s.fg_op == Op.INFER)):
        m.d.sync += c["LAST_INFER_CYCLES"].eq(s.infer_timer)


class State:
    """Signals the engine's sequencers and counters share."""

    def __init__(self, cfg, rm, regs):
        self.cfg, self.rm, self.regs = cfg, rm, regs
        self.layers = regs.layers
        # The foreground (INFER, SNAPSHOT, SWAP) and the background job (ALLOCATE, HISTOGRAM,
        # REZONE): busy, the command, a done strobe, the layer.
        self.fg_busy, self.job_busy = Signal(), Signal()
        self.fg_op, self.job_op = Signal(4), Signal(4)
        self.fg_done, self.job_done, self.clear = Signal(), Signal(), Signal()
        self.fg_layer = Signal(range(max(2, cfg.max_layers)))
        self.job_layer = Signal(range(max(2, cfg.max_layers)))
        self.fg_cmd = Signal()                    # the foreground drives the zones' commands
        self.inferring, self.snapshotting, self.allocating = Signal(), Signal(), Signal()
        self.stalls = Signal()
        self.lane_digits = []
        self.raise_ = {name: getattr(regs.raise_, name) for name, _ in ERRORS if name != "bus"}
        self.zone_error = Signal(4)
        self.argmax = Signal(cfg.row_bits)
        self.best_acc, self.best_valid = Signal(signed(cfg.acc_bits)), Signal()
        self.codes_data = Signal(rm.codes_per_word * cfg.code_bits)
        self.colnorm_data = Signal(cfg.weight_bits)
        self.host_codes_addr = Signal(max(1, (rm.windows["CODES"].size - 1).bit_length()))
        self.infer_timer = Signal(32)
        self.layer_mac_cycles = Signal(cfg.layer_cost_bits)
        self.class_count = Signal.like(regs.class_count)
        count_w = cfg.max_layers.bit_length()
        # The active layout survives a reset (as the zones' bank select does).
        self.active_n = Signal(count_w, reset_less=True)
        self.shadow_n = Signal(count_w)
        self.active_rows = Array(Signal(cfg.row_bits + 1, name=f"active_rows{l}",
                                        reset_less=True) for l in range(cfg.max_layers))
        self.shadow_rows = Array(Signal(cfg.row_bits + 1, name=f"shadow_rows{l}")
                                 for l in range(cfg.max_layers))
        self.active_footprint = Signal(32, reset_less=True)
        self.shadow_footprint = Signal(32)
        self.counters = {r.name: Signal(32, name=r.name.lower()) for r in rm.registers
                         if r.addr >= 16 and r.layer is None and r.name not in (
                             "FOOTPRINT", "SHADOW_FOOTPRINT")}

    def L(self, name, layer):
        """Layer ``layer``'s register ``name`` of the layer table."""
        if isinstance(layer, Value):
            layer = layer.as_unsigned()[:max(1, (self.cfg.max_layers - 1).bit_length())]
        return getattr(self.layers[layer], name.lower())
