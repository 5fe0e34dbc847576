"""The engine's host driver: the register map's accessors and commands over any :class:`Bus`.

Every address and field comes from :class:`pse_hdl.regmap.RegisterMap`; nothing here repeats a
number of the hardware. A command is a write of ``CTRL`` followed by a wait for ``STATUS.busy``
to fall; an error bit that the command raised becomes an :class:`EngineError` naming it.
"""

from ..errors import UserError
from ..regmap import ERRORS, ID_VALUE, Op, RegisterMap, config_hash

__all__ = ["Driver", "EngineError", "IdentifyError"]

# Error bits that stop the firmware (``overflow`` is a flag about the data, not a failure).
FATAL = [name for name, _ in ERRORS if name != "overflow"]


class EngineError(RuntimeError):
    """The engine refused or failed a command; the message names the error bits and what they
    mean."""

    def __init__(self, what, bits, detail=""):
        docs = dict(ERRORS)
        self.bits = bits
        super().__init__(f"{what}: " + "; ".join(f"{b} ({docs[b]})" for b in bits) + detail)


class IdentifyError(UserError):
    """The bus does not lead to a PSE built for this configuration (another bitstream, another
    configuration, a wrong port or baud rate): the user's to fix."""


class Driver:
    """Accessors of one engine behind ``bus``, built for ``cfg``."""

    def __init__(self, bus, cfg):
        self.bus, self.cfg = bus, cfg
        self.map = RegisterMap(cfg)
        self._status = self.map.reg("STATUS")

    # -- registers --------------------------------------------------------------------------
    async def read(self, name, layer=None):
        return await self.bus.read(self.map.addr(name, layer))

    async def write(self, name, value, layer=None):
        reg = self.map.reg(name, layer)
        await self.bus.write(reg.addr, int(value) & 0xFFFF_FFFF)

    async def read_field(self, name, field, layer=None):
        reg = self.map.reg(name, layer)
        return reg.unpack(await self.bus.read(reg.addr))[field]

    async def write_layer(self, layer, **values):
        """Write layer-table registers of ``layer``: ``ROWS=..., COLS=...``."""
        for name, value in values.items():
            await self.write(name, value, layer)

    async def status(self):
        return self._status.unpack(await self.read("STATUS"))

    async def errors(self):
        st = await self.status()
        return [name for name, _ in ERRORS if st[f"err_{name}"]]

    async def clear_errors(self, names=None):
        names = [n for n, _ in ERRORS] if names is None else names
        await self.write("STATUS", self._status.pack(**{f"err_{n}": 1 for n in names}))

    async def counter(self, name):
        if name == "CYCLES":
            lo, hi = await self.read("CYCLES_LO"), await self.read("CYCLES_HI")
            if await self.read("CYCLES_LO") < lo:          # the low word wrapped meanwhile
                hi = await self.read("CYCLES_HI") - 1
            return hi << 32 | lo
        return await self.read(name)

    async def identify(self):
        """Check the engine is a PSE built for this configuration."""
        ident, h = await self.read_many("ID", "CONFIG_HASH")
        if ident != ID_VALUE:
            raise IdentifyError(f"this is not a PSE engine: its ID register reads {ident:#x}, "
                                f"not {ID_VALUE:#x}")
        if h != config_hash(self.cfg):
            raise IdentifyError(f"the engine was built for another configuration (hash "
                                f"{h:#010x}, this one {config_hash(self.cfg):#010x}): give the "
                                f"configuration its bitstream was built with (--config)")

    # -- windows ----------------------------------------------------------------------------
    def _window(self, name, start, count):
        w = self.map.windows[name]
        if start < 0 or start + count > w.depth:
            raise ValueError(f"window {name} has {w.depth} entries: [{start}, {start + count}) "
                             f"is outside it")
        return w

    async def write_window(self, name, values, start=0):
        values = [int(v) & 0xFFFF_FFFF for v in values]
        w = self._window(name, start, len(values))
        await self.bus.write_block(w.base + start, values)

    async def read_window(self, name, count, start=0):
        """Entries as Python ints (sign-extended where the window is signed)."""
        w = self._window(name, start, count)
        return self._entries(w, await self.bus.read_block(w.base + start, count))

    async def read_many(self, *items):
        """Registers (``"NAME"``, or ``("NAME", layer)``) and window prefixes (``("WINDOW",
        count)``) in one bus transaction where the transport allows (one frame on a serial
        port)."""
        def window(i):
            return not isinstance(i, str) and i[0] in self.map.windows
        blocks = [(self._window(i[0], 0, i[1]).base, i[1]) if window(i)
                  else (self.map.addr(*((i,) if isinstance(i, str) else i)), 1) for i in items]
        words = await self.bus.read_blocks(blocks)
        return [self._entries(self.map.windows[i[0]], w) if window(i) else w[0]
                for i, w in zip(items, words)]

    @staticmethod
    def _entries(w, words):
        if not w.signed:
            return [int(x) & ((1 << w.width) - 1) for x in words]
        return [x - (1 << 32) if x >> 31 else x for x in (int(x) & 0xFFFF_FFFF for x in words)]

    async def read_codes(self, base, count):
        """``count`` precision codes from master address ``base`` (CODES holds several per
        word)."""
        cpw, cb = self.map.codes_per_word, self.cfg.code_bits
        first, last = base // cpw, (base + count - 1) // cpw
        words = await self.read_window("CODES", last - first + 1, first) if count else []
        mask = (1 << cb) - 1
        return [(words[(base + i) // cpw - first] >> (cb * ((base + i) % cpw))) & mask
                for i in range(count)]

    async def write_codes(self, codes):
        """The whole code buffer from ``codes`` (master addresses from 0)."""
        cpw, cb = self.map.codes_per_word, self.cfg.code_bits
        words = []
        for i in range(0, len(codes), cpw):
            words.append(sum(int(c) << (cb * k) for k, c in enumerate(codes[i:i + cpw])))
        await self.write_window("CODES", words)

    # -- commands ---------------------------------------------------------------------------
    async def command(self, op, arg=0, wait=True):
        """Run a command; raise :class:`EngineError` if it set a fatal error bit. A foreground
        command (INFER, SNAPSHOT, SWAP, CLEAR) is waited for; a job (ALLOCATE, HISTOGRAM,
        REZONE) too unless ``wait=False`` (then :meth:`wait_job` collects it). Fatal bits are
        cleared first unless a job is running (its errors are its own)."""
        ctrl = self.map.reg("CTRL")
        if not (await self.status())["job"]:
            await self.clear_errors(FATAL)
        await self.bus.write(ctrl.addr, ctrl.pack(op=op, arg=arg))
        if op in Op.JOBS:
            return await self.wait_job(op) if wait else None
        busy = self._status.field("busy")
        word = await self.bus.wait(self._status.addr, 1 << busy.offset, 0)
        return await self._check(Op.NAMES.get(op, f"op {op}"), self._status.unpack(word))

    async def job_running(self):
        return bool((await self.status())["job"])

    async def wait_job(self, op=None, unfit_ok=False):
        """Wait for the running job (if any) to end; raise if it failed. With ``unfit_ok``, a
        re-zoning that failed only because its layout does not fit (a zone or the metadata
        overflowed, no other error bit) returns its status instead (``err_rezone`` set)."""
        job = self._status.field("job")
        word = await self.bus.wait(self._status.addr, 1 << job.offset, 0)
        return await self._check(Op.NAMES.get(op, "job"), self._status.unpack(word), unfit_ok)

    async def _check(self, what, st, unfit_ok=False):
        """Raise :class:`EngineError` for the fatal error bits of ``st``, with the details the
        engine keeps (the zones' error bits for a failed re-zoning)."""
        bad = [n for n in FATAL if st[f"err_{n}"]]
        if unfit_ok and bad == ["rezone"]:
            ze = self.map.reg("ZONE_ERROR").unpack(await self.read("ZONE_ERROR"))
            if not ze["cost"] and not ze["layer"]:
                return st
        if bad:
            detail = ""
            if "rezone" in bad:
                ze = self.map.reg("ZONE_ERROR").unpack(await self.read("ZONE_ERROR"))
                detail = f" (zone error bits: {', '.join(k for k, v in ze.items() if v)})"
            raise EngineError(what, bad, detail)
        return st
