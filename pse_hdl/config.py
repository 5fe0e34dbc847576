"""The one configuration of the Precision & Sparsity Engine.

Every width, depth and rate of the engine is decided here and nowhere else: the RTL, the golden
model, the CLI and the docs read a :class:`PSEConfig`. It is frozen and validated on construction,
so an invalid design point raises :class:`ConfigError` (naming the field, the bad value and what
is allowed) before any hardware is built. Derived values are properties, computed in one place.
Presets are made from the default with :func:`dataclasses.replace`; a configuration round-trips
through a TOML file so a user can keep a design point.
"""

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .files import write_atomic

__all__ = ["ConfigError", "PSEConfig", "PRESETS", "preset", "load", "save"]

ALLOWED_PRECISIONS = (2, 4, 8, 16)
# Fields only the firmware reads (when to allocate and swap): not part of the hardware.
FIRMWARE_FIELDS = ("period", "warmup", "swap_delay")
# Fields of the serial link to a board (UART and bridge): the engine behind it does not see them.
LINK_FIELDS = ("uart_baud", "bridge_frame_bytes")
IMPORTANCE_FORMS = ("factored", "literal")
META_ENCODINGS = ("unary", "fixed")
# The largest device the flows support, the ECP5-85F: 3744 Kbit of block RAM and 669 Kbit of
# distributed RAM. A configuration whose memories cannot fit in it is refused up front.
LARGEST_DEVICE = ("ECP5-85F", (3744 + 669) * 1024)


def _is_pow2(x):
    return isinstance(x, int) and not isinstance(x, bool) and x > 0 and x & (x - 1) == 0


def _check_int(name, value, lo, hi, *, pow2=False):
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, not {value!r}")
    if pow2 and not _is_pow2(value):
        raise ConfigError(f"{name} must be a power of two between {lo} and {hi}, not {value!r}")
    if not lo <= value <= hi:
        kind = "a power of two" if pow2 else "an integer"
        raise ConfigError(f"{name} must be {kind} between {lo} and {hi}, not {value!r}")


