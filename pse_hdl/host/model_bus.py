"""Transport: the engine's register map on the golden model, in Python (no simulator).

:class:`ModelBus` answers the same registers and windows as the RTL (``pse_hdl.regmap``), with
the same access rules, and executes the commands with the golden model's functions: INFER with
``model.layer``, the EMA updates with ``model.ric``, ALLOCATE with ``model.pa``/``model.sm``,
HISTOGRAM with ``model.histogram``, REZONE with ``model.zones``. Commands complete at once (a job
is never seen running). So the firmware can be developed and tested with no hardware at all, and
the same firmware on the RTL must produce the same numbers (the tests compare both with
``model.engine.run_dynamic``).

Cycle counters hold the model's figures: ``MAC_CYCLES`` and ``LAST_INFER_CYCLES`` the schedule's
cost (``model.layer.cycle_model``, no pipeline overhead), the job counters one cycle per weight.
"""

import numpy as np

from ..model.histogram import histogram
from ..model.layer import cycle_model, layer_forward, requantize, weight_costs
from ..model.pa import allocate, code_bits_of
from ..model.quant import effective_weights
from ..model.ric import blend_snapshot, ema_step
from ..model.zones import footprint_bits, overflows, pack_layer, place_layers
from ..regmap import ERRORS, Op, RegisterMap
from .bus import Bus

__all__ = ["ModelBus"]

MASK = 0xFFFF_FFFF


def _sext(value, bits):
    """The low ``bits`` of a bus word as a signed number."""
    return ((value & ((1 << bits) - 1)) ^ (1 << (bits - 1))) - (1 << (bits - 1))


