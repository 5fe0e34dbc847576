"""Transport: the engine's Verilog as a plain Verilated C++ model, loaded with ctypes (fast).

cocotb's runner builds every model with ``--public-flat-rw`` and VPI, which makes a large model
many times slower; it stays the verification backend (backpressure, monitors, random X). For long
runs this backend builds the same Verilog with ``-O3 --x-assign fast`` and no public signals,
wrapped in a small C++ shim (``csrc/shim.cpp``) whose calls run the clock themselves until a bus
transaction is done: Python issues commands and bulk transfers and never steps cycles.

A build is cached by a key over everything the Verilog and the model depend on (the RTL sources,
the configuration, the Amaranth and Verilator versions, the shim and the flags), under
``$PSE_FAST_BUILD`` (default ``~/.cache/pse-hdl/fast``): a rebuild with nothing changed costs
nothing. ``trace="fst"`` (or ``"vcd"``) builds a separate variant with ``--trace-fst``
(``--trace``) for waveforms; FST needs the lz4 library's headers (Debian: ``liblz4-dev``).
"""

import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..config import LINK_FIELDS
from ..regmap import RegisterMap
from ..toolchain import VERILATOR_WAIVERS, ToolchainError, verilator_env
from .bus import Bus, BusTimeout

__all__ = ["VerilatedBus", "SERIAL_DIVISOR", "build", "build_dir_for", "trace_format"]

PACKAGE = Path(__file__).resolve().parent.parent
CSRC = Path(__file__).resolve().parent / "csrc"
SHIM = CSRC / "shim.cpp"
# Clock cycles a bit of the serial model's UART: the fewest the UART takes, so the line costs
# the fewest cycles (a board divides its clock for its baud rate; the protocol is the same).
SERIAL_DIVISOR = 4
# Warnings do not stop a simulation build (``pse lint`` is where the Verilog is linted).
FLAGS = ["-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert", "-Wno-fatal",
         *VERILATOR_WAIVERS]
CXXFLAGS = ["-O2", "-fPIC", "-std=c++17"]


def _cache_root():
    return Path(os.environ.get("PSE_FAST_BUILD", Path.home() / ".cache" / "pse-hdl" / "fast"))


def _top(top, cfg):
    """``(Verilog text, module name, shim, C++ defines)`` of a model: ``"engine"`` (bus ports) or ``"serial"`` (UART pins: :class:`SerialEngine`)."""
    from amaranth.back import verilog

    from ..rtl import compact_memory_init, generate_verilog
    from ..rtl.serial import SerialEngine
    if top == "engine":
        return (generate_verilog("engine", cfg), "pse_engine", SHIM,
                [f"-DPSE_ADDR_BITS={RegisterMap(cfg).addr_bits}"])
    return (compact_memory_init(verilog.convert(SerialEngine(cfg, SERIAL_DIVISOR),
                                                name="pse_serial", emit_src=False)),
            "pse_serial", CSRC / "serial_shim.cpp", [f"-DPSE_DIVISOR={SERIAL_DIVISOR}"])


def _key(cfg, trace, top="engine"):
    """Everything the model depends on, hashed: a changed source or version builds anew."""
    import amaranth
    h = hashlib.sha256()
    for path in sorted([*PACKAGE.glob("rtl/**/*.py"), *PACKAGE.glob("model/*.py"),
                        PACKAGE / "regmap.py", *PACKAGE.glob("config/*.py"),
                        PACKAGE / "host" / "link.py", *CSRC.glob("*.cpp")]):
        h.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes())
    fields = cfg.hardware_dict()
    if top == "serial":
        fields.update({k: getattr(cfg, k) for k in LINK_FIELDS})
    h.update(json.dumps(fields, sort_keys=True).encode())
    h.update(f"{amaranth.__version__} {verilator_env()} {FLAGS} {CXXFLAGS} {trace} {top} "
             f"{SERIAL_DIVISOR}".encode())
    return h.hexdigest()[:16]


def build_dir_for(cfg, trace=False, top="engine"):
    return _cache_root() / f"{top}-{_key(cfg, trace, top)}{f'-{trace}' if trace else ''}"


