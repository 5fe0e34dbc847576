"""Precision zones: packing, descriptors, footprint (docs/SPEC.md, section 6).

Each precision class k (code k, precision b = ``precisions[k-1]``) has its own zone: a memory of
``zone_depths[k-1]`` words of ``zone_word_bits``. A layer occupies a segment of every zone, starting at
a word boundary (the segment's base word is in the layer descriptor). Inside the segment the
layer's class-k weights are packed in row-major order, ``W // b`` per word, element e of a word
in bits ``[e*b, (e+1)*b)`` (LSB first), two's complement. Pruned weights occupy no zone space.

Metadata: one code per weight in dense row-major order, as a bit string packed LSB first into
words (``meta_encoding``: fixed ``code_bits`` per code, or truncated unary). Every
``desc_stride`` rows a row descriptor gives, for each zone, the element index (relative to the
layer's segment) at which that row's class-k weights begin, and the bit offset of the row's first
code, so the host can read the layer back from there (``desc_stride`` 0, the default: none are
stored; the walkers start from the split descriptors). For the fetch unit's ``fetch_ports`` walkers (one per MAC
lane), ``P - 1`` split descriptors per layer give the walk state (row, column, flat index,
whether the row continues from the previous port, per-zone element index, metadata offset) where
walker p starts: the layer's surviving weights are cut into P chunks of equal MAC cost, exactly
as the MAC array's lanes take them. The footprint counts exactly what is stored.

A uniform layer (``uniform = k > 0``, :mod:`pse_hdl.model.pa`) holds every weight in zone k and
stores no metadata: its codes are all k by definition (whatever codes it is given), and its
descriptors' metadata offsets are 0. A masked layer (``uniform = k`` and ``masked``) is a
uniform layer with input columns left out: its codes are k or 0 column by column, it stores
the weights of the kept columns only (row-major, as if the layer had only those columns), no
codes, and the kept columns' indices (``kept``, ``col_bits`` each: its metadata); its split
descriptors are those of its codes (the walk steps over the pruned columns as over pruned
weights), with the metadata offset replaced by the index in ``kept`` of the split's column.
With ``input_masks``.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import CapacityError, ConfigError
from .fixed import to_int64
from .quant import check_shifts, dequantize, quantize

__all__ = ["LayerImage", "pack_words", "unpack_words", "pack_layer", "unpack_layer",
           "encode_meta", "decode_meta", "split_points", "place_layers", "overflows",
           "footprint_bits", "check_fit"]


def _code_patterns(cfg):
    """Each code's bits, LSB first, as rows of a table padded to the longest, and the mask of
    the bits that belong to it."""
    n = len(cfg.precisions)
    if cfg.meta_encoding == "fixed":
        pats = [[(c >> i) & 1 for i in range(cfg.code_bits)] for c in range(n + 1)]
    else:
        pats = [[1] * c + ([0] if c < n else []) for c in range(n + 1)]
    width = max(len(p) for p in pats)
    table = np.array([p + [0] * (width - len(p)) for p in pats], np.int64)
    valid = np.array([[i < len(p) for i in range(width)] for p in pats])
    return table, valid


def encode_meta(codes, cfg):
    """The metadata bit string of ``codes`` (row-major), as a list of 0/1, LSB first."""
    table, valid = _code_patterns(cfg)
    c = to_int64(codes).ravel()
    return table[c][valid[c]].tolist()          # each code's bits, in order


def decode_meta(bits, count, cfg, start=0):
    """Inverse of :func:`encode_meta`: ``count`` codes from bit ``start``."""
    n = len(cfg.precisions)
    out, pos = np.empty(count, np.int64), start
    for i in range(count):
        if cfg.meta_encoding == "fixed":
            out[i] = sum(bits[pos + b] << b for b in range(cfg.code_bits))
            pos += cfg.code_bits
        else:
            c = 0
            while c < n and bits[pos]:
                c, pos = c + 1, pos + 1
            pos += c < n
            out[i] = c
    return out


def pack_words(values, bits, word_bits):
    """Pack signed ``bits``-wide values, LSB first, into Python-int words."""
    per = word_bits // bits
    v = to_int64(values).ravel() & ((1 << bits) - 1)
    if word_bits <= 64:                         # whole words in unsigned 64-bit arithmetic
        v = np.concatenate([v, np.zeros(-v.size % per, np.int64)]).astype(np.uint64)
        shifts = (np.arange(per, dtype=np.uint64) * np.uint64(bits))
        return np.bitwise_or.reduce(v.reshape(-1, per) << shifts, axis=1).tolist()
    v = v.tolist()
    words = []
    for i in range(0, len(v), per):
        w = 0
        for e, x in enumerate(v[i:i + per]):
            w |= x << (e * bits)
        words.append(w)
    return words


def unpack_words(words, bits, word_bits, count, start=0):
    """Inverse of :func:`pack_words`: ``count`` signed values from element ``start`` on."""
    per = word_bits // bits
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    out = np.empty(count, np.int64)
    for i in range(count):
        e = start + i
        x = (words[e // per] >> ((e % per) * bits)) & mask
        out[i] = x - (1 << bits) if x & sign else x
    return out


@dataclass
class LayerImage:
    """One layer as it sits in the zones (all indices relative to the layer's segments)."""
    rows: int
    cols: int
    codes: np.ndarray                 # rows x cols, 0 = pruned
    shifts: tuple                     # zone scale shift per class (index k-1)
    words: list                       # per class: list of packed words
    counts: tuple                     # per class: weights stored
    descriptors: np.ndarray           # ceil(rows/stride) x (classes + 1): per zone the element
                                      # index of the row's first weight, then its metadata offset
    meta: list                        # metadata bit string (0/1), LSB first
    splits: np.ndarray = None         # (P-1) x (row, col, pos, cont, per-class index...,
                                      # meta offset)
    uniform: int = 0                  # k > 0: every weight class k, no metadata stored
    base: tuple = field(default=())   # per class: base word in the zone (set by place_layers)
    meta_base: int = 0                # bit offset of the layer's metadata (set by place_layers)
    desc_base: int = 0                # index of its first row descriptor (set by place_layers)
    kept: np.ndarray = None           # a masked layer: the indices of its kept input columns


def _code_lengths(cfg, uniform):
    """Metadata bits of each code (index: the code); none in a uniform layer."""
    return np.array([0 if uniform else cfg.code_length(k)
                     for k in range(len(cfg.precisions) + 1)], np.int64)


def split_points(codes, cfg, uniform=0):
    """Split descriptors of a layer: where fetch port p = 1..P-1 starts, so port p feeds MAC
    lane p the chunk :func:`~pse_hdl.model.layer.lane_split` gives it (the surviving weights in
    row-major order cut into P chunks of equal MAC cost). Each is the walk state at that
    surviving weight: ``(row, column, flat index, cont, element index per zone, metadata bit
    offset)``, where ``cont`` says the row began on the previous port (an earlier surviving
    weight of the same row). A port left without weights (fewer survivors than ports) starts
    at the layer's end ``(rows, 0, rows*cols, 0, counts..., metadata length)``. A layer of
    fewer than ``one_port_below`` weights is cut into one chunk (port 0): its other ports start
    at its end, and these descriptors are not stored (:func:`footprint_bits`; the fetch unit
    makes them from the layer's table entry)."""
    from .layer import layer_lanes, weight_costs
    from .pa import code_bits_of
    codes = to_int64(codes)
    rows, cols = codes.shape
    flat = codes.ravel()
    classes = len(cfg.precisions)
    lengths = _code_lengths(cfg, uniform)
    # State before each position, and at the end (one extra entry).
    before = np.zeros((flat.size + 1, classes + 1), np.int64)
    for k in range(1, classes + 1):
        before[1:, k - 1] = np.cumsum(flat == k)
    before[1:, classes] = np.cumsum(lengths[flat])
    survivors = np.flatnonzero(flat)
    costs = weight_costs(code_bits_of(flat, cfg), cfg)[survivors]
    starts = layer_lanes(costs, flat.size, cfg)
    out = []
    for s in starts[1:-1]:
        if s < survivors.size:
            pos = int(survivors[s])
            row, col = pos // cols, pos % cols
            cont = int(s > 0 and survivors[s - 1] // cols == row)
        else:
            pos, row, col, cont = flat.size, rows, 0, 0
        out.append([row, col, pos, cont, *before[pos]])
    return np.array(out, np.int64).reshape(cfg.fetch_ports - 1, 4 + classes + 1)


def _kept_columns(codes, uniform):
    """The kept columns of a masked layer's codes (each column all ``uniform`` or all 0)."""
    if not uniform:
        raise ValueError("a masked layer needs its uniform class (k > 0)")
    if not (np.all(codes == codes[:1]) and np.all((codes == 0) | (codes == uniform))):
        raise ValueError(f"a masked layer's codes must be {uniform} or 0 column by column")
    return np.flatnonzero(codes[0])


def pack_layer(codes, master, shifts, cfg, uniform=0, masked=False):
    check_shifts(shifts, cfg)
    if masked:
        codes = to_int64(codes)
        kept = _kept_columns(codes, uniform)
    else:
        codes = np.full(np.shape(codes), uniform, np.int64) if uniform else to_int64(codes)
        kept = None
    master = to_int64(master)
    rows, cols = codes.shape
    words, counts = [], []
    flat_codes, flat_master = codes.ravel(), master.ravel()
    for k, bits in enumerate(cfg.precisions, start=1):
        members = flat_master[flat_codes == k]
        words.append(pack_words(quantize(members, bits, shifts[k - 1]), bits, cfg.zone_word_bits))
        counts.append(int(members.size))
    # Element index at which each row's class-k weights start: the count of class-k codes in
    # all rows before it.
    lengths = _code_lengths(cfg, uniform)
    per_row = np.stack([(codes == k).sum(axis=1) for k in range(1, len(cfg.precisions) + 1)]
                       + [lengths[codes].sum(axis=1)], axis=1)
    starts = np.vstack([np.zeros((1, per_row.shape[1]), np.int64), np.cumsum(per_row, axis=0)])
    descriptors = starts[:rows:cfg.desc_stride] if cfg.desc_stride else starts[:0]
    splits = split_points(codes, cfg, uniform)
    if kept is not None:              # where in the kept columns each split's walk starts
        splits[:, -1] = np.searchsorted(kept, splits[:, 1])
    return LayerImage(rows, cols, codes.copy(), tuple(int(s) for s in shifts), words,
                      tuple(counts), descriptors, [] if uniform else encode_meta(codes, cfg),
                      splits, uniform=int(uniform), kept=kept)


def unpack_layer(image, cfg):
    """Return ``(codes, values, effective)`` from the packed image (inverse of pack_layer)."""
    shape = (image.rows, image.cols)
    if image.kept is not None:
        codes = np.zeros(shape, np.int64)
        codes[:, image.kept] = image.uniform
    elif image.uniform:
        codes = np.full(shape, image.uniform, np.int64)
    else:
        codes = decode_meta(image.meta, image.rows * image.cols, cfg).reshape(shape)
    values = np.zeros(codes.shape, np.int64)
    flat = values.ravel()
    for k, bits in enumerate(cfg.precisions, start=1):
        mask = codes.ravel() == k
        flat[mask] = unpack_words(image.words[k - 1], bits, cfg.zone_word_bits, image.counts[k - 1])
    values = flat.reshape(codes.shape)
    shift = np.array((0,) + image.shifts, np.int64)[codes]
    return codes, values, dequantize(values, shift)


# How a user sizes the engine to the network instead (``pse run --fit``, ``convert(fit=True)``).
FIT_HINT = "; --fit (fit=True in Python) sizes the engine to the network"


def check_fit(shapes, cfg):
    """Reject layer shapes the zoned memory cannot hold (layer count, shape, master store), with
    the needed and the available sizes."""
    if len(shapes) > cfg.max_layers:
        raise ConfigError(f"the network has {len(shapes)} layers but max_layers is "
                          f"{cfg.max_layers}" + FIT_HINT)
    for l, (rows, cols) in enumerate(shapes):
        if not (1 <= rows <= cfg.max_rows and 1 <= cols <= cfg.max_cols):
            raise ConfigError(f"layer {l} is {rows}x{cols} but the configuration allows at most "
                              f"{cfg.max_rows}x{cfg.max_cols} (max_rows x max_cols)" + FIT_HINT)
    weights = sum(r * c for r, c in shapes)
    if weights > cfg.master_depth:
        raise ConfigError(f"the master store needs {weights} weights but master_depth is "
                          f"{cfg.master_depth}: raise master_depth to at least "
                          f"{1 << (weights - 1).bit_length()}" + FIT_HINT)


def place_layers(images, cfg, check=True):
    """Assign every layer's zone segments their base words, its metadata and descriptor bases;
    reject what does not fit, naming the needed and the available sizes (the first of
    :func:`overflows`), unless ``check`` is false."""
    check_fit([(im.rows, im.cols) for im in images], cfg)
    used, meta, desc = [0] * len(cfg.precisions), 0, 0
    for image in images:
        image.base, image.meta_base, image.desc_base = tuple(used), meta, desc
        used = [u + len(w) for u, w in zip(used, image.words)]
        meta += len(image.meta)
        desc += image.descriptors.shape[0]
    over = overflows(images, cfg)
    if check and over:
        raise CapacityError(next(iter(over.values())))
    return used


def overflows(images, cfg):
    """What of a layout does not fit: ``{"zone": message, "meta": message}``, either or both
    (the re-zoning's error bits), or an empty dict."""
    out = {}
    for k, (bits, depth) in enumerate(zip(cfg.precisions, cfg.zone_depths)):
        need = sum(len(im.words[k]) for im in images)
        if need > depth and "zone" not in out:
            out["zone"] = (f"zone of {bits}-bit weights needs {need} words but its zone_depth "
                           f"is {depth}: raise zone_depth to at least "
                           f"{1 << (need - 1).bit_length()}")
    meta, room = sum(len(im.meta) for im in images), cfg.meta_depth * cfg.zone_word_bits
    if meta > room:
        out["meta"] = (f"the metadata needs {meta} bits but the metadata memory holds {room} "
                       f"({cfg.meta_depth} words of {cfg.zone_word_bits} bits): raise meta_bits "
                       f"to at least {meta / cfg.master_depth:.2f} or 0 (the longest code)")
    return out


def footprint_bits(images, cfg):
    """Exact storage of a network's layout, by component, in bits."""
    values = sum(len(w) for im in images for w in im.words) * cfg.zone_word_bits
    metadata = sum(len(im.meta) if im.kept is None else im.kept.size * cfg.col_bits
                   for im in images)
    descriptors = sum(im.descriptors.shape[0] for im in images) * cfg.row_desc_bits
    splits = sum(cfg.layer_ports(im.rows * im.cols) - 1 for im in images) * cfg.split_desc_bits
    layers = len(images) * cfg.layer_desc_bits
    n = sum(im.rows * im.cols for im in images)
    total = values + metadata + descriptors + splits + layers
    return {"values": values, "metadata": metadata, "descriptors": descriptors,
            "split_descriptors": splits, "layer_descriptors": layers, "total": total,
            "weights": n,
            "bits_per_weight": total / n if n else 0.0}
