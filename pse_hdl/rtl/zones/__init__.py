"""Zoned weight memory: precision zones, master store, re-zoning engine, fetch unit.

The golden model (``pse_hdl.model.zones`` and ``model.transfer.port_streams``) is the contract:
what this block writes into its memories is bit for bit what ``pack_layer``/``place_layers``
compute, and what its fetch ports send is ``port_streams``.

Memories (``lib.memory.Memory``, synchronous reads, so they map to block RAM). Everything a
layout consists of exists twice, in bank 0 and bank 1; one is *active* (read by the fetch unit),
the other is the *shadow* the re-zoning engine builds:

- one zone per precision class (``zone_depths[k]`` words of ``zone_word_bits`` per bank),
- the metadata bit string (``meta_depth`` words per bank; the layers' strings follow each
  other),
- row descriptors (every ``desc_stride`` rows), split descriptors (``fetch_ports - 1`` per layer;
  none for a layer of fewer than ``one_port_below`` weights, which port 0 fetches alone),
- the layer table (per layer: rows, columns, weights, zone base words and scales, metadata and
  descriptor bases, uniform class: a uniform layer stores no metadata).

Not banked: the master store (int16 masters) and the plan (per layer: shape, master base,
surviving-weight count and zone scales of the next layout), both written by the host. The
master store has one port, shared by the re-zoning engine, the host and the engine's
allocation walk; the winner's address, enable and data are registered in front of it (its
block RAMs span the die), and each of its banks' outputs after it (``masters``), so its reads
take three cycles.

Commands arrive on ``cmd``, a stream, and are accepted only when they can run, so none is lost:

- ``REZONE n`` (1 <= n <= ``max_layers``, else the ``layer`` error bit): build a layout of
  layers 0..n-1 in the shadow bank from the ``codes`` stream (one
  code per weight, row-major, layer after layer). A layer is: read its plan, write its table
  entry, then one weight per cycle: read the master, quantize it with its class's scale
  (``sat_b(rshift_round(m, s))``), append it to its zone's word, append its code to the
  metadata, write a row descriptor at every ``desc_stride``-th row start and a split descriptor
  at surviving weight ``floor(p N / P)``; then flush the partial zone words. ``N`` comes from the
  plan (the histogram's per-class counts give it); a mismatch, or a zone, metadata or descriptor
  memory that overflows, sets an error bit and the layout cannot be swapped in. In destructive
  mode (``reversible = False``) the master of every pruned weight is cleared as it passes.
- ``SWAP``: accepted when the shadow holds a complete, error-free layout and no fetch runs: the
  banks exchange roles in one cycle. The bank select and the active layout's layer count are
  reset-less registers and the memories are not reset, so a reset during a re-zoning leaves the
  active layout and the master store as they were: the shadow is simply marked incomplete.
- ``FETCH l``: stream layer l of the active layout on the ``fetch_ports`` outputs ``o[p]``,
  also while a re-zoning builds the shadow bank (the two use different ports and banks).

The parts, one module each: ``layouts`` (layouts, address map, logical and physical words),
``rezoner`` (the re-zoning engine's sequence and descriptors), ``packers`` (its quantizer,
zone packer and metadata packer), ``fetch`` (loader and walkers, taking turns on the shared
read ports), ``walker`` (one port's walk), ``prefetch`` (a walker's reader of one memory),
``masters`` (the master store's banks), ``zoned`` (the memories, commands and host access:
``ZonedMemory``). Every zone and the metadata
exist once (two banks each), ``fetch_ports`` logical words wide, shared by all walkers.

Host access: ``host_wr`` (stream) writes masters and plans, only while no re-zoning runs;
``host_rd`` (stream) reads any memory of either bank while nothing else uses its port (no fetch,
no re-zoning), accepted once its data waits in a register (a cycle after it is offered, two
for a master); the data appears on ``rd_data`` one cycle after acceptance with ``rd_valid``.
"""

from .layouts import Op, Target, at_most, plan_layout, row_desc_layout, split_layout, table_layout
from .zoned import ZonedMemory

__all__ = ["ZonedMemory", "Op", "Target", "plan_layout", "table_layout", "split_layout",
           "row_desc_layout", "at_most"]
