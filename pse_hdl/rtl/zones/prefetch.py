"""A sequential reader of one element stream out of a memory whose read port it shares.

The zone and metadata memories have one read port for all fetch walkers; each walker owns it
one cycle in ``fetch_ports`` (its ``grant``) and a read returns a whole physical word, which holds
``fetch_ports`` logical words, so one read a turn keeps a walker fed. A walker reads every stream
it needs (one per zone, the metadata) in order, element after element, so what it will need next
is always known: the next physical word. The prefetcher keeps two words in two slots, the
current one and the next, and asks for the one after as soon as a slot is free.

A slot is free once the consumer has taken (``advance``) the last element in it: the consumer
reads an element's value when it takes it (the fetch walker puts a weight's value into its
event), so a taken element's word is not needed again. The current element's word is one
output (``word``), chosen between the slots here once: every consumer slices that signal, where
slicing the slot array by a variable index would build one multiplexer per slice (for 16 ports,
an element of 16 words: 128 copies of a 512-bit one, which yosys removes again but which made
the Verilog of the 16-port zoned memory take minutes to generate).

A zone's elements go from its prefetcher to the walker through an ``ElementQueue``: the walker
takes from a FIFO by itself, the prefetcher pushes on credits, and only registers lie between.
"""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["WordPrefetch", "ElementQueue"]


class WordPrefetch(wiring.Component):
    """Two-slot prefetcher of consecutive elements over a shared read port (see module docs).

    Latency: the first element is available (``ok``) ``read_latency + 1`` cycles after the
    first ``grant`` following ``start`` (request, block RAM read and, with a read latency of 2,
    its output register, slot write). Throughput: one element per cycle as long as a physical
    word lasts at least as many cycles as two turns of the port (a walker's turn comes every
    ``fetch_ports`` cycles) and its read; a word that lasts less costs the consumer a wait.

    Parameters
    ----------
    addr_width : int
        Physical word address width.
    word_bits : int
        Physical word width.
    elem_log2 : int
        log2 of the elements per physical word.
    read_latency : int
        Cycles from a read's ``en`` to its ``data`` (1: a block RAM's port; 2: its output
        registered as well).
    element : bool
        Give the current element out of a register as well (``element``).

    Members
    -------
    start : In(1)             Begin at element ``first`` (drops whatever was prefetched).
    first : In(unsigned)      Absolute element index: ``word << elem_log2 | element``.
    run : In(1)               Fetch while high (after ``start``).
    grant : In(1)             The read port is this prefetcher's this cycle.
    port : In(ReadPort)       The shared read port's view: ``en`` when reading (granted),
                              ``addr``; ``data`` ``read_latency`` cycles after ``en``.
    ok : Out(1)               The current element's word is in ``word``.
    word : Out(word_bits)     The current element's word (its slot's contents).
    sel : Out(elem_log2)      The current element's index in its word.
    advance : In(1)           The current element is taken (only while ``ok``); the consumer
                              reads its value from ``word`` in the same cycle.
    element : Out             With ``element``: the current element (``word`` sliced at
                              ``sel``), a register loaded with the next one as the current one
                              is taken, so no slot or lane multiplexer lies on the consumer's
                              paths and its ``advance`` only enables the load.
    """

    def __init__(self, addr_width, word_bits, elem_log2, read_latency=1, element=False):
        assert read_latency in (1, 2), "a read port's data one or two cycles after its en"
        self.elem_log2, self.read_latency = elem_log2, read_latency
        self.registered_element = element
        super().__init__({
            "start": In(1), "first": In(addr_width + 1 + elem_log2), "run": In(1),
            "grant": In(1),
            "port": In(memory.ReadPort.Signature(addr_width=addr_width, shape=word_bits)),
            "ok": Out(1), "word": Out(word_bits), "sel": Out(max(1, elem_log2)),
            "advance": In(1),
            **({"element": Out(word_bits >> elem_log2)} if element else {})})

    def elaborate(self, platform):
        e = self.elem_log2
        m = Module()

        index = Signal.like(self.first)        # the current element
        fetch = Signal(len(self.first) - e)    # the next word to read
        loaded = Signal(range(3))              # words in the slots from the current one on
        asked = Signal(range(3))               # words read or being read from the current one
        landing, landing_slot = Signal(), Signal()     # a read's data arrives, for this slot
        slots = Signal(data.ArrayLayout(len(self.word), 2))

        word = index[e:]
        m.d.comb += [self.ok.eq(loaded != 0), self.word.eq(Mux(word[0], slots[1], slots[0])),
                     self.sel.eq(index[:e] if e else 0),
                     self.port.addr.eq(fetch)]
        m.d.comb += self.port.en.eq(self.run & ~self.start & self.grant & (asked < 2))
        crossing = self.advance & ((index[:e] == (1 << e) - 1) if e else 1)

        # A read and its slot travel down ``read_latency`` registers to ``landing``.
        flight, flight_slot = self.port.en, fetch[0]
        for i in range(self.read_latency):
            last = i == self.read_latency - 1
            en_q = landing if last else Signal(name=f"reading{i}")
            slot_q = landing_slot if last else Signal(name=f"reading{i}_slot")
            m.d.sync += [en_q.eq(flight), slot_q.eq(flight_slot)]
            with m.If(self.start):
                m.d.sync += en_q.eq(0)
            flight, flight_slot = en_q, slot_q
        with m.If(self.port.en):
            m.d.sync += fetch.eq(fetch + 1)
        with m.If(landing):
            with m.If(landing_slot):
                m.d.sync += slots[1].eq(self.port.data)
            with m.Else():
                m.d.sync += slots[0].eq(self.port.data)
        m.d.sync += [loaded.eq(loaded + landing - crossing),
                     asked.eq(asked + self.port.en - crossing)]
        with m.If(self.advance):
            m.d.sync += index.eq(index + 1)
        with m.If(self.start):
            m.d.sync += [index.eq(self.first), fetch.eq(self.first[e:]), loaded.eq(0),
                         asked.eq(0)]
        if self.registered_element:
            self._element(m, index, slots, loaded, landing)
        return m

    def _element(self, m, index, slots, loaded, landing):
        """``element``: when the consumer takes the current element, the one after it, from
        the read landing now if no slot holds its word after this cycle, else from its slot;
        when the current word lands, its element. Every choice but the last is made from
        registers: ``advance`` (the consumer's decision) only enables the load."""
        e, E = self.elem_log2, len(self.element)

        def lane(word, i):
            return Array(word[j * E:(j + 1) * E] for j in range(1 << e))[i] if e else word

        last = (index[:e] == (1 << e) - 1) if e else 1     # the current element ends its word
        after = Signal(e + 1)                  # the next element's lane and its word's slot
        m.d.comb += after.eq(index[:e + 1] + 1)
        src = Mux(landing & (loaded == last), self.port.data, Mux(after[e], slots[1], slots[0]))
        with m.If(self.advance):
            m.d.sync += self.element.eq(lane(src, after[:e]))
        with m.Elif(landing & (loaded == 0)):
            m.d.sync += self.element.eq(lane(self.port.data, index[:e]))


