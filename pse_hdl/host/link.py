"""The serial link's protocol: frames between a host and the bridge (:mod:`pse_hdl.rtl.bridge`).

This module is the protocol's definition and its reference model: the bridge's RTL, its tests
and the serial transport (:mod:`pse_hdl.host.serial_bus`) all use it.

Framing is SLIP (RFC 1055): a frame ends with ``END`` (0xC0); ``END`` and ``ESC`` (0xDB) inside
it are sent as ``ESC ESC_END`` (0xDB 0xDC) and ``ESC ESC_ESC`` (0xDB 0xDD). A sender starts every
frame with an ``END`` too, so line noise before it becomes a frame of its own (answered with an
error) instead of corrupting it; empty frames are ignored. After unescaping, a frame is::

    request:  seq | op ... | crc_hi crc_lo
    op:       WRITE addr count data[count]   (little-endian 32-bit fields and words)
              READ  addr count
              WAIT  addr mask value           poll addr until word & mask == value
    reply:    seq | words read (READ: count, WAIT: the last word polled) | status | crc_hi crc_lo

with CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, ``binascii.crc_hqx``) over everything
before it, sent high byte first, so the CRC over a whole good frame is 0. The bridge buffers a
request, checks its CRC and length and parses all of it before it executes anything: a damaged
frame never touches the engine. It answers every non-empty frame, in order; a damaged one with
the status that says what was wrong. A request whose ``seq`` equals the previous executed one's
is a retry: its reads and waits run again, its writes do not (a write of ``CTRL`` is a command,
which must not run twice when only the reply was lost); a host opens a session with an empty
frame numbered 0 and numbers the rest from 1, so its first frame is never taken for the last
one of a session before it. A ``WAIT`` polls at most
:data:`WAIT_POLLS` times; if the condition never held, the reply carries the last word and
``TIMEOUT``, and the rest of the frame is not executed.
"""

import binascii
import struct
from dataclasses import dataclass

from ..errors import UserError

__all__ = ["END", "ESC", "Op", "Status", "WAIT_POLLS", "BridgeModel", "Reply", "LinkError", "crc16",
           "slip_encode", "SlipDecoder", "request", "reply_words", "decode_reply", "op_bytes"]

END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
WAIT_POLLS = 1 << 16


class Op:
    WRITE, READ, WAIT = 1, 2, 3
    HEADER = {WRITE: 9, READ: 9, WAIT: 13}        # op byte and fields, before any data


class Status:
    OK, CRC, TOO_LONG, MALFORMED, LINE, TIMEOUT = range(6)
    TEXT = {OK: "ok", CRC: "the frame's CRC is wrong",
            TOO_LONG: "the frame is longer than the bridge's buffer",
            MALFORMED: "the frame's operations do not parse (unknown op, count 0, or a "
                       "length that does not match)",
            LINE: "a UART framing error, a lost byte (overrun) or an invalid escape",
            TIMEOUT: "a WAIT's condition did not hold within its polls"}


class LinkError(UserError):
    """The link failed: no reply, or replies that stayed damaged through every retry (a
    board not loaded, a wrong port or baud rate: the user's to fix)."""


def crc16(data, crc=0xFFFF):
    return binascii.crc_hqx(bytes(data), crc)


def slip_encode(payload):
    """``END``, the escaped payload and its CRC, ``END``."""
    raw = bytes(payload) + crc16(payload).to_bytes(2, "big")
    out = bytearray([END])
    for b in raw:
        out += {END: bytes([ESC, ESC_END]), ESC: bytes([ESC, ESC_ESC])}.get(b, bytes([b]))
    out.append(END)
    return bytes(out)


class SlipDecoder:
    """Feed bytes; complete frames (unescaped, CRC included, empty ones dropped) come out.
    A frame with an invalid escape comes out as ``None``."""

    def __init__(self):
        self._buf, self._esc, self._bad = bytearray(), False, False

    def feed(self, data):
        frames = []
        for b in data:
            if b == END:
                if self._buf or self._bad:
                    frames.append(None if self._bad else bytes(self._buf))
                self._buf, self._esc, self._bad = bytearray(), False, False
            elif self._esc:
                self._esc = False
                if b in (ESC_END, ESC_ESC):
                    self._buf.append(END if b == ESC_END else ESC)
                else:
                    self._bad = True
            elif b == ESC:
                self._esc = True
            else:
                self._buf.append(b)
        return frames


def op_bytes(op, addr, *args):
    """One operation's bytes: ``(WRITE, addr, words)``, ``(READ, addr, count)`` or
    ``(WAIT, addr, mask, value)``."""
    if op == Op.WRITE:
        (words,) = args
        return struct.pack(f"<BII{len(words)}I", op, addr, len(words),
                           *[int(w) & 0xFFFF_FFFF for w in words])
    if op == Op.READ:
        return struct.pack("<BII", op, addr, args[0])
    if op == Op.WAIT:
        return struct.pack("<BIII", op, addr, args[0] & 0xFFFF_FFFF, args[1] & 0xFFFF_FFFF)
    raise ValueError(f"op must be Op.WRITE, Op.READ or Op.WAIT, not {op!r}")


