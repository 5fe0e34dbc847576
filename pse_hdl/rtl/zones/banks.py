"""The zoned memory's commands and bank state: which bank is active, whether the shadow bank
holds a layout that may be swapped in, and when a command may start."""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import Op, at_most, count_shape

__all__ = ["BankControl"]


class BankControl(wiring.Component):
    """Accepts the zoned memory's commands and keeps the two banks' roles.

    A command is accepted only when it can run, so none is lost: ``REZONE`` while no re-zoning
    runs, ``FETCH`` while no fetch runs (a fetch reads the active bank while a re-zoning builds
    the shadow one), ``SWAP`` when neither runs and the shadow bank holds a complete, error-free
    layout; the banks then exchange roles in the cycle after. ``REZONE n`` outside
    1..``max_layers`` and ``FETCH l`` of a layer the active layout does not have are accepted
    and do nothing but set ``layer_error`` (cleared by the next valid ``REZONE``).

    The active bank and its layer count are reset-less registers: a reset during a re-zoning
    leaves the active layout as it was and only marks the shadow incomplete.

    Members
    -------
    cmd : In(stream)           ``{op: Op, arg}``.
    rz_busy, fetch_busy : In   The re-zoning engine and the fetch unit are busy.
    rz_done, rz_failed : In    The re-zoning engine finished (with an error bit set).
    rz_start, fetch_start : Out  A command starts this cycle (``arg`` is its argument).
    arg : Out                  The offered command's argument.
    active : Out(1)            The active bank (the shadow is the other).
    active_layers : Out        Layers of the active layout.
    shadow_ready : Out(1)      The shadow bank holds a layout ``SWAP`` may take.
    layer_error : Out(1)       A command named a layer count or layer out of range.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        arg = max(count_shape(cfg.max_layers).width, 1)
        layers = count_shape(cfg.max_layers)
        super().__init__({
            "cmd": In(stream.Signature(data.StructLayout({"op": Op, "arg": unsigned(arg)}))),
            "rz_busy": In(1), "fetch_busy": In(1), "rz_done": In(1), "rz_failed": In(1),
            "rz_start": Out(1), "fetch_start": Out(1), "arg": Out(arg),
            "active": Out(1), "active_layers": Out(layers), "shadow_ready": Out(1),
            "layer_error": Out(1)})

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        active = Signal(reset_less=True)
        active_valid = Signal(reset_less=True)
        active_layers = Signal(count_shape(cfg.max_layers), reset_less=True)
        shadow_layers = Signal(count_shape(cfg.max_layers))
        m.d.comb += [self.active.eq(active), self.active_layers.eq(active_layers)]

        op, arg = self.cmd.payload.op, self.cmd.payload.arg
        m.d.comb += self.arg.eq(arg)
        with m.Switch(op):
            with m.Case(Op.REZONE):
                m.d.comb += self.cmd.ready.eq(~self.rz_busy)
            with m.Case(Op.SWAP):
                m.d.comb += self.cmd.ready.eq(~self.rz_busy & ~self.fetch_busy
                                              & self.shadow_ready)
            with m.Case(Op.FETCH):
                m.d.comb += self.cmd.ready.eq(~self.fetch_busy)
        # Each command's acceptance from its own condition, not through ``ready``'s
        # multiplexer: a fetch's end (the walkers' state) then does not reach a re-zoning's start.
        rz_fire = self.cmd.valid & (op == Op.REZONE) & ~self.rz_busy
        fetch_fire = self.cmd.valid & (op == Op.FETCH) & ~self.fetch_busy
        swap_fire = self.cmd.valid & (op == Op.SWAP) & ~self.rz_busy & ~self.fetch_busy \
            & self.shadow_ready
        rz_ok = (arg >= 1) & at_most(arg, cfg.max_layers)
        fetch_ok = active_valid & (arg < active_layers)
        m.d.comb += [self.rz_start.eq(rz_fire & rz_ok),
                     self.fetch_start.eq(fetch_fire & fetch_ok)]

        with m.If(self.rz_start):
            m.d.sync += self.layer_error.eq(0)
        with m.If((fetch_fire & ~fetch_ok) | (rz_fire & ~rz_ok)):
            m.d.sync += self.layer_error.eq(1)
        with m.If(swap_fire):
            m.d.sync += [active.eq(~active), active_valid.eq(1),
                         active_layers.eq(shadow_layers), self.shadow_ready.eq(0)]
        with m.If(self.rz_start):
            m.d.sync += [self.shadow_ready.eq(0), shadow_layers.eq(arg)]
        with m.If(self.rz_done):
            m.d.sync += self.shadow_ready.eq(~self.rz_failed)
        return m
