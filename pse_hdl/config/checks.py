"""Validation of a :class:`~pse_hdl.config.PSEConfig`, by concern, in the order a field's
check may rely on the ones before it (a threshold's range needs the widths, the device check
every memory's depth). Every refusal is a :class:`ConfigError` that names the field, the value
and what is allowed."""

from ..errors import ConfigError

ALLOWED_PRECISIONS = (2, 4, 8, 16)
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


def validate(cfg):
    """Raise :class:`ConfigError` for the first field of ``cfg`` out of its range."""
    for check in (_datapath, _memories, _ema, _allocator, _dynamics, _formats, _link, _device):
        check(cfg)


def _datapath(cfg):
    """The datapath's widths: lanes, precisions, activations, weights, accumulators, zone words."""
    _check_int("lanes", cfg.lanes, 1, 64, pow2=True)
    p = cfg.precisions
    if (not isinstance(p, tuple) or not p
            or any(not isinstance(b, int) or isinstance(b, bool) for b in p)
            or any(b not in ALLOWED_PRECISIONS for b in p)
            or list(p) != sorted(set(p))):
        raise ConfigError(f"precisions must be a non-empty ascending subset of "
                          f"{ALLOWED_PRECISIONS} without repeats, not {p!r}")
    _check_int("act_bits", cfg.act_bits, 4, 16)
    _check_int("weight_bits", cfg.weight_bits, 8, 16)
    if max(p) > cfg.weight_bits:
        raise ConfigError(f"weight_bits must be at least the largest precision {max(p)}, "
                          f"not {cfg.weight_bits!r}")
    _check_int("acc_bits", cfg.acc_bits, cfg.act_bits + cfg.weight_bits, 48)
    _check_int("zone_word_bits", cfg.zone_word_bits, 16, 128, pow2=True)
    if max(p) > cfg.zone_word_bits:
        raise ConfigError(f"zone_word_bits must hold the largest precision {max(p)}, "
                          f"not {cfg.zone_word_bits!r}")


def _memories(cfg):
    """The memories' depths: zones, metadata, master store, layer limits."""
    p = cfg.precisions
    zd = cfg.zone_depth
    if isinstance(zd, tuple):
        if len(zd) != len(p):
            raise ConfigError(f"zone_depth must be one depth or one per precision "
                              f"({len(p)} for {p!r}), not {zd!r}")
        for b, d in zip(p, zd):
            _check_int(f"zone_depth of the {b}-bit zone", d, 16, 1 << 20, pow2=True)
    elif zd != 0:
        _check_int("zone_depth", zd, 16, 1 << 20, pow2=True)
    if (isinstance(cfg.meta_bits, bool) or not isinstance(cfg.meta_bits, (int, float))
            or not 0 <= cfg.meta_bits <= 16):
        raise ConfigError(f"meta_bits must be 0 (the longest code) or an average code length "
                          f"in bits per weight (0..16), not {cfg.meta_bits!r}")
    _check_int("master_depth", cfg.master_depth, 16, 1 << 22)
    if cfg.master_bank:
        _check_int("master_bank", cfg.master_bank, 16, 1 << 22, pow2=True)
    if cfg.master_depth % 16:
        raise ConfigError(f"master_depth must be a multiple of 16, not {cfg.master_depth!r}")
    if min(cfg.zone_depths) < cfg.lanes:
        raise ConfigError(f"zone_depth must be at least lanes ({cfg.lanes}: the fetch ports "
                          f"read a word of every port at once), not {zd!r}")
    _check_int("max_rows", cfg.max_rows, 1, 1 << 16, pow2=True)
    _check_int("max_cols", cfg.max_cols, 1, 1 << 16, pow2=True)


def _ema(cfg):
    """The rolling importance's EMA: rate, its fixed-point numerator, fraction bits."""
    if isinstance(cfg.ema_rate, bool) or not isinstance(cfg.ema_rate, (int, float)) \
            or not 0 < cfg.ema_rate <= 0.5:
        raise ConfigError(f"ema_rate must be a number in (0, 0.5], not {cfg.ema_rate!r}")
    _check_int("ema_rate_bits", cfg.ema_rate_bits, 1, 16)
    num = cfg.ema_num
    if num < 1 or abs(num - cfg.ema_rate * (1 << cfg.ema_rate_bits)) > 0.5:
        raise ConfigError(f"ema_rate {cfg.ema_rate!r} cannot be represented with "
                          f"ema_rate_bits={cfg.ema_rate_bits}: increase ema_rate_bits")
    if not isinstance(cfg.ema_power_of_two, bool):
        raise ConfigError(f"ema_power_of_two must be true or false, not "
                          f"{cfg.ema_power_of_two!r}")
    exact = num == cfg.ema_rate * (1 << cfg.ema_rate_bits)
    if cfg.ema_power_of_two and not (exact and _is_pow2(num)):
        raise ConfigError(f"ema_rate must be a power of two 2**-k when ema_power_of_two is "
                          f"set, not {cfg.ema_rate!r}")
    _check_int("ema_frac_bits", cfg.ema_frac_bits, 0, 16)


