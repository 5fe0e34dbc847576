"""The tagged weight transfer: the communication protocol between zones and MAC lanes.

Defined once here as a list of fields; the golden model packs records into NumPy structured
arrays with :func:`dtype`, the RTL builds its ``data.StructLayout`` from the same list
(``pse_hdl.rtl.layouts``). A transfer carries one surviving weight in row-major order:

========  ==================  ============================================================
field     width               meaning
========  ==================  ============================================================
value     weight_bits, signed the zone value, sign-extended (the MAC shifts it by ``shift``)
code      code_bits           precision code (0 only in a row-end marker, see below)
shift     shift_bits          the zone scale of this weight's class
column    col_bits            input index j
row       row_bits            output index i
last      1                   last transfer of the row
========  ==================  ============================================================

A row whose weights are all pruned still sends one marker ``{code=0, value=0, column=0,
last=1}`` so the MAC completes the row (bias, ReLU, requantize); the marker costs no MAC cycle.
"""

import numpy as np

from .fixed import to_int64

__all__ = ["fields", "dtype", "layer_stream", "lane_streams", "lane_schedule", "port_streams",
           "port_schedule"]


def fields(cfg):
    """``[(name, width, signed), ...]`` in LSB-first order."""
    return [("value", cfg.weight_bits, True), ("code", cfg.code_bits, False),
            ("shift", cfg.shift_bits, False), ("column", cfg.col_bits, False),
            ("row", cfg.row_bits, False), ("last", 1, False)]


def dtype(cfg):
    return np.dtype([(name, np.int64) for name, _, _ in fields(cfg)])


def layer_stream(codes, values, shifts, cfg):
    """All transfers of one layer, in order, from its codes and zone values (rows x cols)."""
    codes, values = to_int64(codes), to_int64(values)
    shift_of = np.array((0,) + tuple(shifts), np.int64)
    records = []
    for i in range(codes.shape[0]):
        cols = np.flatnonzero(codes[i])
        if cols.size == 0:
            records.append((0, 0, 0, 0, i, 1))
            continue
        for n, j in enumerate(cols):
            c = int(codes[i, j])
            records.append((int(values[i, j]), c, int(shift_of[c]), int(j), i,
                            int(n == cols.size - 1)))
    return np.array(records, dtype=dtype(cfg))


def _split_streams(codes, values, shifts, cfg, bounds):
    """The layer's transfers cut at flat positions ``bounds`` (part p walks positions
    ``[bounds[p], bounds[p+1])``): ``last`` marks each part's last transfer of a row; an
    all-pruned row's marker goes to the part whose positions cover it."""
    codes, values = to_int64(codes), to_int64(values)
    cols = codes.shape[1]
    shift_of = np.array((0,) + tuple(shifts), np.int64)
    flat_codes, flat_values = codes.ravel(), values.ravel()
    out = []
    for lo, hi in zip(bounds, bounds[1:]):
        records = []
        for i in range(lo // cols, -(-hi // cols)):
            a, b = max(lo, i * cols), min(hi, (i + 1) * cols)
            live = a + np.flatnonzero(flat_codes[a:b])
            if live.size == 0:
                if a == i * cols and b == (i + 1) * cols:
                    records.append((0, 0, 0, 0, i, 1))
                continue
            for n, pos in enumerate(live):
                c = int(flat_codes[pos])
                records.append((int(flat_values[pos]), c, int(shift_of[c]), int(pos % cols), i,
                                int(n == live.size - 1)))
        out.append(np.array(records, dtype=dtype(cfg)).reshape(-1))
    return out


def lane_streams(codes, values, shifts, cfg):
    """The transfers of a layer split over MAC lanes: the surviving weights in row-major order
    cut into contiguous chunks of equal MAC cost (:func:`pse_hdl.model.layer.lane_split`), so a
    row may be split between neighbouring lanes (each part ends with ``last``); a layer of
    fewer than ``one_port_below`` weights goes to lane 0 whole. Returns one structured array
    per lane."""
    from .layer import layer_lanes, weight_costs
    from .pa import code_bits_of
    codes = to_int64(codes)
    flat = codes.ravel()
    live = np.flatnonzero(flat)
    costs = weight_costs(code_bits_of(codes, cfg), cfg).ravel()[live]
    starts = layer_lanes(costs, flat.size, cfg)
    bounds = [0] + [int(live[s]) if s < live.size else flat.size for s in starts[1:-1]] \
        + [flat.size]
    return _split_streams(codes, values, shifts, cfg, bounds)


def lane_schedule(streams):
    """What the MAC array is told about a layer's lane streams: per lane, the row of its first
    transfer and whether that row began on the previous lane (its partial sum is then added to
    the previous lane's). ``[(first_row, continues), ...]``; an empty lane is ``(0, False)``."""
    out = []
    for k, s in enumerate(streams):
        if len(s) == 0:
            out.append((0, False))
            continue
        first = int(s["row"][0])
        prev = streams[k - 1] if k else []
        out.append((first, bool(len(prev)) and int(prev["row"][-1]) == first))
    return out


def port_streams(codes, values, shifts, cfg):
    """The transfers of a layer as the zoned memory's fetch ports send them.

    Port p walks the layer's codes from split point p to split point p+1
    (:func:`pse_hdl.model.zones.split_points`; port 0 starts at the layer's first code, the
    last port ends at its end). The split points cut the surviving weights into chunks of equal
    MAC cost, so port p carries exactly what MAC lane p takes (:func:`lane_streams`). Within a
    port the transfers are in row-major order; ``last`` marks the port's last transfer of a row
    (a row cut by a split point ends on one port and continues on the next). An all-pruned row
    sends its marker on the port whose walk covers it.
    """
    from .zones import split_points
    rows, cols = np.shape(codes)
    bounds = [0] + [int(s[2]) for s in split_points(codes, cfg)] + [rows * cols]
    return _split_streams(codes, values, shifts, cfg, bounds)


def port_schedule(codes, cfg):
    """What the fetch ports tell the MAC array about a layer (its ``sched``), read from the
    split descriptors: per port the row it starts in and whether that row began on the previous
    port; port 0 is ``(0, 0)``, a port without weights ``(rows, 0)``. Where a port has weights
    this agrees with :func:`lane_schedule` of :func:`port_streams`."""
    from .zones import split_points
    return [(0, 0)] + [(int(s[0]), int(s[3])) for s in split_points(codes, cfg)]
