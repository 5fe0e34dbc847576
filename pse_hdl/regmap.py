"""The engine's register map, written once.

Every register and memory window the host sees is described here, from a :class:`PSEConfig`:
address, fields with their width, access and reset value, and what they mean. From this one
description come the engine's bus decoder (``pse_hdl/rtl/engine.py``), the host driver's
accessors (``pse_hdl/host``), ``docs/REGISTERS.md`` and a C header (:func:`c_header`,
``pse generate --header``), so hardware, software and documentation cannot drift apart.

The bus is word-addressed with 32-bit data (``pse_hdl.rtl.bus``). A register is one word made of
fields; a window is an array of words backed by a memory, one entry per word. Access:

``rw``  read and write;  ``ro``  read only (writes are refused);  ``wo``  write only (reads are
refused);  ``w1c``  read, and writing 1 clears the bit.

A refused access, an address that maps to nothing, and any access but a register read or a write
of ``CTRL``/``STATUS`` while a foreground command runs set an error bit in ``STATUS`` and change
nothing; while a background job runs, so do accesses to what the job uses.
Bits of a register outside its fields read as 0 and ignore writes.
"""

import hashlib
import json
from dataclasses import dataclass

from .config import ConfigError

__all__ = ["Field", "Register", "Window", "RegisterMap", "Op", "ERRORS", "ID_VALUE",
           "LAYER_STRIDE", "check_engine_config", "markdown", "c_header"]

ID_VALUE = 0x50534531            # "PSE1"
DATA_BITS = 32
LAYER_STRIDE = 32                # words per layer in the layer table


class Op:
    """Commands written to ``CTRL.op`` (``arg`` in ``CTRL.arg``). Foreground commands
    (``STATUS.busy``) are a sample or short steps between samples; jobs (``STATUS.job``) are
    passes over every weight that run in the background, while samples go on."""
    NOP = 0
    INFER = 1          # one sample (the INPUT window) through layers 0..N_LAYERS-1
    ALLOCATE = 2       # job: codes of every layer into the code buffer, from the snapshot;
                       # arg bit 0: ignore the previous codes (no hysteresis: a first allocation)
    HISTOGRAM = 3      # job: the importance histogram of layer arg (HIST window)
    REZONE = 4         # job: pack the code buffer into the shadow bank (layers 0..N_LAYERS-1)
    SWAP = 5           # make the shadow bank active
    CLEAR = 6          # zero the counters
    SNAPSHOT = 7       # copy the EMA states into the snapshot the jobs read
    NAMES = {0: "NOP", 1: "INFER", 2: "ALLOCATE", 3: "HISTOGRAM", 4: "REZONE", 5: "SWAP",
             6: "CLEAR", 7: "SNAPSHOT"}
    JOBS = (ALLOCATE, HISTOGRAM, REZONE)
    FOREGROUND = (INFER, SWAP, CLEAR, SNAPSHOT)


# Sticky error bits of STATUS (bit = 16 + index), cleared by writing 1.
ERRORS = [
    ("bus", "an access to an unmapped address, a write to a read-only or a read of a write-only "
            "location"),
    ("busy", "an access or a command refused because a command or a job was using it"),
    ("command", "an unknown command or a bad argument or layer table (nothing started)"),
    ("thresholds", "ALLOCATE stopped: a layer's thresholds are not non-decreasing"),
    ("rezone", "the re-zoning failed (ZONE_ERROR says why); the shadow cannot be swapped in"),
    ("swap", "SWAP without a complete, error-free shadow layout"),
    ("overflow", "an accumulator saturated during INFER (flag, not a failure)"),
]


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    width: int
    access: str
    doc: str
    reset: int = 0
    signed: bool = False


@dataclass(frozen=True)
class Register:
    name: str
    addr: int
    fields: tuple
    doc: str
    layer: int = None            # per-layer registers: the layer, else None

    def field(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}")

    @property
    def access(self):
        kinds = {f.access for f in self.fields}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    def pack(self, **values):
        word = 0
        for name, v in values.items():
            f = self.field(name)
            word |= (int(v) & ((1 << f.width) - 1)) << f.offset
        return word

    def unpack(self, word):
        out = {}
        for f in self.fields:
            v = (word >> f.offset) & ((1 << f.width) - 1)
            out[f.name] = v - (1 << f.width) if f.signed and v >> (f.width - 1) else v
        return out


