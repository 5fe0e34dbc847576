"""The design point of the engine: :class:`PSEConfig`, its fields and their defaults, frozen and
validated on construction (:mod:`.checks`), its derived values (:mod:`.derived`), and the
engine sized for a network (:meth:`PSEConfig.fitted`)."""

import dataclasses
from dataclasses import dataclass

from ..errors import ConfigError
from .checks import validate
from .derived import Derived

# Fields only the firmware reads (when to allocate and swap): not part of the hardware.
FIRMWARE_FIELDS = ("period", "warmup", "swap_delay")
# Fields of the serial link to a board (UART and bridge): the engine behind it does not see them.
LINK_FIELDS = ("uart_baud", "bridge_frame_bytes")


@dataclass(frozen=True)
class PSEConfig(Derived):
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
        19,456 masters: 2,048, 1,024 and 1,024 words (with the 2-bit class, 1,024 more for
        it): the 8- and 16-bit zones hold every calibration candidate of the digits network
        64-256-10 at 4.0 bits per weight or less (at most 1,003 and 948 words), the 4-bit zone
        all but a few (up to 2,211).
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
        validate(self)


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
