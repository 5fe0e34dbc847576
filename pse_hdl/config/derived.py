"""The values derived from a configuration's fields: every width, depth and cost the RTL, the
golden model and the footprint read, each computed in one place. :class:`Derived` is the
base of :class:`~pse_hdl.config.PSEConfig`."""

import math


class Derived:
    """The derived values of a :class:`~pse_hdl.config.PSEConfig` (properties of its fields)."""

    @property
    def ema_num(self):
        """Numerator of the EMA rate: ``alpha = ema_num / 2**ema_rate_bits``."""
        return int(round(self.ema_rate * (1 << self.ema_rate_bits)))

    @property
    def fetch_ports(self):
        """Output ports of the zoned memory's fetch unit: one per MAC lane, so port k feeds
        lane k. A layer's surviving weights are cut into ``lanes`` chunks of equal MAC cost
        (split descriptors), the MAC's own :func:`~pse_hdl.model.layer.lane_split`."""
        return self.lanes

    def layer_ports(self, weights):
        """Fetch ports (and MAC lanes) a layer of ``weights`` weights uses: one below
        ``one_port_below``, else all of them."""
        return 1 if weights < self.one_port_below else self.fetch_ports

    @property
    def code_bits(self):
        """Width of a precision code (code 0 = pruned, code k = ``precisions[k-1]``)."""
        return max(1, math.ceil(math.log2(len(self.precisions) + 1)))

    @property
    def abs_act_bits(self):
        """Width of ``|x|`` for a signed activation (``|-2**(a-1)|`` needs ``a`` bits)."""
        return self.act_bits

    @property
    def ema_bits(self):
        """Width of one unsigned EMA state register ``A_j`` (F fraction bits)."""
        return self.abs_act_bits + self.ema_frac_bits

    @property
    def importance_bits(self):
        """Width of an importance ``|w| * A_j`` (also of the literal per-weight EMA)."""
        return self.weight_bits + self.ema_bits

    @property
    def col_bits(self):
        return max(1, (self.max_cols - 1).bit_length())

    @property
    def row_bits(self):
        return max(1, (self.max_rows - 1).bit_length())

    @property
    def shift_bits(self):
        """Width of a zone scale (a left shift of 0..weight_bits-1)."""
        return max(1, (self.weight_bits - 1).bit_length())

    def per_word(self, bits):
        """Weights of ``bits`` precision packed in one zone word."""
        return self.zone_word_bits // bits

    def mac_cost(self, bits):
        """Cycles one lane spends on a weight of ``bits`` precision."""
        return -(-bits // self.mac_digit_bits)

    @property
    def zone_depths(self):
        """Words per bank of every zone, in the order of ``precisions``."""
        zd = self.zone_depth
        if isinstance(zd, tuple):
            return zd
        if zd:
            return (zd,) * len(self.precisions)
        main = next((k for k, b in enumerate(self.precisions) if b >= 4), 0)
        words = 1 << max(4, (self.master_depth * 4 // self.zone_word_bits).bit_length() - 1)
        words = max(words, self.lanes)
        return tuple(words if k == main else max(16, self.lanes, words // 2)
                     for k in range(len(self.precisions)))

    @property
    def zone_addr_bits(self):
        return max(1, (max(self.zone_depths) - 1).bit_length())

    @property
    def master_addr_bits(self):
        return max(1, (self.master_depth - 1).bit_length())

    @property
    def zone_index_bits(self):
        """Width of an element index inside a zone (used by the row descriptors)."""
        return max(d * self.per_word(b) - 1
                   for b, d in zip(self.precisions, self.zone_depths)).bit_length()

    def code_length(self, code):
        """Metadata bits that store precision code ``code``."""
        if self.meta_encoding == "fixed":
            return self.code_bits
        return min(code + 1, len(self.precisions))

    @property
    def max_code_length(self):
        return max(self.code_length(k) for k in range(len(self.precisions) + 1))

    @property
    def meta_index_bits(self):
        """Width of a bit offset into the metadata memory (used by the row descriptors)."""
        return (self.master_depth * self.max_code_length - 1).bit_length()

    @property
    def row_desc_fields(self):
        """A row descriptor, ``(name, bits, count)`` per field (count ``None``: a scalar): per
        zone an element index, and the metadata offset. The one definition of its widths: the
        RTL layout (``zone_layouts``) and the footprint (:attr:`row_desc_bits`) come from it."""
        return (("index", self.zone_index_bits, len(self.precisions)),
                ("meta", self.meta_index_bits, None))

    @property
    def row_desc_bits(self):
        return sum(b * (c or 1) for _, b, c in self.row_desc_fields)

    @property
    def pos_bits(self):
        """Width of a flat weight index in a layer, ``0 .. max_rows * max_cols`` inclusive."""
        return (self.max_rows * self.max_cols).bit_length()

    @property
    def meta_depth(self):
        """Words of the metadata memory (per bank): ``meta_bits`` per master weight (every
        weight's longest code if 0), rounded up to whole read words of the fetch unit
        (``fetch_ports`` words: the walkers share one read port of the metadata, a read word
        each in turn)."""
        shortest = min(self.code_length(k) for k in range(len(self.precisions) + 1))
        longest = self.max_code_length
        bits = math.ceil(self.master_depth * max(min(self.meta_bits or longest, longest), shortest))
        words = -(-bits // self.zone_word_bits)
        return -(-words // self.fetch_ports) * self.fetch_ports

    @property
    def desc_depth(self):
        """Row descriptors the descriptor memory holds (per bank)."""
        if not self.desc_stride:
            return 0
        return self.max_layers * -(-self.max_rows // self.desc_stride)

    @property
    def split_desc_fields(self):
        """A split descriptor, as :attr:`row_desc_fields`: row, column and flat index of the
        weight a fetch port starts at, whether that row continues from the previous port, per
        zone its element index, and its metadata offset."""
        return (("row", self.row_bits + 1, None), ("col", self.col_bits, None),
                ("pos", self.pos_bits, None), ("cont", 1, None),
                ("index", self.zone_index_bits, len(self.precisions)),
                ("meta", self.meta_index_bits, None))

    @property
    def split_desc_bits(self):
        return sum(b * (c or 1) for _, b, c in self.split_desc_fields)

    @property
    def layer_cost_bits(self):
        """Width of a layer's MAC cost (the sum of ``mac_cost`` over its surviving weights)."""
        return (self.max_rows * self.max_cols * self.mac_cost(max(self.precisions))).bit_length()

    @property
    def layer_bits(self):
        """Width of a layer index (0 .. max_layers-1)."""
        return max(1, (self.max_layers - 1).bit_length())

    @property
    def ric_depth(self):
        """EMA states of the factored RIC: one per input of every layer, layer l's inputs at
        ``l * max_cols``."""
        return self.max_layers * self.max_cols

    @property
    def memory_bits(self):
        """A lower bound of the engine's memory bits, by memory: masters, the code buffer, two
        banks of zones and of metadata, live, snapshot and floor EMA states, biases."""
        return {"masters": self.master_depth * self.weight_bits,
                "codes": self.master_depth * self.code_bits,
                "zones": 2 * sum(self.zone_depths) * self.zone_word_bits,
                "metadata": 2 * self.meta_depth * self.zone_word_bits,
                "ema": (2 + self.importance_floor) * self.ric_depth * self.ema_bits,
                "biases": self.bias_depth * self.acc_bits}

    @property
    def bias_depth(self):
        """Biases the MAC's finishing stage holds: layer l's rows at ``l * max_rows``."""
        return self.max_layers * self.max_rows

    @property
    def out_shift_bits(self):
        """Width of a layer's requantization shift (0 .. acc_bits-1)."""
        return (self.acc_bits - 1).bit_length()

    @property
    def layer_desc_bits(self):
        """Bits of one layer descriptor: shape, master base, output shift and ReLU, its uniform
        class (0: per-weight codes), per zone a base word address and a scale shift, and where
        its metadata and row descriptors begin; with ``input_masks``, whether it is masked (a
        masked layer has no metadata: its metadata base holds how many columns it keeps)."""
        return (self.row_bits + 1 + self.col_bits + 1 + self.master_addr_bits
                + self.out_shift_bits + 1 + self.code_bits
                + len(self.precisions) * (self.zone_addr_bits + self.shift_bits)
                + self.meta_index_bits + max(self.desc_depth - 1, 0).bit_length()
                + (1 if self.input_masks else 0))
