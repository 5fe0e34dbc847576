"""The serial bridge: a host on a UART is master of the engine's register bus.

The protocol is :mod:`pse_hdl.host.link` (SLIP frames, a sequence byte, WRITE / READ / WAIT
operations, CRC-16, one reply per frame); that module is its reference model. The design:

* :class:`FrameReceiver` unescapes the bytes from the UART into a frame buffer (a block RAM of
  ``bridge_frame_bytes``), keeps the CRC as they arrive and, at ``END``, hands the frame and a
  verdict (good, or why not) to the executor. It takes no byte while the executor runs: a host
  waits for the reply before it sends the next frame.
* :class:`Executor` parses the buffered frame twice: a dry pass that only checks it (known ops,
  counts, lengths, addresses; nothing reaches the bus), then, if it parses, the pass that
  executes it on the bus and streams the reply. A damaged frame therefore never touches the
  engine. A frame whose sequence byte equals the last executed one's is a retry: its writes are
  skipped.
* :class:`ReplyFramer` appends the CRC to the reply and escapes it onto the UART.

Resynchronisation needs no timer: every frame ends at ``END``, so garbage or a lost byte costs
one error reply and the next frame is received whole.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..host.link import END, ESC, ESC_END, ESC_ESC, WAIT_POLLS, Op, Status
from .bus import BusSignature
from .uart import rx_layout

__all__ = ["Bridge", "FrameReceiver", "Executor", "ReplyFramer", "crc16_step"]

reply_layout = data.StructLayout({"data": 8, "last": 1})


def _crc16_taps():
    """For each bit of the next CRC, the bits of ``Cat(crc, byte)`` whose XOR it is (the CRC
    is linear: run the bitwise algorithm on symbolic bit sets)."""
    c = [{k} for k in range(16)]                       # crc bit k
    for k in range(8):
        c[8 + k] = c[8 + k] ^ {16 + k}                # crc ^ (byte << 8)
    for _ in range(8):
        top = c[15]
        c = [set()] + c[:15]                          # shift left
        for k in (0, 5, 12):                          # polynomial 0x1021
            c[k] = c[k] ^ top
    return [sorted(t) for t in c]


_CRC16_TAPS = _crc16_taps()


def crc16_step(crc, byte):
    """CRC-16/CCITT-FALSE of one more byte (MSB first, polynomial 0x1021), as XORs."""
    bits = Cat(crc, byte)
    return Cat(*[Cat(*[bits[k] for k in taps]).xor() for taps in _CRC16_TAPS])


def _log2(n):
    return (n - 1).bit_length()


class FrameReceiver(wiring.Component):
    """Unescapes frames into the buffer.

    ``i`` is taken one byte a cycle while ``enable`` is high. At the ``END`` of a non-empty
    frame (or of one with a line error), ``frame`` pulses with ``length`` (bytes in the buffer)
    and ``status`` (``Status.OK`` or ``CRC``, ``TOO_LONG``, ``LINE``), and the receiver is ready
    for the next frame. A byte marked ``error`` (a UART framing error, or a byte lost before
    it) marks the frame it belongs to.
    """

    def __init__(self, depth):
        self._depth = depth
        super().__init__({
            "i": In(stream.Signature(rx_layout)), "enable": In(1),
            "buf": In(memory.WritePort.Signature(addr_width=_log2(depth), shape=8)),
            "frame": Out(1), "length": Out(range(depth + 1)), "status": Out(3),
        })

    def elaborate(self, platform):
        m = Module()
        n = Signal(range(self._depth + 1))
        crc = Signal(16, init=0xFFFF)
        esc, bad_escape, overflow, line_err = Signal(), Signal(), Signal(), Signal()
        byte, damaged = self.i.payload.data, self.i.payload.error
        value = Signal(8)
        m.d.comb += [self.i.ready.eq(self.enable), self.length.eq(n),
                     self.buf.addr.eq(n), self.buf.data.eq(value),
                     value.eq(Mux(esc, Mux(byte == ESC_END, END, ESC), byte))]
        with m.If(self.i.valid & self.i.ready & damaged):
            m.d.sync += line_err.eq(1)
        with m.If(self.i.valid & self.i.ready):
            with m.If(byte == END):
                with m.If((n != 0) | line_err | bad_escape | esc | damaged):
                    m.d.comb += self.frame.eq(1)
                    with m.If(line_err | bad_escape | esc | damaged):
                        m.d.comb += self.status.eq(Status.LINE)
                    with m.Elif(overflow):
                        m.d.comb += self.status.eq(Status.TOO_LONG)
                    with m.Elif((n < 3) | (crc != 0)):
                        m.d.comb += self.status.eq(Status.CRC)
                m.d.sync += [n.eq(0), crc.eq(0xFFFF), esc.eq(0), bad_escape.eq(0),
                             overflow.eq(0), line_err.eq(0)]
            with m.Elif((byte == ESC) & ~esc):
                m.d.sync += esc.eq(1)
            with m.Else():
                m.d.sync += esc.eq(0)
                with m.If(esc & (byte != ESC_END) & (byte != ESC_ESC)):
                    m.d.sync += bad_escape.eq(1)
                with m.If(n == self._depth):
                    m.d.sync += overflow.eq(1)
                with m.Else():
                    m.d.comb += self.buf.en.eq(1)
                    m.d.sync += [n.eq(n + 1), crc.eq(crc16_step(crc, value))]
        return m


class Executor(wiring.Component):
    """Checks, then executes a buffered frame, and streams its reply (without the CRC).

    ``start`` (a strobe, with the receiver's ``length`` and ``status``) begins; ``busy`` until
    the reply's last byte is taken. Each frame byte costs two cycles to read; a bus write one
    cycle once the bus takes it; a read until its response. ``error`` is high after a frame
    whose reply was not ``OK``, until a frame is.
    """

    def __init__(self, depth, addr_bits, wait_polls=WAIT_POLLS):
        self._depth, self._addr_bits, self._polls = depth, addr_bits, wait_polls
        super().__init__({
            "start": In(1), "length": In(range(depth + 1)), "status": In(3),
            "buf": In(memory.ReadPort.Signature(addr_width=_log2(depth), shape=8)),
            "bus": Out(BusSignature(addr_bits)),
            "o": Out(stream.Signature(reply_layout)),
            "busy": Out(1), "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth, ab = self._depth, self._addr_bits
        pos, end = Signal(range(depth + 1)), Signal(range(depth + 1))
        status, seq, op = Signal(3), Signal(8), Signal(8)
        dry, replay = Signal(), Signal()
        last_seq, last_valid = Signal(8), Signal()
        acc = Signal(32)                      # bytes shift in from the top: LSB first
        addr, count, mask, word = Signal(32), Signal(32), Signal(32), Signal(32)
        left = Signal(range(5))               # bytes of the field being read or sent
        then = Signal(4)                      # where a field read returns to
        polls = Signal(range(self._polls))
        # Fields of an op after the op byte: WRITE and READ addr, count; WAIT addr, mask, value.
        matched = Signal()
        m.d.comb += [self.buf.addr.eq(pos), self.buf.en.eq(1),
                     self.bus.req.payload.addr.eq(addr[:ab]), self.bus.req.payload.data.eq(word)]

        def read_field(nbytes, ret):
            m.d.sync += [left.eq(nbytes), then.eq(ret)]
            m.next = "FIELD"

        def finish(code):
            m.d.sync += status.eq(code)
            m.next = "STATUS"

        r = SimpleNamespace(
            depth=depth, ab=ab, pos=pos, end=end, status=status, seq=seq, op=op, dry=dry,
            replay=replay, last_seq=last_seq, last_valid=last_valid, acc=acc, addr=addr,
            count=count, mask=mask, word=word, left=left, then=then, polls=polls,
            matched=matched, read_field=read_field, finish=finish)
        with m.FSM() as fsm:
            self._parse(m, r)
            self._execute(m, r)
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m

    def _parse(self, m, r):
        """IDLE to CHECK: the sequence number, then each op and its fields, read a byte per two
        cycles; on the dry pass every op is checked before any executes."""
        with m.State("IDLE"):
            with m.If(self.start):
                m.d.sync += [r.pos.eq(0), r.end.eq(self.length - 2), r.status.eq(self.status),
                             r.dry.eq(1), r.seq.eq(0)]
                with m.If(self.length != 0):
                    r.read_field(1, 0)
                with m.Else():
                    m.next = "SEQ"
        with m.State("FIELD"):            # one byte per two cycles: the port's latency
            m.next = "BYTE"
        with m.State("BYTE"):
            m.d.sync += [r.acc.eq(Cat(r.acc[8:], self.buf.data)), r.pos.eq(r.pos + 1),
                         r.left.eq(r.left - 1)]
            m.next = "FIELD"
            with m.If(r.left == 1):
                m.next = "RETURN"
        with m.State("RETURN"):           # a field is in acc: then says which
            with m.Switch(r.then):
                with m.Case(0):
                    m.d.sync += r.seq.eq(r.acc[24:])
                    m.next = "SEQ"
                with m.Case(1):
                    m.d.sync += r.op.eq(r.acc[24:])
                    r.read_field(4, 2)
                    with m.If(r.dry & ((r.acc[24:] == 0) | (r.acc[24:] > Op.WAIT)
                                       | (r.pos + Mux(r.acc[24:] == Op.WAIT, 12, 8) > r.end))):
                        r.finish(Status.MALFORMED)
                with m.Case(2):
                    m.d.sync += r.addr.eq(r.acc)
                    r.read_field(4, 3)
                with m.Case(3):
                    with m.If(r.op == Op.WAIT):
                        m.d.sync += r.mask.eq(r.acc)
                        r.read_field(4, 4)
                    with m.Else():
                        m.d.sync += r.count.eq(r.acc)
                        m.next = "CHECK"
                        with m.If(~r.dry):
                            m.next = "NEXT_WORD"
                            with m.If(r.op == Op.READ):
                                m.next = "READ"
                with m.Case(4):               # WAIT: the value goes to count
                    m.d.sync += [r.count.eq(r.acc), r.polls.eq(0)]
                    m.next = "CHECK"
                    with m.If(~r.dry):
                        m.next = "READ"
                with m.Case(5):
                    m.d.sync += r.word.eq(r.acc)
                    m.next = "WRITE"
        with m.State("SEQ"):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.data.eq(r.seq)]
            with m.If(self.o.ready):
                m.next = "OP"
                with m.If(r.status != Status.OK):
                    m.next = "STATUS"
        with m.State("OP"):
            with m.If(r.pos == r.end):
                with m.If(r.dry):           # it parses: execute it from the first op
                    m.d.sync += [r.dry.eq(0), r.pos.eq(1),
                                 r.replay.eq(r.last_valid & (r.last_seq == r.seq))]
                with m.Else():
                    r.finish(Status.OK)
            with m.Else():
                r.read_field(1, 1)
        with m.State("CHECK"):            # the op and its fields are read; dry pass only
            n = Cat(r.count[:_log2(r.depth) + 1], 0)
            with m.If((r.op != Op.WAIT) & ((r.count == 0) | (r.count > r.depth))
                      | (r.addr + Mux(r.op == Op.WAIT, 1, r.count) > (1 << r.ab))
                      | (r.op == Op.WRITE) & (r.pos + (n << 2) > r.end)):
                r.finish(Status.MALFORMED)
            with m.Elif(r.op == Op.WRITE):
                m.d.sync += r.pos.eq(r.pos + (n << 2))
                m.next = "OP"
            with m.Else():
                m.next = "OP"

    def _execute(self, m, r):
        """NEXT_WORD to STATUS: the bus accesses of an op (a replayed frame's writes skipped),
        the words read and their reply bytes, WAIT's polls, and the status byte."""
        with m.State("NEXT_WORD"):        # a WRITE: the next data word
            with m.If(r.count == 0):
                m.next = "OP"
            with m.Else():
                r.read_field(4, 5)
        with m.State("WRITE"):
            m.d.comb += [self.bus.req.valid.eq(~r.replay), self.bus.req.payload.write.eq(1)]
            with m.If(self.bus.req.ready | r.replay):
                m.d.sync += [r.addr.eq(r.addr + 1), r.count.eq(r.count - 1)]
                m.next = "NEXT_WORD"
        with m.State("READ"):
            m.d.comb += self.bus.req.valid.eq(1)
            with m.If(self.bus.req.ready):
                m.next = "RESPONSE"
        with m.State("RESPONSE"):
            m.d.comb += self.bus.rsp.ready.eq(1)
            hit = (self.bus.rsp.payload.data & r.mask) == r.count
            with m.If(self.bus.rsp.valid):
                m.d.sync += [r.word.eq(self.bus.rsp.payload.data), r.left.eq(4), r.matched.eq(hit)]
                m.next = "SEND"
                with m.If((r.op == Op.WAIT) & ~hit & (r.polls != self._polls - 1)):
                    m.d.sync += r.polls.eq(r.polls + 1)
                    m.next = "READ"
        with m.State("SEND"):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.data.eq(r.word[:8])]
            with m.If(self.o.ready):
                m.d.sync += [r.word.eq(r.word >> 8), r.left.eq(r.left - 1)]
                with m.If(r.left == 1):
                    m.next = "AFTER_WORD"
        with m.State("AFTER_WORD"):
            with m.If(r.op == Op.WAIT):
                m.next = "OP"
                with m.If(~r.matched):
                    r.finish(Status.TIMEOUT)
            with m.Else():
                m.d.sync += [r.addr.eq(r.addr + 1), r.count.eq(r.count - 1)]
                m.next = "READ"
                with m.If(r.count == 1):
                    m.next = "OP"
        with m.State("STATUS"):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.data.eq(r.status),
                         self.o.payload.last.eq(1)]
            with m.If(self.o.ready):
                m.d.sync += self.error.eq(r.status != Status.OK)
                with m.If(~r.dry):
                    m.d.sync += [r.last_seq.eq(r.seq), r.last_valid.eq(1)]
                m.next = "IDLE"