def _allocator(cfg):
    """The allocator's thresholds and hysteresis band."""
    p = cfg.precisions
    t = cfg.thresholds
    if (not isinstance(t, tuple) or len(t) != len(p)
            or any(not isinstance(x, int) or isinstance(x, bool) for x in t)):
        raise ConfigError(f"thresholds must be {len(p)} integers (one per precision: prune "
                          f"threshold first), not {t!r}")
    if any(not 0 <= x < (1 << cfg.importance_bits) for x in t):
        raise ConfigError(f"thresholds must lie in [0, 2**{cfg.importance_bits}), not {t!r}")
    if list(t) != sorted(t):
        raise ConfigError(f"thresholds must be non-decreasing (low <= ... <= high), "
                          f"not {t!r}")
    _check_int("hysteresis", cfg.hysteresis, 0, (1 << cfg.importance_bits) - 1)
    if not isinstance(cfg.hysteresis_logic, bool):
        raise ConfigError(f"hysteresis_logic must be true or false, not "
                          f"{cfg.hysteresis_logic!r}")
    if cfg.hysteresis and not cfg.hysteresis_logic:
        raise ConfigError(f"hysteresis = {cfg.hysteresis} needs hysteresis_logic = true "
                          f"(the allocator's band comparators)")
    _check_int("hysteresis_shift", cfg.hysteresis_shift, 0, cfg.importance_bits)
    if cfg.hysteresis and cfg.hysteresis_shift:
        raise ConfigError(f"hysteresis = {cfg.hysteresis} (a fixed band) needs "
                          f"hysteresis_shift = 0 (a band that follows the thresholds), not "
                          f"{cfg.hysteresis_shift}: set one of them")


def _dynamics(cfg):
    """The dynamic algorithm: the firmware's schedule, reversibility, the importance form,
    masked layers, the snapshot and its floor."""
    _check_int("period", cfg.period, 1, 1 << 20)
    _check_int("warmup", cfg.warmup, 0, 1 << 20)
    _check_int("swap_delay", cfg.swap_delay, 0, cfg.period)
    if not isinstance(cfg.reversible, bool):
        raise ConfigError(f"reversible must be true or false, not {cfg.reversible!r}")
    if cfg.importance_form not in IMPORTANCE_FORMS:
        raise ConfigError(f"importance_form must be one of {IMPORTANCE_FORMS}, "
                          f"not {cfg.importance_form!r}")
    if not isinstance(cfg.input_masks, bool):
        raise ConfigError(f"input_masks must be true or false, not {cfg.input_masks!r}")
    if cfg.input_masks and (cfg.importance_form != "factored" or not cfg.reversible):
        raise ConfigError("input_masks = true needs importance_form 'factored' and "
                          "reversible = true (a column's importance is its input's EMA "
                          "times its masters' mean magnitude, as loaded)")
    if cfg.input_masks and cfg.max_cols.bit_length() > cfg.meta_index_bits:
        raise ConfigError(f"input_masks = true keeps a masked layer's column count in its "
                          f"metadata offsets ({cfg.meta_index_bits} bits): master_depth "
                          f"{cfg.master_depth} is too small for max_cols {cfg.max_cols}")
    _check_int("snapshot_shift", cfg.snapshot_shift, 0, 8)
    _check_int("one_port_below", cfg.one_port_below, 0, 1 << 32)
    if cfg.importance_form == "literal" and cfg.snapshot_shift:
        raise ConfigError(f"snapshot_shift must be 0 with importance_form 'literal' (its "
                          f"allocation reads the live per-weight states), not "
                          f"{cfg.snapshot_shift!r}")
    if not isinstance(cfg.importance_floor, bool):
        raise ConfigError(f"importance_floor must be true or false, not "
                          f"{cfg.importance_floor!r}")
    if cfg.importance_form == "literal" and cfg.importance_floor:
        raise ConfigError("importance_floor must be false with importance_form 'literal' "
                          "(the floor bounds the factored form's snapshot; the literal form "
                          "has none), not True")


def _formats(cfg):
    """The MAC digits, the histogram, row descriptors, the metadata's code and the layer table."""
    if cfg.mac_digit_bits != 4 or isinstance(cfg.mac_digit_bits, bool):
        raise ConfigError(f"mac_digit_bits must be 4 (the MAC lanes multiply 4-bit digits "
                          f"of a weight per cycle), not {cfg.mac_digit_bits!r}")
    _check_int("hist_sub_bits", cfg.hist_sub_bits, 0, 4)
    _check_int("hist_bins", cfg.hist_bins, 2, 1024)
    if cfg.desc_stride != 0:
        _check_int("desc_stride", cfg.desc_stride, 1, cfg.max_rows, pow2=True)
    if cfg.meta_encoding not in META_ENCODINGS:
        raise ConfigError(f"meta_encoding must be one of {META_ENCODINGS}, "
                          f"not {cfg.meta_encoding!r}")
    _check_int("max_layers", cfg.max_layers, 1, 64)


def _link(cfg):
    """The serial link to a board."""
    _check_int("uart_baud", cfg.uart_baud, 9600, 12_000_000)
    _check_int("bridge_frame_bytes", cfg.bridge_frame_bytes, 64, 16384, pow2=True)


def _device(cfg):
    """The memories against the largest supported device."""
    need = cfg.memory_bits
    device, have = LARGEST_DEVICE
    if sum(need.values()) > have:
        parts = ", ".join(f"{k} {v / 1e6:.2f}" for k, v in need.items())
        raise ConfigError(f"the memories of this configuration need at least "
                          f"{sum(need.values()) / 1e6:.2f} Mbit ({parts}); the largest "
                          f"supported device, the {device}, holds {have / 1e6:.2f} Mbit: "
                          f"reduce master_depth, zone_depth, max_layers, max_rows or "
                          f"max_cols")