class ModelBus(Bus):
    """The engine of ``cfg`` as a register-level golden model."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.map = rm = RegisterMap(cfg)
        self.win = rm.windows
        n = len(cfg.precisions)
        self.master = np.zeros(cfg.master_depth, np.int64)
        self.codes = np.zeros(cfg.master_depth, np.int64)
        self.bias = np.zeros(cfg.bias_depth, np.int64)
        self.ric = np.zeros(cfg.ric_depth, np.int64)
        self.snap = np.zeros(cfg.ric_depth, np.int64)
        self.floor = np.zeros(cfg.ric_depth, np.int64)
        self.x = np.zeros(cfg.max_cols, np.int64)
        self.result = np.zeros(cfg.max_rows, np.int64)
        self.result_ovf = np.zeros(cfg.max_rows, np.int64)
        self.hist = np.zeros(cfg.hist_bins, np.int64)
        self.colnorm = np.zeros(cfg.ric_depth, np.int64)   # masked layers' c_j (input_masks)
        self.store = {}                           # read-write register fields, by address
        for r in rm.registers:
            for f in r.fields:
                if f.access == "rw":
                    self.store[(r.addr, f.name)] = f.reset
        self.err = {name: 0 for name, _ in ERRORS}
        self.error_addr = 0
        self.zone_error = 0
        self.counters = {r.name: 0 for r in rm.registers
                         if 16 <= r.addr < rm.layer_base and r.layer is None}
        self.class_count = np.zeros((cfg.max_layers, n + 1), np.int64)
        self.argmax = 0
        self.active = None                        # (images, effective weights, rows)
        self.shadow = None
        self.footprint = self.shadow_footprint = 0
        self._by_addr = {r.addr: r for r in rm.registers}

    # -- registers --------------------------------------------------------------------------
    def _reg(self, name, layer=None):
        r = self.map.reg(name, layer)
        return self.store[(r.addr, r.fields[0].name)]

    def _table(self, l):
        return {name: self._reg(name, l) for _, name, _, access, _ in self.map.layer_table
                if access == "rw"}

    def _read_register(self, r):
        value = 0
        for f in r.fields:
            if f.access == "wo":
                continue
            if (r.addr, f.name) in self.store:
                v = self.store[(r.addr, f.name)]
            elif r.name == "STATUS":
                v = {"busy": 0, "job": 0, "active_bank": 0,
                     "shadow_ready": int(self.shadow is not None),
                     "active_layers": len(self.active[0]) if self.active else 0}.get(
                         f.name, self.err.get(f.name[4:], 0))
            elif r.name == "ERROR_ADDR":
                v = self.error_addr
            elif r.name == "ZONE_ERROR":
                v = self.zone_error >> f.offset & 1
            elif r.name == "ARGMAX":
                v = self.argmax
            elif r.name == "FOOTPRINT":
                v = self.footprint
            elif r.name == "SHADOW_FOOTPRINT":
                v = self.shadow_footprint
            elif r.name.startswith("CLASS_COUNT"):
                v = int(self.class_count[r.layer, int(r.name[len("CLASS_COUNT"):])])
            elif r.name in self.counters:
                v = self.counters[r.name]
            else:
                v = f.reset
            value |= (int(v) & ((1 << f.width) - 1)) << f.offset
        return value & MASK

    def _window(self, addr):
        for w in self.win.values():
            if w.base <= addr < w.base + w.depth:
                return w, addr - w.base
        return None, None

    def _refuse(self, addr):
        self.err["bus"], self.error_addr = 1, addr

    # -- Bus --------------------------------------------------------------------------------
    async def read(self, addr):
        r = self._by_addr.get(addr)
        if r is not None:
            return self._read_register(r)
        w, i = self._window(addr)
        if w is None or w.access == "wo":
            self._refuse(addr)
            return 0
        cpw, cb = self.map.codes_per_word, self.cfg.code_bits
        v = {"MASTER": lambda: self.master[i],
             "CODES": lambda: sum(int(c) << (cb * k) for k, c in
                                  enumerate(self.codes[i * cpw:(i + 1) * cpw])),
             "BIAS": lambda: self.bias[i], "RIC": lambda: self.ric[i],
             "RESULT": lambda: self.result[i], "RESULT_OVF": lambda: self.result_ovf[i],
             "HIST": lambda: self.hist[i], "COLNORM": lambda: self.colnorm[i]}[w.name]()
        return int(v) & MASK

    async def write(self, addr, value):
        value &= MASK
        r = self._by_addr.get(addr)
        if r is not None:
            if r.name == "CTRL":
                f = r.unpack(value)
                self._command(f["op"], f["arg"])
            elif r.name == "STATUS":
                for k, (name, _) in enumerate(ERRORS):
                    if value >> (16 + k) & 1:
                        self.err[name] = 0
            elif all(f.access == "ro" for f in r.fields):
                self._refuse(addr)
            else:
                for f in r.fields:
                    if f.access == "rw":
                        self.store[(addr, f.name)] = value >> f.offset & ((1 << f.width) - 1)
            return
        w, i = self._window(addr)
        if w is None or w.access == "ro":
            self._refuse(addr)
            return
        if w.name == "MASTER":
            self.master[i] = _sext(value, self.cfg.weight_bits)
        elif w.name == "CODES":
            cpw, cb = self.map.codes_per_word, self.cfg.code_bits
            for k in range(cpw):
                if i * cpw + k < self.cfg.master_depth:
                    self.codes[i * cpw + k] = value >> (cb * k) & ((1 << cb) - 1)
        elif w.name == "BIAS":
            self.bias[i] = _sext(value, self.cfg.acc_bits)
        elif w.name == "RIC":
            # Loading an EMA state loads the snapshot the allocations read and its floor too.
            self.ric[i] = self.snap[i] = self.floor[i] = value & ((1 << self.cfg.ema_bits) - 1)
        elif w.name == "COLNORM":
            self.colnorm[i] = value & ((1 << self.cfg.weight_bits) - 1)
        elif w.name == "INPUT":
            x = _sext(value, self.cfg.act_bits)
            self.x[i] = x
            self._observe(0, [i], np.array([x]))

    # -- commands ---------------------------------------------------------------------------
    def _observe(self, layer, columns, values):
        cfg = self.cfg
        idx = layer * cfg.max_cols + np.asarray(columns)
        target = np.left_shift(np.abs(values), cfg.ema_frac_bits)
        self.ric[idx] = ema_step(self.ric[idx], target, cfg)

    def _layers_ok(self, n):
        cfg = self.cfg
        if not 1 <= n <= cfg.max_layers:
            return False
        for l in range(n):
            t = self._table(l)
            if not (1 <= t["ROWS"] <= cfg.max_rows and 1 <= t["COLS"] <= cfg.max_cols):
                return False
            if l and t["COLS"] != self._reg("ROWS", l - 1):
                return False
            if t["MASTER_BASE"] + t["ROWS"] * t["COLS"] > cfg.master_depth:
                return False
            if t["UNIFORM"] > len(cfg.precisions):
                return False
            if t.get("MASKED") and not t["UNIFORM"]:     # a masked layer names its class
                return False
        return True

    def _weights_of(self, l):
        t = self._table(l)
        base, rows, cols = t["MASTER_BASE"], t["ROWS"], t["COLS"]
        return (self.master[base:base + rows * cols].reshape(rows, cols),
                self.codes[base:base + rows * cols].reshape(rows, cols))

    def _command(self, op, arg):
        n = self._reg("N_LAYERS")
        c = self.counters
        if op == Op.INFER:
            if not self.active or n != len(self.active[0]):
                self.err["command"] = 1
                return
            self._infer()
            c["SAMPLES"] += 1
        elif op == Op.SNAPSHOT:
            if not 1 <= n <= self.cfg.max_layers:
                self.err["command"] = 1
                return
            self.snap = blend_snapshot(self.snap, self.ric, self.cfg, self.floor)
        elif op in (Op.ALLOCATE, Op.HISTOGRAM, Op.REZONE):
            layers = [arg] if op == Op.HISTOGRAM else range(n)
            if not self._layers_ok(n) or (op == Op.HISTOGRAM and arg >= n):
                self.err["command"] = 1
                return
            {Op.ALLOCATE: lambda: self._allocate(layers, bool(arg & 1)),
             Op.HISTOGRAM: lambda: self._histogram(arg),
             Op.REZONE: lambda: self._rezone(n)}[op]()
        elif op == Op.SWAP:
            if self.shadow is None:
                self.err["swap"] = 1
                return
            self.active, self.shadow = self.shadow, None
            self.footprint = self.shadow_footprint
            c["SWAPS"] += 1
        elif op == Op.CLEAR:
            for k in c:
                c[k] = 0
        elif op != Op.NOP:
            self.err["command"] = 1

    def _importance(self, l):
        master, _ = self._weights_of(l)
        cols = master.shape[1]
        lo = l * self.cfg.max_cols
        state = self.snap[lo:lo + cols]
        if self._table(l).get("MASKED"):         # its columns' magnitudes, not its masters
            # The walker hands c_j to the importance unit as a weight_bits master.
            c = _sext(self.colnorm[lo:lo + cols], self.cfg.weight_bits)
            return np.broadcast_to(np.abs(c) * state, master.shape)
        return np.abs(master) * state[None, :]

    def _allocate(self, layers, fresh):
        cfg = self.cfg
        n_cls = len(cfg.precisions)
        for l in layers:
            t = self._table(l)
            thresholds = [t[f"THRESHOLD{k}"] for k in range(n_cls)]
            if thresholds != sorted(thresholds):
                self.err["thresholds"] = 1
                return
            imp = self._importance(l)
            _, prev = self._weights_of(l)
            band = 0 if fresh else self._reg("BAND")
            codes = allocate(imp, thresholds, prev.copy(), band, t["UNIFORM"],
                             bool(t.get("MASKED")))
            base = t["MASTER_BASE"]
            self.codes[base:base + codes.size] = codes.ravel()
            self.class_count[l] = np.bincount(codes.ravel(), minlength=n_cls + 1)
            self.hist = histogram(imp, cfg)
            self.counters["ALLOC_CYCLES"] += codes.size
        self.counters["ALLOCATIONS"] += 1

    def _histogram(self, l):
        imp = self._importance(l)
        self.hist = histogram(imp, self.cfg)
        self.counters["ALLOC_CYCLES"] += imp.size

    def _rezone(self, n):
        cfg = self.cfg
        images, weights, rows = [], [], []
        err = 0
        for l in range(n):
            t = self._table(l)
            master, codes = self._weights_of(l)
            masked = bool(t.get("MASKED"))
            if t["UNIFORM"] and not masked:      # a uniform layer's codes are its class
                codes = np.full(codes.shape, t["UNIFORM"], np.int64)
            shifts = [t[f"SHIFT{k}"] for k in range(len(cfg.precisions))]
            if int(weight_costs(code_bits_of(codes, cfg), cfg).sum()) != t["COST"]:
                err |= 1
            if not cfg.reversible:              # the re-zoning clears the pruned masters
                master[codes == 0] = 0
            image = pack_layer(codes.copy(), master, shifts, cfg, t["UNIFORM"], masked)
            images.append(image)
            weights.append(effective_weights(codes, master, shifts, cfg))
            rows.append(t["ROWS"])
            self.counters["REZONE_CYCLES"] += codes.size
        place_layers(images, cfg, check=False)
        over = overflows(images, cfg)
        err |= 2 * ("zone" in over) | 4 * ("meta" in over)
        self.zone_error = err
        if err:
            self.err["rezone"] = 1
            self.shadow = None
            return
        self.shadow = (images, weights, rows)
        self.shadow_footprint = footprint_bits(images, cfg)["total"]

    def _infer(self):
        cfg = self.cfg
        images, weights, _ = self.active
        x = self.x[:images[0].cols].copy()
        c = self.counters
        last = len(images) - 1
        for l, (image, w) in enumerate(zip(images, weights)):
            t = self._table(l)
            bias = self.bias[l * cfg.max_rows:l * cfg.max_rows + image.rows]
            acc, ovf = layer_forward(w, bias, x[None, :], cfg)
            acc, ovf = acc[0], ovf[0]
            if ovf.any():
                self.err["overflow"] = 1
            cyc = cycle_model(code_bits_of(image.codes, cfg), cfg)
            c["MAC_CYCLES"] += cyc["scheduled"]
            c["MAC_WORK"] += cyc["work"]
            if l < last:
                x = requantize(acc, t["OUT_SHIFT"], bool(t["RELU"]), cfg)
                self._observe(l + 1, np.arange(x.size), x)
            else:
                self.result[:acc.size] = acc
                self.result_ovf[:acc.size] = ovf
                self.argmax = int(np.argmax(acc))
        c["LAST_INFER_CYCLES"] = sum(cycle_model(code_bits_of(im.codes, cfg), cfg)["scheduled"]
                                     for im in images)
        c["INFER_CYCLES"] += c["LAST_INFER_CYCLES"]
        c["CYCLES_LO"] = (c["CYCLES_LO"] + c["LAST_INFER_CYCLES"]) & MASK
