"""What the zoned memory should hold and send, from the golden model, as port-level integers.

Shared by the tier 1 tests (Amaranth simulator) and the cocotb testbench: the host writes
(masters, plans), the expected contents of every memory after a re-zoning, and each fetch port's
expected transfers, all packed into the integers the ports carry.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from pse_hdl.model.layer import weight_costs
from pse_hdl.model.pa import code_bits_of
from pse_hdl.model.transfer import port_schedule, port_streams
from pse_hdl.model.zones import pack_layer, place_layers, unpack_layer
from pse_hdl.rtl import layouts
from pse_hdl.rtl.zones import Target, plan_layout, row_desc_layout, split_layout, table_layout

__all__ = ["pack", "unpack", "Network", "random_network"]


def _leaves(layout, offset=0, path=()):
    if isinstance(layout, data.StructLayout):
        for name, f in layout:
            yield from _leaves(f.shape, offset + f.offset, path + (name,))
    elif isinstance(layout, data.ArrayLayout):
        for i in range(layout.length):
            yield from _leaves(layout.elem_shape, offset + i * Shape.cast(layout.elem_shape).width,
                               path + (i,))
    else:
        shape = Shape.cast(layout)
        yield path, offset, shape.width, shape.signed


_LEAVES = {}


def _leaves_of(layout):
    """``_leaves(layout)`` as a list, computed once per layout (kept alive beside it)."""
    hit = _LEAVES.get(id(layout))
    if hit is None:
        hit = _LEAVES[id(layout)] = (layout, list(_leaves(layout)))
    return hit[1]


def pack(layout, values):
    """A nested dict/list of ints to the layout's integer (missing fields are 0)."""
    word = 0
    for path, off, width, _ in _leaves_of(layout):
        v = values
        for key in path:
            v = v[key] if (isinstance(v, dict) and key in v) or isinstance(v, (list, tuple)) \
                else 0
        word |= (int(v) & ((1 << width) - 1)) << off
    return word


def unpack(layout, word):
    """Flat ``{path: int}`` of a layout's integer (for transfers: field name to value)."""
    out = {}
    for path, off, width, signed in _leaves_of(layout):
        v = (word >> off) & ((1 << width) - 1)
        out[path if len(path) > 1 else path[0]] = v - (1 << width) if signed and v >> (width - 1) \
            else v
    return out