def trace_format(path):
    """``"fst"`` or ``"vcd"`` from a waveform file name; a clear error for anything else, and
    for FST where the lz4 headers it needs are missing."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".fst", ".vcd"):
        raise ValueError(f"a waveform file must end in .fst or .vcd, not {str(path)!r}")
    if suffix == ".fst" and not any(Path(d, "lz4.h").exists()
                                    for d in ("/usr/include", "/usr/local/include")):
        raise ValueError("FST waveforms need the lz4 library (Debian/Ubuntu: apt-get install "
                         "liblz4-dev); install it or ask for a .vcd file")
    return suffix[1:]


def _run(cmd, cwd, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(map(str, cmd)) + "\n")
        f.flush()
        r = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode:
        raise ToolchainError(f"{Path(cmd[0]).name} failed (exit {r.returncode}); see {log}")


def build(cfg, trace=False, log=None, top="engine"):
    """The shared library of the engine (``top="engine"``) or of the engine behind its serial
    link (``"serial"``) for ``cfg``, built if not cached; returns ``(path, seconds spent
    building, 0 if cached)``."""
    final = build_dir_for(cfg, trace, top)
    lib = final / f"lib{('pse_engine', 'pse_serial')[top == 'serial']}.so"
    if lib.exists():
        return lib, 0.0
    root = verilator_env()
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # another process may be building it
        if lib.exists():
            return lib, 0.0
        start = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="build-", dir=final.parent))
        try:
            log = log or final.parent / f"{final.name}.log"
            Path(log).write_text("")
            text, name, shim, defines = _top(top, cfg)
            src = work / f"{name}.v"
            src.write_text(text)
            vflags = [*FLAGS, *({"fst": ["--trace-fst"], "vcd": ["--trace"]}.get(trace, []))]
            _run(["verilator", "--cc", str(src), "--top-module", name, "--Mdir", "obj",
                  "-CFLAGS", " ".join(CXXFLAGS), *vflags], work, log)
            _run(["make", "-s", f"-j{os.cpu_count() or 1}", "-C", "obj", "-f", f"V{name}.mk",
                  "OPT_FAST=-O2", "OPT_SLOW=-O1", "CFG_CXXFLAGS_PCH_I=-include",
                  f"libV{name}.a", "libverilated.a"], work, log)
            _run(["g++", "-shared", *CXXFLAGS, *defines,
                  f"-DVM_TRACE={int(bool(trace))}", f"-DPSE_TRACE_FST={int(trace == 'fst')}",
                  "-Iobj", f"-I{root}/include",
                  f"-I{root}/include/vltstd", str(shim), f"obj/libV{name}.a",
                  "obj/libverilated.a", "-pthread",
                  *({"fst": ["-llz4", "-lz"], "vcd": ["-lz"]}.get(trace, [])),
                  "-o", lib.name], work, log)
            shutil.rmtree(work / "obj")
            (work / "build_seconds").write_text(f"{time.monotonic() - start:.1f}\n")
            if final.exists():
                shutil.rmtree(final)
            work.rename(final)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
        return lib, time.monotonic() - start


class VerilatedBus(Bus):
    """The engine's bus on a Verilated model. ``VerilatedBus(cfg)`` builds or loads the model
    and resets it; ``cycles`` is the simulated clock count. ``trace`` is ``False``, ``"fst"``
    or ``"vcd"`` (a tracing build)."""

    def __init__(self, cfg, trace=False):
        self.cfg, self._sim = cfg, None
        self.path, self.build_seconds = build(cfg, trace)
        self._lib = lib = ctypes.CDLL(str(self.path))
        vp, u32, u64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64
        p32 = ctypes.POINTER(u32)
        for name, res, args in [
                ("pse_create", vp, []), ("pse_destroy", None, [vp]),
                ("pse_reset", None, [vp, ctypes.c_int]), ("pse_cycles", u64, [vp]),
                ("pse_run", None, [vp, u64]),
                ("pse_write_block", ctypes.c_int, [vp, u32, p32, u32]),
                ("pse_read_block", ctypes.c_int, [vp, u32, p32, u32]),
                ("pse_wait", ctypes.c_int, [vp, u32, u32, u32, u64, p32]),
                ("pse_trace_open", ctypes.c_int, [vp, ctypes.c_char_p]),
                ("pse_trace_enable", None, [vp, ctypes.c_int]),
                ("pse_trace_close", None, [vp])]:
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        self._sim = lib.pse_create()
        self.traced = trace
        self.reset()

    def close(self):
        if self._sim:
            self._lib.pse_destroy(self._sim)
            self._sim = None

    def __del__(self):
        self.close()

    def reset(self, cycles=2):
        self._lib.pse_reset(self._sim, cycles)

    @property
    def cycles(self):
        return self._lib.pse_cycles(self._sim)

    def run_cycles(self, n):
        self._lib.pse_run(self._sim, n)

    # -- Bus --------------------------------------------------------------------------------
    def _check(self, rc, what, addr):
        if rc:
            raise BusTimeout(f"{what} at 0x{addr:x}: the engine did not complete the transfer")

    async def write(self, addr, value):
        await self.write_block(addr, [value])

    async def read(self, addr):
        return (await self.read_block(addr, 1))[0]

    async def write_block(self, addr, values):
        buf = (ctypes.c_uint32 * len(values))(*[int(v) & 0xFFFF_FFFF for v in values])
        self._check(self._lib.pse_write_block(self._sim, addr, buf, len(values)), "write", addr)

    async def read_block(self, addr, count):
        buf = (ctypes.c_uint32 * count)()
        self._check(self._lib.pse_read_block(self._sim, addr, buf, count), "read", addr)
        return list(buf)

    async def wait(self, addr, mask, value, limit=1 << 26):
        word = ctypes.c_uint32()
        rc = self._lib.pse_wait(self._sim, addr, mask, value, limit, ctypes.byref(word))
        if rc:
            raise BusTimeout(f"register 0x{addr:x} did not reach {value:#x} under mask "
                             f"{mask:#x} after {limit} reads")
        return word.value

    # -- waveforms --------------------------------------------------------------------------
    def trace_open(self, path):
        if not self.traced:
            raise RuntimeError("this model was built without tracing: VerilatedBus(cfg, "
                               "trace=True)")
        if self._lib.pse_trace_open(self._sim, str(path).encode()):
            raise RuntimeError("the model could not open the trace")

    def trace_enable(self, on=True):
        self._lib.pse_trace_enable(self._sim, int(on))

    def trace_close(self):
        self._lib.pse_trace_close(self._sim)
