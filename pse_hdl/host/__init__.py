"""The host side of the engine: one bus protocol, one driver, one firmware, several transports.

``Bus`` (:mod:`.bus`) is what a transport provides: word reads and writes, blocks of them, and a
wait for a status bit. Its methods are coroutines, so the same firmware runs where a read must
wait on a simulator (Amaranth's simulator, cocotb) and where it returns at once (the golden
model, the Verilated C++ model); :func:`.bus.run` drives a firmware coroutine on the latter.
:class:`.driver.Driver` gives the register map's accessors and commands; :mod:`.firmware` is the
run-time algorithm (profiling baseline, warm-up, periodic allocation, recalibration, swap).
"""