@dataclass(frozen=True)
class PSEConfig:
    """Design point of the engine.

    Parameters
    ----------
    lanes : int
        MAC lanes (power of two, 1..64).
    precisions : tuple of int
        Precisions a weight can take, a subset of {2, 4, 8, 16}, ascending. Pruned is always
        available in addition (code 0).
    act_bits : int
        Width of the signed activations (4..16, default 8).
    weight_bits : int
        Width of the signed master weights (8..16, default 16); at least the largest precision.
    acc_bits : int
        Width of the saturating accumulator; at least ``act_bits + weight_bits`` (up to 48).
    zone_word_bits : int
        Width of one zone memory word; every precision must divide it (16..128, power of two).
    zone_depth : int or tuple of int
        Words in each precision zone, per bank (power of two, at least ``lanes``): one depth for
        every zone, or one per precision in the order of ``precisions`` (:attr:`zone_depths`).
        0 (the default): sized from ``master_depth``: the main zone (of the lowest precision of
        4 bits or more) holds most of the network (``master_depth`` weights at 4 bits, rounded
        down to a power of two of words), every other zone half as many words. For the default
        19,456 masters: 2,048, 1,024 and 1,024 words (with the 2-bit class, 1,024 more for it): the 8- and 16-bit zones hold every calibration candidate of the
        digits network 64-256-10 at 4.0 bits per weight or less (at most 1,003 and 948 words),
        the 4-bit zone all but a few (up to 2,211).
    meta_bits : float
        Average metadata bits per master weight the metadata memory holds, per bank
        (:attr:`meta_depth`), from the shortest code to the longest (beyond them the memory is
        sized for them: with fixed-length codes, every weight's). 0: the longest code, so
        every layout's codes fit. The default,
        1.68, holds the digits network's calibration candidates (at most 1.65 bits per weight)
        in 1,024 words per bank; a layout whose codes do not fit is a capacity error, as a zone
        that does not fit is.
    master_depth : int
        Master weights the master store holds (a multiple of 16; it need not be a power of
        two: the default, 19 x 1024, holds the digits MLP 64-256-10's 18,944 weights in 19
        DP16KD of the ECP5, where 32,768 took 32).
    master_bank : int
        Words of each bank of the master store (a power of two, 16 or more; 0: one bank). Every
        bank's read is registered before the multiplexer across the banks, so a master read
        takes three cycles and no path runs from a block RAM's output across the store: the
        default, 1024, is one DP16KD of the ECP5 at 16 bits. The ``up5k`` preset keeps one bank
        (its single-port SPRAM).
    max_rows, max_cols : int
        Largest layer the engine accepts (powers of two); they size the row and column tags.
    ema_rate : float
        Rate alpha of the importance EMA (the specification's 0.1). It is represented as
        ``ema_num / 2**ema_rate_bits``; the representation must be exact to within half an LSB
        and alpha must lie in (0, 0.5].
    ema_rate_bits : int
        Fraction bits K of the EMA rate constant.
    ema_power_of_two : bool
        If set, the rate must be exactly ``2**-k`` and the hardware uses a shift, no multiplier.
    ema_frac_bits : int
        Fraction bits F kept in the EMA state beyond the activation LSB.
    thresholds : tuple of int
        Reset values of the allocator thresholds in importance units, one per precision,
        non-decreasing: ``thresholds[0]`` is the prune (low) threshold, ``thresholds[k]`` the
        threshold above which a weight gets precision ``precisions[k]``.
    hysteresis : int
        A fixed half-width of the allocator's hysteresis band in importance units (0 = none);
        with ``hysteresis_shift = 0``.
    hysteresis_shift : int
        The band follows the thresholds (0 = off: the fixed ``hysteresis``): whenever the
        firmware writes thresholds it sets the band (``BAND``) to the smallest layer's prune
        threshold shifted right by this many bits (docs/SPEC.md section 11), so a weight near a
        threshold keeps its class until its importance moves by a share of it; needs
        ``hysteresis = 0`` and, to have an effect, ``hysteresis_logic``.
    hysteresis_logic : bool
        Build the allocator's hysteresis comparators and band register, so that the band can be
        set at run time (the engine's ``BAND``; the engine needs them). False saves two banks of
        comparators in a stand-alone PA and requires ``hysteresis = 0``.
    period : int
        Allocation period P in samples (1 is the specification's literal per-sample behaviour).
    warmup : int
        Samples for which the profiled codes are held while the rolling estimate settles.
    swap_delay : int
        Samples between an allocation point and the swap of the layout allocated there
        (0..period): 0 swaps before the very next sample, so inference waits for the allocation
        and the re-zoning; D > 0 lets them run in the background, on a snapshot of the EMA
        states, while the previous layout serves D more samples.
    snapshot_shift : int
        How an allocation's view of the importance follows the rolling EMA (factored form):
        SNAPSHOT moves the snapshot the allocation reads ``2**-snapshot_shift`` of the way from
        the previous snapshot to the live EMA states (``snap += rshift_round(live - snap, s)``;
        0 copies them). The EMA keeps the specification's rate; the snapshot averages it over
        about ``2**s`` allocation periods, so one sample's swing does not prune what the next
        one needs. Loading the EMA states loads the snapshot too. 0..8; the literal form reads
        its live per-weight states and needs 0.
    importance_floor : bool
        Factored form: the profiled baseline is a floor under the snapshot (default). Loading
        the EMA states (the firmware loads the profiling stage's baseline) loads a third memory,
        the floor, and every SNAPSHOT keeps ``snap >= floor`` per input: the rolling EMA can
        raise an input's importance above what profiling measured (a task that needs it gets
        the bits), not lower it (what the profile found important is not pruned by a few
        samples that do not use it). The literal form has no snapshot and needs false.
    reversible : bool
        Keep the master copy of pruned weights (default) or clear it, as the literal algorithm does.
    input_masks : bool
        Let the calibration store a layer **masked**: every weight at one class, as a uniform
        layer, except the weights of the input columns it prunes, which are not stored at all
        (docs/SPEC.md section 6; a column's importance is its inputs' EMA times the mean
        magnitude of its masters). Default false (docs/ALLOCATION.md: what it costs); needs
        the factored, reversible form.
    importance_form : str
        ``"factored"`` (one EMA per input, ``|w| * EMA(|x|)``) or ``"literal"`` (one EMA of
        ``|w*x|`` per weight).
    mac_digit_bits : int
        Weight bits a lane consumes per cycle (digit-serial MAC); a weight of b bits costs
        ``ceil(b / mac_digit_bits)`` cycles, a pruned weight none. The MAC lanes are built for
        4-bit digits, the only value accepted.
    hist_bins : int
        Bins of the importance histogram (log2-spaced).
    hist_sub_bits : int
        Mantissa bits of the histogram's pseudo-log2: ``2**hist_sub_bits`` bins per octave.
    desc_stride : int
        Rows between two row descriptors (power of two; 1: one per row), or 0 (default) for
        none. A row descriptor records where a row's weights and codes begin, so the host can
        read a layer back from any row; the fetch walkers start from the split descriptors and
        never read them, so by default they are not stored (no memory, no bits).
    max_layers : int
        Layers the zoned memory's tables hold (1..64).
    one_port_below : int
        Layers of fewer weights than this (default 96) are fetched on one port and computed
        on one MAC lane: they store no split descriptors (``(lanes - 1) * split_desc_bits``,
        279 bits with the default 4 lanes: about 3 bits per weight of a 96-weight layer) and
        take their weights' cycles on one lane instead of a quarter of them on four. 0: every
        layer on every port.
    meta_encoding : str
        How the per-weight codes are stored: ``"fixed"`` (``code_bits`` each) or ``"unary"``
        (truncated unary, LSB first: pruned ``0``, class k < n ``k`` ones then a zero, the top
        class n ones), which spends one bit on a pruned weight and two on the lowest precision.
    uart_baud : int
        Baud rate of the board's serial link (8N1; 9600 .. 12,000,000, default 1,000,000). The
        bridge divides the board clock by ``round(clock / uart_baud)``, at least 4 cycles a bit
        and within 2 % of the rate, or the board top is refused.
    bridge_frame_bytes : int
        Bytes of one request frame the serial bridge buffers (after unescaping, sequence byte
        and CRC included) before it executes it (power of two, 64 .. 16384): the largest block
        a frame can write is ``(bridge_frame_bytes - 12) // 4`` words.
    """

    lanes: int = 4
    precisions: tuple = (4, 8, 16)
    act_bits: int = 8
    weight_bits: int = 16
    acc_bits: int = 32
    zone_word_bits: int = 32
    zone_depth: int = 0
    meta_bits: float = 1.68
    master_depth: int = 19456
    master_bank: int = 1024
    max_rows: int = 256
    max_cols: int = 256
    ema_rate: float = 0.1
    ema_rate_bits: int = 8
    ema_power_of_two: bool = False
    ema_frac_bits: int = 8
    thresholds: tuple = (1 << 10, 1 << 16, 1 << 20)
    hysteresis: int = 0
    hysteresis_shift: int = 1
    hysteresis_logic: bool = True
    period: int = 16
    warmup: int = 16
    swap_delay: int = 0
    snapshot_shift: int = 2
    importance_floor: bool = True
    reversible: bool = True
    input_masks: bool = False
    importance_form: str = "factored"
    mac_digit_bits: int = 4
    hist_bins: int = 128
    hist_sub_bits: int = 2
    desc_stride: int = 0
    meta_encoding: str = "unary"
    one_port_below: int = 96
    max_layers: int = 4
    uart_baud: int = 1_000_000
    bridge_frame_bytes: int = 1024

    def __post_init__(self):
        # Normalise sequences given as lists (from TOML or by hand) to tuples, so the object stays
        # hashable and frozen.
        for name in ("precisions", "thresholds", "zone_depth"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        self._validate()

    def _validate(self):
        _check_int("lanes", self.lanes, 1, 64, pow2=True)
        p = self.precisions
        if (not isinstance(p, tuple) or not p
                or any(not isinstance(b, int) or isinstance(b, bool) for b in p)
                or any(b not in ALLOWED_PRECISIONS for b in p)
                or list(p) != sorted(set(p))):
            raise ConfigError(f"precisions must be a non-empty ascending subset of "
                              f"{ALLOWED_PRECISIONS} without repeats, not {p!r}")
        _check_int("act_bits", self.act_bits, 4, 16)
        _check_int("weight_bits", self.weight_bits, 8, 16)
        if max(p) > self.weight_bits:
            raise ConfigError(f"weight_bits must be at least the largest precision {max(p)}, "
                              f"not {self.weight_bits!r}")
        _check_int("acc_bits", self.acc_bits, self.act_bits + self.weight_bits, 48)
        _check_int("zone_word_bits", self.zone_word_bits, 16, 128, pow2=True)
        if max(p) > self.zone_word_bits:
            raise ConfigError(f"zone_word_bits must hold the largest precision {max(p)}, "
                              f"not {self.zone_word_bits!r}")
        zd = self.zone_depth
        if isinstance(zd, tuple):
            if len(zd) != len(p):
                raise ConfigError(f"zone_depth must be one depth or one per precision "
                                  f"({len(p)} for {p!r}), not {zd!r}")
            for b, d in zip(p, zd):
                _check_int(f"zone_depth of the {b}-bit zone", d, 16, 1 << 20, pow2=True)
        elif zd != 0:
            _check_int("zone_depth", zd, 16, 1 << 20, pow2=True)
        if (isinstance(self.meta_bits, bool) or not isinstance(self.meta_bits, (int, float))
                or not 0 <= self.meta_bits <= 16):
            raise ConfigError(f"meta_bits must be 0 (the longest code) or an average code length "
                              f"in bits per weight (0..16), not {self.meta_bits!r}")
        _check_int("master_depth", self.master_depth, 16, 1 << 22)
        if self.master_bank:
            _check_int("master_bank", self.master_bank, 16, 1 << 22, pow2=True)
        if self.master_depth % 16:
            raise ConfigError(f"master_depth must be a multiple of 16, not {self.master_depth!r}")
        if min(self.zone_depths) < self.lanes:
            raise ConfigError(f"zone_depth must be at least lanes ({self.lanes}: the fetch ports "
                              f"read a word of every port at once), not {zd!r}")
        _check_int("max_rows", self.max_rows, 1, 1 << 16, pow2=True)
        _check_int("max_cols", self.max_cols, 1, 1 << 16, pow2=True)
        if isinstance(self.ema_rate, bool) or not isinstance(self.ema_rate, (int, float)) \
                or not 0 < self.ema_rate <= 0.5:
            raise ConfigError(f"ema_rate must be a number in (0, 0.5], not {self.ema_rate!r}")
        _check_int("ema_rate_bits", self.ema_rate_bits, 1, 16)
        num = self.ema_num
        if num < 1 or abs(num - self.ema_rate * (1 << self.ema_rate_bits)) > 0.5:
            raise ConfigError(f"ema_rate {self.ema_rate!r} cannot be represented with "
                              f"ema_rate_bits={self.ema_rate_bits}: increase ema_rate_bits")
        if not isinstance(self.ema_power_of_two, bool):
            raise ConfigError(f"ema_power_of_two must be true or false, not "
                              f"{self.ema_power_of_two!r}")
        exact = num == self.ema_rate * (1 << self.ema_rate_bits)
        if self.ema_power_of_two and not (exact and _is_pow2(num)):
            raise ConfigError(f"ema_rate must be a power of two 2**-k when ema_power_of_two is "
                              f"set, not {self.ema_rate!r}")
        _check_int("ema_frac_bits", self.ema_frac_bits, 0, 16)
        t = self.thresholds
        if (not isinstance(t, tuple) or len(t) != len(p)
                or any(not isinstance(x, int) or isinstance(x, bool) for x in t)):
            raise ConfigError(f"thresholds must be {len(p)} integers (one per precision: prune "
                              f"threshold first), not {t!r}")
        if any(not 0 <= x < (1 << self.importance_bits) for x in t):
            raise ConfigError(f"thresholds must lie in [0, 2**{self.importance_bits}), not {t!r}")
        if list(t) != sorted(t):
            raise ConfigError(f"thresholds must be non-decreasing (low <= ... <= high), "
                              f"not {t!r}")
        _check_int("hysteresis", self.hysteresis, 0, (1 << self.importance_bits) - 1)
        if not isinstance(self.hysteresis_logic, bool):
            raise ConfigError(f"hysteresis_logic must be true or false, not "
                              f"{self.hysteresis_logic!r}")
        if self.hysteresis and not self.hysteresis_logic:
            raise ConfigError(f"hysteresis = {self.hysteresis} needs hysteresis_logic = true "
                              f"(the allocator's band comparators)")
        _check_int("hysteresis_shift", self.hysteresis_shift, 0, self.importance_bits)
        if self.hysteresis and self.hysteresis_shift:
            raise ConfigError(f"hysteresis = {self.hysteresis} (a fixed band) needs "
                              f"hysteresis_shift = 0 (a band that follows the thresholds), not "
                              f"{self.hysteresis_shift}: set one of them")
        _check_int("period", self.period, 1, 1 << 20)
        _check_int("warmup", self.warmup, 0, 1 << 20)
        _check_int("swap_delay", self.swap_delay, 0, self.period)
        if not isinstance(self.reversible, bool):
            raise ConfigError(f"reversible must be true or false, not {self.reversible!r}")
        if self.importance_form not in IMPORTANCE_FORMS:
            raise ConfigError(f"importance_form must be one of {IMPORTANCE_FORMS}, "
                              f"not {self.importance_form!r}")
        if not isinstance(self.input_masks, bool):
            raise ConfigError(f"input_masks must be true or false, not {self.input_masks!r}")
        if self.input_masks and (self.importance_form != "factored" or not self.reversible):
            raise ConfigError("input_masks = true needs importance_form 'factored' and "
                              "reversible = true (a column's importance is its input's EMA "
                              "times its masters' mean magnitude, as loaded)")
        if self.input_masks and self.max_cols.bit_length() > self.meta_index_bits:
            raise ConfigError(f"input_masks = true keeps a masked layer's column count in its "
                              f"metadata offsets ({self.meta_index_bits} bits): master_depth "
                              f"{self.master_depth} is too small for max_cols {self.max_cols}")
        _check_int("snapshot_shift", self.snapshot_shift, 0, 8)
        _check_int("one_port_below", self.one_port_below, 0, 1 << 32)
        if self.importance_form == "literal" and self.snapshot_shift:
            raise ConfigError(f"snapshot_shift must be 0 with importance_form 'literal' (its "
                              f"allocation reads the live per-weight states), not "
                              f"{self.snapshot_shift!r}")
        if not isinstance(self.importance_floor, bool):
            raise ConfigError(f"importance_floor must be true or false, not "
                              f"{self.importance_floor!r}")
        if self.importance_form == "literal" and self.importance_floor:
            raise ConfigError("importance_floor must be false with importance_form 'literal' "
                              "(the floor bounds the factored form's snapshot; the literal form "
                              "has none), not True")
        if self.mac_digit_bits != 4 or isinstance(self.mac_digit_bits, bool):
            raise ConfigError(f"mac_digit_bits must be 4 (the MAC lanes multiply 4-bit digits "
                              f"of a weight per cycle), not {self.mac_digit_bits!r}")
        _check_int("hist_sub_bits", self.hist_sub_bits, 0, 4)
        _check_int("hist_bins", self.hist_bins, 2, 1024)
        if self.desc_stride != 0:
            _check_int("desc_stride", self.desc_stride, 1, self.max_rows, pow2=True)
        if self.meta_encoding not in META_ENCODINGS:
            raise ConfigError(f"meta_encoding must be one of {META_ENCODINGS}, "
                              f"not {self.meta_encoding!r}")
        _check_int("max_layers", self.max_layers, 1, 64)
        _check_int("uart_baud", self.uart_baud, 9600, 12_000_000)
        _check_int("bridge_frame_bytes", self.bridge_frame_bytes, 64, 16384, pow2=True)
        need = self.memory_bits
        device, have = LARGEST_DEVICE
        if sum(need.values()) > have:
            parts = ", ".join(f"{k} {v / 1e6:.2f}" for k, v in need.items())
            raise ConfigError(f"the memories of this configuration need at least "
                              f"{sum(need.values()) / 1e6:.2f} Mbit ({parts}); the largest "
                              f"supported device, the {device}, holds {have / 1e6:.2f} Mbit: "
                              f"reduce master_depth, zone_depth, max_layers, max_rows or "
                              f"max_cols")

    # -- derived values -------------------------------------------------------------------------

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

    # -- persistence ----------------------------------------------------------------------------

    def to_dict(self):
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data, *, source="configuration"):
        names = {f.name for f in dataclasses.fields(cls)}
        if "fetch_ports" in data:
            raise ConfigError(f"fetch_ports in {source} is not a field: the fetch unit has one "
                              f"port per MAC lane, so set lanes instead")
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown field(s) {', '.join(unknown)} in {source}; "
                              f"known fields are {', '.join(sorted(names))}")
        return cls(**data)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def fitted(self, shapes):
        """This configuration sized for a network of these layers (``(rows, cols)`` each): the
        layer limits are the powers of two that hold its largest layer and ``max_layers`` its
        layer count, the master store holds its weights (rounded up to 16), and the zones every
        weight at 4 bits (a word more per layer), the zones of wider precisions half of that; a
        network the master store already holds gets zones no deeper than this configuration's.
        A network whose every layer is fetched on one port (fewer than ``one_port_below``
        weights) gets one lane: the others would never run. The descriptors' fields then have
        the widths the network needs, so their bits per weight fall with it. Everything else
        is kept."""
        shapes = [tuple(int(v) for v in s) for s in shapes]
        if not shapes or any(len(s) != 2 or min(s) < 1 for s in shapes):
            raise ConfigError(f"a network to fit must have layers of at least 1x1, not {shapes!r}")
        pow2 = lambda n: 1 << (n - 1).bit_length()
        weights = sum(r * c for r, c in shapes)
        masters = max(16, -(-weights // 16) * 16)
        lanes = 1 if all(r * c < self.one_port_below for r, c in shapes) else self.lanes
        words = max(16, lanes,
                    pow2(-(-weights * 4 // self.zone_word_bits) + len(shapes)))
        if masters <= self.master_depth:
            words = min(words, max(self.zone_depths))
        rows, cols = pow2(max(r for r, _ in shapes)), pow2(max(c for _, c in shapes))
        try:
            return self.replace(
                max_rows=rows, max_cols=cols, max_layers=len(shapes), master_depth=masters,
                lanes=lanes,
                master_bank=min(self.master_bank, pow2(masters)) if self.master_bank else 0,
                zone_depth=tuple(words if b <= 4 else max(16, lanes, words // 2)
                                 for b in self.precisions),
                desc_stride=min(self.desc_stride, rows))
        except ConfigError as e:
            raise ConfigError(f"no engine holds this network ({len(shapes)} layers, {weights} "
                              f"weights, layers up to {rows}x{cols}): {e}") from None

    def hardware_dict(self):
        """The fields the engine is built from: all but the firmware's schedule
        (:data:`FIRMWARE_FIELDS`), which a host may change without rebuilding anything, and the
        serial link's (:data:`LINK_FIELDS`), which only a board top reads."""
        return {k: v for k, v in self.to_dict().items()
                if k not in FIRMWARE_FIELDS + LINK_FIELDS}


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")


def save(config, path):
    """Write ``config`` to a TOML file (one key per field, under ``[pse]``)."""
    lines = ["# pse-hdl design point", "[pse]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in config.to_dict().items()]
    write_atomic(path, "\n".join(lines) + "\n")


def load(path):
    """Read a configuration from TOML. A ``preset = "name"`` key starts from that preset."""
    path = Path(path)
    name = str(path)
    if path.is_dir():
        raise ConfigError(f"configuration file {name!r} is a directory, not a TOML file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file {name!r} does not exist") from None
    except PermissionError:
        raise ConfigError(f"configuration file {name!r} cannot be read (permission denied)") \
            from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"configuration file {name!r} is not UTF-8 text (byte {e.start}): "
                          f"a TOML file is expected") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"configuration file {name!r} is not valid TOML: {e}") from None
    data = data.get("pse", data)
    if not isinstance(data, dict):
        raise ConfigError(f"pse in {name!r} must be a table of fields ([pse]), not "
                          f"{type(data).__name__} {data!r}")
    data = dict(data)
    base = preset(data.pop("preset", "default"))
    merged = base.to_dict()
    merged.update(data)
    return PSEConfig.from_dict(merged, source=str(path))


_DEFAULT = PSEConfig()
PRESETS = {
    # Four lanes and short zones: most blocks fit the iCE40 UP5K one at a time.
    "tiny": dataclasses.replace(_DEFAULT, zone_depth=256, meta_bits=0, master_depth=8192,
                                master_bank=0, max_rows=128, max_cols=128, hist_bins=64,
                                hist_sub_bits=1),
    "default": _DEFAULT,
    # The default with masked layers (docs/ALLOCATION.md, "Masked layers"): a layer may be stored
    # as uniform 4-bit weights with the input columns its thresholds prune left out, and a
    # finer importance histogram (16 bins an octave) lets the cut fall between columns of alike
    # size. examples/input_masks.toml is the same configuration, commented.
    "masks": dataclasses.replace(_DEFAULT, input_masks=True, hist_sub_bits=4, hist_bins=512),
    # The iCE40 UP5K (iCEBreaker), sized for a digits MLP 64-32-10: one lane, zones as deep as
    # its calibration candidates need (at most 237, 179 and 119 words), masters in an SPRAM.
    "up5k": dataclasses.replace(_DEFAULT, lanes=1, zone_depth=(256, 256, 128), master_depth=4096,
                                master_bank=0, max_rows=64, max_cols=64, max_layers=2,
                                hist_bins=64, hist_sub_bits=1),
    # An ECP5-85F class design point: 16 lanes and the optional 2-bit precision.
    "wide": dataclasses.replace(_DEFAULT, lanes=16, precisions=(2, 4, 8, 16),
                                thresholds=(1 << 10, 1 << 13, 1 << 16, 1 << 20),
                                zone_depth=8192, meta_bits=0, master_depth=65536),
}


def preset(name):
    """The named preset; a :class:`ConfigError` lists the valid names otherwise."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, not {name!r}") from None


def from_arg(arg):
    """Resolve a CLI ``--config`` argument: a preset name or a TOML file path."""
    if arg is None:
        return _DEFAULT
    if arg in PRESETS:
        return PRESETS[arg]
    if arg and (Path(arg).suffix == ".toml" or Path(arg).exists()):
        return load(arg)
    raise ConfigError(f"--config must be a preset ({', '.join(PRESETS)}) or a TOML file, "
                      f"not {arg!r}")
