"""Transport: the engine's bus over a serial port, through the bridge (:mod:`pse_hdl.rtl.bridge`).

Writes return nothing, so they are batched: :class:`SerialBus` queues them and sends them in
the frame of the next read or wait (or alone when a frame is full), which makes a sample of the
firmware (input block, ``CTRL``, wait for ``STATUS``, result block) three round trips. A wait is
one ``WAIT`` operation that the bridge polls on the board; it is repeated while the bridge
answers ``TIMEOUT``, up to the caller's limit. A reply that does not come, or comes damaged, is
asked for again with the same sequence byte (the bridge does not repeat the writes of a retried
frame), after an ``END`` that closes whatever the line held.

``port`` is anything with pyserial's ``write``, ``read(n)`` (returning fewer bytes at its
timeout), ``in_waiting`` and ``reset_input_buffer``: a ``serial.Serial`` (:func:`open_port`),
or :class:`pse_hdl.host.serial_sim.SimPort`, the engine's Verilog behind its UART.
"""

from ..errors import UserError
from ..regmap import RegisterMap
from .bus import Bus, BusTimeout
from .link import (END, WAIT_POLLS, LinkError, Op, SlipDecoder, Status, decode_reply,
                   reply_words, request)

__all__ = ["SerialBus", "open_port"]