@dataclass(frozen=True)
class Window:
    name: str
    base: int
    depth: int            # entries (words)
    width: int            # meaningful bits per entry
    access: str
    doc: str
    signed: bool = False

    @property
    def size(self):
        """Words of address space (the depth rounded up to a power of two)."""
        return 1 << max(0, (self.depth - 1).bit_length())


def check_engine_config(cfg):
    """The limits of the engine's 32-bit register map, checked before any hardware is built."""
    for name, width in (("acc_bits", cfg.acc_bits), ("importance bits (weight_bits + act_bits + "
                                                     "ema_frac_bits)", cfg.importance_bits)):
        if width > DATA_BITS:
            raise ConfigError(f"the engine's registers are {DATA_BITS} bits wide: {name} must be "
                              f"at most {DATA_BITS}, not {width}")
    if not cfg.hysteresis_logic:
        raise ConfigError("the engine's BAND register needs the allocator's hysteresis "
                          "comparators: hysteresis_logic must be true, not false")
    if cfg.importance_form != "factored":
        raise ConfigError("the engine keeps one EMA per input (importance_form = 'factored'); "
                          "the literal per-weight form exists as the block ric_literal only, "
                          f"not {cfg.importance_form!r}")


def config_hash(cfg):
    """32 bits of the SHA-256 of the configuration's hardware fields: the host checks it against
    ``CONFIG_HASH`` (the firmware's schedule, period and delays, may differ)."""
    text = json.dumps(cfg.hardware_dict(), sort_keys=True)
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