@dataclass
class Network:
    """Layers (master, codes, shifts, uniform class, masked) placed as the model places them.
    ``codes`` are what the re-zoning is fed; a uniform layer's layout has its class instead (a
    masked one keeps its codes: its class or 0, column by column)."""
    cfg: object
    masters: list
    codes: list
    shifts: list
    uniform: list = None
    masked: list = None

    def __post_init__(self):
        self.uniform = list(self.uniform or [0] * len(self.masters))
        self.masked = list(self.masked or [False] * len(self.masters))
        self.images = [pack_layer(c, mm, s, self.cfg, u, k) for mm, c, s, u, k in
                       zip(self.masters, self.codes, self.shifts, self.uniform, self.masked)]
        self.used = place_layers(self.images, self.cfg)
        self.master_base = np.cumsum([0] + [m.size for m in self.masters])[:-1]

    # -- host side -------------------------------------------------------------------------
    def master_writes(self):
        """``[(addr, value)]`` of every master weight."""
        out = []
        for base, mm in zip(self.master_base, self.masters):
            out += [(int(base) + i, int(v) & ((1 << self.cfg.weight_bits) - 1))
                    for i, v in enumerate(mm.ravel())]
        return out

    def plan_words(self):
        out = []
        for l, im in enumerate(self.images):
            out.append(pack(plan_layout(self.cfg), {
                "rows": im.rows, "cols": im.cols, "master_base": int(self.master_base[l]),
                "cost": self.cost(l), "shift": list(im.shifts), "uniform": im.uniform,
                "masked": int(im.kept is not None)}))
        return out

    def cost(self, l):
        """MAC cost of layer ``l``'s surviving weights (the plan's ``cost``)."""
        bits = code_bits_of(self.images[l].codes, self.cfg)
        return int(weight_costs(bits, self.cfg).sum())

    def code_stream(self):
        """The ``codes`` stream of a re-zoning: every layer's codes, row-major."""
        return [int(c) for codes in self.codes for c in np.asarray(codes).ravel()]

    # -- expected memory contents ----------------------------------------------------------
    def expected(self):
        """``{(target, addr): int}`` of every word a re-zoning writes."""
        cfg, out = self.cfg, {}
        n = len(cfg.precisions)
        for k in range(n):
            for im in self.images:
                for i, w in enumerate(im.words[k]):
                    out[(Target.ZONE.value + k, im.base[k] + i)] = w
        bits = [b for im in self.images for b in im.meta]
        W = cfg.zone_word_bits
        for i in range(0, len(bits), W):
            out[(Target.META.value, i // W)] = sum(b << j for j, b in enumerate(bits[i:i + W]))
        for l, im in enumerate(self.images):
            for d, row in enumerate(im.descriptors):
                out[(Target.DESC.value, im.desc_base + d)] = pack(
                    row_desc_layout(cfg), {"index": list(row[:n]), "meta": row[n]})
            stored = im.splits[:cfg.layer_ports(im.rows * im.cols) - 1]
            for q, s in enumerate(stored, start=1):
                out[(Target.SPLIT.value, l * cfg.fetch_ports + q)] = pack(split_layout(cfg), {
                    "row": s[0], "col": s[1], "pos": s[2], "cont": s[3],
                    "index": list(s[4:4 + n]), "meta": s[4 + n]})
            out[(Target.TABLE.value, l)] = pack(table_layout(cfg), {
                "rows": im.rows, "cols": im.cols, "total": im.rows * im.cols,
                "zone_base": list(im.base),
                "shift": list(im.shifts), "desc_base": im.desc_base, "uniform": im.uniform,
                # a masked layer has no metadata: its base holds the kept columns' count
                "meta_base": im.meta_base if im.kept is None else im.kept.size,
                "masked": int(im.kept is not None)})
        return out

    def footprint_counts(self):
        """What the status outputs report after the re-zoning."""
        return {"zone_words": list(self.used),
                "meta_bits": sum(len(im.meta) if im.kept is None
                                 else im.kept.size * self.cfg.col_bits for im in self.images),
                "row_descs": sum(im.descriptors.shape[0] for im in self.images),
                "split_descs": sum(self.cfg.layer_ports(im.rows * im.cols) - 1
                                   for im in self.images),
                "layers": len(self.images)}

    def port_schedule(self, l):
        """Expected ``sched`` outputs (``{row, cont}`` per port) after ``FETCH l``."""
        return port_schedule(self.images[l].codes, self.cfg)

    def port_words(self, l):
        """Expected packed transfers of each fetch port for layer ``l``."""
        im = self.images[l]
        codes, values, _ = unpack_layer(im, self.cfg)
        lay = layouts.transfer_layout(self.cfg)
        return [[pack(lay, {f: int(t[f]) for f in t.dtype.names}) for t in s]
                for s in port_streams(codes, values, im.shifts, self.cfg)]

    def masters_after(self):
        """The master store after the re-zoning (destructive mode clears pruned masters)."""
        if self.cfg.reversible:
            return [m.copy() for m in self.masters]
        return [np.where(im.codes == 0, 0, m) for m, im in zip(self.masters, self.images)]


def random_network(cfg, rng, shapes, sparsity=None, mix=None, uniform=None, masked=None):
    """Random masters and code maps of the given shapes; ``sparsity`` (fraction pruned) and
    ``mix`` (class probabilities) are drawn at random when not given; ``uniform``: the layers'
    uniform classes, or ``"random"`` (about half the layers, each a random class); ``masked``:
    which uniform layers are masked (their codes then prune whole columns, ``sparsity`` of
    them)."""
    n = len(cfg.precisions)
    masters, codes, shifts = [], [], []
    for rows, cols in shapes:
        sp = rng.random() if sparsity is None else sparsity
        p = rng.dirichlet(np.ones(n)) if mix is None else np.asarray(mix, float)
        c = rng.choice(np.arange(1, n + 1), size=(rows, cols), p=p / p.sum())
        c[rng.random((rows, cols)) < sp] = 0
        mm = rng.integers(-(1 << (cfg.weight_bits - 1)), 1 << (cfg.weight_bits - 1),
                          size=(rows, cols))
        # Spread of magnitudes, so saturation and every scale occur.
        mm = mm >> rng.integers(0, cfg.weight_bits - 1, size=(rows, cols))
        masters.append(mm.astype(np.int64))
        codes.append(c.astype(np.int64))
        shifts.append([int(rng.integers(0, cfg.weight_bits - b + 1)) for b in cfg.precisions])
    if uniform == "random":
        uniform = [int(rng.integers(1, n + 1)) if rng.random() < 0.5 else 0 for _ in shapes]
    for l, (rows, cols) in enumerate(shapes):
        if masked and masked[l]:
            sp = rng.random() if sparsity is None else sparsity
            codes[l] = np.where(rng.random(cols) < sp, 0, uniform[l])[None, :].repeat(rows, 0)
    return Network(cfg, masters, codes, shifts, uniform, masked)

