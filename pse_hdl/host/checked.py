"""An RTL run checked against the golden model as it goes: what ``pse demo --backend rtl`` and
``Design.run(x, backend="rtl")`` do."""

import time

import numpy as np

from .bus import run
from .driver import Driver
from .firmware import Firmware
from .verilated import VerilatedBus, trace_format

__all__ = ["MismatchError", "run_checked"]


class MismatchError(RuntimeError):
    """The RTL produced a number the golden model does not: a bug in one of the two."""


def run_checked(cfg, qnet, thresholds, policy, xq, want, progress=None, trace=None,
                trace_samples=None, port=None, baud=None):
    """The samples ``xq`` through the engine's Verilog (the fast Verilated model) with the host
    firmware; every logit and every allocation's codes and footprint compared with ``want``,
    the golden model's ``(logits, codes per allocation, footprints)``, as they come. Returns the
    logits and the figures from the engine's counters. ``trace`` (a ``.fst``/``.vcd`` path)
    dumps the waveform of the samples ``trace_samples`` (``(first, end)``, default the first).
    With ``port`` the engine is a board's behind its serial link (``"sim"``: its Verilog behind
    the UART), through :class:`SerialBus`; the figures then include the link's."""
    want_logits, want_codes, want_footprints = want
    # ``clock``: what is closed at the end and counts simulated cycles and build time, if any
    # (a real serial port does neither).
    if port is not None:
        from .serial_bus import SerialBus, open_port
        clock = open_port(port, cfg, baud)
        bus = SerialBus(clock, cfg)
    else:
        bus = clock = VerilatedBus(cfg, trace=trace_format(trace) if trace else False)
    fw = Firmware(Driver(bus, cfg), qnet, thresholds, policy)
    first, end = trace_samples or (0, 1)
    last = len(qnet.layers) - 1
    if trace:
        bus.trace_open(trace)

    def check_codes(k, codes, footprint):
        for l, (got, want) in enumerate(zip(codes, want_codes[k])):
            bad = np.argwhere(np.asarray(got) != want)
            if bad.size:
                i, j = bad[0]
                raise MismatchError(f"allocation {k}, layer {l}, row {i}, column {j}: the "
                                    f"RTL coded {got[i, j]}, the golden model {want[i, j]}")
        if footprint != want_footprints[k]:
            raise MismatchError(f"allocation {k}: the RTL's layout stores {footprint} "
                                f"bits, the golden model's {want_footprints[k]}")

    def before_sample(t):
        if trace:
            bus.trace_enable(first <= t < end)

    def check_sample(t, logits):
        bad = np.flatnonzero(logits != want_logits[t])
        if bad.size:
            r = int(bad[0])
            hint = "" if trace else (f"; rerun with --trace mismatch.fst --trace-samples "
                                     f"{t}:{t + 1} for the waveform of that sample")
            raise MismatchError(f"sample {t}, layer {last} (the logits), row {r}: the RTL "
                                f"computed {logits[r]}, the golden model "
                                f"{want_logits[t][r]}{hint}")

    start = time.monotonic()
    cycles0 = getattr(clock, "cycles", 0)
    try:
        before_sample(-1)
        run(fw.load())
        loaded = (getattr(bus, "sent", 0), getattr(bus, "received", 0),
                  getattr(bus, "frames", 0), time.monotonic())
        check_codes(0, fw.codes, fw.footprint)
        logits, st = run(fw.run(xq, on_sample=check_sample, on_allocation=check_codes,
                                before_sample=before_sample, progress=progress))
        cycles = getattr(clock, "cycles", 0) - cycles0
    finally:
        if trace:
            bus.trace_close()
        clock.close()
    seconds = time.monotonic() - start
    labels = ["pruned"] + [f"{b}-bit" for b in cfg.precisions]
    extra = {} if port is None else _link_figures(bus, len(xq), loaded)
    return logits, {
        "bit_exact": True,
        "bits_per_weight": float(st.bits),
        "mac_cycle_ratio": float(st.mac_cycles / st.dense16),
        "mac_cycles_per_sample": float(st.mac_cycles),
        "dense16_cycles_per_sample": float(st.dense16),
        "precision_shares": {k: float(v) for k, v in zip(labels, st.shares)},
        "allocations": int(st.allocations),
        "engine_cycles_per_sample": float(st.engine_cycles),
        # INFER with the waits for the allocation's jobs and the snapshots spread over the
        # samples: what a sample costs the engine at this allocation period.
        "amortised_cycles_per_sample": float(st.engine_cycles) + (
            st.extra["snapshot_cycles"] + st.extra["job_wait_cycles"]) / len(xq),
        "ideal_cycles_per_sample": float(st.ideal),
        "allocation_cycles": int(st.alloc_cycles),
        "rezone_cycles": int(st.rezone_cycles),
        "snapshot_cycles": int(st.extra["snapshot_cycles"]),
        "job_wait_cycles": int(st.extra["job_wait_cycles"]),
        "run_cycles": int(st.extra["run_cycles"]),
        "rtl_rungs": [int(r) for r in st.extra["rungs"]],
        "rtl_layouts_over_budget": int(st.swapped.count(False) - st.unfit),
        "rtl_layouts_unfit": int(st.unfit),
        "swap_delay": cfg.swap_delay,
        "sim_cycles": int(cycles),
        "rtl_run_s": seconds,
        "build_s": getattr(clock, "build_seconds", 0.0),
        "cycles_per_s": cycles / seconds if seconds else 0.0,
        **extra,
    }


def _link_figures(bus, samples, loaded):
    """What the serial link carried over the samples (after the load; their allocations
    included): frames, bytes per sample, the samples a second measured, and the samples a
    second the UART alone allows at the configured baud rate (10 bits a byte)."""
    sent0, received0, frames0, start = loaded
    seconds = time.monotonic() - start
    per_sample = (bus.sent - sent0 + bus.received - received0) / samples
    return {"link_frames": bus.frames, "link_retries": bus.retried,
            "link_frames_per_sample": (bus.frames - frames0) / samples,
            "link_bytes_per_sample": per_sample, "uart_baud": bus.cfg.uart_baud,
            "samples_per_s": samples / seconds if seconds else 0.0,
            "uart_limited_samples_per_s": bus.cfg.uart_baud / 10 / per_sample}
