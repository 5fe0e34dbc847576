"""Layouts, address map and memory geometry shared by the zoned memory's parts.

Logical and physical words. The model's layout is made of ``zone_word_bits``-wide words (zone
words, metadata words), and so are every address the re-zoning engine writes and the host reads.
The zone and metadata memories are ``read_ratio(cfg)`` (= ``fetch_ports``) logical words wide: the
fetch walkers take turns on one read port, and each read gives a walker as many words as it can
use until its next turn. Logical word ``a`` of bank ``b`` is lane ``a' % R`` of physical word
``a' // R``, with ``a' = b * depth + a`` (``depth`` is a multiple of ``R``).

The zones' and the metadata's read ports give their data ``SHARED_READ_LATENCY`` cycles after the
read: their block RAMs' outputs are registered by them (``sliced``), so the 5.8 ns of a block
RAM's clock-to-output end there, not at the walkers across the die."""

from amaranth.hdl import Const, Mux, unsigned
from amaranth.lib import data, enum

from ..layouts import log2

__all__ = ["Op", "Target", "at_least", "at_most", "count_shape", "meta_bits_shape", "plan_layout",
           "table_layout",
           "row_desc_layout", "split_layout", "geometry", "host_addr_bits", "host_data_bits",
           "banked", "log2", "read_ratio", "kept_geometry", "kept_entry", "physical",
           "SHARED_READ_LATENCY"]

SHARED_READ_LATENCY = 2


class Op(enum.Enum, shape=2):
    REZONE = 0
    SWAP = 1
    FETCH = 2


class Target(enum.Enum, shape=3):
    """What ``host_wr``/``host_rd`` address. Zone k (class k+1) is ``ZONE + k``; the zone
    targets come last."""
    MASTER = 0
    PLAN = 1
    META = 2
    DESC = 3
    SPLIT = 4
    TABLE = 5
    ZONE = 6


def at_most(value, bound):
    """``value <= bound`` for a constant bound; constant true (no comparator, and no lint
    warning for a comparison that cannot fail) when the value's width cannot exceed it."""
    if (1 << len(value)) - 1 <= bound:
        return Const(1)
    return value <= bound


def at_least(value, bound):
    """``value >= bound`` for a constant bound, constant where the value's width decides it
    (as :func:`at_most`)."""
    if bound <= 0:
        return Const(1)
    if bound > (1 << len(value)) - 1:
        return Const(0)
    return value >= bound


def count_shape(n):
    """Unsigned shape holding 0..n."""
    return unsigned(max(1, n.bit_length()))


def meta_bits_shape(cfg):
    """The metadata bits a layout stores: codes, and with ``input_masks`` the kept columns'
    indices (``col_bits`` each)."""
    kept = cfg.max_layers * cfg.max_cols * cfg.col_bits if cfg.input_masks else 0
    return count_shape(cfg.meta_depth * cfg.zone_word_bits + kept)


def _masked_fields(cfg):
    """A masked layer's flag (``input_masks`` only). A masked layer stores no metadata: its
    table entry's ``meta_base`` holds how many input columns it keeps."""
    return {"masked": unsigned(1)} if cfg.input_masks else {}


def plan_layout(cfg):
    n = len(cfg.precisions)
    return data.StructLayout({"rows": unsigned(cfg.row_bits + 1),
                              "cols": unsigned(cfg.col_bits + 1),
                              "master_base": unsigned(cfg.master_addr_bits),
                              "cost": unsigned(cfg.layer_cost_bits),
                              "uniform": unsigned(cfg.code_bits),
                              "shift": data.ArrayLayout(unsigned(cfg.shift_bits), n),
                              **_masked_fields(cfg)})


def table_layout(cfg):
    n = len(cfg.precisions)
    return data.StructLayout({"rows": unsigned(cfg.row_bits + 1),
                              "cols": unsigned(cfg.col_bits + 1), "total": unsigned(cfg.pos_bits),
                              "zone_base": data.ArrayLayout(unsigned(cfg.zone_addr_bits), n),
                              "shift": data.ArrayLayout(unsigned(cfg.shift_bits), n),
                              "meta_base": unsigned(cfg.meta_index_bits),
                              "desc_base": count_shape(cfg.desc_depth - 1),
                              "uniform": unsigned(cfg.code_bits), **_masked_fields(cfg)})


def _fields(fields):
    """A layout from the configuration's ``(name, bits, count)`` field description."""
    return data.StructLayout({name: unsigned(bits) if count is None
                              else data.ArrayLayout(unsigned(bits), count)
                              for name, bits, count in fields})


def row_desc_layout(cfg):
    return _fields(cfg.row_desc_fields)


def split_layout(cfg):
    return _fields(cfg.split_desc_fields)


def geometry(cfg):
    """Per-bank depth of every banked memory, by target."""
    n = len(cfg.precisions)
    depth = {Target.META: cfg.meta_depth, Target.DESC: cfg.desc_depth,
             Target.SPLIT: cfg.max_layers * cfg.fetch_ports, Target.TABLE: cfg.max_layers}
    for k in range(n):
        depth[Target.ZONE.value + k] = cfg.zone_depths[k]
    return depth


def host_addr_bits(cfg):
    depths = list(geometry(cfg).values()) + [cfg.master_depth, cfg.max_layers]
    return max(1, (max(depths) - 1).bit_length())


def host_data_bits(cfg):
    return max(cfg.zone_word_bits, cfg.weight_bits, plan_layout(cfg).size,
               table_layout(cfg).size, split_layout(cfg).size, row_desc_layout(cfg).size)


def banked(bank, addr, depth):
    """Index of ``addr`` in bank ``bank`` of a memory holding two banks of ``depth``."""
    return Mux(bank, addr + depth, addr)




def read_ratio(cfg):
    """Logical words per physical word of the zone and metadata memories."""
    return cfg.fetch_ports


def kept_geometry(cfg):
    """The kept-column table of masked layers (``input_masks``) as ``(stride, depth)``: layer
    ``l``'s column indices start at entry ``l * stride`` of a bank (``max_cols`` rounded up to
    whole physical words), and the table is ``depth`` physical words of ``read_ratio(cfg)``
    entries (``col_bits`` each), two banks. Like the metadata, one copy that the walkers read
    in turns, a physical word a turn."""
    R = read_ratio(cfg)
    stride = -(-cfg.max_cols // R) * R
    return stride, 2 * cfg.max_layers * stride // R


def kept_entry(cfg, bank, layer, index=0):
    """Entry ``index`` of layer ``layer``'s kept columns in bank ``bank`` (``kept_geometry``):
    where the re-zoner writes it and, for ``index`` 0, where a walk reads from."""
    stride, _ = kept_geometry(cfg)
    return banked(bank, layer * stride + index, cfg.max_layers * stride)


def physical(cfg, banked_addr):
    """``(physical word, lane)`` of a banked logical word address."""
    r = log2(read_ratio(cfg))
    return banked_addr >> r, banked_addr[:r] if r else Const(0, 1)