class RegisterMap:
    """The registers and windows of the engine built for ``cfg``.

    Attributes: ``registers`` (every :class:`Register`, per-layer ones expanded), ``windows``
    (name to :class:`Window`), ``addr_bits``; ``reg(name, layer=None)`` finds a register.
    """

    def __init__(self, cfg):
        check_engine_config(cfg)
        self.cfg = cfg
        self.codes_per_word = 1 << ((DATA_BITS // cfg.code_bits).bit_length() - 1)
        regs = self._engine_registers(cfg) + self._counters()
        # Per-layer table.
        self.layer_base = 64
        self.layer_table = table = self._layer_fields(cfg)
        for l in range(cfg.max_layers):
            for off, name, width, access, doc in table:
                regs.append(Register(name, self.layer_base + l * LAYER_STRIDE + off,
                                     (Field("value", 0, width, access, doc),), doc, layer=l))
        self.registers = regs
        self._by_name = {(r.name, r.layer): r for r in regs}

        # Windows, placed after the registers, each aligned to its power-of-two size.
        top = self.layer_base + cfg.max_layers * LAYER_STRIDE
        windows = []
        for name, depth, width, access, doc, signed in sorted(
                self._window_specs(cfg), key=lambda s: -(1 << max(0, (s[1] - 1).bit_length()))):
            size = 1 << max(0, (depth - 1).bit_length())
            base = -(-top // size) * size
            windows.append(Window(name, base, depth, width, access, doc, signed))
            top = base + size
        self.windows = {w.name: w for w in sorted(windows, key=lambda w: w.base)}
        self.addr_bits = max(1, (top - 1).bit_length())

    def _engine_registers(self, cfg):
        """The engine's own registers: identity, parameters, command and status, errors, the
        network's depth, the hysteresis band, the last argmax."""
        n = len(cfg.precisions)
        imp, count_w = cfg.importance_bits, (cfg.max_layers).bit_length()
        return [
            Register("ID", 0, (Field("id", 0, 32, "ro", "the value 0x50534531 ('PSE1')",
                                     ID_VALUE),), "identifies the engine"),
            Register("CONFIG_HASH", 1, (Field("hash", 0, 32, "ro", "32 bits of the SHA-256 of "
                                              "the configuration", config_hash(cfg)),),
                     "the configuration this engine was built for"),
            Register("PARAMS", 2, (
                Field("lanes", 0, 7, "ro", "MAC lanes (= fetch ports)", cfg.lanes),
                Field("precisions", 7, 3, "ro", "precision classes", n),
                Field("max_layers", 10, 7, "ro", "layers the tables hold", cfg.max_layers),
                Field("code_bits", 17, 2, "ro", "bits of a precision code", cfg.code_bits),
                Field("codes_per_word", 19, 6, "ro", "codes per CODES word",
                      self.codes_per_word)), "build parameters the firmware needs"),
            Register("CTRL", 3, (
                Field("op", 0, 4, "wo", "the command (Op: 1 INFER, 2 ALLOCATE, 3 HISTOGRAM, "
                                        "4 REZONE, 5 SWAP, 6 CLEAR, 7 SNAPSHOT)"),
                Field("arg", 8, 8, "wo", "its argument (ALLOCATE: bit 0 ignores the previous "
                                         "codes; HISTOGRAM: the layer)")),
                     "writing starts a command; refused (error busy) while one of its kind "
                     "(foreground or job) runs"),
            Register("STATUS", 4, (
                Field("busy", 0, 1, "ro", "a foreground command runs (INFER, SNAPSHOT, SWAP)"),
                Field("active_bank", 1, 1, "ro", "the zone bank inference reads"),
                Field("shadow_ready", 2, 1, "ro", "the shadow bank holds a complete layout"),
                Field("job", 3, 1, "ro", "a job runs (ALLOCATE, HISTOGRAM, REZONE)"),
                Field("active_layers", 8, count_w, "ro", "layers of the active layout (0: none)"),
                *[Field(f"err_{name}", 16 + k, 1, "w1c", doc) for k, (name, doc)
                  in enumerate(ERRORS)]),
                     "state and sticky error bits (write 1 to clear an error bit)"),
            Register("ERROR_ADDR", 5, (Field("addr", 0, 32, "ro", "address of the last refused "
                                             "access"),), "where the last bus error happened"),
            Register("ZONE_ERROR", 6, (
                Field("cost", 0, 1, "ro", "a layer's cost differs from its codes"),
                Field("zone", 1, 1, "ro", "a zone overflowed"),
                Field("meta", 2, 1, "ro", "the metadata memory overflowed"),
                Field("layer", 3, 1, "ro", "layer count out of range")),
                     "why the last re-zoning failed (the zoned memory's error bits)"),
            Register("N_LAYERS", 7, (Field("n", 0, count_w, "rw", "layers of the network "
                                           "(1..max_layers)", 1),), "the network's depth"),
            Register("BAND", 8, (Field("band", 0, imp, "rw", "hysteresis half-width in "
                                       "importance units", cfg.hysteresis),),
                     "the allocator's hysteresis band (every layer)"),
            Register("ARGMAX", 9, (Field("row", 0, cfg.row_bits, "ro", "the largest logit's "
                                         "row (ties: the lowest)"),),
                     "the class the last INFER chose"),
        ]

    @staticmethod
    def _counters():
        """The counters (read-only, cleared by CLEAR), from address 16."""
        counters = [
            ("CYCLES_LO", "clock cycles since reset or CLEAR, low word"),
            ("CYCLES_HI", "clock cycles, high word"),
            ("SAMPLES", "INFER commands completed"),
            ("ALLOCATIONS", "ALLOCATE commands completed"),
            ("SWAPS", "SWAP commands completed"),
            ("INFER_CYCLES", "cycles spent in INFER"),
            ("ALLOC_CYCLES", "cycles of ALLOCATE and HISTOGRAM jobs"),
            ("REZONE_CYCLES", "cycles of REZONE jobs"),
            ("SNAPSHOT_CYCLES", "cycles spent in SNAPSHOT"),
            ("LAST_INFER_CYCLES", "cycles of the last INFER"),
            ("FETCH_STALLS", "cycles a fetch port offered a weight its MAC lane did not take"),
            ("MAC_CYCLES", "digit cycles of the busiest MAC lane, summed over every layer of "
                           "every INFER (the schedule's cost)"),
            ("MAC_WORK", "digit cycles of all MAC lanes over every INFER"),
            ("FOOTPRINT", "bits the active layout stores (values, metadata, descriptors)"),
            ("SHADOW_FOOTPRINT", "bits the last re-zoned layout stores"),
        ]
        return [Register(name, 16 + k, (Field("value", 0, 32, "ro", doc),), doc)
                for k, (name, doc) in enumerate(counters)]

    @staticmethod
    def _layer_fields(cfg):
        """A layer's registers, ``(offset, name, width, access, doc)`` each, at every layer's
        base."""
        n = len(cfg.precisions)
        row_w, col_w, imp = cfg.row_bits + 1, cfg.col_bits + 1, cfg.importance_bits
        table = [
            (0, "ROWS", row_w, "rw", "output rows (1..max_rows)"),
            (1, "COLS", col_w, "rw", "inputs (1..max_cols)"),
            (2, "MASTER_BASE", cfg.master_addr_bits, "rw", "first master of the layer"),
            (3, "OUT_SHIFT", cfg.out_shift_bits, "rw", "requantization shift"),
            (4, "RELU", 1, "rw", "ReLU before requantization"),
            (5, "COST", cfg.layer_cost_bits, "rw", "MAC cost of the codes to re-zone "
                                                   "(sum of ceil(b/4))"),
            (6, "UNIFORM", cfg.code_bits, "rw", "0: a code per weight; k: every weight class k "
                                                "(ALLOCATE codes k, REZONE stores no codes)"),
        ]
        if cfg.input_masks:
            table.append((7, "MASKED", 1, "rw", "with UNIFORM k: ALLOCATE codes k or 0 per input "
                                                "column (importance COLNORM x EMA), REZONE "
                                                "stores the kept columns"))
        for k in range(n):
            table.append((8 + k, f"THRESHOLD{k}", imp, "rw",
                          "prune threshold" if k == 0 else
                          f"above it: {cfg.precisions[k]}-bit"))
        for k, b in enumerate(cfg.precisions):
            table.append((12 + k, f"SHIFT{k}", cfg.shift_bits, "rw",
                          f"zone scale of the {b}-bit class for the next re-zoning"))
        for k in range(n + 1):
            table.append((16 + k, f"CLASS_COUNT{k}", 32, "ro",
                          "weights pruned by the last ALLOCATE" if k == 0 else
                          f"weights the last ALLOCATE coded {cfg.precisions[k - 1]}-bit"))
        return table

    def _window_specs(self, cfg):
        """The windows onto the memories: ``(name, depth, width, access, doc, signed)``."""
        specs = [
            ("MASTER", cfg.master_depth, cfg.weight_bits, "rw", "master weights (sign-extended)",
             True),
            ("CODES", -(-cfg.master_depth // self.codes_per_word),
             self.codes_per_word * cfg.code_bits, "rw",
             f"precision codes, {self.codes_per_word} per word, code i in bits "
             f"[{cfg.code_bits}(i mod {self.codes_per_word}), ...) of word "
             f"i / {self.codes_per_word}; ALLOCATE writes them, REZONE packs them", False),
            ("BIAS", cfg.bias_depth, cfg.acc_bits, "rw",
             "biases, layer l's rows at l * max_rows", True),
            ("RIC", cfg.ric_depth, cfg.ema_bits, "rw",
             "EMA state A_j, layer l's inputs at l * max_cols (a write loads the snapshot "
             "and, with importance_floor, its floor too)", False),
            ("INPUT", cfg.max_cols, cfg.act_bits, "wo",
             "the sample: a write is one activation of layer 0 (and one RIC observation)", True),
            ("RESULT", cfg.max_rows, cfg.acc_bits, "ro", "the last INFER's logits (accumulators)",
             True),
            ("RESULT_OVF", cfg.max_rows, 1, "ro", "the last INFER's overflow flag per logit",
             False),
            ("HIST", cfg.hist_bins, 32, "ro", "importance histogram of the last ALLOCATE's last "
                                              "layer or HISTOGRAM's layer", False),
        ]
        if cfg.input_masks:
            specs.append(("COLNORM", cfg.ric_depth, cfg.weight_bits, "rw",
                          "a masked layer's column magnitudes c_j (rounded mean |master| of "
                          "the column), layer l's inputs at l * max_cols", False))
        return specs

    def reg(self, name, layer=None):
        try:
            return self._by_name[(name, layer)]
        except KeyError:
            raise KeyError(f"no register {name!r}" + (f" for layer {layer}" if layer is not None
                                                      else "")) from None

    def addr(self, name, layer=None):
        return self.reg(name, layer).addr


def markdown(cfg):
    """``docs/REGISTERS.md``: the map as tables."""
    rm = RegisterMap(cfg)
    out = ["# Engine register map", "",
           "Generated from `pse_hdl/regmap.py` by `pse generate --registers` for the default "
           "configuration; the driver, the RTL decoder and the C header (`pse generate "
           "--header`) come from the same description. Word addresses; 32-bit data; "
           f"{rm.addr_bits} address bits.", "",
           "Access: `rw` read/write, `ro` read only, `wo` write only, `w1c` write 1 to clear. "
           "A refused access, an unmapped address, and any access but a register read or a "
           "write of `CTRL`/`STATUS` while a foreground command runs set an error bit and "
           "change nothing; while a job runs, so do accesses to what it uses (MASTER, CODES, "
           "HIST, writes of the layer table, N_LAYERS and BAND).",
           "", "## Registers", "", "| address | register | field | bits | access | reset | "
           "meaning |", "|---|---|---|---|---|---|---|"]
    for r in rm.registers:
        if r.layer is not None:
            continue
        for i, f in enumerate(r.fields):
            bits = f"{f.offset + f.width - 1}:{f.offset}" if f.width > 1 else f"{f.offset}"
            out.append(f"| {f'0x{r.addr:03x}' if i == 0 else ''} | {r.name if i == 0 else ''} "
                       f"| {f.name} | {bits} | {f.access} | {f.reset:#x} | {f.doc} |")
    out += ["", f"## Layer table (layer l at 0x{rm.layer_base:03x} + {LAYER_STRIDE} l)", "",
            "| offset | register | bits | access | meaning |", "|---|---|---|---|---|"]
    for off, name, width, access, doc in rm.layer_table:
        out.append(f"| {off} | {name} | {width} | {access} | {doc} |")
    out += ["", "## Windows", "", "| base | window | entries | bits | access | meaning |",
            "|---|---|---|---|---|---|"]
    for w in rm.windows.values():
        out.append(f"| 0x{w.base:05x} | {w.name} | {w.depth} | {w.width}"
                   f"{' signed' if w.signed else ''} | {w.access} | {w.doc} |")
    out += ["", "## Commands (`CTRL.op`)", "", "| op | command | what it does |", "|---|---|---|"]
    docs = {Op.INFER: "the INPUT sample through every layer; logits in RESULT, class in ARGMAX",
            Op.ALLOCATE: "job: master walk through RIC (the snapshot), PA, SM and histogram of "
                         "every layer: codes into CODES, class counts into the layer table",
            Op.HISTOGRAM: "job: the importance histogram of layer arg (the snapshot) into HIST",
            Op.REZONE: "job: pack the codes with each layer's COST and SHIFTk into the shadow "
                       "bank",
            Op.SWAP: "the shadow bank becomes active (between samples; no job running)",
            Op.CLEAR: "zero the counters",
            Op.SNAPSHOT: "move the snapshot the jobs read 2^-snapshot_shift of the way to every "
                         "layer's live EMA states, not below the floor (the states last "
                         "written) with importance_floor (no job running)"}
    for op, doc in docs.items():
        out.append(f"| {op} | {Op.NAMES[op]} | {doc} |")
    out += ["", "## Error bits (`STATUS`, bit 16 + k)", "", "| bit | name | set when |",
            "|---|---|---|"]
    for k, (name, doc) in enumerate(ERRORS):
        out.append(f"| {16 + k} | err_{name} | {doc} |")
    return "\n".join(out) + "\n"


def c_header(cfg):
    """A C header with every address, field and command, for firmware on a soft CPU."""
    rm = RegisterMap(cfg)
    out = ["/* pse-hdl engine register map, generated from pse_hdl/regmap.py. Do not edit. */",
           "#ifndef PSE_REGS_H", "#define PSE_REGS_H", "",
           f"#define PSE_CONFIG_HASH 0x{config_hash(cfg):08x}u",
           f"#define PSE_ADDR_BITS {rm.addr_bits}", f"#define PSE_LAYER_BASE 0x{rm.layer_base:x}u",
           f"#define PSE_LAYER_STRIDE {LAYER_STRIDE}u", ""]
    for r in rm.registers:
        if r.layer is None:
            out.append(f"#define PSE_{r.name} 0x{r.addr:x}u")
            for f in r.fields:
                out.append(f"#define PSE_{r.name}_{f.name.upper()}_SHIFT {f.offset}u")
                out.append(f"#define PSE_{r.name}_{f.name.upper()}_MASK "
                           f"0x{((1 << f.width) - 1) << f.offset:x}u")
    out.append("")
    for off, name, _, _, _ in rm.layer_table:
        out.append(f"#define PSE_LAYER_{name}(l) (PSE_LAYER_BASE + PSE_LAYER_STRIDE * (l) + "
                   f"{off}u)")
    out.append("")
    for w in rm.windows.values():
        out.append(f"#define PSE_{w.name}_BASE 0x{w.base:x}u")
        out.append(f"#define PSE_{w.name}_DEPTH {w.depth}u")
    out.append("")
    for op, name in Op.NAMES.items():
        out.append(f"#define PSE_OP_{name} {op}u")
    out += ["", "#endif", ""]
    return "\n".join(out)