class ElementQueue(wiring.Component):
    """The elements of one zone stream between its prefetcher and the walker that takes them,
    with nothing but registers between the two sides.

    The prefetcher sits by the zone's block RAMs, which all walkers share, and a walker's three
    zones are spread over the die; the walker's decision to take a weight is its longest
    logic, so it must end in registers by the walker, and the prefetcher's side must not wait
    on it. The queue is therefore in two parts. By the walker, a FIFO of ``DEPTH`` elements:
    the walker takes its head (``pop``) and sees whether it has one (``valid``). The pop itself
    only sets a register (``taken``): the FIFO's read pointer and fill level follow it a cycle
    later, and meanwhile ``head`` and ``valid`` show the entry behind the one taken (both
    chosen by that register, so the walker's decision drives one flip-flop here and nothing
    else). By the prefetcher, a count of the FIFO's free places (credits): it pushes its
    current element (``value``) whenever it has one and a credit, and the element travels to
    the FIFO through a register (``sent``); ``taken`` gives the credit back. An element takes
    four cycles from push to credit returned, so four places keep one element a cycle flowing.

    Latency: an element can be taken two cycles after the prefetcher offers it (two more than
    taking it from the prefetcher). Throughput: one element per cycle.

    Parameters
    ----------
    shape : ShapeCastable
        An element's shape.

    Members
    -------
    start : In(1)       Empty the queue (with the prefetcher's ``start``).
    value : In(shape)   The prefetcher's current element,
    ok : In(1)          while it has one.
    advance : Out(1)    The element is pushed (the prefetcher's ``advance``).
    valid : Out(1)      The FIFO holds an element:
    head : Out(shape)   the oldest.
    pop : In(1)         The head is taken (only while ``valid``).
    """

    DEPTH = 4
    LATENCY = 2

    def __init__(self, shape):
        super().__init__({"start": In(1), "value": In(shape), "ok": In(1), "advance": Out(1),
                          "valid": Out(1), "head": Out(shape), "pop": In(1)})

    def elaborate(self, platform):
        D = self.DEPTH
        m = Module()
        taken = Signal()                   # the walker's pop, applied (and returned) a cycle on
        # -- by the prefetcher: credits, and the element on its way --------------------------
        credits = Signal(range(D + 1), init=D)
        sent, sent_value = Signal(), Signal.like(self.value)
        push = self.advance
        m.d.comb += push.eq(self.ok & (credits != 0) & ~self.start)
        m.d.sync += [credits.eq(credits - push + taken), sent.eq(push),
                     sent_value.eq(self.value)]
        # -- by the walker: the FIFO -----------------------------------------------------------
        entries = [Signal.like(self.value, name=f"entry{i}") for i in range(D)]
        wptr, rptr = Signal(range(D)), Signal(range(D))
        level = Signal(range(D + 1))
        with m.If(sent):
            m.d.sync += wptr.eq(wptr + 1)          # D is a power of two: wraps by itself
            with m.Switch(wptr):
                for i, e in enumerate(entries):
                    with m.Case(i):
                        m.d.sync += e.eq(sent_value)
        with m.If(taken):
            m.d.sync += rptr.eq(rptr + 1)
        m.d.sync += [level.eq(level + sent - taken), taken.eq(self.pop)]
        m.d.comb += [self.valid.eq(level > taken),
                     self.head.eq(Array(entries)[(rptr + taken)[:len(rptr)]])]
        with m.If(self.start):
            m.d.sync += [credits.eq(D), sent.eq(0), taken.eq(0), wptr.eq(0), rptr.eq(0),
                         level.eq(0)]
        return m