class ReplyFramer(wiring.Component):
    """Frames a reply: ``END``, the escaped bytes of ``i`` and the CRC over them (high byte
    first), ``END``. One output byte a cycle when ``o`` is ready; an escaped byte takes two.
    """

    def __init__(self):
        super().__init__({"i": In(stream.Signature(reply_layout)),
                          "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        crc = Signal(16, init=0xFFFF)
        pending = Signal(8)                 # the second byte of an escape, if one is owed
        owed = Signal()
        byte = Signal(8)                    # the byte the current state sends
        special = (byte == END) | (byte == ESC)

        def send(then=None):
            """Send ``byte``, escaped if need be (the second byte is then owed)."""
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(Mux(special, ESC, byte))]
            with m.If(self.o.ready):
                m.d.sync += [owed.eq(special), pending.eq(Mux(byte == END, ESC_END, ESC_ESC))]
                if then:
                    m.next = then

        with m.If(owed):                    # an escape's second byte goes first
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(pending)]
            with m.If(self.o.ready):
                m.d.sync += owed.eq(0)
        with m.Else(), m.FSM():
            with m.State("OPEN"):
                m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(END)]
                with m.If(self.i.valid & self.o.ready):
                    m.next = "BODY"
            with m.State("BODY"):
                m.d.comb += [byte.eq(self.i.payload.data), self.i.ready.eq(self.o.ready)]
                with m.If(self.i.valid):
                    send()
                    with m.If(self.o.ready):
                        m.d.sync += crc.eq(crc16_step(crc, byte))
                        m.next = "BODY"
                        with m.If(self.i.payload.last):
                            m.next = "CRC_HI"
            with m.State("CRC_HI"):
                m.d.comb += byte.eq(crc[8:])
                send("CRC_LO")
            with m.State("CRC_LO"):
                m.d.comb += byte.eq(crc[:8])
                send("CLOSE")
            with m.State("CLOSE"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(END)]
                with m.If(self.o.ready):
                    m.d.sync += crc.eq(0xFFFF)
                    m.next = "OPEN"
        return m


