"""The engine's register file: the bus decoder and the registers of ``pse_hdl.regmap``.

:class:`RegisterFile` takes the host bus (:mod:`pse_hdl.rtl.bus`), holds the registers the host
writes (``N_LAYERS``, ``BAND``, the layer table: reset-less, so a reset in the middle of a
command leaves the network configured), the sticky error bits and the address of the last
refused access, answers register reads from its storage and from the values the engine gives it
(``state``, ``values``, ``class_count``), and turns a ``CTRL`` write into a command strobe. A
memory window is an access on a :class:`WindowPort`, which the engine connects to the memory
behind it; the register file knows windows only by their place in the map.

A request is registered first, so nothing in the engine depends combinationally on the host's
handshake: a write takes effect the cycle after it is taken (one write per cycle when its target
is ready); a read answers two cycles after it is taken. The access rules (docs/REGISTERS.md): a
refused access (an unmapped address, a write of a read-only or a read of a write-only place,
anything but a register read or a ``CTRL``/``STATUS`` write while a foreground command runs,
what a running job uses) sets an error bit, records its address, and changes nothing; a refused
read answers 0.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..regmap import ERRORS, LAYER_STRIDE, Op
from .bus import BusSignature
from .layouts import log2

__all__ = ["WindowPort", "RegisterFile", "layer_layout"]

# Windows a running job owns (the master store, the code buffer, the histogram, the column
# magnitudes of masked layers where the configuration has them).
JOB_WINDOWS = ("MASTER", "CODES", "HIST", "COLNORM")



class WindowPort(wiring.Signature):
    """One access to a memory window, as the register file drives it: ``we`` writes ``wdata``
    to entry ``addr``, ``re`` reads it (``rdata`` holds the entry in the next cycle); the access
    happens in a cycle the target says ``ready``."""

    def __init__(self, addr_bits):
        super().__init__({"addr": Out(addr_bits), "wdata": Out(32), "we": Out(1), "re": Out(1),
                          "ready": In(1), "rdata": In(32)})


def layer_layout(rm):
    """One layer's read-write registers of the layer table, as a struct (field names in lower
    case: ``rows``, ``cols``, ``master_base``, ..., ``threshold0``, ``shift0``, ...)."""
    return data.StructLayout({name.lower(): width for _, name, width, access, _
                              in rm.layer_table if access == "rw"})


def _value_registers(rm):
    """Read-only registers whose value the engine supplies: name to width."""
    own = ("ID", "CONFIG_HASH", "PARAMS", "CTRL", "STATUS", "ERROR_ADDR", "N_LAYERS", "BAND")
    out = {}
    for r in rm.registers:
        if r.layer is None and r.name not in own:
            out[r.name.lower()] = max(f.offset + f.width for f in r.fields)
    return out


class RegisterFile(wiring.Component):
    """Members
    -------
    bus : In(BusSignature)           the host bus
    win_<name> : Out(WindowPort)     one per window of the map (``win_master``, ...)
    layers : Out(array of layer_layout)  the layer table
    n_layers, band : Out             ``N_LAYERS``, ``BAND``
    command : Out                    ``{fg, job, op, arg}``: a command for the foreground or
                                     the job sequencer (a one-cycle strobe)
    state : In                       ``STATUS``'s fields that are the engine's
    raise_ : In                      per error, a strobe that sets its sticky bit
    errors : Out                     the sticky error bits
    values : In                      the other read-only registers (counters, footprints...)
    class_count : In                 ``CLASS_COUNTk`` of every layer
    """

    def __init__(self, cfg, rm):
        self._cfg, self._rm = cfg, rm
        n = len(cfg.precisions)
        count_w = cfg.max_layers.bit_length()
        errors = data.StructLayout({name: 1 for name, _ in ERRORS})
        members = {
            "bus": In(BusSignature(rm.addr_bits)),
            "layers": Out(data.ArrayLayout(layer_layout(rm), cfg.max_layers)),
            "n_layers": Out(count_w), "band": Out(cfg.importance_bits),
            "command": Out(data.StructLayout({"fg": 1, "job": 1, "op": 4, "arg": 8})),
            "state": In(data.StructLayout({"busy": 1, "job": 1, "active_bank": 1,
                                           "shadow_ready": 1, "active_layers": count_w})),
            # Every error but "bus" can also be raised by the engine's sequencers.
            "raise_": In(data.StructLayout({name: 1 for name, _ in ERRORS if name != "bus"})),
            "errors": Out(errors),
            "values": In(data.StructLayout(_value_registers(rm))),
            "class_count": In(data.ArrayLayout(data.ArrayLayout(32, n + 1), cfg.max_layers)),
        }
        for name, w in rm.windows.items():
            members[f"win_{name.lower()}"] = Out(WindowPort(max(1, log2(w.size))))
        super().__init__(members)

    def window(self, name):
        return getattr(self, f"win_{name.lower()}")

    def elaborate(self, platform):
        m = Module()
        cfg, rm = self._cfg, self._rm
        req, rsp = self.bus.req, self.bus.rsp
        # Storage the host writes survives a reset, as the active layout does.
        layers = Signal(data.ArrayLayout(layer_layout(rm), cfg.max_layers), reset_less=True)
        n_layers = Signal(len(self.n_layers), reset_less=True, init=1)
        band = Signal(len(self.band), reset_less=True, init=cfg.hysteresis)
        errors = Signal(self.errors.shape())
        error_addr = Signal(32)
        m.d.comb += [self.layers.eq(layers), self.n_layers.eq(n_layers), self.band.eq(band),
                     self.errors.eq(errors)]

        q_valid, q = Signal(), Signal.like(req.payload)
        d = self._decode(m, req)
        addr, write = q.addr, q.write

        # The value of the register at the request's address (read when the read is done),
        # decoded from ``q`` again: choosing it by a registered index instead mapped the engine
        # to more cells (21,667 LUT4s against 21,203 on the ECP5).
        reg_read = Signal(32)
        with m.Switch(addr):
            for r in rm.registers:
                with m.Case(r.addr):
                    m.d.comb += reg_read.eq(self._read(r, layers, n_layers, band, errors,
                                                       error_addr))

        ok, allowed, go, pending, rsp_free, fire = self._access(m, d, req, rsp, q_valid, q)
        self._windows(m, d, q, go, rsp_free)
        self._response(m, d, rsp, q, fire, go, pending, reg_read)
        refused_cmd = Signal()
        self._errors(m, errors, error_addr, q, fire, ok, allowed, go, refused_cmd)
        self._writes(m, errors, error_addr, layers, n_layers, band, q, fire, go, refused_cmd)

        # The formal proofs of the bus rules (pse_hdl.formal) tie their count of unanswered
        # reads to the reads this file holds, so that the induction starts from a real state.
        probes = getattr(platform, "probes", None)
        if probes is not None:
            probes["reads_held"] = (q_valid & ~write) + pending + rsp.valid
        return m

    def _decode(self, m, req):
        """The request's address decoded as it is registered: the window or register it names,
        and its offset in the window, are registers beside the request, so the access rules,
        the windows' strobes and their addresses are a few gates from registers (the path from
        a request to the master store across the die was the engine's longest). A window's
        base is a multiple of its power-of-two size (the register map places it so): the window
        is found by the address's high bits and its low bits within the depth."""
        cfg, rm = self._cfg, self._rm
        a = req.payload.addr
        names = list(rm.windows)
        in_window = {nm: Signal(name=f"in_{nm.lower()}") for nm in names}
        offset = {nm: Signal(max(1, log2(w.size)), name=f"offset_{nm.lower()}")
                  for nm, w in rm.windows.items()}
        hit, reg_ro = Signal(), Signal()          # a register is there; it is read-only
        control, table, held = Signal(), Signal(), Signal()   # held: N_LAYERS or BAND
        with m.If(req.ready):
            for nm, w in rm.windows.items():
                k = log2(w.size)
                m.d.sync += [in_window[nm].eq((a[k:] == w.base >> k)
                                              & (a[:k] < w.depth if w.depth < w.size else 1)),
                             offset[nm].eq((a - w.base)[:len(offset[nm])])]
            m.d.sync += [hit.eq(0), reg_ro.eq(0),
                         control.eq((a == rm.addr("CTRL")) | (a == rm.addr("STATUS"))),
                         table.eq((a >= rm.layer_base)
                                  & (a < rm.layer_base + cfg.max_layers * LAYER_STRIDE)),
                         held.eq((a == rm.addr("N_LAYERS")) | (a == rm.addr("BAND")))]
            with m.Switch(a):
                for r in rm.registers:
                    with m.Case(r.addr):
                        m.d.sync += [hit.eq(1),
                                     reg_ro.eq(all(f.access == "ro" for f in r.fields))]
        return SimpleNamespace(names=names, in_window=in_window, offset=offset, hit=hit,
                               reg_ro=reg_ro, control=control, table=table, held=held)

    def _access(self, m, d, req, rsp, q_valid, q):
        """The access rules, and when an access is done (a read needs the response slot, a
        window its target): ``(ok, allowed, go, pending, rsp_free, fire)``."""
        write, in_window, names, win = q.write, d.in_window, d.names, self._rm.windows
        job_owned = Cat(*[in_window[nm] for nm in JOB_WINDOWS if nm in in_window]).any() | \
            (write & (d.table | d.held))
        allowed, ok, go = Signal(), Signal(), Signal()
        m.d.comb += [
            allowed.eq((~self.state.busy | (d.hit & ~write) | (write & d.control))
                       & ~(self.state.job & job_owned)),
            ok.eq((d.hit & ~(write & d.reg_ro))
                  | Cat(*[in_window[nm] & ~(write & (win[nm].access == "ro"))
                          & ~(~write & (win[nm].access == "wo")) for nm in names]).any()),
            go.eq(q_valid & ok & allowed),
        ]

        pending = Signal()                        # a read's data arrives this cycle
        rsp_free = ~pending & ~rsp.valid
        target_ready = Cat(*[in_window[nm] & self.window(nm).ready for nm in names]).any()
        done = Signal()
        m.d.comb += done.eq(Mux(write, 1, rsp_free)
                            & (~(go & Cat(*in_window.values()).any()) | target_ready))
        fire = q_valid & done
        m.d.comb += req.ready.eq(~q_valid | done)
        with m.If(req.ready):
            m.d.sync += [q_valid.eq(req.valid), q.eq(req.payload)]
        return ok, allowed, go, pending, rsp_free, fire

    def _windows(self, m, d, q, go, rsp_free):
        """Every window's port: its offset, the write data and the strobes."""
        for nm in self._rm.windows:
            port = self.window(nm)
            m.d.comb += [port.addr.eq(d.offset[nm]), port.wdata.eq(q.data),
                         port.we.eq(go & q.write & d.in_window[nm]),
                         port.re.eq(go & ~q.write & d.in_window[nm] & rsp_free)]

    def _response(self, m, d, rsp, q, fire, go, pending, reg_read):
        """Reads: the source is captured, the response formed one cycle later."""
        write, names = q.write, d.names
        source = Signal(range(len(names) + 1))    # 0: a register value, k: window k
        reg_value = Signal(32)
        m.d.sync += pending.eq(fire & ~write)
        with m.If(fire & ~write):
            m.d.sync += [source.eq(0), reg_value.eq(Mux(go, reg_read, 0))]
            for k, nm in enumerate(names, start=1):
                with m.If(go & d.in_window[nm]):
                    m.d.sync += source.eq(k)
        with m.If(pending):
            m.d.sync += rsp.valid.eq(1)
            with m.Switch(source):
                with m.Case(0):
                    m.d.sync += rsp.payload.data.eq(reg_value)
                for k, nm in enumerate(names, start=1):
                    with m.Case(k):
                        m.d.sync += rsp.payload.data.eq(self.window(nm).rdata)
        with m.Elif(rsp.ready):
            m.d.sync += rsp.valid.eq(0)

    def _errors(self, m, errors, error_addr, q, fire, ok, allowed, go, refused_cmd):
        """Errors: the engine's strobes, refused accesses and commands; STATUS writes clear."""
        rm, addr, wdata, write = self._rm, q.addr, q.data, q.write
        with m.If(fire & ~(ok & allowed)):
            m.d.sync += error_addr.eq(addr)
        for name, _ in ERRORS:
            bit = getattr(errors, name)
            clear = fire & go & write & (addr == rm.addr("STATUS")) \
                & wdata[rm.reg("STATUS").field(f"err_{name}").offset]
            refused = {"bus": fire & ~ok,
                       "busy": (fire & ok & ~allowed) | refused_cmd}.get(name, 0)
            raised = getattr(self.raise_, name) if name != "bus" else 0
            with m.If(raised | refused):
                m.d.sync += bit.eq(1)
            with m.Elif(clear):
                m.d.sync += bit.eq(0)

    def _writes(self, m, errors, error_addr, layers, n_layers, band, q, fire, go, refused_cmd):
        """Writes of read-write registers, and commands."""
        rm, addr, wdata = self._rm, q.addr, q.data
        wr = fire & go & q.write
        ctrl = rm.reg("CTRL")
        op = wdata[ctrl.field("op").offset:][:4]
        bad_op = Signal()
        with m.If(wr & (addr == ctrl.addr)):
            m.d.comb += [self.command.op.eq(op),
                         self.command.arg.eq(wdata[ctrl.field("arg").offset:][:8])]
            with m.Switch(op):
                with m.Case(*Op.JOBS):
                    m.d.comb += [self.command.job.eq(~self.state.job),
                                 refused_cmd.eq(self.state.job)]
                with m.Case(*Op.FOREGROUND):
                    m.d.comb += [self.command.fg.eq(~self.state.busy),
                                 refused_cmd.eq(self.state.busy)]
                with m.Case(Op.NOP):
                    pass
                with m.Default():
                    m.d.comb += bad_op.eq(1)
        with m.If(bad_op):
            m.d.sync += errors.command.eq(1)
        with m.If(refused_cmd):
            m.d.sync += error_addr.eq(addr)
        for r in rm.registers:
            rw = [f for f in r.fields if f.access == "rw"]
            if rw:
                with m.If(wr & (addr == r.addr)):
                    for f in rw:
                        m.d.sync += self._storage(r, f, layers, n_layers, band).eq(
                            wdata[f.offset:f.offset + f.width])

    def _storage(self, r, f, layers, n_layers, band):
        if r.layer is not None:
            return getattr(layers[r.layer], r.name.lower())
        return {"N_LAYERS": n_layers, "BAND": band}[r.name]

    def _read(self, r, layers, n_layers, band, errors, error_addr):
        """The 32-bit value register ``r`` reads."""
        if r.layer is not None:
            if r.name.startswith("CLASS_COUNT"):
                return self.class_count[r.layer][int(r.name[len("CLASS_COUNT"):])]
            return getattr(layers[r.layer], r.name.lower())
        if r.name in ("N_LAYERS", "BAND"):
            return self._storage(r, r.fields[0], layers, n_layers, band)
        if r.name == "ERROR_ADDR":
            return error_addr
        if r.name == "STATUS":
            value = 0
            for f in r.fields:
                v = getattr(errors, f.name[4:]) if f.name.startswith("err_") \
                    else getattr(self.state, f.name)
                value = value | (Value.cast(v) << f.offset)
            return value
        if r.name in ("ID", "CONFIG_HASH", "PARAMS", "CTRL"):
            return Const(sum(f.reset << f.offset for f in r.fields if f.access != "wo"), 32)
        return Value.cast(getattr(self.values, r.name.lower()))
