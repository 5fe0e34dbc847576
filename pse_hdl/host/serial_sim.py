"""A serial port whose far end is the engine's Verilog: the Verilated :class:`SerialEngine`
(UART, bridge, engine; :mod:`pse_hdl.rtl.serial`) as an in-process byte pipe.

:class:`SimPort` has the part of pyserial's ``Serial`` interface that
:class:`pse_hdl.host.serial_bus.SerialBus` uses (``write``, ``read``, ``in_waiting``,
``reset_input_buffer``, ``close``), so the transport that talks to a board over
``/dev/ttyUSB1`` talks to the simulation unchanged. Time is clock cycles: ``read`` runs the
model until the bytes are there or ``timeout_cycles`` passed, as a real port waits until its
timeout. The UART runs at :data:`~pse_hdl.host.verilated.SERIAL_DIVISOR` cycles a bit.
"""

import ctypes

from .verilated import SERIAL_DIVISOR, build

__all__ = ["SimPort"]


class SimPort:
    """The serial model of ``cfg`` (built once and cached, like the fast engine model).
    ``timeout_cycles``: how long a read waits for its bytes (the default is well above the
    longest reply: a ``WAIT`` that polls to its end, then a full frame)."""

    divisor = SERIAL_DIVISOR

    def __init__(self, cfg, timeout_cycles=1 << 20):
        self.cfg, self.timeout_cycles, self._sim = cfg, timeout_cycles, None
        self.path, self.build_seconds = build(cfg, top="serial")
        self._lib = lib = ctypes.CDLL(str(self.path))
        vp, u8p, u32, u64 = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_uint32,
                             ctypes.c_uint64)
        for name, res, args in [
                ("pse_serial_create", vp, []), ("pse_serial_destroy", None, [vp]),
                ("pse_serial_reset", None, [vp, ctypes.c_int]),
                ("pse_serial_cycles", u64, [vp]), ("pse_serial_framing_errors", u64, [vp]),
                ("pse_serial_waiting", u32, [vp]), ("pse_serial_run", None, [vp, u64]),
                ("pse_serial_write", None, [vp, u8p, u32]),
                ("pse_serial_read", u32, [vp, u8p, u32, u64])]:
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        self._sim = lib.pse_serial_create()
        lib.pse_serial_reset(self._sim, 2)

    @property
    def cycles(self):
        return self._lib.pse_serial_cycles(self._sim)

    @property
    def framing_errors(self):
        """Bytes from the bridge whose stop bit was low (never, unless the RTL is wrong)."""
        return self._lib.pse_serial_framing_errors(self._sim)

    def write(self, data):
        data = bytes(data)
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        self._lib.pse_serial_write(self._sim, buf, len(data))
        return len(data)

    def read(self, size=1):
        buf = (ctypes.c_uint8 * size)()
        n = self._lib.pse_serial_read(self._sim, buf, size, self.timeout_cycles)
        return bytes(buf[:n])

    @property
    def in_waiting(self):
        return self._lib.pse_serial_waiting(self._sim)

    def reset_input_buffer(self):
        while self.in_waiting:
            self.read(self.in_waiting)

    def run(self, cycles):
        """Let ``cycles`` clock cycles pass (what is queued keeps going out)."""
        self._lib.pse_serial_run(self._sim, cycles)

    def close(self):
        if self._sim:
            self._lib.pse_serial_destroy(self._sim)
            self._sim = None

    def __del__(self):
        self.close()
