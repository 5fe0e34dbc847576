"""The engine: the zoned memory, the MAC array and the control chain behind one register map.

The host talks to the engine through one memory-mapped word bus (:mod:`pse_hdl.rtl.bus`); the
registers and windows are those of :class:`pse_hdl.regmap.RegisterMap`. The host loads masters,
biases, the layer table and the profiled EMA states, then drives the engine with commands written
to ``CTRL``. Two sequencers run them: the **foreground** (INFER, SNAPSHOT, SWAP; ``STATUS.busy``)
and the **job** sequencer (ALLOCATE, HISTOGRAM, REZONE; ``STATUS.job``), whose passes over every
weight run in the background while samples go on, since they use nothing inference uses.

Data paths::

    INPUT window --(each write)--> MAC operand buffer, half 0      RIC observes layer 0
    INFER, layer l:  zones FETCH l --fetch port k--> MAC lane k (sched from the split
        descriptors) --> finished rows --> operand half (l+1) mod 2, RIC observes layer l+1
        --> (last layer) RESULT window, ARGMAX
    SNAPSHOT: the RIC copies every layer's EMA states into the snapshot the jobs read
    ALLOCATE, layer l: walker (master store + code buffer) --> RIC (|w| A, snapshot) --> PA
        (layer l's thresholds) --> SM --> histogram --> code buffer; class counts into the table
    HISTOGRAM l: the same walk into the histogram only
    REZONE: plans from the layer table, then walker (code buffer) --> zones re-zoning engine,
        which writes the shadow bank while FETCH reads the active one
    SWAP: the zones exchange banks (between samples, no job running)

One :class:`LayerWalker` serves every pass: it streams a layer's masters and previous codes in
row-major order. The sequencers (:mod:`pse_hdl.rtl.sequencer`, :mod:`pse_hdl.rtl.jobs`) keep
the engine's invariants: a command is validated (layer
table, layer count, the active layout, what a job is using) before anything starts and refused
with an error bit otherwise; layer l+1 starts when every row of layer l is written back; the
bank swap happens only between samples. The layer table and the active layout's shapes are
reset-less registers, like the zones' bank select, so a reset in the middle of any command
leaves the network and its active layout usable: the next INFER is right.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..errors import ConfigError
from ..regmap import RegisterMap, check_engine_config
from .bus import BusSignature
from .control import ControlChain
from .mac import MacArray
from .registers import RegisterFile
from .walker import LayerWalker
from .jobs import jobs
from .sequencer import State, counters, foreground
from .zones import Target, ZonedMemory

__all__ = ["Engine", "LayerWalker"]


class Engine(wiring.Component):
    """The Precision & Sparsity Engine (see the module docs and ``docs/RTL.md``).

    Parameters
    ----------
    cfg : PSEConfig
        ``check_engine_config`` limits: factored importance, 32-bit accumulators and
        importances, 4-bit MAC digits.

    Members
    -------
    bus : In(BusSignature)  the host bus (``regmap.addr_bits`` address bits)
    busy : Out(1)           a command or a job runs (for a LED)
    error : Out(1)          some error bit of ``STATUS`` is set (for a LED)
    """

    def __init__(self, cfg):
        try:
            check_engine_config(cfg)
        except ConfigError:
            self._MustUse__silence = True       # refused before it existed: no "unused" warning
            raise
        self._cfg = cfg
        self.regmap = RegisterMap(cfg)
        super().__init__({"bus": In(BusSignature(self.regmap.addr_bits)),
                          "busy": Out(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        cfg, rm = self._cfg, self.regmap
        m.submodules.zones = zones = ZonedMemory(cfg)
        m.submodules.mac = mac = MacArray(cfg)
        m.submodules.chain = chain = ControlChain(cfg)
        m.submodules.walker = walker = LayerWalker(cfg, rm.codes_per_word)
        for p in range(cfg.lanes):
            wiring.connect(m, zones.o[p], mac.i[p])
        m.d.comb += mac.sched.eq(zones.sched)
        wiring.connect(m, walker.master, zones.master_walk)
        if not cfg.reversible:                 # the re-zoning engine clears pruned masters
            m.d.comb += chain.clear.ready.eq(1)

        m.submodules.regs = regs = RegisterFile(cfg, rm)
        wiring.connect(m, wiring.flipped(self.bus), regs.bus)
        s = State(cfg, rm, regs)
        self._memories(m, s, walker)
        foreground(m, s, zones, mac, chain)
        jobs(m, s, zones, chain, walker)
        counters(m, s)
        self._windows(m, s, regs, zones, mac, chain)
        st, v = regs.state, regs.values
        m.d.comb += [st.busy.eq(s.fg_busy), st.job.eq(s.job_busy),
                     st.active_bank.eq(zones.status.active),
                     st.shadow_ready.eq(zones.status.shadow_ready),
                     st.active_layers.eq(s.active_n), regs.class_count.eq(s.class_count),
                     v.argmax.eq(s.argmax), v.zone_error.eq(s.zone_error),
                     v.footprint.eq(s.active_footprint),
                     v.shadow_footprint.eq(s.shadow_footprint)]
        m.d.comb += [getattr(v, name.lower()).eq(sig) for name, sig in s.counters.items()]
        m.d.comb += [self.busy.eq(s.fg_busy | s.job_busy), self.error.eq(regs.errors.as_value().any())]
        return m

    # -- storage ------------------------------------------------------------------------------

    def _memories(self, m, s, walker):
        """The code buffer (read by the walker, or the host while idle) and the result memory."""
        cfg, rm = self._cfg, self.regmap
        cpw = rm.codes_per_word
        m.submodules.codes = codes = memory.Memory(
            shape=cpw * cfg.code_bits, depth=rm.windows["CODES"].depth, init=[])
        s.codes_wr = codes.write_port(granularity=cfg.code_bits)
        codes_rd = codes.read_port()
        m.d.comb += [walker.codes.data.eq(codes_rd.data), s.codes_data.eq(codes_rd.data)]
        with m.If(s.job_busy):
            m.d.comb += [codes_rd.addr.eq(walker.codes.addr), codes_rd.en.eq(walker.codes.en)]
        with m.Else():
            m.d.comb += codes_rd.addr.eq(s.host_codes_addr)
        m.submodules.results = results = memory.Memory(
            shape=data.StructLayout({"acc": signed(cfg.acc_bits), "overflow": 1}),
            depth=cfg.max_rows, init=[])
        s.result_wr = results.write_port()
        s.result_rd = results.read_port()
        if cfg.input_masks:
            # Masked layers' column magnitudes: the host writes them, the walker reads them in
            # a job (the host's read port otherwise).
            m.submodules.colnorm = colnorm = memory.Memory(
                shape=cfg.weight_bits, depth=cfg.ric_depth, init=[])
            s.colnorm_wr, colnorm_rd = colnorm.write_port(), colnorm.read_port()
            s.colnorm_host_addr = Signal.like(colnorm_rd.addr)
            m.d.comb += [walker.colnorm.data.eq(colnorm_rd.data),
                         s.colnorm_data.eq(colnorm_rd.data)]
            with m.If(s.job_busy):
                m.d.comb += [colnorm_rd.addr.eq(walker.colnorm.addr),
                             colnorm_rd.en.eq(walker.colnorm.en)]
            with m.Else():
                m.d.comb += colnorm_rd.addr.eq(s.colnorm_host_addr)

    # -- windows ----------------------------------------------------------------------------

    def _windows(self, m, s, regs, zones, mac, chain):
        """Each window of the register map onto the memory behind it."""
        cfg = self._cfg
        w = regs.window
        master, codes, bias, ric = w("MASTER"), w("CODES"), w("BIAS"), w("RIC")
        inp, result, ovf, hist = w("INPUT"), w("RESULT"), w("RESULT_OVF"), w("HIST")
        # The master store, in the zoned memory: writes and reads are streams.
        with m.If(master.we):
            m.d.comb += [zones.host_wr.valid.eq(1),
                         zones.host_wr.payload.target.eq(Target.MASTER),
                         zones.host_wr.payload.addr.eq(master.addr),
                         zones.host_wr.payload.data.eq(master.wdata[:cfg.weight_bits])]
        with m.If(master.re):
            m.d.comb += [zones.host_rd.valid.eq(1),
                         zones.host_rd.payload.target.eq(Target.MASTER),
                         zones.host_rd.payload.bank.eq(0),
                         zones.host_rd.payload.addr.eq(master.addr)]
        m.d.comb += [master.ready.eq(Mux(master.we, zones.host_wr.ready, zones.host_rd.ready)),
                     master.rdata.eq(zones.rd_data[:cfg.weight_bits].as_signed())]
        # The code buffer (its read port is the walker's while a job runs).
        with m.If(codes.we):
            m.d.comb += [s.codes_wr.addr.eq(codes.addr), s.codes_wr.data.eq(codes.wdata),
                         s.codes_wr.en.eq(-1)]
        m.d.comb += [codes.ready.eq(1), codes.rdata.eq(s.codes_data),
                     s.host_codes_addr.eq(codes.addr)]
        if cfg.input_masks:               # column magnitudes, as the code buffer
            cn = w("COLNORM")
            m.d.comb += [s.colnorm_wr.en.eq(cn.we), s.colnorm_wr.addr.eq(cn.addr),
                         s.colnorm_wr.data.eq(cn.wdata), cn.ready.eq(1),
                         cn.rdata.eq(s.colnorm_data), s.colnorm_host_addr.eq(cn.addr)]
        # Biases and EMA states: the MAC's and the RIC's host ports.
        m.d.comb += [mac.bias.en.eq(bias.we), mac.bias.addr.eq(bias.addr),
                     mac.bias.data.eq(bias.wdata), mac.bias_rd.addr.eq(bias.addr),
                     bias.ready.eq(1), bias.rdata.eq(mac.bias_rd.data.as_signed()),
                     chain.ric_host.en.eq(ric.we), chain.ric_host.addr.eq(ric.addr),
                     chain.ric_host.data.eq(ric.wdata), chain.ric_host_rd.addr.eq(ric.addr),
                     ric.ready.eq(1), ric.rdata.eq(chain.ric_host_rd.data)]
        # The input: one activation of layer 0 into the operand buffer, observed by the RIC.
        with m.If(inp.we):
            m.d.comb += [chain.x.valid.eq(1), chain.x.payload.value.eq(inp.wdata),
                         chain.x.payload.column.eq(inp.addr), chain.x.payload.last.eq(0),
                         mac.x.valid.eq(chain.x.ready), mac.x.payload.value.eq(inp.wdata),
                         mac.x.payload.column.eq(inp.addr), mac.x.payload.half.eq(0)]
        m.d.comb += inp.ready.eq(chain.x.ready)
        # Results and the histogram.
        m.d.comb += [s.result_rd.addr.eq(Mux(result.re, result.addr, ovf.addr)),
                     result.ready.eq(1), ovf.ready.eq(1),
                     result.rdata.eq(s.result_rd.data.acc.as_signed()),
                     ovf.rdata.eq(s.result_rd.data.overflow),
                     chain.hist_host.rd_addr.eq(hist.addr), hist.ready.eq(1),
                     hist.rdata.eq(chain.hist_host.rd_data)]