class SerialBus(Bus):
    """The bus of the engine built for ``cfg`` behind the bridge on ``port``.

    ``retries``: attempts after the first before :class:`LinkError`. Counters: ``frames``
    (requests sent, retries included), ``retried``, ``sent`` and ``received`` (bytes).
    """

    def __init__(self, port, cfg, retries=4):
        self.port, self.cfg, self.retries = port, cfg, retries
        self.depth = cfg.bridge_frame_bytes
        self.top = 1 << RegisterMap(cfg).addr_bits
        self.max_words = (self.depth - 12) // 4          # seq, a WRITE header, CRC
        self._ops, self._size = [], 3                     # queued writes; seq + CRC
        self._seq, self._opened = 0, False
        self._decoder = SlipDecoder()
        self.frames = self.retried = self.sent = self.received = 0

    # -- Bus --------------------------------------------------------------------------------
    async def write(self, addr, value):
        await self.write_block(addr, [value])

    async def write_block(self, addr, values):
        values = [int(v) & 0xFFFF_FFFF for v in values]
        self._check(addr, len(values))
        while values:
            last = self._ops[-1] if self._ops else None
            extend = last is not None and last[1] + len(last[2]) == addr
            head = 0 if extend else 9
            room = (self.depth - self._size - 13 - head) // 4   # room for a READ or WAIT kept
            if extend:
                room = min(room, self.max_words - len(last[2]))
            if room <= 0:
                self.flush()
                continue
            take = min(room, len(values))
            if extend:
                last[2].extend(values[:take])
            else:
                self._ops.append((Op.WRITE, addr, values[:take]))
            self._size += head + 4 * take
            addr, values = addr + take, values[take:]

    async def read(self, addr):
        return (await self.read_block(addr, 1))[0]

    async def read_block(self, addr, count):
        return (await self.read_blocks([(addr, count)]))[0]

    async def read_blocks(self, blocks):
        """As many READs in a frame as its reply and request sizes allow."""
        ops = []
        for addr, count in blocks:
            self._check(addr, count)
            for k in range(0, count, self.max_words):
                ops.append((Op.READ, addr + k, min(self.max_words, count - k)))
        words, frame, size = [], [], 0
        for op in ops:
            if frame and (size + op[2] > self.max_words or
                          self._size + 9 * (len(frame) + 1) > self.depth):
                words += self._exchange(frame)[0]
                frame, size = [], 0
            frame.append(op)
            size += op[2]
        words += self._exchange(frame)[0]
        out = []
        for _, count in blocks:
            out.append(words[:count])
            words = words[count:]
        return out

    async def wait(self, addr, mask, value, limit=1 << 26):
        self._check(addr, 1)
        polls = 0
        while True:
            (word,), status = self._exchange([(Op.WAIT, addr, mask, value)])
            if status == Status.OK:
                return word
            polls += WAIT_POLLS
            if polls >= limit:
                raise BusTimeout(f"register 0x{addr:x} did not reach {value:#x} under mask "
                                 f"{mask:#x} after {polls} reads (last {word:#x})")

    def flush(self):
        """Send the queued writes now."""
        if self._ops:
            self._exchange([])

    # -- frames -----------------------------------------------------------------------------
    def _check(self, addr, count):
        if addr < 0 or addr + count > self.top:
            raise ValueError(f"bus access [{addr:#x}, {addr + count:#x}) is outside the "
                             f"{self.top:#x}-word register map")

    def _exchange(self, ops):
        """Send the queued writes and ``ops`` (reads or a wait) in one frame; ``(words,
        status)`` of the reply (``OK``, or ``TIMEOUT`` for a WAIT).

        The bridge takes a frame whose sequence byte equals the last executed one's for a
        retry and skips its writes; it remembers that byte across host sessions. So a session
        opens with an empty frame numbered 0 (harmless if taken for a retry) and numbers its
        frames from 1: none is ever taken for the previous session's last."""
        if not self._opened:
            self._opened = True
            self._transact(0, [])
        ops = self._ops + list(ops)
        self._ops, self._size = [], 3
        self._seq = self._seq % 255 + 1                  # 1 .. 255; 0 opens a session
        return self._transact(self._seq, ops)

    def _transact(self, seq, ops):
        frame, want = request(seq, ops), reply_words(ops)
        problem = "no reply"
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                self.port.write(bytes([END]))             # close whatever the line held
                self.port.reset_input_buffer()
                self._decoder = SlipDecoder()
            self.port.write(frame)
            self.frames += 1
            self.sent += len(frame)
            reply = self._receive(seq)
            if reply is None:
                problem = "no reply (or only damaged ones)"
                continue
            if reply.status == Status.MALFORMED:
                raise RuntimeError(f"the bridge could not parse frame {seq} "
                                   f"({Status.TEXT[reply.status]}): a bug in the host")
            if reply.status in (Status.OK, Status.TIMEOUT):
                if reply.status == Status.OK and len(reply.words) != want:
                    raise RuntimeError(f"the bridge answered frame {seq} with "
                                       f"{len(reply.words)} words, not {want}")
                return reply.words, reply.status
            problem = f"the bridge reported: {Status.TEXT[reply.status]}"
        raise LinkError(f"the serial link failed after {self.retries + 1} attempts of frame "
                        f"{seq}: {problem}. Check that the engine's bitstream is loaded, that "
                        f"the port and the baud rate ({self.cfg.uart_baud}) are right, and "
                        f"that nothing else uses the port")

    def _receive(self, seq):
        """The reply to ``seq``: frames with another sequence byte (late replies to earlier
        attempts, answers to line noise) are skipped; ``None`` when the port times out."""
        while True:
            chunk = self.port.read(max(1, self.port.in_waiting))
            if not chunk:
                return None
            self.received += len(chunk)
            for frame in self._decoder.feed(chunk):
                reply = decode_reply(frame)
                if reply is not None and reply.seq == seq:
                    return reply


def open_port(path, cfg, baud=None, timeout=2.0):
    """``"sim"``: the engine's Verilog behind its UART (:class:`SimPort`); otherwise a serial
    port at ``baud`` (default the configuration's ``uart_baud``), with a clear error when it
    cannot be opened."""
    if path == "sim":
        from .serial_sim import SimPort
        return SimPort(cfg)
    import serial
    try:
        port = serial.Serial(str(path), baud or cfg.uart_baud, timeout=timeout)
    except (serial.SerialException, ValueError, OSError) as e:
        raise UserError(f"serial port {str(path)!r} cannot be opened at "
                        f"{baud or cfg.uart_baud} baud: {e}") from None
    # A USB-UART holds received bytes up to its latency timer (16 ms on FTDI chips) before it
    # sends a short packet: every round trip would wait for it. Linux's low-latency flag sets
    # the timer to 1 ms where the driver supports it; elsewhere the port works as it is, slower.
    try:
        port.set_low_latency_mode(True)
    except (AttributeError, ValueError, OSError, NotImplementedError):
        pass
    return port