class Bridge(wiring.Component):
    """The bridge: UART bytes in, UART bytes out, master of the engine's bus.

    Parameters
    ----------
    cfg : PSEConfig
        ``bridge_frame_bytes`` sizes the frame buffer.
    addr_bits : int
        Address bits of the bus (the register map's).

    Members
    -------
    i : In(stream.Signature(rx_layout))  bytes from the UART receiver, with their error flag
    o : Out(stream.Signature(8))    bytes to the UART transmitter
    bus : Out(BusSignature)         the engine's bus, as its master
    busy : Out(1)                   a frame is being executed or answered
    error : Out(1)                  the last frame was answered with an error status
    """

    def __init__(self, cfg, addr_bits, wait_polls=WAIT_POLLS):
        self._depth, self._addr_bits, self._polls = cfg.bridge_frame_bytes, addr_bits, wait_polls
        super().__init__({"i": In(stream.Signature(rx_layout)),
                          "o": Out(stream.Signature(8)), "bus": Out(BusSignature(addr_bits)),
                          "busy": Out(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buf = memory.Memory(shape=8, depth=self._depth, init=[])
        m.submodules.receiver = rx = FrameReceiver(self._depth)
        m.submodules.executor = ex = Executor(self._depth, self._addr_bits, self._polls)
        m.submodules.framer = fr = ReplyFramer()
        wr, rd = buf.write_port(), buf.read_port()
        m.d.comb += [wr.addr.eq(rx.buf.addr), wr.data.eq(rx.buf.data), wr.en.eq(rx.buf.en),
                     rd.addr.eq(ex.buf.addr), rd.en.eq(ex.buf.en), ex.buf.data.eq(rd.data)]
        wiring.connect(m, wiring.flipped(self.i), rx.i)
        m.d.comb += [rx.enable.eq(~ex.busy),
                     ex.start.eq(rx.frame), ex.length.eq(rx.length), ex.status.eq(rx.status),
                     self.busy.eq(ex.busy), self.error.eq(ex.error)]
        wiring.connect(m, ex.o, fr.i)
        wiring.connect(m, fr.o, wiring.flipped(self.o))
        wiring.connect(m, ex.bus, wiring.flipped(self.bus))
        return m