def request(seq, ops):
    """The wire bytes of a request frame: ``ops`` is a list of :func:`op_bytes` arguments."""
    return slip_encode(bytes([seq & 0xFF]) + b"".join(op_bytes(*o) for o in ops))


def reply_words(ops):
    """Words the reply to ``ops`` carries when every op completes."""
    return sum(o[2] if o[0] == Op.READ else 1 if o[0] == Op.WAIT else 0 for o in ops)


@dataclass
class Reply:
    seq: int
    words: list
    status: int

    @property
    def ok(self):
        return self.status == Status.OK


def decode_reply(frame):
    """A :class:`Reply` from an unescaped frame, or ``None`` if it is damaged (bad escape,
    short, wrong CRC, a length that is not seq + words + status + CRC)."""
    if frame is None or len(frame) < 4 or crc16(frame) != 0 or (len(frame) - 4) % 4:
        return None
    n = (len(frame) - 4) // 4
    return Reply(frame[0], list(struct.unpack(f"<{n}I", frame[1:1 + 4 * n])), frame[-3])


class BridgeModel:
    """The bridge's reference model: :meth:`feed` takes the bytes a host sends and returns the
    bytes the bridge sends back, acting on a bus through ``read(addr)`` and
    ``write(addr, value)``. Every decision (which status, which frame is a retry) is the RTL's.
    """

    def __init__(self, read, write, depth, addr_bits, wait_polls=WAIT_POLLS):
        self.read, self.write = read, write
        self.depth, self.addr_bits, self.wait_polls = depth, addr_bits, wait_polls
        self._buf, self._esc, self._bad, self._over, self._line = bytearray(), False, False, \
            False, False
        self._last_seq = None

    def feed(self, data, damaged=()):
        """``damaged``: indices of bytes of ``data`` the UART received with an error (a low
        stop bit, or a byte lost before them); they mark the frame they belong to."""
        out = bytearray()
        for k, b in enumerate(data):
            if k in damaged:
                self._line = True
            if b == END:
                if self._buf or self._line or self._bad or self._esc:
                    out += self._frame()
                self._buf, self._esc, self._bad, self._over, self._line = bytearray(), False, \
                    False, False, False
            elif b == ESC and not self._esc:
                self._esc = True
            else:
                if self._esc and b not in (ESC_END, ESC_ESC):
                    self._bad = True
                value = (END if b == ESC_END else ESC) if self._esc else b
                self._esc = False
                if len(self._buf) == self.depth:
                    self._over = True
                else:
                    self._buf.append(value)
        return bytes(out)

    def _frame(self):
        buf = bytes(self._buf)
        seq = buf[0] if buf else 0
        if self._line or self._bad or self._esc:
            status = Status.LINE
        elif self._over:
            status = Status.TOO_LONG
        elif len(buf) < 3 or crc16(buf) != 0:
            status = Status.CRC
        else:
            ops = self._parse(buf[1:-2])
            if ops is None:
                status = Status.MALFORMED
            else:
                replay = self._last_seq == seq
                words, status = self._execute(ops, replay)
                self._last_seq = seq
                return slip_encode(bytes([seq]) + struct.pack(f"<{len(words)}I", *words)
                                   + bytes([status]))
        return slip_encode(bytes([seq, status]))

    def _parse(self, body):
        ops, pos = [], 0
        while pos < len(body):
            op = body[pos]
            if op not in Op.HEADER or pos + Op.HEADER[op] > len(body):
                return None
            fields = struct.unpack_from("<III" if op == Op.WAIT else "<II", body, pos + 1)
            pos += Op.HEADER[op]
            addr, count = fields[0], fields[1]
            if op != Op.WAIT and not 0 < count <= self.depth:
                return None
            if addr + (1 if op == Op.WAIT else count) > 1 << self.addr_bits:
                return None
            if op == Op.WRITE:
                if pos + 4 * count > len(body):
                    return None
                ops.append((op, addr, list(struct.unpack_from(f"<{count}I", body, pos))))
                pos += 4 * count
            else:
                ops.append((op, addr, *fields[1:]))
        return ops

    def _execute(self, ops, replay):
        words = []
        for op, addr, *args in ops:
            if op == Op.WRITE:
                for i, w in enumerate(args[0]):
                    if not replay:
                        self.write(addr + i, w)
            elif op == Op.READ:
                words += [self.read(addr + i) for i in range(args[0])]
            else:
                mask, value = args
                for _ in range(self.wait_polls):
                    word = self.read(addr)
                    if word & mask == value:
                        break
                words.append(word)
                if word & mask != value:
                    return words, Status.TIMEOUT
        return words, Status.OK
