"""The re-zoning engine's datapath: quantizer, zone packer and metadata packer.

The :class:`~.rezoner.Rezoner` sequences layers; these three do the per-weight work, one weight
per cycle, with no backpressure of their own (the rezoner accepts a code only when the layer
has one left, and every later stage takes a weight in every cycle):

* :class:`Quantizer`: accepts a code, reads its master, quantizes it with its class's zone
  scale and clamp; the weight leaves three cycles after its code was accepted;
* :class:`ZonePacker`: appends a surviving weight's value to its class's zone word and writes
  the word when it is full; at a layer's end writes the partial words;
* :class:`MetaPacker`: appends every weight's code to the metadata bit string and writes a word
  when it is full; at the layout's end writes the partial word.

Addresses are logical words of the shadow bank (``bank``); ``overflow`` strobes when a word
falls beyond its memory (nothing is written then), and the rezoner turns it into an error bit.
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import layouts
from .layouts import banked, count_shape, log2, plan_layout

__all__ = ["Quantizer", "ZonePacker", "MetaPacker", "weight_layout"]


def weight_layout(cfg):
    """A weight leaving the quantizer: its code, position and quantized value."""
    return data.StructLayout({"code": unsigned(cfg.code_bits), "pos": unsigned(cfg.pos_bits),
                              "row": unsigned(cfg.row_bits + 1),
                              "col": unsigned(cfg.col_bits + 1),
                              "value": unsigned(cfg.weight_bits)})


def _rshift_round(m, value, shift, width):
    """``rshift_round(value, shift)`` (round half up) for a variable shift."""
    half = Signal(signed(width + 1))
    m.d.comb += half.eq((Const(1, width + 1) << shift) >> 1)
    rounded = Signal(signed(width + 1))
    m.d.comb += rounded.eq((value + half) >> shift)
    return rounded


class Quantizer(wiring.Component):
    """Stages A (accept a code, ask for its master), B (the master store registers the
    address), C (its bank's block RAM), D (the bank's output register; ``masters``), Q (the
    master and its class's scale registered), R (one rounding shift by the scale) and the
    output (the class's clamp) of the re-zoning engine. ``codes`` is ready while ``enable`` is
    high and the layer (``total`` weights, ``plan``) has codes left; ``restart`` starts a layer
    at position 0. ``o_valid``/``o`` carry each weight six cycles after its code was accepted;
    ``drained`` is high when the layer's last weight has left. In a uniform
    layer (``plan.uniform`` k > 0) every weight leaves with code k, whatever code it came with;
    in a masked one with the code it came with."""

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "codes": In(stream.Signature(layouts.code_out(cfg))),
            "enable": In(1), "restart": In(1),
            "plan": In(plan_layout(cfg)), "total": In(cfg.pos_bits),
            "master_addr": Out(cfg.master_addr_bits), "master_ren": Out(1),
            "master_data": In(signed(cfg.weight_bits)),
            "o_valid": Out(1), "o": Out(weight_layout(cfg)), "drained": Out(1)})

    def elaborate(self, platform):
        cfg, pl = self.cfg, self.plan
        m = Module()
        issued = Signal(cfg.pos_bits)
        a_row, a_col = Signal(cfg.row_bits + 1), Signal(cfg.col_bits + 1)
        b, c, d, q, r = (Signal(weight_layout(cfg)) for _ in range(5))
        b_valid, c_valid, d_valid, q_valid, r_valid = (Signal() for _ in range(5))
        q_master, q_scale = Signal(signed(cfg.weight_bits)), Signal(cfg.shift_bits)

        m.d.comb += [self.codes.ready.eq(self.enable & (issued < self.total)),
                     self.master_addr.eq(pl.master_base + issued), self.master_ren.eq(1),
                     self.drained.eq((issued == self.total) & ~b_valid & ~c_valid & ~d_valid
                                     & ~q_valid & ~r_valid & ~self.o_valid)]
        a_fire = self.codes.valid & self.codes.ready
        # A uniform layer's class replaces every code; a masked layer keeps its codes (its
        # class or 0, column by column).
        forced = (pl.uniform != 0) & ~pl.masked if cfg.input_masks else pl.uniform != 0
        m.d.sync += [b_valid.eq(a_fire), b.pos.eq(issued),
                     b.code.eq(Mux(forced, pl.uniform, self.codes.payload.code)),
                     b.row.eq(a_row), b.col.eq(a_col)]
        with m.If(self.restart):
            m.d.sync += [issued.eq(0), a_row.eq(0), a_col.eq(0)]
        with m.Elif(a_fire):
            m.d.sync += issued.eq(issued + 1)
            with m.If(a_col == pl.cols - 1):
                m.d.sync += [a_col.eq(0), a_row.eq(a_row + 1)]
            with m.Else():
                m.d.sync += a_col.eq(a_col + 1)

        n = len(cfg.precisions)
        scale = Array([Const(0, cfg.shift_bits)] + [pl.shift[k] for k in range(n)])[d.code]
        m.d.sync += [c_valid.eq(b_valid), c.eq(b), d_valid.eq(c_valid), d.eq(c),
                     q_valid.eq(d_valid), q.eq(d), q_master.eq(self.master_data),
                     q_scale.eq(scale)]
        r_rounded = Signal(signed(cfg.weight_bits + 1))
        m.d.sync += [r_valid.eq(q_valid), r.eq(q),
                     r_rounded.eq(_rshift_round(m, q_master, q_scale, cfg.weight_bits))]
        rounded = r_rounded
        m.d.sync += [self.o_valid.eq(r_valid), self.o.code.eq(r.code), self.o.pos.eq(r.pos),
                     self.o.row.eq(r.row), self.o.col.eq(r.col)]
        with m.Switch(r.code):
            for k, bits in enumerate(cfg.precisions):
                with m.Case(k + 1):
                    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
                    m.d.sync += self.o.value.eq(Mux(rounded < lo, lo,
                                                    Mux(rounded > hi, hi, rounded)))
        return m


class ZonePacker(wiring.Component):
    """The zones of the shadow bank. ``clear`` (a REZONE starts) empties them; ``restart``
    starts a layer at the current end of every zone; each ``valid`` weight of class ``code``
    (0: pruned, nothing packed) is appended to its zone's word, written when full; ``flush``
    writes the layer's partial words and moves the zones' ends past them. ``index[k]`` counts
    the layer's class-k weights so far, ``words[k]`` the words zone k holds."""

    def __init__(self, cfg):
        self.cfg = cfg
        n, W = len(cfg.precisions), cfg.zone_word_bits
        depth = count_shape(max(cfg.zone_depths))
        super().__init__({
            "clear": In(1), "restart": In(1), "flush": In(1), "bank": In(1),
            "valid": In(1), "code": In(cfg.code_bits), "value": In(cfg.weight_bits),
            "z_en": Out(1).array(n), "z_addr": Out(range(2 * max(cfg.zone_depths))).array(n),
            "z_data": Out(W).array(n),
            "index": Out(data.ArrayLayout(cfg.zone_index_bits + 1, n)),
            "words": Out(data.ArrayLayout(depth, n)), "overflow": Out(1)})

    def elaborate(self, platform):
        cfg = self.cfg
        W = cfg.zone_word_bits
        m = Module()
        for k, b in enumerate(cfg.precisions):
            per, depth = cfg.per_word(b), cfg.zone_depths[k]
            idx, end = self.index[k], self.words[k]
            acc = Signal(W, name=f"zacc{k}")                 # the word being filled
            e = idx[:log2(per)] if per > 1 else Const(0, 1)  # its next element
            partial = e != 0                                  # the word holds some
            # The word being filled, a register (the layer's start plus its full words), and
            # whether it lies in the zone (``room``, a register too): a write's address and its
            # overflow check wait for no adder or compare.
            waddr = Signal(len(end) + 1, name=f"zaddr{k}")
            room = Signal(name=f"zroom{k}")

            def write(word):
                with m.If(room):
                    m.d.comb += [self.z_en[k].eq(1), self.z_data[k].eq(word),
                                 self.z_addr[k].eq(banked(self.bank, waddr, depth))]
                with m.Else():
                    m.d.comb += self.overflow.eq(1)

            with m.If(self.clear):
                m.d.sync += end.eq(0)
            with m.If(self.restart):
                m.d.sync += [waddr.eq(end), room.eq(end < depth), idx.eq(0), acc.eq(0)]
            with m.If(self.valid & (self.code == k + 1)):
                word = Signal(W, name=f"word{k}")
                m.d.comb += word.eq(acc | (self.value[:b] << (e * b)))
                with m.If(e == per - 1):
                    write(word)
                    m.d.sync += [acc.eq(0), waddr.eq(waddr + 1),
                                 room.eq(room & (waddr != depth - 1))]
                with m.Else():
                    m.d.sync += acc.eq(word)
                m.d.sync += idx.eq(idx + 1)
            with m.If(self.flush):
                # The partial word, if any, is the layer's last: the zone ends after it. A zone
                # that ends past its depth has had a write refused (``overflow``) on the way.
                with m.If(partial):
                    write(acc)
                m.d.sync += end.eq(waddr + partial)
        return m


class MetaPacker(wiring.Component):
    """The metadata bit string of the shadow bank. ``clear`` (a REZONE starts) empties it;
    ``restart`` starts a layer (``layer_bits`` counts its bits); each ``valid`` weight's code
    bits (``meta_encoding``, LSB first) are appended, a word written when full; ``final``
    writes the last partial word. ``bits`` is the string's length."""

    def __init__(self, cfg):
        self.cfg = cfg
        W = cfg.zone_word_bits
        super().__init__({
            "clear": In(1), "restart": In(1), "final": In(1), "bank": In(1),
            "valid": In(1), "code": In(cfg.code_bits),
            "meta_en": Out(1), "meta_addr": Out(range(2 * cfg.meta_depth)), "meta_data": Out(W),
            "bits": Out(count_shape(cfg.meta_depth * W)),
            "layer_bits": Out(cfg.meta_index_bits + 1), "overflow": Out(1)})

    def elaborate(self, platform):
        cfg = self.cfg
        W = cfg.zone_word_bits
        m = Module()
        mword, mfill, macc = Signal(count_shape(cfg.meta_depth)), Signal(range(W)), Signal(W)
        m.d.comb += self.bits.eq(mword * W + mfill)

        def write(word):
            with m.If(mword < cfg.meta_depth):
                m.d.comb += [self.meta_en.eq(1), self.meta_data.eq(word),
                             self.meta_addr.eq(banked(self.bank, mword, cfg.meta_depth))]
            with m.Else():
                m.d.comb += self.overflow.eq(1)

        with m.If(self.clear):
            m.d.sync += [mword.eq(0), mfill.eq(0), macc.eq(0)]
        with m.If(self.restart):
            m.d.sync += self.layer_bits.eq(0)
        with m.If(self.valid):
            code_word, code_len = self._code_bits(m, self.code)
            wide = Signal(W + cfg.max_code_length)
            m.d.comb += wide.eq(macc | (code_word << mfill))
            fill = mfill + code_len
            with m.If(fill >= W):
                write(wide[:W])
                m.d.sync += [macc.eq(wide[W:]), mword.eq(mword + 1), mfill.eq(fill - W)]
            with m.Else():
                m.d.sync += [macc.eq(wide), mfill.eq(fill)]
            m.d.sync += self.layer_bits.eq(self.layer_bits + code_len)
        with m.If(self.final & (mfill != 0)):
            write(macc)
        return m

    def _code_bits(self, m, code):
        """The metadata bits of ``code`` (LSB first) and their number."""
        cfg = self.cfg
        bits = Signal(cfg.max_code_length, name="code_word")
        length = Signal(range(cfg.max_code_length + 1), name="code_len")
        with m.Switch(code):
            for c in range(len(cfg.precisions) + 1):
                with m.Case(c):
                    if cfg.meta_encoding == "fixed":
                        m.d.comb += [bits.eq(c), length.eq(cfg.code_bits)]
                    else:
                        m.d.comb += [bits.eq((1 << c) - 1), length.eq(cfg.code_length(c))]
        return bits, length
