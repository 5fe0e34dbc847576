"""Random traffic for the serial bridge's testbenches (both tiers): good frames, retries and
every kind of damage a serial line or a confused host produces.

:class:`LinkBus` is the bus the bridge drives in these tests: a word memory, plus a counter
register whose value is the number of times it was read, so a ``WAIT`` on it matches after a
known number of polls (or never) in the RTL and in the reference model alike.
"""

import random

from pse_hdl.host.link import END, Op, op_bytes, request, slip_encode

__all__ = ["LinkBus", "random_traffic", "flatten", "COUNTER"]

COUNTER = 0xF0


class LinkBus:
    def __init__(self, addr_bits, seed=0):
        rng = random.Random(seed)
        self.mem = [rng.getrandbits(32) for _ in range(1 << addr_bits)]
        self.reads = self.writes = 0

    def read(self, addr):
        if addr == COUNTER:
            self.reads += 1
            return self.reads - 1
        return self.mem[addr]

    def write(self, addr, value):
        self.writes += 1                  # a retried frame's writes must not run again
        if addr != COUNTER:
            self.mem[addr] = value


def _ops(rng, addr_bits, bus, polls, timeouts):
    top = 1 << addr_bits
    ops, reads = [], bus.reads
    for _ in range(rng.randint(0, 4)):
        kind = rng.choice([Op.WRITE, Op.READ, Op.WAIT])
        if kind == Op.WAIT:
            ahead = rng.choice([0, 1, 3] + [polls + 2] * timeouts)   # polls + 2 times out
            ops.append((Op.WAIT, COUNTER, 0xFF, (reads + ahead) & 0xFF))
            reads += min(ahead + 1, polls)
        else:
            n = rng.randint(1, 6)
            addr = rng.randrange(0, top - n)
            if addr <= COUNTER < addr + n:
                addr = COUNTER + 1 if COUNTER + 1 + n <= top else 0
            if kind == Op.WRITE:
                # END and ESC bytes inside words exercise the escaping
                words = [rng.choice([rng.getrandbits(32), 0xC0DBC0DB, 0xDBDBDBDB])
                         for _ in range(n)]
                ops.append((Op.WRITE, addr, words))
            else:
                ops.append((Op.READ, addr, n))
    return ops


def random_traffic(rng, model, bus, frames, timeouts=True):
    """``(chunks, replies)``: ``frames`` frames of random kinds (good (most), retried, with a
    flipped bit, with a lost byte, garbage, too long, malformed with a good CRC, empty, with a
    byte the UART receives with an error), each as ``(bytes, indices of its damaged bytes)``,
    and the reply bytes ``model`` (a :class:`BridgeModel` on ``bus``) gives for all of them.
    Garbage holds no ``END``: a chunk is at most one frame and the ``END`` that closes the one
    before it. ``timeouts=False``: every WAIT matches within a few polls."""
    depth, addr_bits, polls = model.depth, model.addr_bits, model.wait_polls
    chunks, replies, seq, prev = [], bytearray(), 0, None
    for _ in range(frames):
        kind = rng.choices(["good", "retry", "flip", "lose", "garbage", "long", "malformed",
                            "empty", "uart"], [10, 2, 2, 2, 1, 1, 2, 1, 1])[0]
        if kind == "retry" and prev:
            chunks.append((prev, set()))
            replies += model.feed(prev)
            continue
        seq = (seq + 1) & 0xFF
        frame = request(seq, _ops(rng, addr_bits, bus, polls, timeouts))
        if kind in ("good", "retry"):
            prev = frame
        elif kind == "flip":
            frame = bytearray(frame)
            frame[rng.randrange(1, len(frame) - 1)] ^= 1 << rng.randrange(8)
        elif kind == "lose":
            frame = bytearray(frame)
            del frame[rng.randrange(1, len(frame))]
        elif kind == "garbage":
            frame = bytes(b if b != END else 0 for b in (rng.getrandbits(8) for _ in
                                                          range(rng.randint(1, 12)))) + bytes([END])
        elif kind == "long":
            frame = request(seq, [(Op.WRITE, 0, list(range((depth - 8) // 4 + 2)))])
        elif kind == "malformed":
            body = rng.choice([bytes([7]) + bytes(8),                        # unknown op
                               op_bytes(Op.READ, 0, 0),                      # count 0
                               op_bytes(Op.READ, (1 << addr_bits) - 1, 2),  # past the top
                               op_bytes(Op.WRITE, 0, [1, 2])[:-4],           # a word short
                               op_bytes(Op.WAIT, 0, 1, 1)[:-1]])             # a field short
            frame = slip_encode(bytes([seq]) + body)
        elif kind == "empty":
            frame = bytes([END, END])
        bad = {rng.randrange(len(frame))} if kind == "uart" else set()
        chunks.append((bytes(frame), bad))
        replies += model.feed(frame, bad)
    return chunks, bytes(replies)


def flatten(chunks):
    """The chunks as one byte string and the set of its damaged bytes' indices."""
    out, damaged = bytearray(), set()
    for data, bad in chunks:
        damaged |= {len(out) + k for k in bad}
        out += data
    return bytes(out), damaged
