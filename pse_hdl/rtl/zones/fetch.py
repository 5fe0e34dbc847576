"""The zoned memory's fetch unit: a loader and one walker per fetch port, sharing the read ports.

On ``start`` the loader reads the layer's table entry and its split descriptors 1 .. P-1 (one
word holds a layer's descriptors), then starts every walker at once: walker p from descriptor p
(port 0 from the layer's start) to descriptor p+1's position (the last port to the layer's end).
A layer of fewer than ``one_port_below`` weights has no split descriptors: port 0 walks all of
it and the others start at its end.
The walkers share one read port of the metadata and one of every zone, in turns: walker p owns
them in the cycles where a free-running counter equals p, and a read returns ``fetch_ports``
logical words, so each walker gets, a turn every ``fetch_ports`` cycles, as many words as it can
use (see ``prefetch``). One copy of every zone and of the metadata serves all ports.

Latency from ``start`` to the walkers' ``go``: two cycles. Throughput: one
surviving weight per cycle per port.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import layouts
from .layouts import at_least, banked, kept_entry, log2, read_ratio, split_layout, table_layout
from .kept import kept_port
from .walker import FetchWalker

__all__ = ["FetchUnit"]


class FetchUnit(wiring.Component):
    """Loader, walkers and read-port turns (see the module docs).

    Parameters
    ----------
    cfg : PSEConfig

    Members
    -------
    start : In(1)             Fetch layer ``layer`` of bank ``bank`` (only while not ``busy``).
    layer : In(layer index)
    bank : In(1)
    busy : Out(1)             Loading, walking, or a transfer not yet taken.
    o : Out(stream) x P       Tagged transfers of each port.
    sched : Out(schedule x P) Per port, its share's first row and whether it continues the
                              previous port's (held until the next ``start``).
    table, split : In(ReadPort)    Read ports of the layer table and the split descriptors.
    meta, zone[k] : In(ReadPort)   The shared read ports (physical words).
    kept : In(ReadPort)       With ``input_masks``: the kept-column table's read port,
                              shared as ``meta`` is.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        n, P, W, R = len(cfg.precisions), cfg.fetch_ports, cfg.zone_word_bits, read_ratio(cfg)
        super().__init__({
            "start": In(1), "layer": In(range(max(2, cfg.max_layers))), "bank": In(1),
            "busy": Out(1),
            "o": Out(stream.Signature(layouts.transfer_layout(cfg))).array(P),
            "sched": Out(data.ArrayLayout(layouts.schedule(cfg), P)),
            "table": In(memory.ReadPort.Signature(addr_width=log2(2 * cfg.max_layers),
                                                   shape=table_layout(cfg))),
            "split": In(memory.ReadPort.Signature(addr_width=log2(2 * cfg.max_layers),
                                                  shape=P * split_layout(cfg).size)),
            "meta": In(memory.ReadPort.Signature(
                addr_width=log2(2 * cfg.meta_depth // R), shape=R * W)),
            **{f"zone{k}": In(memory.ReadPort.Signature(
                addr_width=log2(2 * d // R), shape=R * W)) for k, d in enumerate(cfg.zone_depths)},
            **({"kept": In(kept_port(cfg))} if cfg.input_masks else {})})
        self.zone = [getattr(self, f"zone{k}") for k in range(n)]

    def elaborate(self, platform):
        cfg = self.cfg
        n, P = len(cfg.precisions), cfg.fetch_ports
        m = Module()

        # -- walkers ----------------------------------------------------------------------------
        tab = Signal(table_layout(cfg))
        bank = Signal()
        layer = Signal.like(self.layer, name="walk_layer") if cfg.input_masks else None
        splits = [Signal(split_layout(cfg), name=f"split{p}") for p in range(1, P)]
        go = Signal()
        turn = Signal(range(P)) if P > 1 else Const(0, 1)   # whose turn it is on the ports
        if P > 1:
            m.d.sync += turn.eq(turn + 1)      # P is a power of two: wraps by itself
        walkers = []
        for p in range(P):
            w = FetchWalker(cfg)
            m.submodules[f"walker{p}"] = w
            walkers.append(w)
            wiring.connect(m, w.o, wiring.flipped(self.o[p]))
            end = tab.total if p == P - 1 else splits[p].pos
            m.d.comb += [w.go.eq(go), w.tab.eq(tab), w.bank.eq(bank), w.end.eq(end),
                         w.grant.eq(turn == p), self.sched[p].eq(w.sched)]
            if p > 0:
                m.d.comb += w.first.eq(splits[p - 1])
            if cfg.input_masks:
                m.d.comb += w.kept_base.eq(kept_entry(cfg, bank, layer))
        shared = [(self.meta, [w.meta for w in walkers])]
        if cfg.input_masks:
            shared.append((self.kept, [w.kept for w in walkers]))
        shared += [(self.zone[k], [w.zone[k] for w in walkers]) for k in range(n)]
        for port, readers in shared:
            m.d.comb += port.en.eq(1)
            with m.Switch(turn):
                for p, rd in enumerate(readers):
                    with m.Case(p):
                        m.d.comb += port.addr.eq(rd.addr)
            m.d.comb += [rd.data.eq(port.data) for rd in readers]

        # -- loader: the table entry and the layer's split descriptors, in one cycle ------------
        m.d.sync += go.eq(0)
        m.d.comb += [self.table.en.eq(1), self.split.en.eq(1),
                     self.table.addr.eq(banked(self.bank, self.layer, cfg.max_layers)),
                     self.split.addr.eq(banked(self.bank, self.layer, cfg.max_layers))]
        S = split_layout(cfg).size
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += bank.eq(self.bank)
                    if cfg.input_masks:
                        m.d.sync += layer.eq(self.layer)
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.sync += [tab.eq(self.table.data), go.eq(1)]
                new = self.table.data
                with m.If(at_least(new.total, cfg.one_port_below)):
                    m.d.sync += [splits[p - 1].eq(self.split.data[p * S:(p + 1) * S])
                                 for p in range(1, P)]
                with m.Else():
                    # A layer on port 0 alone stores no split descriptors: the other ports
                    # start at its end (row ``rows``, position ``total``) and send nothing.
                    for s in splits:
                        m.d.sync += [s.eq(0), s.row.eq(new.rows), s.pos.eq(new.total)]
                m.next = "WALK"
            with m.State("WALK"):
                # ``go`` starts the walkers; they are busy from the next cycle.
                with m.If(~go & ~Cat(w.busy for w in walkers).any()):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | Cat(w.busy for w in walkers).any())
        return m
